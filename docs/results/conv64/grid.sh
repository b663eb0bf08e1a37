#!/usr/bin/env bash
# Issue 21, part 5, stage 3 (after finetune.sh): the diffusability grid on the 64-channel
# latents with the 16-channel grid's recipe (preset conv-long: DiT compact, 2000 steps, batch 32,
# evaluated every 500 on 128 samples with the 0.971 classifier), arms baseline and se, seeds
# 0 1 2, two runs at a time (one thread each): about 70 min on the 2-core EPYC. Experiment
# grid-conv64; the admin page's trade-off chart sets it beside grid-gpu (same recipe, 16
# channels). Then the run logs into docs/results/runs (the service imports them), seed_stats and
# the curves into docs/results/conv64/grid.
cd "$(dirname "$0")/../../.."
set -e
. docs/results/conv64/lib.sh
for v in baseline se; do
  ck=runs/conv64/aes/ae-conv-small-64-$v/checkpoints/last.pt
  [ -f $ck ] || { echo "grid.sh: $ck missing: run finetune.sh first" >&2; exit 2; }
done
# The runs are renamed once the grid has finished (below); a rerun after that skips the grid.
if [ "$(ls -d runs/conv64/grid/dit-compact-conv64-*/ 2>/dev/null | wc -l)" -eq 0 ]; then
  py diffusable.experiments.diffusion_grid --aes runs/conv64/aes --ae-config conv-small-64 \
    --out runs/conv64/grid --experiment grid-conv64 --preset conv-long --arms baseline se \
    --seeds 0 1 2 --parallel 2
fi
here=docs/results/conv64/grid
mkdir -p $here
for r in runs/conv64/grid/dit-compact-*/; do # the folders, not diffusion_grid's .log files
  r=${r%/}
  case $(basename $r) in dit-compact-conv64-*) continue ;; esac # renamed on an earlier pass
  py diffusable.training.rename_run $r dit-compact-conv64-$(basename $r | sed 's/^dit-compact-//')
done
for r in runs/conv64/grid/dit-compact-conv64-*/; do
  r=${r%/}
  mkdir -p docs/results/runs/$(basename $r) && cp $r/events.jsonl docs/results/runs/$(basename $r)/
done
cp runs/conv64/grid/grid.json $here/
for v in baseline se; do
  cp runs/conv64/grid/dit-compact-conv64-$v-s0/samples/step002000.png $here/samples-$v-s0-step2000.png
done
py diffusable.experiments.seed_stats --runs docs/results/runs --experiment grid-conv64 --json $here/stats.json > $here/stats.md
py diffusable.experiments.report --grid docs/results/runs --experiment grid-conv64 --grid-png $here/curves.png > /dev/null
