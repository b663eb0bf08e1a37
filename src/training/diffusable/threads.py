"""CPU threads for torch *and* the BLAS under it.

Debian's torch calls OpenBLAS (libopenblas0-pthread), whose own thread pool does not follow
torch.set_num_threads. When processes share the cores (two trainers, or a trainer beside the
test suites), OpenBLAS's spinning threads make small GEMMs crawl: measured here, a (128, 80, 48)
bmm took 942 ms with OpenBLAS left at its default and 8.4 ms limited to one thread.
"""

from __future__ import annotations

import ctypes
import os

import torch


def set_threads(n: int = 0) -> int:
    """Use n threads (0 = all cores) in torch and in OpenBLAS; returns n."""
    n = n or os.cpu_count() or 1
    torch.set_num_threads(n)
    for name in ("libopenblas.so.0", "libblas.so.3"):
        try:
            ctypes.CDLL(name).openblas_set_num_threads(n)
            break
        except (OSError, AttributeError):
            continue  # not OpenBLAS (MKL, or CUDA machines): torch's own setting is enough
    return n
