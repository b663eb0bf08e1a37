#!/usr/bin/env bash
# after the two runs of launch.sh: bundles with the new denoisers (the shipped autoencoders
# unchanged), service sample sheets with the seeds of every earlier sheet, their class score,
# and the memorization check against the 4080 training clips
cd "$(dirname "$0")/../../.."
while pgrep -f "runs/big/dit-medium" >/dev/null; do sleep 5; done
date -u +"after start %H:%M:%S" >> runs/big/launch.log
mkdir -p runs/big/bundles runs/big/sheets
for v in baseline se; do
  rm -rf runs/big/bundles/small-$v
  cp -r models/small-$v runs/big/bundles/
  PYTHONPATH=src/training /usr/bin/python3 -m diffusable.export_denoiser --weights int8 \
    --guidance 3 --steps 24 --ckpt runs/big/dit-medium-$v/checkpoints/last.pt \
    --bundle runs/big/bundles/small-$v
done > runs/big/export.log 2>&1
date -u +"exported %H:%M:%S" >> runs/big/launch.log
DIFFUSABLE_MODELS_DIR=runs/big/bundles N=8 SEED=1000 OUT=runs/big/samples SHEETS=runs/big/sheets \
  scripts/sample-sheets.sh small-baseline small-se > runs/big/sheets.log 2>&1
date -u +"sheets %H:%M:%S" >> runs/big/launch.log
for v in baseline se; do
  PYTHONPATH=src/training /usr/bin/python3 -m diffusable.memorization runs/big/samples/small-$v \
    --data procedural:240 > runs/big/memorization-$v.log 2>&1
done
date -u +"memorization %H:%M:%S" >> runs/big/launch.log
