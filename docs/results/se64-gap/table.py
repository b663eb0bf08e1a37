#!/usr/bin/env python3
"""sample.sh's sweeps as one table: each arm through its own and its noise-trained decoder,
mean ± sd over the grid's 3 denoiser seeds, and the paired ratios (per seed, then mean ± sd):
se against baseline under each kind of decoder, and each noise decoder against its own.

    /usr/bin/python3 docs/results/se64-gap/table.py > docs/results/se64-gap/table.md
"""
import json
from pathlib import Path

from compare import mean_sd  # this folder's compare.py

HERE = Path(__file__).resolve().parent
METRICS = ("fd_cls3d", "class_score", "grid_ratio")
SEEDS = (0, 1, 2)


def row(arm: str, seed: int, decoder: str) -> dict:
    return json.loads((HERE / "sweeps" / f"{arm}-s{seed}-{decoder}.json").read_text())["rows"][0]


def main() -> None:
    print("| arm | decoder | " + " | ".join(METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for arm in ("baseline", "se"):
        for dec in ("own", "noise"):
            cells = [mean_sd([row(arm, s, dec)[m] for s in SEEDS]) for m in METRICS]
            print(f"| {arm} | {dec} | " + " | ".join(cells) + " |")
    print("\nPaired by denoiser seed, ratio of the two (mean ± sd over seeds; < 1: lower):\n")
    print("| pair | " + " | ".join(METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    pairs = [
        ("se / baseline, own decoders", ("se", "own"), ("baseline", "own")),
        ("se / baseline, noise decoders", ("se", "noise"), ("baseline", "noise")),
        ("baseline: noise / own decoder", ("baseline", "noise"), ("baseline", "own")),
        ("se: noise / own decoder", ("se", "noise"), ("se", "own")),
    ]
    for name, a, b in pairs:
        cells = [
            mean_sd([row(a[0], s, a[1])[m] / row(b[0], s, b[1])[m] for s in SEEDS]) for m in METRICS
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
