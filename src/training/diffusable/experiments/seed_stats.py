"""Statistics over seeds of a diffusability experiment: one definition for
`diffusable.experiments.report`, `diffusable.experiments.diffusion_grid` and (re-implemented,
cross-checked by a node test) the admin page.

    PYTHONPATH=src/training /usr/bin/python3 -m diffusable.experiments.seed_stats \
        --runs runs/grid-k3

An *arm* is the latent space a denoiser was trained on (its autoencoder's variant: baseline, se,
se-spatial); a *seed* is its `train.seed`. Runs are grouped by their `experiment` (the grid that
made them); older runs without one by model name and steps. Per arm and metric:

- at every eval step all of the arm's seeds have: n, mean, sd (sample, ddof=1; 0 for one seed),
  min and max;
- `final`: the values at the arm's last common step;
- `steps_to_reach`: per seed, the first eval step whose value is at least as good as the
  baseline arm's final mean (no interpolation), then how many seeds reached it and the mean and
  sd of their steps.

Comparisons (a vs b) are on the log scale, since every metric here is positive and differences
between arms are relative: d = mean(ln a) - mean(ln b), a Welch t 95% interval on d, reported
as exp(d) - 1 with [exp(lo) - 1, exp(hi) - 1]. An interval that contains 0 is called "no
difference detectable at this budget", whichever way the point estimate leans.

Each comparison also has a `paired` one. The grid gives every arm the same seeds, and a seed
fixes the initialisation and the batch order (the eval noise and labels are the same in every
run), so the seed's own luck is shared by the arms' runs of that seed: d_i = ln a_i - ln b_i
per seed present in both, a t 95% interval with n - 1 degrees of freedom on mean(d). It removes
the between-seed spread that the Welch interval carries, so it can detect a small difference
the Welch interval cannot. (The admin page computes both: seed-stats.ts.)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from scipy.stats import t as student_t

from .compare_runs import read_events

# metric -> which way is better (only used to say which arm is ahead; conclusions are directional)
METRICS: Dict[str, str] = {
    "fd_cls3d": "lower",
    "fd_rand3d": "lower",
    "fvd_i3d": "lower",
    "lfd": "lower",  # the samples' latents from the data's, before the decoder (features.py)
    "lfd_t": "lower",  # lfd read as a noise-equivalent t on its own space's ladder
    "class_score": "higher",
    "val_loss": "lower",
    "grid_ratio": "lower",  # of the samples (8-px block edges over block insides; real ~1.0)
}
ARMS: Tuple[str, ...] = ("baseline", "se", "se-spatial")
COMPARISONS: Tuple[Tuple[str, str], ...] = (
    ("se", "baseline"),
    ("se", "se-spatial"),
    ("se-spatial", "baseline"),
)


def read_run(events_path: Path) -> Optional[Dict]:
    """A diffusion run's arm, seed, experiment and eval history; None for other runs."""
    config, evals, status = None, {}, None
    for e in read_events(events_path.parent):  # a torn last line of a live run is skipped
        if e.get("type") == "config" and config is None:
            config = e
        elif e.get("type") == "eval":
            evals[int(e["step"])] = e  # the last one per step wins (a resumed run repeats)
        elif e.get("type") == "status":
            status = e.get("status")
    if not config or config.get("kind") != "diffusion":
        return None
    train, model = config.get("train", {}), config.get("model", {})
    experiment = config.get("experiment") or f"{model.get('name')}-{train.get('steps')}"
    return {
        "id": config.get("run_id") or events_path.parent.name,
        "arm": (config.get("autoencoder") or {}).get("variant"),
        "seed": train.get("seed"),
        "experiment": experiment,
        "time": config.get("time", 0),
        "status": status,
        "classes": config.get("classes", []),
        "evals": evals,
    }


def read_runs(folder: Path) -> List[Dict]:
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"{folder} is not a folder of run folders")
    paths = sorted(Path(folder).glob("*/events.jsonl")) + sorted(
        Path(folder).glob("*/*/events.jsonl")
    )
    return [r for r in (read_run(p) for p in paths) if r is not None]


def pick_experiment(runs: List[Dict], name: Optional[str] = None) -> Tuple[str, List[Dict]]:
    """The named experiment, or the newest one with runs in at least two arms."""
    groups: Dict[str, List[Dict]] = {}
    for r in runs:
        groups.setdefault(r["experiment"], []).append(r)
    if name is not None:
        if name not in groups:
            raise ValueError(f"no runs of experiment {name!r} (have: {', '.join(sorted(groups))})")
        return name, groups[name]
    usable = [(max(r["time"] for r in g), k) for k, g in groups.items()]
    usable = [(t, k) for t, k in usable if len({r["arm"] for r in groups[k]}) >= 2]
    if not usable:
        raise ValueError("no experiment has diffusion runs in two arms")
    name = max(usable)[1]
    return name, groups[name]


