#!/usr/bin/env bash
# Trains models/small-baseline and models/small-se from nothing on a 2-core CPU machine, as they
# were made for docs/RESULTS.md. Every stage resumes when the script is run again.
#   1. the autoencoder protocol: pre-train from the linear code, then baseline / se / se-spatial
#      fine-tunes with identical draws, then ae_eval (diffusable.ae_protocol);
#   2. each shipped bundle's autoencoder exported (fp16 weights);
#   3. a `compact` denoiser trained on each bundle's latents (same settings and seed), at the same
#      time with one thread each, then added to its bundle.
# Run folders go to $RUNS (default runs/protocol-k3); logs to copy into docs/results/runs are
# the events.jsonl files there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${DIFFUSABLE_PYTHON:-/usr/bin/python3}
RUNS=${RUNS:-runs/protocol-k3}
DIT_STEPS=${DIT_STEPS:-400}
export PYTHONPATH=src/training

# The fine-tunes' decoder reads 3x3 latent tokens in its linear map, and both linear maps train at
# the full rate (docs/RESULTS.md §1, "The protocol with a 3x3 linear decoder"). PRETRAIN=<a
# finished train_ae run> skips stage 1: the shipped fine-tunes started from the committed
# docs/results/runs/ae-small-pretrain, which is what stage 1 makes.
pretrain=()
if [[ -n "${PRETRAIN:-}" ]]; then pretrain=(--pretrain "$PRETRAIN"); fi
"$PY" -m diffusable.ae_protocol --config small --out "$RUNS" --parallel --pretrain-steps 3000 \
  "${pretrain[@]}" --finetune-steps 2400 \
  --finetune-flags "--decoder-linear-kernel 3 --linear-lr-scale 1 --lr 1e-3 --warmup 50"
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
