#!/usr/bin/env bash
# Session 25, after finetune.sh: the 64-channel grid's final denoisers (conv64/grid.sh, 3 seeds x
# baseline/se, step 2000) sampled through their own decoder and through the noise-trained one:
# the same denoiser, noise (seed 0) and labels (8 per class), the grid's sampler (12 Euler
# steps, guidance 2), so every difference within a pair of rows is the decoder's. Two sweeps at a
# time, one thread each. Then the table (table.py) and the reconstructions beside the linear code.
cd "$(dirname "$0")/../../.."
set -e
. docs/results/conv64/lib.sh
here=docs/results/se64-gap
mkdir -p $here/sweeps $here/sheets
sweep() { # ARM SEED DECODER-NAME AE-CHECKPOINT
  local out=$here/sweeps/$1-s$2-$3.json sheet=
  [ -f $out ] && return 0
  [ "$2" = 0 ] && sheet="--sheet $here/sheets/$1-s0-$3.png"
  py diffusable.experiments.sampler_sweep --dit runs/conv64/grid/dit-compact-conv64-$1-s$2 --ae $4 \
    --per-class 8 --steps 12 --guidance 2 --seed 0 --threads 1 --json $out.tmp $sheet \
    > $here/sweeps/$1-s$2-$3.log 2>&1 && mv $out.tmp $out
}
for s in 0 1 2; do
  for v in baseline se; do
    sweep $v $s own runs/conv64/aes/ae-conv-small-64-$v/checkpoints/last.pt &
    sweep $v $s noise runs/s25/dec/ae-conv-small-64-$v-decnoise/checkpoints/last.pt &
    wait
  done
done
py diffusable.experiments.ae_eval \
  --ckpt baseline=runs/conv64/aes/ae-conv-small-64-baseline/checkpoints/last.pt \
  --ckpt se=runs/conv64/aes/ae-conv-small-64-se/checkpoints/last.pt \
  --ckpt baseline-noise=runs/s25/dec/ae-conv-small-64-baseline-decnoise/checkpoints/last.pt \
  --ckpt se-noise=runs/s25/dec/ae-conv-small-64-se-decnoise/checkpoints/last.pt \
  --out $here/ae-eval
/usr/bin/python3 $here/table.py > $here/table.md
# How much each decoder now amplifies white noise in its latent (session 24's probe, its four).
PYTHONPATH=src/training DIFFUSABLE_THREADS=2 /usr/bin/python3 docs/results/conv64/sensitivity.py \
  $here/sensitivity.json \
  baseline=runs/conv64/aes/ae-conv-small-64-baseline/checkpoints/last.pt \
  se=runs/conv64/aes/ae-conv-small-64-se/checkpoints/last.pt \
  baseline-noise=runs/s25/dec/ae-conv-small-64-baseline-decnoise/checkpoints/last.pt \
  se-noise=runs/s25/dec/ae-conv-small-64-se-decnoise/checkpoints/last.pt
