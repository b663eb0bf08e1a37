#!/usr/bin/env bash
# Session 26, after no-se.sh: the shipped denoisers (as sample.sh rebuilt them) through the
# decoders continued without SE, at the bundles' sampler, the same three noise seeds as
# sample.sh's `own` rows (which they are compared with); seed 0's sheets in sheets/.
cd "$(dirname "$0")/../../.."
set -e
. docs/results/conv64/lib.sh
here=docs/results/decoder-noise16
sweep() { # ARM SEED
  local out=$here/sweeps/$1-s$2-nose.json sheet=
  [ -f $out ] && return 0
  [ "$2" = 0 ] && sheet="--sheet $here/sheets/$1-s0-nose.png"
  py diffusable.experiments.sampler_sweep --dit runs/s26/dit/$1.pt \
    --ae runs/s26/dec/ae-conv-small-gpu-$1-dec-nose/checkpoints/last.pt --per-class 8 --steps 12 \
    --guidance 3 --seed $2 --threads 1 --json $out.tmp $sheet > $here/sweeps/$1-s$2-nose.log 2>&1 \
    && mv $out.tmp $out
}
for s in 0 1 2; do
  sweep baseline $s &
  sweep se $s &
  wait
done
