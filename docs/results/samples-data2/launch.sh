#!/usr/bin/env bash
# continues the shipped `medium` denoisers (session 18: 8450 steps on procedural:240, held-out
# loss still falling at the end) on the same 4080 clips, from their bundles' weights. Same recipe
# for both arms as session 18 but another data-order seed; the step count fixed for both by wall
# time, the cosine ending at that step. In-run evals now log the class score (the shipped
# classifier judges procedural:N, classifier.judge_dataset).
cd "$(dirname "$0")/../../.."
mkdir -p runs/big2
date -u +"start %H:%M:%S" >> runs/big2/launch.log
rm -rf runs/big2/.sync
for v in baseline se; do
  [ -f runs/big2/recovered-$v.pt ] || PYTHONPATH=src/training /usr/bin/python3 -m diffusable.export.recover_denoiser \
    --bundle models/small-$v --ae docs/results/runs/ae-conv-small-gpu-$v/checkpoints/ema-int8.pt \
    --out runs/big2/recovered-$v.pt
  PYTHONPATH=src/training nohup /usr/bin/python3 -m diffusable.training.train_diffusion --config medium \
    --ae docs/results/runs/ae-conv-small-gpu-$v-dec/checkpoints/ema-int8.pt --data procedural:240 \
    --context-prob 0.3 --init runs/big2/recovered-$v.pt \
    --out runs/big2/dit-medium-data2-$v --steps 20000 --batch-size 32 --lr 3e-4 --warmup 100 \
    --cpu-bf16 true --threads 1 --seed 3 --time-budget ${BUDGET:-5400} --budget-evals 2 \
    --budget-sync runs/big2/.sync:2 --sample-steps 24 --eval-samples 128 \
    --classifier cached > runs/big2/$v.log 2>&1 &
done
wait
date -u +"end %H:%M:%S" >> runs/big2/launch.log