def sample_sd(values: Sequence[float]) -> float:
    n = len(values)
    if n < 2:
        return 0.0
    m = sum(values) / n
    return math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))


def arm_metric(runs: List[Dict], metric: str) -> Optional[Dict]:
    """Mean/sd/min/max over the arm's seeds at every step they all have, and the final values."""
    histories = [
        {s: float(e[metric]) for s, e in r["evals"].items() if _finite(e.get(metric))} for r in runs
    ]
    if not histories or not all(histories):
        return None
    steps = sorted(set.intersection(*(set(h) for h in histories)))
    if not steps:
        return None
    out = {"steps": steps, "mean": [], "sd": [], "min": [], "max": []}
    for s in steps:
        vals = [h[s] for h in histories]
        out["mean"].append(sum(vals) / len(vals))
        out["sd"].append(sample_sd(vals))
        out["min"].append(min(vals))
        out["max"].append(max(vals))
    finals = [h[steps[-1]] for h in histories]
    out["final"] = {
        "step": steps[-1],
        "n": len(finals),
        "values": finals,
        "mean": sum(finals) / len(finals),
        "sd": sample_sd(finals),
    }
    out["_histories"] = histories
    return out


def steps_to_reach(histories: List[Dict[int, float]], target: float, better: str) -> Dict:
    reached = []
    for h in histories:
        for s in sorted(h):
            if (h[s] <= target) if better == "lower" else (h[s] >= target):
                reached.append(s)
                break
    return {
        "target": target,
        "seeds": len(histories),
        "reached": len(reached),
        "mean": sum(reached) / len(reached) if reached else None,
        "sd": sample_sd(reached) if reached else None,
    }


def relative_difference(a: Sequence[float], b: Sequence[float]) -> Dict:
    """exp(mean ln a - mean ln b) - 1 with a Welch t 95% interval on the log scale."""
    if min(a) <= 0 or min(b) <= 0:  # no log scale (a class score of 0, say): no comparison
        return {"rel": None, "lo": None, "hi": None, "df": None}
    la, lb = [math.log(v) for v in a], [math.log(v) for v in b]
    d = sum(la) / len(la) - sum(lb) / len(lb)
    out = {"rel": math.exp(d) - 1, "lo": None, "hi": None, "df": None}
    if len(la) < 2 or len(lb) < 2:
        return out
    va, vb = sample_sd(la) ** 2 / len(la), sample_sd(lb) ** 2 / len(lb)
    se = math.sqrt(va + vb)
    if se == 0:
        out.update(lo=out["rel"], hi=out["rel"])
        return out
    df = se**4 / (va**2 / (len(la) - 1) + vb**2 / (len(lb) - 1))
    q = float(student_t.ppf(0.975, df))
    out.update(lo=math.exp(d - q * se) - 1, hi=math.exp(d + q * se) - 1, df=df)
    return out


def paired_difference(a: Dict[int, float], b: Dict[int, float]) -> Dict:
    """exp(mean d) - 1, d = ln a - ln b per seed in both, with a paired t 95% interval."""
    seeds = sorted(s for s in set(a) & set(b) if s is not None)
    out = {"rel": None, "lo": None, "hi": None, "df": None, "n": len(seeds)}
    if not seeds or min(min(a[s], b[s]) for s in seeds) <= 0:
        return out
    d = [math.log(a[s]) - math.log(b[s]) for s in seeds]
    mean = sum(d) / len(d)
    out["rel"] = math.exp(mean) - 1
    if len(d) < 2:
        return out
    se = sample_sd(d) / math.sqrt(len(d))
    q = float(student_t.ppf(0.975, len(d) - 1))
    out.update(lo=math.exp(mean - q * se) - 1, hi=math.exp(mean + q * se) - 1, df=len(d) - 1)
    return out


def conclusion(a: str, rel: Optional[float], lo: Optional[float], hi: Optional[float]) -> str:
    """One sentence per metric and comparison, directional, from the interval alone."""
    if rel is None:
        return "a value <= 0: no relative difference"
    if lo is None or hi is None:
        return "one seed per arm: no interval, no conclusion"
    if hi < 0:
        return f"{a} lower by {-100 * rel:.1f}% [{-100 * hi:.1f}%, {-100 * lo:.1f}%]"
    if lo > 0:
        return f"{a} higher by {100 * rel:.1f}% [{100 * lo:.1f}%, {100 * hi:.1f}%]"
    return (
        f"no difference detectable at this budget "
        f"(rel {100 * rel:.1f}% [{100 * lo:.1f}%, {100 * hi:.1f}%])"
    )


