"""Trainer speed: steps/s and achieved GFLOP/s of the AE and denoiser training steps, beside the
machine's fp32 GEMM rate measured in the same process at the same thread count.

    PYTHONPATH=src/training /usr/bin/python3 bench/train_speed.py [--threads 1 2] [--seconds 20]

Each thread count runs in its own process (OpenBLAS and torch fix their pools at start). A step
is what the trainers do: forward, loss, backward and an AdamW update, on the shipped configs'
batches (the AE pre-train's: conv-small on 12 crops of 48x48x9; the denoiser's: compact on 32
latents of 16x5x8x8). FLOPs are counted on the real shapes as 2 x the multiply-adds of every
convolution, linear layer and batched matmul of one forward (TorchFunctionMode), times 3 for
the step (the backward computes two products per forward one). A third step is the fine-tunes'
(conv-small on 32 whole 64x64x17 clips), whose activations are hundreds of MB.

`--malloc default keep` runs each thread count twice: with glibc's default, which unmaps every
freed allocation over 32 MB so that the next step faults it back in page by page, and with the
trainers' setting (threads.keep_freed_memory). Prints one JSON line per thread count and malloc
setting: steps/s, GFLOP/s, the GEMM rate and their ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from gemm_peak import gemm_gflops  # bench/ is the script's folder, first on sys.path


class _Flops(TorchFunctionMode):
    """2 x the multiply-adds of every conv, linear and (batched) matmul called while active."""

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in (F.conv2d, F.conv3d, torch.conv2d, torch.conv3d):
            weight = args[1] if len(args) > 1 else kwargs["weight"]
            self.flops += 2 * out.numel() * weight[0].numel()
        elif func in (F.linear,):
            self.flops += 2 * out.numel() * args[1].shape[1]
        elif func in (torch.bmm, torch.matmul, torch.Tensor.__matmul__):
            self.flops += 2 * out.numel() * args[0].shape[-1]
        return out


def ae_step(batch: int = 12, frames: int = 9, size: int = 48):
    from diffusable.models.autoencoders import build, get_config

    torch.manual_seed(0)
    vae = build(get_config("conv-small"))
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, frames, size, size) * 2 - 1
    noise = torch.randn(batch, 16, 1 + (frames - 1) // 4, size // 8, size // 8)

    def forward():
        recon, *_ = vae(x, noise)
        return F.l1_loss(recon, x) + F.mse_loss(recon, x)

    return forward, opt


def dit_step():
    from diffusable.models.denoiser import Denoiser, get_denoiser_config

    torch.manual_seed(0)
    model = Denoiser(get_denoiser_config("compact", num_classes=17, context=True))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, v = torch.randn(32, 16, 5, 8, 8), torch.randn(32, 16, 5, 8, 8)
    t, y = torch.rand(32), torch.randint(17, (32,))

    def forward():
        return F.mse_loss(model(x, t, y), v)

    return forward, opt


def measure(name: str, make, seconds: float, precision: str = "fp32") -> dict:
    forward, opt = make()
    counter = _Flops()
    with counter:
        forward()
    flops = 3 * counter.flops
    # bf16: the trainers' CPU autocast (loop_utils.autocast_for), fp32 weights and optimizer
    amp = (
        torch.autocast(device_type="cpu", dtype=torch.bfloat16)
        if precision == "bf16"
        else contextlib.nullcontext()
    )

    def step():
        opt.zero_grad()
        with amp:
            loss = forward()
        loss.float().backward()
        opt.step()

    for _ in range(2):  # warm-up
        step()
    start, steps = time.perf_counter(), 0
    while steps < 3 or time.perf_counter() - start < seconds:
        step()
        steps += 1
    rate = steps / (time.perf_counter() - start)
    return {
        "trainer": name,
        "precision": precision,
        "steps_per_s": rate,
        "gflop_per_step": flops / 1e9,
        "gflop_per_s": rate * flops / 1e9,
    }


def ae_clips_step():
    return ae_step(batch=32, frames=17, size=64)


TRAINERS = (
    ("ae conv-small", ae_step),
    ("dit compact", dit_step),
    ("ae conv-small, 32 whole clips", ae_clips_step),
)


def run(threads: int, seconds: float, precisions, malloc: str) -> dict:
    from diffusable.threads import set_threads

    set_threads(threads, keep_memory=malloc == "keep")
    peak = gemm_gflops(seconds=2.0)
    rows = [measure(name, make, seconds, p) for p in precisions for name, make in TRAINERS]
    for r in rows:
        r["of_gemm_peak"] = r["gflop_per_s"] / peak
    return {
        "threads": threads,
        "malloc": malloc,
        "gemm_gflop_per_s": peak,
        "trainers": rows,
        "torch": torch.__version__,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    ap.add_argument("--malloc", nargs="+", default=["default", "keep"], choices=["default", "keep"])
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # the child process
    a = ap.parse_args()
    if a.one:
        print(json.dumps(run(a.threads[0], a.seconds, a.precision, a.malloc[0])))
        return 0
    for n in a.threads:
        for malloc in a.malloc:  # its own process: mallopt cannot be undone
            cmd = [sys.executable, __file__, "--one", "--threads", str(n)]
            cmd += ["--seconds", str(a.seconds), "--precision", *a.precision, "--malloc", malloc]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            print(out.strip().splitlines()[-1], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
