"""Is frame 0's detail in the latent? A least-squares linear read-out of each 8x8 block of frame 0
from the AE's frame-0 latent (the block's own 16 channels and its 3x3 neighbourhood), fitted on
the training clips' frame 0 and scored on the 136 val clips beside the AE's own decoder and the
linear code. Writes frame0_probe.json beside itself.

    PYTHONPATH=src/training /usr/bin/python3 docs/results/frame-psnr/frame0_probe.py
"""

import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from diffusable.data.clips import ClipDataset
from diffusable.data.datasets import resolve_dataset
from diffusable.evaluation.metrics import psnr
from diffusable.experiments.ae_eval import grouped
from diffusable.models.checkpoint import load_autoencoder
from diffusable.paths import REPO_ROOT
from diffusable.threads import set_threads
from diffusable.training.train_ae import TRAIN_PRESETS

HERE = Path(__file__).parent
RUNS = REPO_ROOT / "docs/results/runs"
CKPTS = {  # the shipped bundles' autoencoders
    "baseline-dec": RUNS / "ae-conv-small-gpu-baseline-dec/checkpoints/ema-int8.pt",
    "se-dec": RUNS / "ae-conv-small-gpu-se-dec/checkpoints/ema-int8.pt",
}


def features(z: torch.Tensor, k: int) -> torch.Tensor:
    """(B, C, h, w) latent -> (B*h*w, C*k*k + 1): each cell's k x k neighbourhood and a 1."""
    zp = F.pad(z, (k // 2,) * 4, mode="replicate")
    cols = F.unfold(zp, k)  # (B, C*k*k, h*w)
    cols = cols.transpose(1, 2).reshape(-1, cols.shape[1])
    return torch.cat([cols, torch.ones(len(cols), 1)], 1).double()


def blocks(x: torch.Tensor, p: int = 8) -> torch.Tensor:
    """(B, 3, H, W) -> (B*(H/p)*(W/p), 3*p*p), in the order features() uses."""
    cols = F.unfold(x, p, stride=p)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1]).double()


def unblocks(b: torch.Tensor, n: int, size: int, p: int = 8) -> torch.Tensor:
    cols = b.float().reshape(n, -1, b.shape[1]).transpose(1, 2)
    return F.fold(cols, size, p, stride=p)


@torch.no_grad()
def frame0_latents(model, ds, batch=16):
    zs, xs, labels = [], [], []
    for i in range(0, len(ds), batch):
        x, y = ds.batch(list(range(i, min(i + batch, len(ds)))))
        mean = model.encode(x[:, :, :1])[0]  # (B, C, 1, h, w): frame 0 is its own latent frame
        zs.append(mean[:, :, 0])
        xs.append(x[:, :, 0])
        labels += [ds.classes[int(j)] for j in y]
    return torch.cat(zs), torch.cat(xs), labels


def main() -> int:
    set_threads(2)
    t0 = time.time()
    out = {}
    for name, path in CKPTS.items():
        model = load_autoencoder(path)[0].eval()
        cfg = model.cfg
        preset = TRAIN_PRESETS[cfg.name]
        root = resolve_dataset("procedural", cfg, preset.train_per_class, preset.val_per_class)
        train, val = ClipDataset(root, "train"), ClipDataset(root, "val")
        ztr, xtr, _ = frame0_latents(model, train)
        zva, xva, groups = frame0_latents(model, val)
        with torch.no_grad():
            dec = model.decode(zva[:, :, None])[:, :, 0].clamp(-1, 1)
        entry = {"decoder": grouped(psnr(dec[:, :, None], xva[:, :, None]), groups)}
        for k in (1, 3, 5):
            a, b = features(ztr, k), blocks(xtr)
            ridge = 1e-3 * torch.eye(a.shape[1], dtype=a.dtype)
            w = torch.linalg.solve(a.T @ a + ridge, a.T @ b)
            pred = unblocks(features(zva, k) @ w, len(zva), xva.shape[-1]).clamp(-1, 1)
            entry[f"linear_readout_{k}x{k}"] = grouped(
                psnr(pred[:, :, None], xva[:, :, None]), groups
            )
        out[name] = entry
        print(name, {k: round(v["overall"], 2) for k, v in entry.items()}, flush=True)
    out["wall_s"] = round(time.time() - t0, 1)
    (HERE / "frame0_probe.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
