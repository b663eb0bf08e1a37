"""How much of the served samples' 8-pixel grid ratio is the video codec's (session 19).

    PYTHONPATH=src/training /usr/bin/python3 docs/results/grid-codec/grid_codec.py \
        --dit runs/big/dit-medium-data-se --out docs/results/grid-codec/grid-codec.json

The grid ratio (metrics.grid_ratio: mean |step| across 8-pixel block edges over the mean step
inside the blocks) of the procedural val clips and of label-only samples (2 per class, guidance
3, 24 Euler steps, the shipped sampler), measured on the frames in float and after a round trip
through H.264 as the service writes mp4 (libx264 veryfast, crf 18, yuv420p: output-formats.ts),
and through variants of it (lower crf, a chroma QP offset, 4:4:4 chroma, lossless). Each file
is read back to RGB by ffmpeg's default conversion (each pair of pixels given one chroma
value), and the service's mp4 also as a player shows it, with the chroma interpolated
(class_score.DECODE_FLAGS, how class_score reads served files since this session).
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from diffusable.experiments.class_score import DECODE_FLAGS
from diffusable.experiments.context_eval import ContextSampler
from diffusable.data.clips import ClipDataset
from diffusable.data.datasets import resolve_dataset
from diffusable.evaluation.metrics import grid_ratio, grid_steps

MP4 = ["-movflags", "frag_keyframe+empty_moov", "-f", "mp4"]  # fragmented: readable from a pipe
X264 = ["-c:v", "libx264", "-preset", "veryfast"]
CODECS = {
    "service mp4 (crf 18, yuv420p)": X264 + ["-crf", "18", "-pix_fmt", "yuv420p"],
    "crf 8, yuv420p": X264 + ["-crf", "8", "-pix_fmt", "yuv420p"],
    "crf 18, yuv420p, chroma QP -12": X264
    + ["-crf", "18", "-x264-params", "chroma-qp-offset=-12", "-pix_fmt", "yuv420p"],
    "crf 18, yuv444p": X264 + ["-crf", "18", "-pix_fmt", "yuv444p"],
    "lossless (libx264rgb, qp 0)": ["-c:v", "libx264rgb", "-qp", "0"],
}
SERVICE = "service mp4 (crf 18, yuv420p)"


def to_uint8(video: torch.Tensor) -> np.ndarray:  # (N, 3, T, H, W) in [-1, 1] -> (N, T, H, W, 3)
    return ((video.permute(0, 2, 3, 4, 1) + 1) * 127.5).round().clamp(0, 255).byte().numpy()


def round_trip(clip: np.ndarray, codec, interpolate: bool = False) -> np.ndarray:
    t, h, w, _ = clip.shape
    scale = ["-vf", f"scale={w}:{h}:flags={DECODE_FLAGS}"] if interpolate else []
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "8", "-i", "-"]
    enc = subprocess.run(
        ["ffmpeg", "-v", "error", *raw, *codec, *MP4, "-"],
        input=clip.tobytes(),
        capture_output=True,
        check=True,
    ).stdout
    read = ["-f", "mp4", "-i", "-", *scale, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    dec = subprocess.run(
        ["ffmpeg", "-v", "error", *read],
        input=enc,
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(dec, np.uint8).reshape(-1, h, w, 3)[:t]


def ratio(clips: np.ndarray) -> float:
    video = torch.from_numpy(np.ascontiguousarray(clips)).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
    return round(grid_ratio(grid_steps(video)), 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dit", required=True, help="denoiser run folder or checkpoint")
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    sampler = ContextSampler(Path(args.dit), 24, 3.0, None)
    val = ClipDataset(resolve_dataset("procedural", sampler.vae.cfg), "val")
    real, _ = val.batch(list(range(len(val))))
    labels = torch.arange(len(val.classes)).repeat(2)
    h = w = real.shape[-1] // sampler.vae.cfg.spatial_factor
    t = (real.shape[2] - 1) // sampler.vae.cfg.temporal_factor + 1
    noise = torch.randn(
        (len(labels), sampler.cfg.latent_channels, t, h, w),
        generator=torch.Generator().manual_seed(0),
    )
    samples = sampler.window(noise, labels, None, "trained")
    sets = {"real val clips": to_uint8(real), "samples": to_uint8(samples)}
    rows = {name: {"float": ratio(clips)} for name, clips in sets.items()}
    for name, clips in sets.items():
        for codec, opts in CODECS.items():
            rows[name][codec] = ratio(np.stack([round_trip(c, opts) for c in clips]))
            print(name, codec, rows[name][codec], file=sys.stderr, flush=True)
        interpolated = np.stack([round_trip(c, CODECS[SERVICE], True) for c in clips])
        rows[name][SERVICE + ", chroma interpolated on decode"] = ratio(interpolated)
    record = {
        "command": "PYTHONPATH=src/training /usr/bin/python3 docs/results/grid-codec/grid_codec.py "
        + " ".join(sys.argv[1:]),
        "run": sampler.run_id,
        "step": sampler.step,
        "clips": {k: len(v) for k, v in sets.items()},
        "sampler": {"steps": 24, "guidance": 3.0, "method": "euler"},
        "grid_ratio": rows,
        "wall_s": round(time.time() - t0, 1),
    }
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
