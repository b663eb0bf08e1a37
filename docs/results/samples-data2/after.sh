#!/usr/bin/env bash
# after the two runs of launch.sh: bundles with the new denoisers (the shipped autoencoders
# unchanged), service sample sheets with the seeds of every earlier sheet, their class score,
# the memorization check against the 4080 training clips, the PyTorch class score and fd_cls3d
# at the shipped sampler setting, then the context evaluation of the se run
cd "$(dirname "$0")/../../.."
while pgrep -f "runs/big2/dit-medium" >/dev/null; do sleep 5; done
date -u +"after start %H:%M:%S" >> runs/big2/launch.log
mkdir -p runs/big2/bundles runs/big2/sheets
for v in baseline se; do
  rm -rf runs/big2/bundles/small-$v
  cp -r models/small-$v runs/big2/bundles/
  PYTHONPATH=src/training /usr/bin/python3 -m diffusable.export.denoiser_bundle --weights int8 \
    --guidance 3 --steps 24 --ckpt runs/big2/dit-medium-data2-$v/checkpoints/last.pt \
    --bundle runs/big2/bundles/small-$v
done > runs/big2/export.log 2>&1
date -u +"exported %H:%M:%S" >> runs/big2/launch.log
DIFFUSABLE_MODELS_DIR=runs/big2/bundles N=8 SEED=1000 OUT=runs/big2/samples SHEETS=runs/big2/sheets \
  scripts/sample-sheets.sh small-baseline small-se > runs/big2/sheets.log 2>&1
date -u +"sheets %H:%M:%S" >> runs/big2/launch.log
for v in baseline se; do
  PYTHONPATH=src/training /usr/bin/python3 -m diffusable.experiments.memorization runs/big2/samples/small-$v \
    --data procedural:240 > runs/big2/memorization-$v.log 2>&1
done
date -u +"memorization %H:%M:%S" >> runs/big2/launch.log
# same noise and labels for every run as session 18's sweeps (docs/results/samples-data)
for v in baseline se; do
  PYTHONPATH=src/training /usr/bin/python3 -m diffusable.experiments.sampler_sweep --dit runs/big2/dit-medium-data2-$v \
    --ae docs/results/runs/ae-conv-small-gpu-$v-dec/checkpoints/ema-int8.pt \
    --guidance 3 --steps 24 --per-class 8 --threads 2 --json runs/big2/sweep-dit-medium-data2-$v.json \
    > runs/big2/sweep-dit-medium-data2-$v.log 2>&1
done
date -u +"sweeps %H:%M:%S" >> runs/big2/launch.log
PYTHONPATH=src/training /usr/bin/python3 -m diffusable.experiments.context_eval --dit runs/big2/dit-medium-data2-se \
  --out runs/big2/context --threads 2 --chain 2 --steps 24 --guidance 3 --modes trained \
  > runs/big2/context.log 2>&1
date -u +"context %H:%M:%S" >> runs/big2/launch.log
