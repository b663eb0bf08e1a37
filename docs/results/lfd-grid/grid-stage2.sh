#!/usr/bin/env bash
# Session 27: session 21's control pair (grid-gpu-stage2: se-spatial and the same 370 fine-tune
# steps without SE, both from the shipped baseline AE) rerun with `lfd` at every evaluation, after
# grid.sh's grid has finished. One thread per arm, the arms side by side, seeds in turn.
cd "$(dirname "$0")/../../.."
while pgrep -f "diffusion_grid --aes runs/gpu-aes" > /dev/null; do sleep 20; done
py() { PYTHONPATH=src/training /usr/bin/python3 -m "$@"; }
grid=(--ae-config conv-small --preset conv-long --seeds 0 1 2 --parallel 1 --experiment grid-stage2-lfd)
py diffusable.experiments.diffusion_grid "${grid[@]}" --aes runs/s21/aes --out runs/s27/grid2 --arms se-spatial \
  > runs/s27/grid2-se-spatial.log 2>&1 &
py diffusable.experiments.diffusion_grid "${grid[@]}" --aes runs/s21/aes-ctl --out runs/s27/grid2-ctl --arms baseline \
  > runs/s27/grid2-control.log 2>&1
wait
