"""Does a denoiser copy its training clips? Nearest-neighbour distances in pixels.

    PYTHONPATH=src/training /usr/bin/python3 -m diffusable.experiments.memorization \
        runs/samples/small-se

A denoiser trained for hundreds of passes over a small dataset (816 procedural clips) can learn to
reproduce them: its held-out loss rises while its training loss falls, and the samples may then
score well on a class score and on a Fréchet distance for the wrong reason. This measures it the
direct way: for every sample, the PSNR to its nearest training clip (whole clip, [0, 1] scale),
beside the same for each held-out val clip (real clips the model never saw, the reference for
"as close as a new clip of this data gets"). A sample above the val clips' 95th percentile is
closer to a training clip than 95% of real new clips are: the share of such samples is the figure
(about 0.05 when nothing is copied), with the median PSNRs beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict

import torch

from .class_score import load_samples
from ..data.clips import ClipDataset, FfmpegError
from ..data.datasets import DATA_HELP, resolve_dataset
from ..threads import set_threads


def nearest_psnr(queries: torch.Tensor, pool: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """PSNR (dB, [0, 1] scale) of each query clip to its nearest clip of `pool`.
    queries (N, 3, T, H, W), pool (M, 3, T, H, W), both in [-1, 1] -> (N,)"""
    p = pool.flatten(1).float() / 2  # [0, 1] scale differences
    p_sq = p.square().sum(dim=1)
    out = []
    for i in range(0, len(queries), batch):
        q = queries[i : i + batch].flatten(1).float() / 2
        # |q - p|^2 = |q|^2 - 2 q.p + |p|^2: one GEMM instead of N x M clip differences
        d = q.square().sum(dim=1, keepdim=True) - 2 * q @ p.T + p_sq[None, :]
        mse = d.min(dim=1).values.clamp_min(1e-10) / p.shape[1]
        out.append(-10.0 * torch.log10(mse))
    return torch.cat(out)


def copy_share(samples: torch.Tensor, val: torch.Tensor, train: torch.Tensor) -> Dict:
    """The samples' and the val clips' nearest-training-clip PSNRs, and the share of samples
    closer to a training clip than the val clips' 95th percentile."""
    s, v = nearest_psnr(samples, train), nearest_psnr(val, train)
    bar = float(torch.quantile(v, 0.95))
    return {
        "samples": len(s),
        "val_clips": len(v),
        "train_clips": len(train),
        "sample_nn_psnr_median": float(s.median()),
        "val_nn_psnr_median": float(v.median()),
        "val_nn_psnr_p95": bar,
        "share_above_val_p95": float((s > bar).float().mean()),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="How close generated clips are to training clips.")
    ap.add_argument("folder", help="a folder of generated videos with samples.json")
    ap.add_argument("--data", default="procedural", help=DATA_HELP)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    try:
        root = resolve_dataset(args.data)
        listing, samples = load_samples(Path(args.folder))
        train, val = ClipDataset(root, "train"), ClipDataset(root, "val")
        pool = torch.stack([train[i][0] for i in range(len(train))])
        held = torch.stack([val[i][0] for i in range(len(val))])
        if pool.shape[1:] != samples.shape[1:]:
            raise ValueError(f"samples {tuple(samples.shape[1:])}, clips {tuple(pool.shape[1:])}")
    except (FileNotFoundError, ValueError, KeyError, FfmpegError) as err:
        print(f"memorization: {err}", file=sys.stderr)
        return 2
    result = {"model": listing.get("model"), **copy_share(samples, held, pool)}
    text = json.dumps(result, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
