# Shared by this folder's stage scripts (sourced, from the repository root).
py() { PYTHONPATH=src/training /usr/bin/python3 -m "$@"; }

# save_int8 RUN NAME: RUN's final EMA weights as int8 (9.7 MB, as the shipped 16-channel
# autoencoders are kept) in docs/results/runs/NAME/checkpoints, where the next stage starts from
# them on any machine. Refuses a run that has not finished.
save_int8() {
  mkdir -p docs/results/runs/$2/checkpoints
  PYTHONPATH=src/training /usr/bin/python3 - $1/checkpoints/last.pt \
    docs/results/runs/$2/checkpoints/ema-int8.pt <<'PY'
import sys
from diffusable.models.checkpoint import compact_state, load_checkpoint, save_checkpoint
state = load_checkpoint(sys.argv[1])
assert state.get("final"), f"{sys.argv[1]} has not finished"
save_checkpoint(sys.argv[2], compact_state(state, "int8"))
PY
}
