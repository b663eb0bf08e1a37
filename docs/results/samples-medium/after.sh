#!/usr/bin/env bash
# after the two `medium` runs: bundles with their denoisers, service sample sheets (the shipped
# pair's seeds), then the context evaluation of the se run (the shipped se's protocol)
cd "$(dirname "$0")/../.."
while pgrep -f "runs/med/dit-medium" >/dev/null; do sleep 5; done
date -u +"after start %H:%M:%S" >> runs/med/launch.log
mkdir -p runs/med/bundles runs/med/sheets
for v in baseline se; do
  rm -rf runs/med/bundles/small-$v
  cp -r models/small-$v runs/med/bundles/
  PYTHONPATH=src/training /usr/bin/python3 -m diffusable.export.ae_bundle --weights int8 \
    --ckpt runs/dec/ae-conv-small-gpu-$v-dec/checkpoints/last.pt --out runs/med/bundles/small-$v
  PYTHONPATH=src/training /usr/bin/python3 -m diffusable.export.denoiser_bundle --weights int8 \
    --guidance 3 --steps 24 --ckpt runs/med/dit-medium-$v/checkpoints/last.pt \
    --bundle runs/med/bundles/small-$v
done > runs/med/export.log 2>&1
date -u +"exported %H:%M:%S" >> runs/med/launch.log
DIFFUSABLE_MODELS_DIR=runs/med/bundles N=8 SEED=1000 OUT=runs/med/samples SHEETS=runs/med/sheets \
  scripts/sample-sheets.sh small-baseline small-se > runs/med/sheets.log 2>&1
date -u +"sheets %H:%M:%S" >> runs/med/launch.log
PYTHONPATH=src/training /usr/bin/python3 -m diffusable.experiments.context_eval --dit runs/med/dit-medium-se \
  --out runs/med/context --threads 2 --chain 2 --steps 24 --guidance 3 > runs/med/context.log 2>&1
date -u +"context %H:%M:%S" >> runs/med/launch.log
