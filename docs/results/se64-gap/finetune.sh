#!/usr/bin/env bash
# Session 25: does a decoder that has seen perturbed latents close SE's diffusion gap at 64
# channels? Session 24 found the 64-channel SE decoder turns latent noise into 0.5-0.6 dB more
# image error than the baseline's (conv64/sensitivity.py) and SE's grid 12% worse in fd_cls3d.
# Both 64-channel decoders fine-tuned alone (encoder, latent scale and so the latents frozen, so
# the grid's denoisers stay valid) on latents perturbed by 0.25 scaled units (about the one-step
# estimate's error at t = 0.3, conv64/denoiser-error.json), the se arm keeping its SE term; same
# draws, side by side one thread each. Resumable. Then sample.sh.
cd "$(dirname "$0")/../../.."
set -e
. docs/results/conv64/lib.sh
mkdir -p runs/s25/dec
pids=
for v in baseline se; do
  py diffusable.training.train_ae --config conv-small-64 --variant $v \
    --init runs/conv64/aes/ae-conv-small-64-$v/checkpoints/last.pt --train-encoder False \
    --latent-noise 0.25 --steps ${STEPS:-240} --batch-size 32 --lr 1e-4 --warmup 20 \
    --crop-size 0 --crop-frames 0 --cpu-bf16 true --threads 1 --log-every 20 --eval-every 120 \
    --ckpt-every 20 --out runs/s25/dec/ae-conv-small-64-$v-decnoise >> runs/s25/dec-$v.log 2>&1 &
  pids="$pids $!"
done
for p in $pids; do wait $p; done
