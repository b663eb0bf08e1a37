#!/usr/bin/env python3
"""se-half.sh's denoisers beside the 64-channel grid's (conv64/grid.sh): each set's eval at every
evaluated step, mean ± sd over seeds 0-2, and per seed the ratio to the baseline run of the same
seed (paired: same seed, noise, labels and steps), mean ± sd over seeds.

    /usr/bin/python3 docs/results/se64-gap/compare.py > docs/results/se64-gap/se-half.md
(from the repository root; the se-half runs' events are read from docs/results/runs, where
se-half.sh's last step copies them)."""
import json
import statistics
from pathlib import Path

RUNS = Path("docs/results/runs")
SETS = {"baseline (SE 0)": "baseline", "se (SE 0.25)": "se", "se-half (SE 0.125)": "se-half"}
METRICS = ("fd_cls3d", "fd_rand3d", "class_score", "grid_ratio", "val_loss")
SEEDS = (0, 1, 2)


def evals(arm: str, seed: int) -> dict:
    path = RUNS / f"dit-compact-conv64-{arm}-s{seed}" / "events.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["step"]: r for r in rows if r["type"] == "eval"}


def mean_sd(values) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    runs = {arm: [evals(arm, s) for s in SEEDS] for arm in SETS.values()}
    steps = sorted(set.intersection(*(set(e) for rs in runs.values() for e in rs)))
    print("Mean ± sd over seeds 0-2 at each evaluated step:\n")
    print("| step | set | " + " | ".join(METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for step in steps:
        for name, arm in SETS.items():
            cells = [mean_sd([e[step][m] for e in runs[arm]]) for m in METRICS]
            print(f"| {step} | {name} | " + " | ".join(cells) + " |")
    print("\nRatio to the baseline run of the same seed (mean ± sd over seeds; < 1: lower):\n")
    print("| step | set | " + " | ".join(METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for step in steps:
        for name, arm in list(SETS.items())[1:]:
            cells = [
                mean_sd([a[step][m] / b[step][m] for a, b in zip(runs[arm], runs["baseline"])])
                for m in METRICS
            ]
            print(f"| {step} | {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
