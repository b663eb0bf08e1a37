"""Session 27: the grids' `lfd` read on each latent space's own ladder (floors.json from floor.py):
per arm and eval step, `lfd` and its noise-equivalent t (features.noise_equivalent_t) as mean ±
sd over seeds, then each arm against the reference arm paired by seed at the last step (ratio of
means of the per-seed ratios, with the t interval as seed_stats draws it: on the log scale), and
the steps each arm's seeds take to reach the reference arm's final mean.

    /usr/bin/python3 docs/results/lfd-grid/table.py FLOORS_JSON ARM=RUN_PATTERN ... > table.md
    ({} in the pattern: the seed; the first ARM is the reference)
"""

import json
import statistics as st
import sys
from pathlib import Path

from diffusable.experiments.compare_runs import read_events
from diffusable.evaluation.features import noise_equivalent_t
from diffusable.experiments.seed_stats import paired_difference

SEEDS = (0, 1, 2)


def ms(v, fmt="{:.3f}"):
    return f"{fmt.format(st.mean(v))} ± {fmt.format(st.stdev(v))}"


def paired(a, b):
    """a / b paired by seed (seed_stats.paired_difference: log scale, t interval)."""
    r = paired_difference(dict(enumerate(a)), dict(enumerate(b)))
    return f"{1 + r['rel']:.3f} [{1 + r['lo']:.3f}, {1 + r['hi']:.3f}]"


def main(floors_path, arms):
    ladders = {}
    for f in json.loads(Path(floors_path).read_text()):
        ladders[f["run"]] = {t: v for t, v in f["ladder"]}
    data = {}  # arm -> seed -> step -> (lfd, t)
    for arm, pattern in arms:
        ladder = next(v for k, v in ladders.items() if Path(pattern.format(0)).name == k)
        data[arm] = {}
        for seed in SEEDS:
            run = Path(pattern.format(seed))
            data[arm][seed] = {
                e["step"]: (e["lfd"], noise_equivalent_t(e["lfd"], ladder))
                for e in read_events(run)
                if e["type"] == "eval"
            }
        print(
            f"- `{arm}`: floor {ladder[0.0]:.4f}; ladder "
            + ", ".join(f"t {t:g}: {v:.3f}" for t, v in ladder.items())
        )
    steps = sorted(data[arms[0][0]][0])
    print("\n| step | " + " | ".join(f"{a} `lfd` | {a} t" for a, _ in arms) + " |")
    print("|---|" + "---|---|" * len(arms))
    for s in steps:
        cells = []
        for a, _ in arms:
            cells += [ms([data[a][k][s][0] for k in SEEDS]), ms([data[a][k][s][1] for k in SEEDS])]
        print(f"| {s} | " + " | ".join(cells) + " |")
    ref, last = arms[0][0], steps[-1]
    print(
        f"\nAt step {last}, paired by seed against `{ref}` "
        "(geometric mean of the per-seed ratios [95% t]):\n"
    )
    print(
        "| arm | `lfd` ratio | noise-equivalent t ratio | steps to the reference's final `lfd` | "
        "steps to its final t |"
    )
    print("|---|---|---|---|---|")
    for a, _ in arms[1:]:
        row = [a]
        for i in (0, 1):
            row.append(
                paired([data[a][k][last][i] for k in SEEDS], [data[ref][k][last][i] for k in SEEDS])
            )
        for i in (0, 1):
            target = st.mean(data[ref][k][last][i] for k in SEEDS)
            reach = [next((s for s in steps if data[a][k][s][i] <= target), None) for k in SEEDS]
            row.append(", ".join("-" if r is None else str(r) for r in reach))
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main(sys.argv[1], [a.split("=", 1) for a in sys.argv[2:]])
