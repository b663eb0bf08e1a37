#!/usr/bin/env bash
# Issue 21, part 5 (the paper's scaling claim), stage 1: the 64-channel conv VAE's pre-train on
# the CPU, with the H200 pre-train's recipe (gpu_protocol.gpu_sizes: whole 64x64x17 clips,
# batch 64, lr 1e-3, warm-up 200, bf16), for the 1763 steps the 16-channel pre-train ran.
# Resumable: run it again and it continues from runs/conv64/ae-conv-small-64-pretrain's last.pt
# (a checkpoint every 20 steps; not committed: 154 MB). THREADS=1 to share the machine. At the
# end it writes the int8 EMA weights that finetune.sh starts from.
cd "$(dirname "$0")/../../.."
set -e
run=runs/conv64/ae-conv-small-64-pretrain
PYTHONPATH=src/training /usr/bin/python3 -m diffusable.train_ae --config conv-small-64 \
  --variant baseline --init scratch --preset conv-small --steps 1763 --batch-size 64 --lr 1e-3 \
  --warmup 200 --crop-size 0 --crop-frames 0 --cpu-bf16 True --threads "${THREADS:-2}" \
  --log-every 20 --eval-every 441 --ckpt-every 20 --out $run
# What the fine-tune stage starts from, on any machine: the final EMA weights as int8 (9 MB, as
# the shipped 16-channel autoencoders are kept) with the run's log, in docs/results/runs.
d=docs/results/runs/ae-conv-small-64-pretrain
mkdir -p $d/checkpoints
cp $run/events.jsonl $d/
PYTHONPATH=src/training /usr/bin/python3 - $run/checkpoints/last.pt $d/checkpoints/ema-int8.pt <<'PY'
import sys
from diffusable.checkpoint import compact_state, load_checkpoint, save_checkpoint
state = load_checkpoint(sys.argv[1])
assert state.get("final"), "the pre-train has not finished"
save_checkpoint(sys.argv[2], compact_state(state, "int8"))
PY
