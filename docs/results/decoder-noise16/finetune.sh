#!/usr/bin/env bash
# Session 26: would the shipped 16-channel bundles make better samples through a decoder that has
# seen noisy latents? At 64 channels (../se64-gap/, session 25) such a decoder raised the
# baseline arm's class score 0.287 -> 0.343 and lowered fd_cls3d 6% for 0.6 dB of
# reconstruction. Here the shipped decoders (the `-dec` fine-tunes, from their committed int8
# weights) continue their own recipe (batch 8, lr 1e-4, profile term 0.05, encoder frozen so the
# latents and the shipped denoisers stay valid; se keeps its SE term) with the latent perturbed by
# white noise of NOISE scaled units; side by side one thread each; resumable. Then sample.sh.
cd "$(dirname "$0")/../../.."
set -e
. docs/results/conv64/lib.sh
noise=${NOISE:-0.25}
mkdir -p runs/s26/dec
pids=
for v in ${ARMS:-baseline se}; do
  py diffusable.training.train_ae --config conv-small --variant $v \
    --init docs/results/runs/ae-conv-small-gpu-$v-dec/checkpoints/ema-int8.pt \
    --train-encoder False --latent-noise $noise --profile-weight 0.05 --steps ${STEPS:-800} \
    --batch-size 8 --lr 1e-4 --warmup 20 --crop-size 0 --crop-frames 0 --cpu-bf16 true \
    --threads 1 --log-every 50 --eval-every 400 --ckpt-every 50 \
    --out runs/s26/dec/ae-conv-small-gpu-$v-decnoise$noise >> runs/s26/dec/$v-$noise.log 2>&1 &
  pids="$pids $!"
done
for p in $pids; do wait $p; done
