#!/usr/bin/env bash
# Trains models/small-baseline and models/small-se from nothing on a 2-core CPU machine, as they
# were made for docs/RESULTS.md. Every stage resumes when the script is run again.
#   1. the autoencoder protocol on the convolutional causal VAE (conv_vae.py, config conv-small):
#      pre-train from scratch on 48x48x9 crops, then baseline / se / se-spatial fine-tunes with
#      identical draws on 64x64x9 clips, then ae_eval (diffusable.experiments.ae_protocol);
#   2. each shipped bundle's autoencoder exported (int8 weight storage: 25 MB a bundle);
#   3. a `compact` denoiser trained on each bundle's latents (same settings and seed), with 30% of
#      its examples given their first latent frames (image-to-video, extension), at the same
#      time with one thread each, then added to its bundle.
# Run folders go to $RUNS (default runs/protocol-conv); logs to copy into docs/results/runs are
# the events.jsonl files there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${DIFFUSABLE_PYTHON:-/usr/bin/python3}
RUNS=${RUNS:-runs/protocol-conv}
AE_STEPS=${AE_STEPS:-1200}
FT_STEPS=${FT_STEPS:-400}
DIT_STEPS=${DIT_STEPS:-800}
export PYTHONPATH=src/training

"$PY" -m diffusable.experiments.ae_protocol --config conv-small --out "$RUNS" --parallel \
  --pretrain-steps "$AE_STEPS" --finetune-steps "$FT_STEPS" --finetune-flags "--crop-frames 9"
for v in baseline se; do
  "$PY" -m diffusable.export.ae_bundle --ckpt "$RUNS/ae-conv-small-$v/checkpoints/last.pt" \
    --out "models/small-$v" --weights int8
done
pids=()
for v in baseline se; do
  "$PY" -m diffusable.training.train_diffusion --ae "$RUNS/ae-conv-small-$v" --config compact \
    --out "$RUNS/dit-conv-compact-$v" --threads 1 --steps "$DIT_STEPS" --lr 4e-4 --warmup 50 \
    --eval-every 400 --sample-steps 16 --context-prob 0.3 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
for v in baseline se; do
  "$PY" -m diffusable.export.denoiser_bundle --ckpt "$RUNS/dit-conv-compact-$v/checkpoints/last.pt" \
    --bundle "models/small-$v" --weights int8
done
