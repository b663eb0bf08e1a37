"""The reproduction tables of docs/RESULTS.md, computed from run folders' events.jsonl.

    PYTHONPATH=src/training /usr/bin/python3 -m diffusable.experiments.report \\
        --ae runs/ae-small-baseline runs/ae-small-se \\
        --dit runs/dit-compact-baseline runs/dit-compact-se

Prints Markdown: the autoencoder table (compare_runs), the metric at every evaluation of both
diffusion runs with their class scores, the step at which the SE run first reaches the
baseline's final value (its first evaluation at or below it, as seed_stats counts), and the
final relative difference. The first run of each pair is the baseline.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional

from .compare_runs import read_events, table, wall_seconds
from ..events import format_seconds
from .seed_stats import (
    METRICS,
    experiment_stats,
    markdown,
    pick_experiment,
    read_runs,
    steps_to_reach,
)


def eval_history(run: Path, metric: str) -> List[Dict]:
    """The run's `eval` events that carry `metric`, in step order (last one per step wins)."""
    by_step = {}
    for e in read_events(run):
        if e.get("type") == "eval" and isinstance(e.get(metric), (int, float)):
            by_step[int(e["step"])] = e
    return [by_step[s] for s in sorted(by_step)]


def diffusion_section(baseline: Path, se: Path, metric: str) -> str:
    hb, hs = eval_history(baseline, metric), eval_history(se, metric)
    if not hb or not hs:
        raise ValueError(f"no `eval` events with {metric} in {baseline} or {se}")
    steps = sorted({e["step"] for e in hb} | {e["step"] for e in hs})
    b_at = {e["step"]: e for e in hb}
    s_at = {e["step"]: e for e in hs}

    def cell(e: Optional[Dict], key: str, fmt: str) -> str:
        return fmt.format(e[key]) if e and isinstance(e.get(key), (int, float)) else "n/a"

    lines = [
        f"| step | {metric} baseline | {metric} SE | class score baseline | class score SE |",
        "|---|---|---|---|---|",
    ]
    for s in steps:
        b, e = b_at.get(s), s_at.get(s)
        lines.append(
            f"| {s} | {cell(b, metric, '{:.2f}')} | {cell(e, metric, '{:.2f}')} "
            f"| {cell(b, 'class_score', '{:.3f}')} | {cell(e, 'class_score', '{:.3f}')} |"
        )
    final_b, final_s = hb[-1][metric], hs[-1][metric]
    # The same rule as the seed grid's (seed_stats): the first evaluated step, no interpolation.
    reach = steps_to_reach([{e["step"]: e[metric] for e in hs}], final_b, "lower")["mean"]
    last = hb[-1]["step"]
    if reach is None:
        reach_text = "SE never reaches the baseline's final value"
    else:
        reach_text = (
            f"SE first reaches the baseline's final {metric} ({final_b:.2f}) at its evaluation "
            f"of step {reach:.0f}, {100 * reach / last:.0f}% of the baseline's {last} steps"
        )
    rel = 100 * (final_s - final_b) / final_b
    best_b = min(hb, key=lambda e: e[metric])
    best_s = min(hs, key=lambda e: e[metric])
    lines += [
        "",
        f"- {reach_text}.",
        f"- Best {metric}: baseline {best_b[metric]:.2f} at step {best_b['step']}, SE "
        f"{best_s[metric]:.2f} at step {best_s['step']}"
        + (
            " (a curve that is not monotone makes the 'reaches' figure above weak evidence)."
            if best_b is not hb[-1] or best_s is not hs[-1]
            else "."
        ),
        f"- Final {metric}: baseline {final_b:.2f}, SE {final_s:.2f} ({rel:+.1f}%).",
        f"- Wall time: baseline {format_seconds(wall_seconds(read_events(baseline)))}, "
        f"SE {format_seconds(wall_seconds(read_events(se)))}.",
    ]
    return "\n".join(lines)


