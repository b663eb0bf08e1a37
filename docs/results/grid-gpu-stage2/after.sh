#!/usr/bin/env bash
# Session 21: after run.sh, as run. Ids of their own for the six denoisers (their grid names,
# dit-compact-<arm>-s<seed>, are older runs' ids too), the autoencoders evaluated beside the
# linear code, the logs into docs/results/runs (the service imports them: the admin page shows
# the pair), the statistics over seeds and the curves.
cd "$(dirname "$0")/../../.."
set -e
py() { PYTHONPATH=src/training /usr/bin/python3 -m "$@"; }
here=docs/results/grid-gpu-stage2
for k in 0 1 2; do
  [ -d runs/s21/grid/dit-compact-se-spatial-s$k ] &&
    py diffusable.training.rename_run runs/s21/grid/dit-compact-se-spatial-s$k dit-compact-gpu-stage2-se-spatial-s$k
  [ -d runs/s21/grid-ctl/dit-compact-baseline-s$k ] &&
    py diffusable.training.rename_run runs/s21/grid-ctl/dit-compact-baseline-s$k dit-compact-gpu-stage2-baseline-s$k
done
ae_se=runs/s21/aes/ae-conv-small-gpu-se-spatial-stage2
ae_ctl=runs/s21/aes-ctl/ae-conv-small-gpu-baseline-stage2
# The two stage-2 autoencoders and their common init, on the val clips and the real videos (run
# while the control's grid trained, as soon as its autoencoder was done).
[ -f $here/ae-eval/ae_eval.json ] || py diffusable.experiments.ae_eval --threads 2 --events --out $here/ae-eval \
  --ckpt init=docs/results/runs/ae-conv-small-gpu-baseline/checkpoints/ema-int8.pt \
  --ckpt baseline-stage2=$ae_ctl/checkpoints/last.pt --ckpt se-spatial-stage2=$ae_se/checkpoints/last.pt
for r in runs/s21/grid/dit-compact-gpu-stage2-* runs/s21/grid-ctl/dit-compact-gpu-stage2-* $ae_se $ae_ctl; do
  d=docs/results/runs/$(basename $r)
  mkdir -p $d
  cp $r/events.jsonl $d/
  [ -f $r/latent-channels.png ] && cp $r/latent-channels.png $d/
done
for arm in baseline se-spatial; do
  cp runs/s21/grid*/dit-compact-gpu-stage2-$arm-s0/samples/step002000.png $here/samples-$arm-s0-step2000.png
done
cp runs/s21/grid/grid.json $here/grid-se-spatial.json
cp runs/s21/grid-ctl/grid.json $here/grid-control.json
py diffusable.experiments.seed_stats --runs docs/results/runs --experiment grid-gpu-stage2 --json $here/stats.json > $here/stats.md
py diffusable.experiments.report --grid docs/results/runs --experiment grid-gpu-stage2 --grid-png $here/curves.png > /dev/null
# The issue's three arms in one table (baseline and se from grid-gpu, se-spatial from this
# experiment: its encoder had 740 + 370 fine-tune steps, se's 370, baseline's 740), and what the
# 370 extra steps alone did (the control against grid-gpu's baseline), both paired by seed.
PYTHONPATH=src/training /usr/bin/python3 - "$here" <<'PY'
import json, sys
from pathlib import Path
from diffusable.experiments.seed_stats import experiment_stats, markdown, paired_difference, read_runs, conclusion, METRICS
here = Path(sys.argv[1])
runs = read_runs(Path("docs/results/runs"))
pick = lambda exp, arm: [r for r in runs if r["experiment"] == exp and r["arm"] == arm]
three = pick("grid-gpu", "baseline") + pick("grid-gpu", "se") + pick("grid-gpu-stage2", "se-spatial")
stats = experiment_stats(three)
(here / "three-arms.json").write_text(json.dumps(stats, indent=1) + "\n")
lines = [markdown(stats, "grid-gpu (baseline, se) + grid-gpu-stage2 (se-spatial)"), ""]
ctl, base = pick("grid-gpu-stage2", "baseline"), pick("grid-gpu", "baseline")
lines += ["The control (370 more steps without SE) against grid-gpu's baseline, final values, paired by seed:", ""]
for m, better in METRICS.items():
    last = lambda rs: {r["seed"]: r["evals"][max(r["evals"])].get(m) for r in rs}
    a, b = last(ctl), last(base)
    if any(v is None for v in list(a.values()) + list(b.values())):
        continue
    p = paired_difference(a, b)
    lines.append(f"- {m}: {conclusion('control', p['rel'], p['lo'], p['hi'])} (n={p['n']})")
(here / "three-arms.md").write_text("\n".join(lines) + "\n")
PY
