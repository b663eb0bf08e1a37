"""PyTorch-eager side of bench/encode.ts: encoder throughput on the same weights as the ONNX run.

    PYTHONPATH=src/training /usr/bin/python3 bench/torch_encode.py --out DIR [--ckpt PATH]
        [--threads 2] [--batch 4] [--seconds 3]

Loads a checkpoint (or rebuilds the tiny fixture model with diffusable.fixtures.make_tiny_bundle),
exports its bundle to DIR (so the ONNX side runs exactly these weights), saves a seeded input
batch and PyTorch's latents for a parity check, times encode_scaled and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from diffusable.export import export_autoencoder
from diffusable.fixtures import make_tiny_bundle


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--ckpt")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=3.0, help="time spent timing")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.ckpt:
        from diffusable.checkpoint import load_autoencoder

        vae, _ = load_autoencoder(a.ckpt)
        vae = vae.eval().float()
        export_autoencoder(vae, out / "bundle", {"diffusable.bundle": "bench"})
        source = a.ckpt
    else:
        vae = make_tiny_bundle(out)  # writes out/bundle
        source = "diffusable.fixtures.make_tiny_bundle(seed=0)"
    cfg = vae.cfg
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    shape = (a.batch, 3, cfg.frames, cfg.resolution, cfg.resolution)
    video = torch.rand(shape, generator=g) * 2 - 1
    with torch.no_grad():
        latent = vae.encode_scaled(video)  # warm-up, and the parity reference
        start = time.perf_counter()
        iters = 0
        while iters < 3 or time.perf_counter() - start < a.seconds:
            vae.encode_scaled(video)
            iters += 1
        seconds = (time.perf_counter() - start) / iters
    np.save(out / "input.npy", video.numpy())
    np.save(out / "expected.npy", latent.numpy())
    result = {
        "source": source,
        "config": cfg.name,
        "shape": list(shape),
        "threads": a.threads,
        "torch": torch.__version__,
        "iters": iters,
        "seconds_per_batch": seconds,
        "clips_per_s": a.batch / seconds,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
