"""Finish an autoencoder run that was stopped before its last step, so it can be used.

    PYTHONPATH=src/training python3 -m diffusable.training.finish_ae runs/.../ae-conv-small-gpu-se

A run that reaches its last step calibrates its latent scale on the training clips and marks
its checkpoint final (train_ae.py); one cut short (the GPU fine-tunes, killed by their time
budget) has neither, and the denoiser trainer refuses it. This does the same two things to
the run's last checkpoint (its EMA weights, at the step they were saved), evaluates it on the
run's validation clips, and closes the log with a `completed` status that says it was stopped:
`stopped_at` is the step of the weights, `planned_steps` the count the run had fixed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..models.checkpoint import compact_state, load_autoencoder, load_checkpoint, save_checkpoint
from ..events import EventLog


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Calibrate and mark final a stopped AE run.")
    ap.add_argument("run", help="the run folder (events.jsonl, checkpoints/last.pt)")
    ap.add_argument("--data", default="procedural")
    args = ap.parse_args(argv)
    from ..data.clips import ClipDataset
    from ..data.datasets import resolve_dataset
    from ..evaluation.spectrum import analyse
    from .train_ae import calibrate_latent_scale, calibration_clips

    run = Path(args.run)
    ckpt = run / "checkpoints" / "last.pt"
    try:
        state = load_checkpoint(ckpt)
        vae, meta = load_autoencoder(ckpt)
        root = resolve_dataset(args.data, vae.cfg)
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"finish_ae: {err}", file=sys.stderr)
        return 2
    if state.get("final"):
        print(f"finish_ae: {ckpt} is already final", file=sys.stderr)
        return 2
    log_path = run / "events.jsonl"
    try:  # read before anything is written: a run without its log is refused untouched
        events = [json.loads(line) for line in log_path.read_text().splitlines()]
        val_n = next(e["val_clips"] for e in events if e.get("type") == "config")
    except FileNotFoundError:
        print(f"finish_ae: {run.name} has no events.jsonl", file=sys.stderr)
        return 2
    except (json.JSONDecodeError, StopIteration, KeyError):
        print(f"finish_ae: {run.name}/events.jsonl has no readable config event", file=sys.stderr)
        return 2
    planned = state.get("train", {}).get("steps")
    vae.eval()
    calibrate_latent_scale(vae, calibration_clips(ClipDataset(root, "train")))  # as train_ae
    state["ema"] = vae.state_dict()
    state["final"] = True
    # int8 again: the codes and scales of dequantised int8 weights come back unchanged
    save_checkpoint(ckpt, compact_state(state, "int8"))
    val, _ = ClipDataset(root, "val").batch(list(range(val_n)))
    result = analyse(vae, val)
    log = EventLog(log_path)
    step = state["step"]
    log.write("val", step=step, **{k: v for k, v in result.items() if not isinstance(v, list)})
    log.write(
        "status",
        step=step,
        status="completed",
        stopped_at=step,
        planned_steps=planned,
        note="stopped by its time budget; latent scale calibrated afterwards (finish_ae)",
        psnr=result["psnr"],
        ssim=result["ssim"],
    )
    print(
        f"finish_ae: {run.name} final at step {step} (planned {planned}): {result['psnr']:.2f} dB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
