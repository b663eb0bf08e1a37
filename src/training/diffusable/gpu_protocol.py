"""The autoencoder protocol at GPU scale, packed for the trip back: one command, one folder.

    PYTHONPATH=src/training python3 -m diffusable.gpu_protocol --out "$OUT"          # one H200
    PYTHONPATH=src/training python3 -m diffusable.gpu_protocol --out DIR --smoke     # CPU, CI

On one NVIDIA H200 (torch 2.x, CUDA, bf16 autocast; no Node needed) it runs `ae_protocol` with
the `base` config (128x128x17, presets `base` and `base-finetune` in train_ae.py: 6000 pre-train
steps, then 1500 per fine-tune, batch 16), sized to finish within about 9 minutes of wall time,
then exports the three fine-tunes as bundles (fp16 weights) and packs bundles and run logs into
`results.tar` split into at most 8 parts of at most 16 MiB each (`results.tar.partNN`; rejoin
with `cat results.tar.part* > results.tar`). `--smoke` runs the same code path on CPU with the
`tiny` config and a few steps, so CI keeps the command from rotting.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import List

PART_BYTES = 16 << 20
MAX_PARTS = 8


def pack(sources: List[Path], base: Path, out: Path) -> List[Path]:
    """tar of sources (names relative to base), split into parts of at most PART_BYTES."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for src in sources:
            tar.add(src, arcname=str(src.relative_to(base)))
    data = buf.getvalue()
    n = max(1, -(-len(data) // PART_BYTES))
    if n > MAX_PARTS:
        raise ValueError(f"results are {len(data) >> 20} MiB, more than {MAX_PARTS} x 16 MiB")
    parts = []
    for i in range(n):
        path = out / f"results.tar.part{i:02d}"
        path.write_bytes(data[i * PART_BYTES : (i + 1) * PART_BYTES])
        parts.append(path)
    return parts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="The AE protocol at GPU scale, packed in <= 8 files.")
    ap.add_argument("--out", required=True, help="folder for the packed results (e.g. $OUT)")
    ap.add_argument("--work", help="working folder (default: a temporary one)")
    ap.add_argument("--smoke", action="store_true", help="tiny config on CPU (CI)")
    ap.add_argument("--data", default="procedural")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="gpu-protocol-")
    work = Path(args.work or tmp.name)
    config = "tiny" if args.smoke else "base"
    env = dict(os.environ)
    env["PYTHONPATH"] = (
        str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    )
    t0 = time.time()
    cmd = [sys.executable, "-m", "diffusable.ae_protocol", "--config", config]
    cmd += ["--out", str(work / "runs"), "--data", args.data]
    if args.smoke:
        cmd += ["--device", "cpu", "--pretrain-steps", "4", "--finetune-steps", "2", "--no-real"]
    else:
        cmd += ["--device", "cuda"]
    code = subprocess.call(cmd, env=env)
    if code:
        print(f"gpu_protocol: ae_protocol exited {code}", file=sys.stderr)
        return code
    bundles = work / "bundles"
    for variant in ("baseline", "se", "se-spatial"):
        run = work / "runs" / f"ae-{config}-{variant}"
        export = [sys.executable, "-m", "diffusable.export", "--ckpt"]
        export += [
            str(run / "checkpoints" / "last.pt"),
            "--out",
            str(bundles / f"{config}-{variant}"),
        ]
        code = subprocess.call(export, env=env)
        if code:
            return code
    logs = sorted((work / "runs").glob("*/events.jsonl"))
    logs += [p for p in (work / "runs").glob("ae-eval/*") if p.is_file()]
    logs += [work / "runs" / "protocol.json"]
    summary = {"config": config, "wall_s": round(time.time() - t0, 1), "smoke": args.smoke}
    (work / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    try:
        parts = pack(logs + [bundles, work / "summary.json"], work, out)
    except ValueError as err:
        print(f"gpu_protocol: {err}", file=sys.stderr)
        return 1
    print(f"gpu_protocol: {len(parts)} part(s) in {out} after {summary['wall_s']:.0f} s")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
