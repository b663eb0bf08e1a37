"""Side-by-side table of two (or more) autoencoder runs from their events.jsonl.

    PYTHONPATH=src/training python3 -m diffusable.experiments.compare_runs runs/ae-small-baseline \
        runs/ae-small-se

Prints Markdown: steps, wall time, final validation PSNR/SSIM, latent and video high-frequency
share, and the PSNR drop of the zeroing test, taken from the last `val` event of each run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List

from ..events import format_seconds

ROWS = [
    ("steps", "steps", "{:d}"),
    ("wall time", "wall_s", None),
    ("steps/s", "steps_per_s", "{:.2f}"),
    ("val PSNR (dB)", "psnr", "{:.2f}"),
    ("val SSIM", "ssim", "{:.4f}"),
    ("latent HF share (zigzag 32-63 of AC)", "latent_hf_share", "{:.4f}"),
    ("video HF share", "video_hf_share", "{:.4f}"),
    ("PSNR drop, latent high half zeroed (dB)", "psnr_drop_latent_lowpass", "{:.3f}"),
    ("PSNR drop, video high half zeroed (dB)", "psnr_drop_video_lowpass", "{:.3f}"),
]


def read_events(run: Path) -> List[Dict]:
    events = []
    for line in (run / "events.jsonl").read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn last line of a killed run
    return events


def run_completed(run: Path) -> bool:
    """Whether the run folder's log records a completed run (its trainer's final status)."""
    if not (run / "events.jsonl").is_file():
        return False
    return any(
        e.get("type") == "status" and e.get("status") == "completed" for e in read_events(run)
    )


def wall_seconds(events: List[Dict]) -> float:
    """The sum, over each start or resume of a run, of the span to its last recorded event."""
    wall, seg_start, seg_last = 0.0, None, None
    for e in events:
        if e["type"] == "status" and e["status"] in ("started", "resumed"):
            if seg_start is not None and seg_last is not None:
                wall += seg_last - seg_start
            seg_start, seg_last = e["time"], None
        elif e["type"] in ("train", "val", "eval", "spectrum", "checkpoint", "status"):
            seg_last = e["time"]
    if seg_start is not None and seg_last is not None:
        wall += seg_last - seg_start
    return wall


def summarise(run: Path) -> Dict:
    events = read_events(run)
    val = [e for e in events if e["type"] == "val"]
    train = [e for e in events if e["type"] == "train"]
    if not val or not train:
        raise ValueError(f"{run}: no validation or training events yet")
    wall = wall_seconds(events)
    out = dict(val[-1])
    out.update(
        steps=train[-1]["step"], wall_s=wall, steps_per_s=train[-1]["step"] / max(wall, 1e-9)
    )
    config = next((e for e in events if e["type"] == "config"), {})
    out["variant"] = config.get("variant", run.name)
    return out


def table(runs: List[Path]) -> str:
    summaries = [summarise(r) for r in runs]
    header = "| | " + " | ".join(f"{s['variant']} (`{r.name}`)" for s, r in zip(summaries, runs))
    lines = [header + " |", "|---" * (len(runs) + 1) + "|"]
    for label, key, fmt in ROWS:
        cells = []
        for s in summaries:
            v = s.get(key)
            if v is None:
                cells.append("n/a")
            elif fmt is None:
                cells.append(format_seconds(v))
            else:
                cells.append(fmt.format(v))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Compare autoencoder runs side by side.")
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args(argv)
    try:
        print(table(args.runs))
    except (FileNotFoundError, ValueError) as err:
        print(f"compare_runs: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
