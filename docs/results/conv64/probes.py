"""What this folder's two probes (sensitivity.py, denoiser_error.py) share: the dataset, the
command line (OUT.json NAME=PATH ...), and the mean PSNR of decoded clips."""
import os
import sys
from pathlib import Path
from typing import List, Tuple

import torch
from diffusable.data.datasets import resolve_dataset
from diffusable.evaluation.metrics import psnr


def dataset() -> Path:
    """The default procedural dataset (64x64, 17 frames), found or built as the trainers do."""
    return resolve_dataset("procedural")


def parse_args(usage: str) -> Tuple[str, List[Tuple[str, Path]]]:
    """OUT.json and the NAME=PATH pairs, each PATH existing; else one line and exit 2."""
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(f"usage: {usage}")
    pairs = []
    for a in args[1:]:
        name, sep, path = a.partition("=")
        if not (name and sep and path):
            sys.exit(f"{a!r} is not NAME=PATH; usage: {usage}")
        if not Path(path).exists():
            sys.exit(f"{name}: {path} does not exist")
        pairs.append((name, Path(path)))
    torch.set_num_threads(int(os.environ.get("DIFFUSABLE_THREADS", "2")))
    return args[0], pairs


def mean_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(psnr(a, b).mean())  # per clip on [-1, 1], then the mean over clips
