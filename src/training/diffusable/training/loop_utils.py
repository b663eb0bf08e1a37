"""Pieces every training loop here shares: per-step generators, the LR schedule, EMA."""

from __future__ import annotations

import argparse
import contextlib
import math
from dataclasses import fields, replace

import torch
import torch.nn as nn

from ..data.datasets import DATA_HELP


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """All randomness of one step: resuming at step s replays exactly what s would have drawn."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 1009 + rank)


def lr_at(step: int, lr: float, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine down to 10% at the last step."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, step: int, decay: float) -> None:
    # Short runs: ramp the decay up so the EMA is not dominated by the random init.
    d = min(decay, (1 + step) / (10 + step))
    for pe, pm in zip(ema.parameters(), model.parameters()):
        if pm.requires_grad:
            pe.mul_(d).add_(pm.detach(), alpha=1 - d)
        else:  # frozen: d*x + (1-d)*x is not x in floating point, and frozen must stay exact
            pe.copy_(pm)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_bool(text: str) -> bool:
    """A boolean flag's value: true/false, 1/0, yes/no, on/off (any case); anything else is an
    error (bool("False") is True, which is why bool is not the flag's type)."""
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def flag_type(default):
    """What parses a config field's flag: parse_bool for a bool, else the default's type."""
    return parse_bool if isinstance(default, bool) else type(default)


def add_run_flags(ap: argparse.ArgumentParser, config_cls) -> None:
    """The flags every trainer has, plus one --flag per field of its config dataclass."""
    ap.add_argument("--out", required=True, help="run folder (events.jsonl, checkpoints/)")
    ap.add_argument("--data", default="procedural", help=DATA_HELP)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    ap.add_argument("--stop-after", type=int, default=0, help="stop (resumably) at this step")
    ap.add_argument(
        "--time-budget",
        type=float,
        default=0,
        help="seconds this process may take: the step count is fixed from the measured speed "
        "(trainer.StepBudget; never above --steps)",
    )
    ap.add_argument(
        "--budget-evals", type=int, default=0, help="with --time-budget: evaluations in all"
    )
    ap.add_argument(
        "--budget-sync",
        default="",
        help="with --time-budget, DIR:N: N runs agree on one step count (the smallest)",
    )
    for f in fields(config_cls):  # every field can be overridden: --lr 1e-4, ...
        ap.add_argument("--" + f.name.replace("_", "-"), type=flag_type(f.default), default=None)


def config_from_flags(args: argparse.Namespace, preset):
    """The preset with every flag the user gave applied on top."""
    given = {f.name: getattr(args, f.name) for f in fields(preset)}
    return replace(preset, **{k: v for k, v in given.items() if v is not None})


def autocast_for(device: torch.device, cpu_bf16: bool = False):
    """bf16 autocast on CUDA; on CPU only when asked (`cpu_bf16`): weights, optimizer and loss
    stay fp32, the matmuls and convolutions run in bf16. On a CPU with avx512_bf16 that halves a
    training step (bench/train_speed.py --precision fp32 bf16); on one without, oneDNN emulates
    bf16 and it is slower, hence opt-in."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    if cpu_bf16:
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
