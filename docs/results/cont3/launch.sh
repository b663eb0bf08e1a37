#!/usr/bin/env bash
# (kept as run, from runs/cont3/: its paths are relative to that folder's place in the repository)
# continues both shipped denoisers (the session-14 cpu2 runs) 6000 steps more at lr 1e-4
cd "$(dirname "$0")/../.."
date -u +"start %H:%M:%S" >> runs/cont3/launch.log
for v in baseline se; do
  PYTHONPATH=src/training nohup nice -n 19 /usr/bin/python3 -m diffusable.training.train_diffusion --config compact \
    --ae runs/gpu-aes/ae-conv-small-$v --context-prob 0.3 \
    --init docs/results/runs/dit-compact-gpu-$v-cpu2/checkpoints/ema-int8.pt \
    --out runs/cont3/dit-compact-gpu-$v-cpu3 --steps 6000 --batch-size 32 --lr 1e-4 --warmup 100 \
    --cpu-bf16 true --threads 1 --seed 2 --eval-every 3000 --sample-steps 24 --eval-samples 128 \
    --guidance 3 --classifier cached > runs/cont3/$v.log 2>&1 &
done
wait
date -u +"end %H:%M:%S" >> runs/cont3/launch.log