def experiment_stats(runs: List[Dict]) -> Dict:
    by_arm: Dict[str, List[Dict]] = {}
    for r in sorted(
        runs, key=lambda r: (str(r["arm"]), r["seed"] if r["seed"] is not None else -1)
    ):
        by_arm.setdefault(r["arm"], []).append(r)
    arms: Dict[str, Dict] = {}
    for arm, rs in by_arm.items():
        metrics = {}
        for m in METRICS:
            s = arm_metric(rs, m)
            if s is not None:
                metrics[m] = s
        arms[arm] = {"seeds": [r["seed"] for r in rs], "runs": [r["id"] for r in rs]}
        arms[arm]["metrics"] = metrics
    base = arms.get("baseline", {}).get("metrics", {})
    for arm in arms.values():
        for m, s in arm["metrics"].items():
            if m in base:
                target = base[m]["final"]["mean"]
                s["steps_to_reach"] = steps_to_reach(s["_histories"], target, METRICS[m])
    comparisons = []
    for a, b in COMPARISONS:
        for m in METRICS:
            sa = arms.get(a, {}).get("metrics", {}).get(m)
            sb = arms.get(b, {}).get("metrics", {}).get(m)
            if sa is None or sb is None:
                continue
            r = relative_difference(sa["final"]["values"], sb["final"]["values"])
            p = paired_difference(
                dict(zip(arms[a]["seeds"], sa["final"]["values"])),
                dict(zip(arms[b]["seeds"], sb["final"]["values"])),
            )
            p["conclusion"] = conclusion(a, **_rlh(p))
            comparisons.append(
                {
                    "a": a,
                    "b": b,
                    "metric": m,
                    **r,
                    "conclusion": conclusion(a, **_rlh(r)),
                    "paired": p,
                }
            )
    for arm in arms.values():
        for s in arm["metrics"].values():
            s.pop("_histories")
    classes = next((r["classes"] for r in runs if r["classes"]), [])
    return {
        "arms": arms,
        "comparisons": comparisons,
        "chance": 1 / len(classes) if classes else None,
    }


def markdown(stats: Dict, experiment: str) -> str:
    lines = [f"Experiment `{experiment}`: final values, mean ± sd over seeds (n per arm).", ""]
    arms = [a for a in ARMS if a in stats["arms"]]
    metrics = [m for m in METRICS if any(m in stats["arms"][a]["metrics"] for a in arms)]
    lines.append("| metric | " + " | ".join(arms) + " |")
    lines.append("|---" * (len(arms) + 1) + "|")
    for m in metrics:
        cells = []
        for a in arms:
            s = stats["arms"][a]["metrics"].get(m)
            f = s["final"] if s else None
            cells.append(f"{f['mean']:.4g} ± {f['sd']:.2g} (n={f['n']})" if f else "n/a")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Steps to reach the baseline's final mean (first eval step; seeds that reach it):",
    ]
    lines += ["", "| metric | " + " | ".join(arms) + " |", "|---" * (len(arms) + 1) + "|"]
    for m in metrics:
        cells = []
        for a in arms:
            r = stats["arms"][a]["metrics"].get(m, {}).get("steps_to_reach")
            if not r:
                cells.append("n/a")
            elif r["reached"] == 0:
                cells.append(f"not reached (0/{r['seeds']})")
            else:
                cells.append(f"{r['mean']:.0f} ± {r['sd']:.0f} ({r['reached']}/{r['seeds']})")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| comparison | metric | relative difference [95% Welch t, log scale] "
        "| paired by seed [95% t, log scale] |",
    ]
    lines.append("|---|---|---|---|")
    for c in stats["comparisons"]:
        p = c["paired"]
        paired = f"{p['conclusion']} (n={p['n']})"
        lines.append(f"| {c['a']} vs {c['b']} | {c['metric']} | {c['conclusion']} | {paired} |")
    return "\n".join(lines) + "\n"


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _rlh(r: Dict) -> Dict:
    return {"rel": r["rel"], "lo": r["lo"], "hi": r["hi"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Mean, spread and intervals over seeds per arm.")
    ap.add_argument("--runs", required=True, help="folder of diffusion run folders")
    ap.add_argument("--experiment", help="experiment name (default: the newest with two arms)")
    ap.add_argument("--json", help="write the statistics as JSON here ('-': standard output)")
    args = ap.parse_args(argv)
    try:
        name, runs = pick_experiment(read_runs(Path(args.runs)), args.experiment)
    except (ValueError, OSError) as err:
        print(f"seed_stats: {err}", file=sys.stderr)
        return 2
    stats = {"experiment": name, **experiment_stats(runs)}
    if args.json == "-":
        json.dump(stats, sys.stdout, indent=1)
        print()
        return 0
    if args.json:
        Path(args.json).write_text(json.dumps(stats, indent=1) + "\n")
    print(markdown(stats, name), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
