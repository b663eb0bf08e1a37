#!/usr/bin/env bash
# Issue 21, part 5, stage 2 (after pretrain.sh has finished): the 64-channel pre-train fine-tuned
# with and without SE, the H200 fine-tune recipe (gpu_protocol.gpu_sizes: 32 whole clips, lr 5e-4,
# warm-up 50, bf16), both arms 370 steps (the shipped 16-channel se arm's, cut there by the GPU
# budget; its baseline had 740): about 40 min for both, one thread each side by side, so that
# this stage, the evaluation and the grid (grid.sh) fit one 3-hour session. Same draws.
# Resumable (runs/conv64/aes/*/checkpoints/last.pt). Then ae_eval
# beside the 64-channel linear code. Both start from the pre-train's committed int8 EMA weights
# (docs/results/runs/ae-conv-small-64-pretrain, 9 MB), so any machine starts them the same.
cd "$(dirname "$0")/../../.."
set -e
. docs/results/conv64/lib.sh
init=docs/results/runs/ae-conv-small-64-pretrain/checkpoints/ema-int8.pt
[ -f $init ] || { echo "finetune.sh: $init missing: finish pretrain.sh first" >&2; exit 2; }
mkdir -p runs/conv64/aes
pids=
for v in baseline se; do
  py diffusable.training.train_ae --config conv-small-64 --variant $v --init $init \
    --preset conv-small-finetune --steps 370 --batch-size 32 --lr 5e-4 --warmup 50 \
    --crop-size 0 --crop-frames 0 --cpu-bf16 true --threads 1 --log-every 20 --eval-every 185 \
    --ckpt-every 20 --out runs/conv64/aes/ae-conv-small-64-$v >> runs/conv64/finetune-$v.log 2>&1 &
  pids="$pids $!"
done
for p in $pids; do wait $p; done # set -e: a failed arm stops the script here
# Each arm's int8 EMA weights beside its log: a bundle or a grid on another machine starts there.
for v in baseline se; do save_int8 runs/conv64/aes/ae-conv-small-64-$v ae-conv-small-64-$v; done
py diffusable.experiments.ae_eval --ckpt pretrain=$init \
  --ckpt baseline=runs/conv64/aes/ae-conv-small-64-baseline/checkpoints/ema-fp16.pt \
  --ckpt se=runs/conv64/aes/ae-conv-small-64-se/checkpoints/ema-fp16.pt \
  --out docs/results/conv64/ae-eval --events
# What the eye and the classifier see: frame 8 of a val clip per class through the linear code
# and each autoencoder; the reconstructions' class score (the samples' ceiling) and the linear
# code's.
here=docs/results/conv64
PYTHONPATH=src/training /usr/bin/python3 docs/results/decoder-gan/look.py $here/reconstructions.png \
  linear=$init pretrain=$init \
  baseline=runs/conv64/aes/ae-conv-small-64-baseline/checkpoints/ema-fp16.pt \
  se=runs/conv64/aes/ae-conv-small-64-se/checkpoints/ema-fp16.pt
for v in baseline se; do
  py diffusable.experiments.class_score recon runs/conv64/aes/ae-conv-small-64-$v/checkpoints/ema-fp16.pt \
    --threads 2 --json $here/recon-class-$v.json > /dev/null
done
py diffusable.experiments.class_score recon $init --linear --threads 2 --json $here/recon-class-linear64.json > /dev/null
# The logs into docs/results/runs: the service imports them (the admin page's trade-off chart)
for v in baseline se; do
  d=docs/results/runs/ae-conv-small-64-$v
  mkdir -p $d && cp runs/conv64/aes/ae-conv-small-64-$v/events.jsonl $d/
  [ -f runs/conv64/aes/ae-conv-small-64-$v/latent-channels.png ] &&
    cp runs/conv64/aes/ae-conv-small-64-$v/latent-channels.png $d/
done
