#!/usr/bin/env bash
# Issue 21, part 5 (the paper's scaling claim), stage 1: the 64-channel conv VAE's pre-train on
# the CPU, with the H200 pre-train's recipe (gpu_protocol.gpu_sizes: whole 64x64x17 clips,
# batch 64, lr 1e-3, warm-up 200, bf16), for the 1763 steps the 16-channel pre-train ran.
# Resumable: run it again and it continues from runs/conv64/ae-conv-small-64-pretrain's last.pt
# (a checkpoint every 20 steps; not committed: 154 MB). THREADS=1 to share the machine. At the
# end it writes the int8 EMA weights that finetune.sh starts from.
cd "$(dirname "$0")/../../.."
set -e
. docs/results/conv64/lib.sh
run=runs/conv64/ae-conv-small-64-pretrain
py diffusable.training.train_ae --config conv-small-64 \
  --variant baseline --init scratch --preset conv-small --steps 1763 --batch-size 64 --lr 1e-3 \
  --warmup 200 --crop-size 0 --crop-frames 0 --cpu-bf16 True --threads "${THREADS:-2}" \
  --log-every 20 --eval-every 441 --ckpt-every 20 --out $run
# What the fine-tune stage starts from, on any machine: the int8 EMA weights with the run's log.
mkdir -p docs/results/runs/ae-conv-small-64-pretrain
cp $run/events.jsonl docs/results/runs/ae-conv-small-64-pretrain/
save_int8 $run ae-conv-small-64-pretrain