def reconstruction_curve(run: Path, png: Optional[Path] = None) -> str:
    """Validation PSNR against steps of an AE run beside its `reference` (the linear code at
    step 0, on the same clips), as a Markdown table and optionally a plot."""
    events = read_events(run)
    val = {int(e["step"]): e for e in events if e.get("type") == "val"}
    ref = next((e for e in events if e.get("type") == "reference"), None)
    if not val:
        raise ValueError(f"{run}: no validation events")
    lin = ref["psnr"] if ref else None
    config = next((e for e in events if e.get("type") == "config"), {})
    if ref is not None and 0 not in val and config.get("init", "linear") == "linear":
        val[0] = ref  # the model at step 0 is the linear code (PCA init); not a scratch start
    lines = ["| step | val PSNR (dB) | − linear code (dB) | val SSIM |", "|---|---|---|---|"]
    for step in sorted(val):
        e = val[step]
        delta = f"{e['psnr'] - lin:+.2f}" if lin is not None else "n/a"
        lines.append(f"| {step} | {e['psnr']:.2f} | {delta} | {e['ssim']:.4f} |")
    if lin is not None:
        lines.append(f"\nLinear code (PCA) on the same validation clips: {lin:.2f} dB.")
    if png is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.4), dpi=120)
        steps = sorted(val)
        ax.plot(steps, [val[s]["psnr"] for s in steps], "o-", label=f"{run.name} (EMA)")
        if lin is not None:
            ax.axhline(lin, color="grey", ls="--", label="linear code (PCA-16)")
        ax.set_xlabel("training step")
        ax.set_ylabel("val PSNR (dB)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(png)
        plt.close(fig)
    return "\n".join(lines)


ARM_COLOURS = {"baseline": "tab:blue", "se": "tab:orange", "se-spatial": "tab:green"}


def grid_section(folder: Path, experiment: Optional[str], png: Optional[Path] = None) -> str:
    """The seed grid (diffusion_grid) through seed_stats: per-step mean ± sd per arm, the final
    table, steps to reach and the intervals; optionally the curves with their bands."""

    name, runs = pick_experiment(read_runs(folder), experiment)
    stats = experiment_stats(runs)
    arms = [a for a in ("baseline", "se", "se-spatial") if a in stats["arms"]]
    lines = [markdown(stats, name)]
    shown = [m for m in METRICS if any(m in stats["arms"][a]["metrics"] for a in arms)]
    for m in shown:
        lines += [f"\n{m}, mean ± sd over seeds at every evaluation:\n"]
        lines += ["| step | " + " | ".join(arms) + " |", "|---" * (len(arms) + 1) + "|"]
        steps = sorted(
            {s for a in arms for s in stats["arms"][a]["metrics"].get(m, {}).get("steps", [])}
        )
        for step in steps:
            cells = []
            for a in arms:
                sm = stats["arms"][a]["metrics"].get(m)
                if sm and step in sm["steps"]:
                    i = sm["steps"].index(step)
                    cells.append(f"{sm['mean'][i]:.4g} ± {sm['sd'][i]:.2g}")
                else:
                    cells.append("n/a")
            lines.append(f"| {step} | " + " | ".join(cells) + " |")
    if png is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(
            1, len(shown), figsize=(3.2 * len(shown), 3.0), dpi=120, squeeze=False
        )
        for ax, m in zip(axes[0], shown):
            for a in arms:
                sm = stats["arms"][a]["metrics"].get(m)
                if not sm:
                    continue
                mean, sd = sm["mean"], sm["sd"]
                n = len(stats["arms"][a]["seeds"])
                colour = ARM_COLOURS.get(a)
                ax.plot(sm["steps"], mean, "o-", ms=3, color=colour, label=f"{a} (n={n})")
                lo = [u - v for u, v in zip(mean, sd)]
                hi = [u + v for u, v in zip(mean, sd)]
                ax.fill_between(sm["steps"], lo, hi, color=colour, alpha=0.2, lw=0)
            if m == "class_score" and stats.get("chance"):
                ax.axhline(stats["chance"], color="grey", ls="--", lw=1, label="chance")
            ax.set_title(f"{m} (mean ± sd)", fontsize=9)
            ax.set_xlabel("denoiser step", fontsize=8)
            ax.tick_params(labelsize=7)
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(png)
        plt.close(fig)
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Reproduction tables from run folders.")
    ap.add_argument("--ae", nargs="+", type=Path, metavar="RUN", help="AE runs, baseline first")
    ap.add_argument("--dit", nargs=2, type=Path, metavar=("BASELINE", "SE"))
    ap.add_argument("--metric", default="fd_rand3d", help="fd_rand3d, or fvd_i3d when logged")
    ap.add_argument("--curve", type=Path, help="an AE run: val PSNR by step beside the linear code")
    ap.add_argument("--curve-png", type=Path, help="where to draw --curve")
    ap.add_argument("--grid", type=Path, help="a diffusion_grid folder: statistics over seeds")
    ap.add_argument("--experiment", help="with --grid: the experiment (default: the newest)")
    ap.add_argument("--grid-png", type=Path, help="where to draw --grid's curves with bands")
    args = ap.parse_args(argv)
    if not (args.ae or args.dit or args.curve or args.grid):
        ap.error("give --ae, --dit, --curve or --grid")
    try:
        if args.ae:
            print("### Autoencoders\n")
            print(table(list(args.ae)))
        if args.dit:
            print(f"\n### Diffusion ({args.metric} at every evaluation)\n")
            print(diffusion_section(args.dit[0], args.dit[1], args.metric))
        if args.curve:
            print(f"\n### Reconstruction by step ({args.curve.name})\n")
            print(reconstruction_curve(args.curve, args.curve_png))
        if args.grid:
            print("\n### Diffusion over seeds\n")
            print(grid_section(args.grid, args.experiment, args.grid_png))
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"report: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
