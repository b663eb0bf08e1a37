#!/usr/bin/env bash
# Trains models/small-baseline and models/small-se from nothing on a 2-core CPU machine, as they
# were made for docs/RESULTS.md. Every stage resumes when the script is run again.
#   1. the autoencoder protocol: pre-train from the linear code, then baseline / se / se-spatial
#      fine-tunes with identical draws, then ae_eval (diffusable.ae_protocol);
#   2. each shipped bundle's autoencoder exported (fp16 weights);
#   3. a `compact` denoiser trained on each bundle's latents (same settings and seed), at the same
#      time with one thread each, then added to its bundle.
# Run folders go to $RUNS (default runs/protocol-small); logs to copy into docs/results/runs are
# the events.jsonl files there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${DIFFUSABLE_PYTHON:-/usr/bin/python3}
RUNS=${RUNS:-runs/protocol-small}
DIT_STEPS=${DIT_STEPS:-400}
export PYTHONPATH=src/training

"$PY" -m diffusable.ae_protocol --config small --out "$RUNS" --parallel --pretrain-steps 3000
for v in baseline se; do
  "$PY" -m diffusable.export --ckpt "$RUNS/ae-small-$v/checkpoints/last.pt" --out "models/small-$v"
done
pids=()
for v in baseline se; do
  "$PY" -m diffusable.train_diffusion --ae "$RUNS/ae-small-$v" --config compact \
    --out "$RUNS/dit-compact-$v" --threads 1 --steps "$DIT_STEPS" --lr 4e-4 --warmup 50 --eval-every 200 \
    --sample-steps 12 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
for v in baseline se; do
  "$PY" -m diffusable.export_denoiser --ckpt "$RUNS/dit-compact-$v/checkpoints/last.pt" \
    --bundle "models/small-$v"
done
