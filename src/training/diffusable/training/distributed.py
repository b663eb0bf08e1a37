"""DDP set-up under torchrun; a single process when WORLD_SIZE is unset or 1."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_arg: str = "auto") -> DistInfo:
    cuda = torch.cuda.is_available() if device_arg == "auto" else device_arg.startswith("cuda")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        # A collective that waits longer than this raises instead of hanging the run for gloo's
        # default 30 minutes (DIFFUSABLE_DIST_TIMEOUT_S; the tests use a short one).
        timeout = timedelta(seconds=float(os.environ.get("DIFFUSABLE_DIST_TIMEOUT_S", "1800")))
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timeout)
        rank, local = dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0"))
    else:
        rank, local = 0, 0
    if cuda:
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    return DistInfo(rank, world, local, device)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        # Every rank reaches this point before any tears its connections down: a rank that left
        # early could reset a socket its peer still reads the last collective's bytes from.
        dist.barrier()
        dist.destroy_process_group()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value


@torch.no_grad()
def max_diff_from_rank0(model: torch.nn.Module) -> float:
    """Largest |w - w_rank0| over every parameter of every rank (a collective: all ranks call
    it). 0.0 when DDP kept the replicas identical."""
    flat = torch.cat([p.detach().flatten().float() for p in model.parameters()])
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    worst = (flat - ref).abs().max().reshape(1)
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return float(worst)
