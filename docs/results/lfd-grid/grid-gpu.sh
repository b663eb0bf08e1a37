#!/usr/bin/env bash
# Session 27 (docs/RESULTS.md section 0o): the session-14 grid (grid-gpu: the shipped pair's latents, DiT compact, conv-long,
# seeds 0 1 2) rerun with `lfd` logged at every evaluation.
cd "$(dirname "$0")/../../.."
PYTHONPATH=src/training exec /usr/bin/python3 -m diffusable.experiments.diffusion_grid --aes runs/gpu-aes \
  --ae-config conv-small --preset conv-long --arms baseline se --seeds 0 1 2 --parallel 2 \
  --out runs/s27/grid --experiment grid-gpu-lfd
