"""Encode a clip dataset once with an autoencoder checkpoint into latent shards with labels.

    PYTHONPATH=src/training python3 -m diffusable.training.latent_cache --ae runs/ae-small-se

Latents are the scaled posterior means (what the bundle's encoder.onnx returns), stored as
`<split>.latents.npy` float32 (N, C, t, h, w) and `<split>.labels.npy` int64 beside `latents.json`.
The cache lives in <ae run>/latents/ and is keyed by the checkpoint's step and the dataset, so a
retrained autoencoder never serves stale latents.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import torch

from ..atomic_file import atomic_write, atomic_write_text
from ..models.checkpoint import load_autoencoder
from ..data.clips import ClipDataset


def ae_checkpoint(ae: Path) -> Path:
    """A run folder or a checkpoint file -> the checkpoint file."""
    ae = Path(ae)
    return ae / "checkpoints" / "last.pt" if ae.is_dir() else ae


@torch.no_grad()
def build_latent_cache(
    ae: Path, data: str = "procedural", batch_size: int = 16, device: str = "cpu"
) -> Path:
    from ..data.datasets import resolve_dataset

    ckpt = ae_checkpoint(ae)
    vae, meta = load_autoencoder(ckpt)
    if not meta.get("final"):
        raise ValueError(f"{ckpt} is not a finished run (its latent scale is not calibrated)")
    root = resolve_dataset(data, vae.cfg)
    out = ckpt.parent.parent / "latents" / f"{Path(root).name}-step{meta['step']}"
    if (out / "latents.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    vae.eval().to(device)
    splits: Dict[str, int] = {}
    for split in ("train", "val"):
        ds = ClipDataset(root, split)
        parts = []
        for i in range(0, len(ds), batch_size):
            video, _ = ds.batch(list(range(i, min(i + batch_size, len(ds)))))
            with torch.no_grad():
                parts.append(vae.encode_scaled(video.to(device)).cpu().numpy())
        # Several runs may build one cache at once (a grid's seeds start together): atomic_write
        # keeps each process's files apart, and latents.json, the cache's "done" mark, is last.
        latents = np.concatenate(parts).astype(np.float32)
        atomic_write(
            out / f"{split}.latents.npy", lambda f: np.save(f, latents, allow_pickle=False)
        )
        labels = ds.labels.astype(np.int64)
        atomic_write(out / f"{split}.labels.npy", lambda f: np.save(f, labels, allow_pickle=False))
        splits[split] = len(ds)
        classes = ds.classes
    info = {
        "autoencoder": str(ckpt),
        "ae_step": meta["step"],
        "ae_run": meta.get("run_id"),
        "variant": meta.get("variant"),
        "data": str(root),
        "classes": classes,
        "splits": splits,
        "latent_shape": list(parts[0].shape[1:]),
    }
    atomic_write_text(out / "latents.json", json.dumps(info, indent=1))
    return out


def load_latents(cache: Path, split: str) -> Tuple[torch.Tensor, torch.Tensor, Dict]:
    info = json.loads((cache / "latents.json").read_text())
    # float32 always (a cache may be stored as float16 to travel: half the bytes)
    lat = torch.from_numpy(np.load(cache / f"{split}.latents.npy")).float()
    labels = torch.from_numpy(np.load(cache / f"{split}.labels.npy"))
    return lat, labels, info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Encode a dataset into a latent cache.")
    ap.add_argument("--ae", required=True, help="autoencoder run folder or checkpoint")
    ap.add_argument("--data", default="procedural")
    args = ap.parse_args(argv)
    try:
        print(build_latent_cache(Path(args.ae), args.data))
    except (FileNotFoundError, ValueError) as err:
        print(f"latent_cache: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
