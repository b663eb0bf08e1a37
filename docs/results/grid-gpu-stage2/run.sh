#!/usr/bin/env bash
# Session 21 (docs/RESULTS.md section 6b): experiment `grid-gpu-stage2`, the grid's se-spatial arm
# with a control, as run on the 2-core AMD EPYC (nothing else running).
#   1. se-spatial: the shipped baseline AE (ae-conv-small-gpu-baseline, 740 fine-tune steps from
#      the H200 pre-train) fine-tuned 370 more steps with the H200 fine-tune recipe, SE on space.
#   2. control (arm `baseline`): the same 370 steps from the same init without SE, so the pair
#      differs by the SE term alone.
#   3. DiT compact on each, preset conv-long, seeds 0 1 2: the recipe, eval noise and classifier
#      of the committed grid-gpu runs (docs/results/grid-gpu), paired by seed.
cd "$(dirname "$0")/../../.."
set -e
py() { PYTHONPATH=src/training /usr/bin/python3 -m "$@"; }
init=docs/results/runs/ae-conv-small-gpu-baseline/checkpoints/ema-int8.pt
ft=(--config conv-small --init $init --preset conv-small-finetune --steps 370 --batch-size 32
    --lr 5e-4 --warmup 50 --crop-size 0 --crop-frames 0 --cpu-bf16 true)
grid=(--ae-config conv-small --preset conv-long --seeds 0 1 2 --parallel 1)
mkdir -p runs/s21/aes runs/s21/aes-ctl
# The grid finds arm X's autoencoder at <aes>/ae-conv-small-X; the runs themselves get ids of their
# own (a run's id is its folder's name), since ae-conv-small-se-spatial is the CPU-era run's id.
se=runs/s21/aes/ae-conv-small-gpu-se-spatial-stage2
ctl=runs/s21/aes-ctl/ae-conv-small-gpu-baseline-stage2
# 1. (started alone, both cores, as runs/s21/aes/ae-conv-small-se-spatial; renamed when done)
if [ ! -d $se ]; then
  [ -f runs/s21/aes/ae-conv-small-se-spatial/checkpoints/ema-fp16.pt ] ||
    py diffusable.training.train_ae "${ft[@]}" --variant se-spatial --threads 2 \
      --out runs/s21/aes/ae-conv-small-se-spatial > runs/s21/ft-se-spatial.log 2>&1
  py diffusable.training.rename_run runs/s21/aes/ae-conv-small-se-spatial $(basename $se)
fi
ln -sfn $(basename $se) runs/s21/aes/ae-conv-small-se-spatial
ln -sfn $(basename $ctl) runs/s21/aes-ctl/ae-conv-small-baseline
# 2 and 3 side by side, one thread each: the se-spatial grid beside the control's fine-tune
# (both stopped with SIGSTOP for 18.6 min at step ~770 / ~45 while the fresh-clone test ran on an
# idle machine: their wall times include it), then the control's grid, its three seeds at once.
py diffusable.experiments.diffusion_grid "${grid[@]}" --aes runs/s21/aes --out runs/s21/grid \
  --arms se-spatial --experiment grid-gpu-stage2 > runs/s21/grid-se-spatial.log 2>&1 &
[ -f $ctl/checkpoints/ema-fp16.pt ] ||
  py diffusable.training.train_ae "${ft[@]}" --variant baseline --threads 1 --out $ctl > runs/s21/ft-control.log 2>&1
py diffusable.experiments.diffusion_grid "${grid[@]}" --parallel 3 --aes runs/s21/aes-ctl --out runs/s21/grid-ctl \
  --arms baseline --experiment grid-gpu-stage2 > runs/s21/grid-control.log 2>&1
wait
