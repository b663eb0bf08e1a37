#!/usr/bin/env bash
# after the two runs of launch.sh: bundles with the new denoisers (the shipped autoencoders
# unchanged), service sample sheets with the seeds of every earlier sheet, their class score,
# and the memorization check against the 4080 training clips
cd "$(dirname "$0")/../../.."
while pgrep -f "runs/big/dit-medium" >/dev/null; do sleep 5; done
date -u +"after start %H:%M:%S" >> runs/big/launch.log
# launch.sh named the runs as their ancestors (the shipped dit-medium-<v>): give them their own ids
for v in baseline se; do
  [ -d runs/big/dit-medium-data-$v ] || PYTHONPATH=src/training /usr/bin/python3 -m diffusable.training.rename_run \
    runs/big/dit-medium-$v dit-medium-data-$v
done
mkdir -p runs/big/bundles runs/big/sheets
for v in baseline se; do
  rm -rf runs/big/bundles/small-$v
  cp -r models/small-$v runs/big/bundles/
  PYTHONPATH=src/training /usr/bin/python3 -m diffusable.export.denoiser_bundle --weights int8 \
    --guidance 3 --steps 24 --ckpt runs/big/dit-medium-data-$v/checkpoints/last.pt \
    --bundle runs/big/bundles/small-$v
done > runs/big/export.log 2>&1
date -u +"exported %H:%M:%S" >> runs/big/launch.log
DIFFUSABLE_MODELS_DIR=runs/big/bundles N=8 SEED=1000 OUT=runs/big/samples SHEETS=runs/big/sheets \
  scripts/sample-sheets.sh small-baseline small-se > runs/big/sheets.log 2>&1
date -u +"sheets %H:%M:%S" >> runs/big/launch.log
for v in baseline se; do
  PYTHONPATH=src/training /usr/bin/python3 -m diffusable.experiments.memorization runs/big/samples/small-$v \
    --data procedural:240 > runs/big/memorization-$v.log 2>&1
done
date -u +"memorization %H:%M:%S" >> runs/big/launch.log
# PyTorch class score and fd_cls3d at the shipped sampler setting (guidance 3, 24 steps; same
# noise and labels for every run): the new runs, and the shipped denoisers recovered from their
# bundles (int8 weights, as the service computes)
for run in runs/big/dit-medium-data-{baseline,se} runs/big/recovered-{baseline,se}.pt; do
  name=$(basename "$run" .pt)
  ae=docs/results/runs/ae-conv-small-gpu-baseline-dec/checkpoints/ema-int8.pt
  [[ $name == *se ]] && ae=docs/results/runs/ae-conv-small-gpu-se-dec/checkpoints/ema-int8.pt
  PYTHONPATH=src/training /usr/bin/python3 -m diffusable.experiments.sampler_sweep --dit "$run" --ae "$ae" \
    --guidance 3 --steps 24 --per-class 8 --threads 2 --json runs/big/sweep-$name.json \
    > runs/big/sweep-$name.log 2>&1
done
date -u +"sweeps %H:%M:%S" >> runs/big/launch.log
