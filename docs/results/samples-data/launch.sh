#!/usr/bin/env bash
# continues the shipped `medium` denoisers (session 17: 2000 label-only + 9158 context steps on
# 816 clips, held-out loss rising) on 5x the training clips: `procedural:240` is the same
# generator, seed and val split with 240 train clips per class (the first 48 are the old set).
# Same recipe for both arms; the step count fixed for both by wall time.
cd "$(dirname "$0")/../../.."
mkdir -p runs/big
date -u +"start %H:%M:%S" >> runs/big/launch.log
rm -rf runs/big/.sync
for v in baseline se; do
  [ -f runs/big/recovered-$v.pt ] || PYTHONPATH=src/training /usr/bin/python3 -m diffusable.export.recover_denoiser \
    --bundle models/small-$v --ae docs/results/runs/ae-conv-small-gpu-$v/checkpoints/ema-int8.pt \
    --out runs/big/recovered-$v.pt
  PYTHONPATH=src/training nohup /usr/bin/python3 -m diffusable.training.train_diffusion --config medium \
    --ae docs/results/runs/ae-conv-small-gpu-$v-dec/checkpoints/ema-int8.pt --data procedural:240 \
    --context-prob 0.3 --init runs/big/recovered-$v.pt \
    --out runs/big/dit-medium-$v --steps 20000 --batch-size 32 --lr 3e-4 --warmup 100 \
    --cpu-bf16 true --threads 1 --seed 2 --time-budget ${BUDGET:-5400} --budget-evals 2 \
    --budget-sync runs/big/.sync:2 --sample-steps 24 --eval-samples 128 \
    --classifier cached > runs/big/$v.log 2>&1 &
done
wait
date -u +"end %H:%M:%S" >> runs/big/launch.log
