#!/usr/bin/env bash
# (kept as run, from runs/cont3/: its paths are relative to that folder's place in the repository)
# after cont3: candidate bundles (copies of the shipped ones with the continued denoisers) and
# their service samples, same seed and N as samples-cont
cd "$(dirname "$0")/../.."
while pgrep -f "runs/cont3/dit-compact-gpu" >/dev/null; do sleep 5; done
date -u +"after start %H:%M:%S" >> runs/cont3/launch.log
rm -rf runs/cont3/models && mkdir -p runs/cont3/models
for v in baseline se; do
  cp -r models/small-$v runs/cont3/models/small-$v
  PYTHONPATH=src/training /usr/bin/python3 -m diffusable.export.denoiser_bundle \
    --ckpt runs/cont3/dit-compact-gpu-$v-cpu3/checkpoints/last.pt --bundle runs/cont3/models/small-$v \
    --guidance 3 --steps 24 --weights int8 > runs/cont3/export-$v.log 2>&1
done
DIFFUSABLE_MODELS_DIR=runs/cont3/models N=8 SEED=1000 OUT=runs/cont3/samples SHEETS=runs/cont3 PORT=8791 \
  scripts/sample-sheets.sh > runs/cont3/sheets.log 2>&1
date -u +"after end %H:%M:%S" >> runs/cont3/launch.log
