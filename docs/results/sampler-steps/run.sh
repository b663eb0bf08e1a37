#!/usr/bin/env bash
# Session 20 (docs/RESULTS.md 0i): the shipped denoisers' sampler measured, as run (2-core AMD
# EPYC, nothing else running; one thread a process, the two bundles side by side).
cd "$(dirname "$0")/../../.."
set -e
py() { PYTHONPATH=src/training /usr/bin/python3 -m "$@"; }
mkdir -p runs/s20
for v in baseline se; do   # the bundles' denoisers as checkpoints (int8 weights, as served)
  py diffusable.export.recover_denoiser --bundle models/small-$v \
    --ae docs/results/runs/ae-conv-small-gpu-$v-dec/checkpoints/ema-int8.pt --out runs/s20/recovered-$v.pt
done
sweeps() {  # one bundle: every sweep on the same noise and labels (136 clips, 8 a class)
  local v=$1
  local c=(--dit runs/s20/recovered-$v.pt --ae docs/results/runs/ae-conv-small-gpu-$v-dec/checkpoints/ema-int8.pt
           --per-class 8 --threads 1)
  py diffusable.experiments.sampler_sweep "${c[@]}" --guidance 3 --steps 24 12 --method euler heun --json runs/s20/sweep-ref-$v.json
  py diffusable.experiments.sampler_sweep "${c[@]}" --steps 24 --guidance 3 4 5 --interval 0.2,0.85 0,0.85 --json runs/s20/sweep-interval-$v.json
  py diffusable.experiments.sampler_sweep "${c[@]}" --steps 24 --guidance 3 --shift 0.6 1.7 --json runs/s20/sweep-shift-$v.json
  py diffusable.experiments.sampler_sweep "${c[@]}" --steps 24 --guidance 3 4 --interval 0.5,1 0.7,1 --json runs/s20/sweep-high-$v.json
  for seed in 1 2; do  # the same two settings on other noise: the noise seeds' spread
    py diffusable.experiments.sampler_sweep "${c[@]}" --steps 24 12 --guidance 3 --seed $seed --json runs/s20/sweep-seed$seed-$v.json
  done
}
sweeps baseline > runs/s20/sweeps-baseline.log 2>&1 &
sweeps se > runs/s20/sweeps-se.log 2>&1
wait
for n in 24 12; do  # image-to-video and extension of the se bundle at both step counts
  py diffusable.experiments.context_eval --dit runs/s20/recovered-se.pt \
    --ae docs/results/runs/ae-conv-small-gpu-se-dec/checkpoints/ema-int8.pt \
    --out runs/s20/context-$n --threads 1 --chain 2 --steps $n --guidance 3 --modes trained \
    > runs/s20/context-$n.log 2>&1 &
done
wait
npx tsx docs/results/sampler-steps/latency.ts 7 1 | tee runs/s20/latency.log
for v in baseline se; do  # the new default, written into the bundles (nothing else changes)
  py diffusable.export.denoiser_bundle --bundle models/small-$v --sampler-only --steps 12
done
N=8 SEED=1000 OUT=runs/s20/samples SHEETS=runs/s20/sheets scripts/sample-sheets.sh small-baseline small-se
