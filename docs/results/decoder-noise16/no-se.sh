#!/usr/bin/env bash
# Session 26: at 16 channels SE's latent is easier to learn (latent_fd.py: lfd 0.77 of the
# baseline's) and the gain is lost in the decoding (the se decoder's reconstructions are further
# from real clips). The SE term shapes the latent through the encoder; with the encoder frozen it
# only constrains the decoder, which generation never asks to decode a downscaled latent. So: the
# shipped se decoder continued 800 steps of its own recipe WITHOUT the SE term (encoder frozen:
# the latent, and so the shipped se denoiser, unchanged), and, as the control for the extra steps,
# the shipped baseline decoder the same 800 steps. Side by side one thread each; resumable.
cd "$(dirname "$0")/../../.."
set -e
. docs/results/conv64/lib.sh
mkdir -p runs/s26/dec
for v in baseline se; do
  py diffusable.training.train_ae --config conv-small --variant $v --se-weight 0 \
    --init docs/results/runs/ae-conv-small-gpu-$v-dec/checkpoints/ema-int8.pt \
    --train-encoder False --profile-weight 0.05 --steps ${STEPS:-800} \
    --batch-size 8 --lr 1e-4 --warmup 20 --crop-size 0 --crop-frames 0 --cpu-bf16 true \
    --threads 1 --log-every 50 --eval-every 400 --ckpt-every 50 \
    --out runs/s26/dec/ae-conv-small-gpu-$v-dec-nose >> runs/s26/dec/$v-nose.log 2>&1 &
done
wait
