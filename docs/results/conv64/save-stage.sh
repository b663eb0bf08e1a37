#!/usr/bin/env bash
# The pre-train's running checkpoint, made small enough to commit (checkpoint resumable: fp16
# weights, bf16 optimizer moments, about half the size), with its event log up to that step, so
# that pretrain.sh continues it on a machine that lacks runs/.
cd "$(dirname "$0")/../../.."
set -e
run=runs/conv64/ae-conv-small-64-pretrain
stage=docs/results/conv64/pretrain-stage
mkdir -p $stage
cp $run/checkpoints/last.pt $stage/last-full.tmp  # the trainer may replace last.pt meanwhile
PYTHONPATH=src/training /usr/bin/python3 -m diffusable.checkpoint resumable $stage/last-full.tmp $stage/last.pt
rm $stage/last-full.tmp
step=$(PYTHONPATH=src/training /usr/bin/python3 -c "
from diffusable.checkpoint import load_checkpoint; print(load_checkpoint('$stage/last.pt')['step'])")
# the events up to the checkpoint's step: a resumed run logs the steps after it again
/usr/bin/python3 -c "
import json, sys
for line in open('$run/events.jsonl'):
    if json.loads(line).get('step', 0) <= $step:
        sys.stdout.write(line)" > $stage/events.jsonl
echo "save-stage: step $step -> $stage ($(du -h $stage/last.pt | cut -f1))"
