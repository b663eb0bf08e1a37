"""Degradations for checking that a video metric measures what it should.

    PYTHONPATH=src/training /usr/bin/python3 -m diffusable.evaluation.degrade \
        --clips 128 --threads 1

A metric is trusted only after it rises as real clips are degraded in space and in time. Each
degradation takes clips (N, 3, T, H, W) in [-1, 1] and a strength in [0, 1] (0 = unchanged).
The command compares training clips against validation clips degraded at increasing strengths
and prints a Markdown table of the Fréchet distance.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F

from .features import FeatureExtractor
from .frechet import feature_stats, frechet_distance


def blur(x: torch.Tensor, s: float, g: torch.Generator) -> torch.Tensor:
    """Gaussian blur per frame, sigma up to 3 px."""
    sigma = 3.0 * s
    if sigma <= 0:
        return x
    r = int(3 * sigma + 0.5)
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=x.dtype) ** 2) / (2 * sigma**2))
    k = k / k.sum()
    b, c, t, h, w = x.shape
    y = x.transpose(1, 2).reshape(b * t * c, 1, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return y.reshape(b, t, c, h, w).transpose(1, 2)


def noise(x: torch.Tensor, s: float, g: torch.Generator) -> torch.Tensor:
    """Additive Gaussian noise, std up to 0.5 (a quarter of the value range)."""
    return (x + 0.5 * s * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def shuffle(x: torch.Tensor, s: float, g: torch.Generator) -> torch.Tensor:
    """Move a fraction s of frames: a random pick of them is randomly permuted with no frame left
    in its slot (fixed points are swapped with their neighbour). Appearance is kept, motion broken.
    """
    t = x.shape[2]
    order = torch.arange(t)
    n = int(round(s * t))
    if n >= 2:
        picked = torch.randperm(t, generator=g)[:n]
        perm = torch.randperm(n, generator=g)
        for i in range(n):
            if perm[i] == i:  # swapping with the next slot leaves neither in place
                j = (i + 1) % n
                perm[i], perm[j] = perm[j].clone(), perm[i].clone()
        order[picked] = picked[perm]
    return x[:, :, order]


def freeze(x: torch.Tensor, s: float, g: torch.Generator) -> torch.Tensor:
    """Hold the frame at 1 - s of the clip for the rest of it: s = 1 is a still image."""
    t = x.shape[2]
    start = min(t - 1, int(round((1 - s) * (t - 1))))
    return torch.cat(
        [x[:, :, : start + 1], x[:, :, start : start + 1].expand(-1, -1, t - start - 1, -1, -1)],
        dim=2,
    )


DEGRADATIONS: Dict[str, Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]] = {
    "blur": blur,
    "noise": noise,
    "shuffle": shuffle,
    "freeze": freeze,
}
STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


def ladder(
    extractor: FeatureExtractor, reference: torch.Tensor, clips: torch.Tensor, seed: int = 0
):
    """{degradation: [FD at each of STRENGTHS]} of degraded clips against reference."""
    ref_stats = feature_stats(extractor.features(reference))
    table = {}
    for name, fn in DEGRADATIONS.items():
        row = []
        for s in STRENGTHS:
            g = torch.Generator().manual_seed(seed)
            row.append(
                frechet_distance(*ref_stats, *feature_stats(extractor.features(fn(clips, s, g))))
            )
        table[name] = row
    return table


def ladder_concordance(table: Dict[str, List[float]]) -> float:
    """How well a metric ranks the ladder: the share of (weaker, stronger) pairs within each
    degradation that it orders correctly (1.0: always rises; 0.5: no better than chance)."""
    good = total = 0
    for row in table.values():
        for i in range(len(row)):
            for j in range(i + 1, len(row)):
                total += 1
                good += row[j] > row[i]
    return good / total


def main(argv=None) -> int:
    from ..models.pca_residual_vae import get_config
    from .classifier import MIN_VAL_ACCURACY, ClassifierConfig, check_accuracy, get_classifier
    from ..data.clips import ClipDataset
    from ..data.datasets import resolve_dataset
    from ..threads import set_threads

    ap = argparse.ArgumentParser(description="Tabulate Fréchet metrics along degradations.")
    ap.add_argument("--data", default="procedural")
    ap.add_argument("--clips", type=int, default=128, help="clips per set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--features",
        nargs="+",
        default=["rand3d", "cls3d"],
        choices=["rand3d", "cls3d"],
        help="extractors, each tabulated on the same clips",
    )
    ap.add_argument("--json", help="also write the tables here")
    ap.add_argument("--i3d", help="I3D Kinetics-400 weights (state dict): tabulate fvd_i3d too")
    ap.add_argument(
        "--min-accuracy",
        type=float,
        default=MIN_VAL_ACCURACY,
        help="cls3d: refuse a classifier below this val top-1 (0: tabulate anyway)",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    try:
        root = resolve_dataset(args.data, get_config("small"))
        train, val = ClipDataset(root, "train"), ClipDataset(root, "val")
        extractors = []
        for name in args.features:
            if name == "rand3d":
                extractors.append(FeatureExtractor())
            else:  # the class-score classifier of this dataset (trained once, cached)
                model, info = get_classifier(root, ClassifierConfig())
                check_accuracy(info, args.min_accuracy)
                extractors.append(FeatureExtractor.classifier(model, info, train.frames))
        if args.i3d:
            extractors.append(FeatureExtractor.i3d(args.i3d))
    except (FileNotFoundError, ValueError) as err:
        print(f"degrade: {err}", file=sys.stderr)
        return 2
    g = torch.Generator().manual_seed(args.seed)
    ref, _ = train.batch(torch.randperm(len(train), generator=g)[: args.clips].tolist())
    clips, _ = val.batch(list(range(min(args.clips, len(val)))))
    results = []
    for extractor in extractors:
        table = ladder(extractor, ref, clips, args.seed)
        info = extractor.describe()
        score = ladder_concordance(table)
        print(
            f"{info['metric']} (extractor {info['extractor']} {info['extractor_hash']}, "
            f"N = {len(ref)} reference / {len(clips)} degraded, {info['preprocessing']}); "
            f"ranks {100 * score:.0f}% of the ladder's pairs correctly\n"
        )
        print("| degradation | " + " | ".join(f"s={s}" for s in STRENGTHS) + " |")
        print("|---" * (len(STRENGTHS) + 1) + "|")
        for name, row in table.items():
            print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
        print()
        results.append({**info, "concordance": score, "table": table})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "n_reference": len(ref),
                    "n_degraded": len(clips),
                    "strengths": STRENGTHS,
                    "metrics": results,
                },
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
