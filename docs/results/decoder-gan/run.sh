#!/usr/bin/env bash
# Session 22 (docs/RESULTS.md section 0j): a decoder-only adversarial fine-tune of the shipped
# baseline decoder (encoder and latents unchanged, so the shipped denoiser stays), as run on the
# 2-core AMD EPYC. Measured, not adopted.
#   1. Two weights of the discriminator's term, side by side, one thread each (w2.0 replaced a
#      w0.1 probe at its step 700, which had moved nothing: val PSNR 24.53 = its init's).
#      w2.0 was stopped at step 400 (val 22.14 dB at step 300, a dot pattern on every frame).
#   2. The ceiling (classifier on reconstructions of the 136 val clips), and the shipped baseline
#      denoiser (recovered from its bundle) sampled through each decoder on three noise seeds,
#      12 Euler steps, guidance 3: the bundle's setting. Seeds 1 and 2 of the shipped decoder
#      are session 20's (docs/results/sampler-steps/sweep-seed{1,2}-baseline.json); seed 0 was
#      rerun here and matched session 20's to every digit.
cd "$(dirname "$0")/../../.."
set -e
py() { PYTHONPATH=src/training /usr/bin/python3 -m "$@"; }
dec=docs/results/runs/ae-conv-small-gpu-baseline-dec/checkpoints/ema-int8.pt
mkdir -p runs/s22/gan
for w in 0.5 2.0; do
  py diffusable.training.train_ae --config conv-small --variant baseline --init $dec --train-encoder False \
    --profile-weight 0.05 --lr 1e-4 --warmup 50 --cpu-bf16 True --threads 1 --disc-start 100 \
    --disc-weight $w --steps 1200 --eval-every 300 --ckpt-every 100 --log-every 50 \
    --out runs/s22/gan/ae-conv-small-gpu-baseline-gan-w$w > runs/s22/gan-baseline-w$w.log 2>&1 &
done
wait
gan=runs/s22/gan/ae-conv-small-gpu-baseline-gan-w0.5/checkpoints/ema-fp16.pt
py diffusable.export.recover_denoiser --bundle models/small-baseline --ae $dec --out runs/s22/recovered-baseline.pt
py diffusable.experiments.class_score recon $gan --threads 1 --json docs/results/decoder-gan/recon-w0.5-1200.json
for s in 0 1 2; do
  py diffusable.experiments.sampler_sweep --dit runs/s22/recovered-baseline.pt --ae $gan --per-class 8 --threads 1 \
    --steps 12 --guidance 3 --seed $s --json docs/results/decoder-gan/sweep-gan-w0.5-seed$s.json
done
py diffusable.experiments.sampler_sweep --dit runs/s22/recovered-baseline.pt --ae $dec --per-class 8 --threads 1 \
  --steps 12 --guidance 3 --seed 0 --json docs/results/decoder-gan/sweep-dec-seed0.json
PYTHONPATH=src/training /usr/bin/python3 docs/results/decoder-gan/look.py \
  docs/results/decoder-gan/reconstructions.png shipped-dec=$dec "w0.5, step 1200=$gan" \
  "w2, step 300=runs/s22/gan/ae-conv-small-gpu-baseline-gan-w2.0/checkpoints/last.pt"
