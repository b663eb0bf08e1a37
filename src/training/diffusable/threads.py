"""CPU threads for torch *and* the BLAS under it, and freed memory kept for the next step.

Debian's torch calls OpenBLAS (libopenblas0-pthread), whose own thread pool does not follow
torch.set_num_threads. When processes share the cores (two trainers, or a trainer beside the
test suites), OpenBLAS's spinning threads make small GEMMs crawl: measured here, a (128, 80, 48)
bmm took 942 ms with OpenBLAS left at its default and 8.4 ms limited to one thread.
"""

from __future__ import annotations

import ctypes
import os

import torch


# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory in the process instead of handing it back to the kernel.

    glibc serves every allocation over 32 MB with its own mmap and unmaps it on free, so a
    training step's activations (hundreds of MB at batch 64 of 64x64x17 clips) are faulted in
    page by page, zeroed by the kernel, at every step: measured here, the third batch-64 step of
    the 64-channel conv VAE took 34.8 s with half the CPU time in the kernel, and 6.6 s with
    this (7.6 s with MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1e11 in the environment). The cost:
    the process's resident size stays at its peak. Returns False where the C library is not
    glibc (nothing changed)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(M_MMAP_MAX, 0) == 1
        return ok and libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(2**31 - 1)) == 1
    except (OSError, AttributeError):
        return False


def set_threads(n: int = 0, keep_memory: bool = True) -> int:
    """Use n threads (0 = all cores) in torch and in OpenBLAS, with freed memory kept
    (keep_freed_memory; False leaves glibc's default, for bench/train_speed.py); returns n."""
    if keep_memory:
        keep_freed_memory()
    n = n or os.cpu_count() or 1
    torch.set_num_threads(n)
    for name in ("libopenblas.so.0", "libblas.so.3"):
        try:
            ctypes.CDLL(name).openblas_set_num_threads(n)
            break
        except (OSError, AttributeError):
            continue  # not OpenBLAS (MKL, or CUDA machines): torch's own setting is enough
    return n
