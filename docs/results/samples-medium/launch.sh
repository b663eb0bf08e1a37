#!/usr/bin/env bash
# continues the session-16 `medium` grid runs (seed 0, 2000 label-only steps) on the shipped
# latents, with context examples, sized by wall time; both arms take the same step count
cd "$(dirname "$0")/../.."
date -u +"start %H:%M:%S" >> runs/med/launch.log
rm -rf runs/med/.sync
for v in baseline se; do
  PYTHONPATH=src/training nohup /usr/bin/python3 -m diffusable.training.train_diffusion --config medium \
    --ae runs/gpu-aes/ae-conv-small-$v --context-prob 0.3 \
    --init runs/grid-medium/dit-medium-$v-s0/checkpoints/last.pt \
    --out runs/med/dit-medium-$v --steps 20000 --batch-size 32 --lr 3e-4 --warmup 100 \
    --cpu-bf16 true --threads 1 --seed 1 --time-budget 6300 --budget-evals 2 \
    --budget-sync runs/med/.sync:2 --sample-steps 24 --eval-samples 128 \
    --classifier cached > runs/med/$v.log 2>&1 &
done
wait
date -u +"end %H:%M:%S" >> runs/med/launch.log
