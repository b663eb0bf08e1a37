#!/usr/bin/env bash
# Session 25: SE at half its weight (0.125) at 64 channels, to see whether the grid's 12% (SE at
# 0.25 worse than the baseline in fd_cls3d) shrinks with the term. The se arm's fine-tune
# (conv64/finetune.sh: the committed pre-train, 370 steps, same draws) with --se-weight 0.125,
# alone on 2 threads; then its denoisers with the grid's exact command (conv64/grid.json: DiT
# compact, 2000 steps, seeds 0-2) under their own experiment name, three side by side one
# thread each. Resumable. Then compare.py beside the grid's baseline and se runs.
cd "$(dirname "$0")/../../.."
set -e
. docs/results/conv64/lib.sh
init=docs/results/runs/ae-conv-small-64-pretrain/checkpoints/ema-int8.pt
ae=runs/s25/aes/ae-conv-small-64-se-half
mkdir -p runs/s25/aes runs/s25/grid
py diffusable.training.train_ae --config conv-small-64 --variant se --se-weight 0.125 --init $init \
  --preset conv-small-finetune --steps 370 --batch-size 32 --lr 5e-4 --warmup 50 \
  --crop-size 0 --crop-frames 0 --cpu-bf16 true --threads 2 --log-every 20 --eval-every 185 \
  --ckpt-every 20 --out $ae >> runs/s25/se-half.log 2>&1
pids=
for s in 0 1 2; do
  py diffusable.training.train_diffusion --ae $ae --config compact --out runs/s25/grid/dit-compact-conv64-se-half-s$s \
    --data procedural --threads 1 --seed $s --experiment grid-conv64-se-half --steps 2000 --lr 7e-4 \
    --warmup 100 --eval-every 500 --sample-steps 12 --eval-samples 128 --cpu-bf16 true \
    >> runs/s25/grid/se-half-s$s.log 2>&1 &
  pids="$pids $!"
done
for p in $pids; do wait $p; done
# The logs into docs/results/runs (the service imports them; compare.py reads them there).
for r in $ae runs/s25/grid/dit-compact-conv64-se-half-s*/; do
  r=${r%/}
  mkdir -p docs/results/runs/$(basename $r) && cp $r/events.jsonl docs/results/runs/$(basename $r)/
done
/usr/bin/python3 docs/results/se64-gap/compare.py > docs/results/se64-gap/se-half.md
