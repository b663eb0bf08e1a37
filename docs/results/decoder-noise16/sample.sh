#!/usr/bin/env bash
# Session 26, after finetune.sh: the shipped denoisers (rebuilt from their bundles' int8 weights,
# recover_denoiser) sampled through their own decoder and the noise-trained one, at the bundles'
# sampler (12 Euler steps, guidance 3), 8 per class, three noise seeds: each pair of rows differs
# only in the decoder. Two sweeps at a time, one thread each. Resumable.
cd "$(dirname "$0")/../../.."
set -e
. docs/results/conv64/lib.sh
here=docs/results/decoder-noise16
noise=${NOISE:-0.25}
mkdir -p $here/sweeps $here/sheets runs/s26/dit
for v in baseline se; do
  [ -f runs/s26/dit/$v.pt ] || py diffusable.export.recover_denoiser --bundle models/small-$v \
    --ae docs/results/runs/ae-conv-small-gpu-$v-dec/checkpoints/ema-int8.pt --out runs/s26/dit/$v.pt
done
sweep() { # ARM SEED DECODER-NAME AE-CHECKPOINT
  local out=$here/sweeps/$1-s$2-$3.json sheet=
  [ -f $out ] && return 0
  [ "$2" = 0 ] && sheet="--sheet $here/sheets/$1-s0-$3.png"
  py diffusable.experiments.sampler_sweep --dit runs/s26/dit/$1.pt --ae $4 --per-class 8 --steps 12 \
    --guidance 3 --seed $2 --threads 1 --json $out.tmp $sheet > $here/sweeps/$1-s$2-$3.log 2>&1 \
    && mv $out.tmp $out
}
for s in 0 1 2; do
  for v in baseline se; do
    sweep $v $s own docs/results/runs/ae-conv-small-gpu-$v-dec/checkpoints/ema-int8.pt &
    sweep $v $s noise$noise runs/s26/dec/ae-conv-small-gpu-$v-decnoise$noise/checkpoints/last.pt &
    wait
  done
done
