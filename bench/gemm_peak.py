"""The fp32 GEMM rate of this machine at the current thread count: the peak that the trainer and
encoder benches set their achieved GFLOP/s beside (measured in the same run, never remembered)."""

from __future__ import annotations

import time

import torch


def gemm_gflops(seconds: float = 1.0, n: int = 1024) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # the first call allocates and warms the kernels
    start, iters = time.perf_counter(), 0
    while iters < 3 or time.perf_counter() - start < seconds:
        a @ b
        iters += 1
    return 2 * n**3 * iters / (time.perf_counter() - start) / 1e9
