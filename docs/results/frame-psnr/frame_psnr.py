"""Where in the clip the shipped autoencoders lose: reconstruction PSNR by frame position.

Frame 0 is one latent frame on its own; frames 1-16 share a latent frame four at a time. On the
136 procedural val clips, per class: PSNR of frame 0 and of frames 1-16 (the mean of their
per-frame PSNRs), for the shipped AEs and the linear code of the same size (fitted on the
training split, as ae_eval does). Writes frame_psnr.json and frame_psnr.md beside itself.

    PYTHONPATH=src/training /usr/bin/python3 docs/results/frame-psnr/frame_psnr.py
"""

import json
import sys
import time
from pathlib import Path

import torch

from diffusable.data.clips import ClipDataset
from diffusable.data.datasets import resolve_dataset
from diffusable.evaluation.metrics import psnr
from diffusable.experiments.ae_eval import autoencode, grouped
from diffusable.models.checkpoint import load_autoencoder
from diffusable.models.linear_code import fit_linear_code_on, linear_code_config, linear_code_model
from diffusable.paths import REPO_ROOT
from diffusable.threads import set_threads
from diffusable.training.train_ae import TRAIN_PRESETS

HERE = Path(__file__).parent
RUNS = REPO_ROOT / "docs/results/runs"
CKPTS = {
    "baseline-dec": RUNS / "ae-conv-small-gpu-baseline-dec/checkpoints/ema-int8.pt",
    "se-dec": RUNS / "ae-conv-small-gpu-se-dec/checkpoints/ema-int8.pt",
}


@torch.no_grad()
def by_position(recon_fn, clips, batch=8):
    """Per clip: PSNR of frame 0 and of frames 1.. (each frame's PSNR, averaged)."""
    first, rest = [], []
    for i in range(0, len(clips), batch):
        x = clips[i : i + batch]
        r = recon_fn(x).clamp(-1, 1)
        first.append(psnr(r[:, :, :1], x[:, :, :1]))
        later = [psnr(r[:, :, t : t + 1], x[:, :, t : t + 1]) for t in range(1, x.shape[2])]
        rest.append(torch.stack(later, 1).mean(1))
    return torch.cat(first), torch.cat(rest)


def main() -> int:
    set_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    t0 = time.time()
    models = {name: load_autoencoder(path)[0].eval() for name, path in CKPTS.items()}
    cfg = next(iter(models.values())).cfg
    preset = TRAIN_PRESETS[cfg.name]
    root = resolve_dataset("procedural", cfg, preset.train_per_class, preset.val_per_class)
    train, val = ClipDataset(root, "train"), ClipDataset(root, "val")
    fit = fit_linear_code_on(linear_code_config(cfg), train)
    clips, labels = val.batch(list(range(len(val))))
    groups = [val.classes[int(i)] for i in labels]
    recon = {name: autoencode(m) for name, m in models.items()}
    recon["linear_code"] = autoencode(linear_code_model(linear_code_config(cfg), fit))
    result = {}
    for name, fn in recon.items():
        f0, later = by_position(fn, clips)
        result[name] = {"frame0": grouped(f0, groups), "frames1_16": grouped(later, groups)}
    record = {"clips": len(groups), "wall_s": round(time.time() - t0, 1), "psnr_db": result}
    (HERE / "frame_psnr.json").write_text(json.dumps(record, indent=1) + "\n")
    names = list(CKPTS)
    rows = [
        "| class | "
        + " | ".join(f"{n} f0 / f1-16" for n in names + ["linear_code"])
        + " | "
        + " | ".join(f"{n} − linear, f0 / f1-16" for n in names)
        + " |",
        "|---" * (2 * len(names) + 2) + "|",
    ]
    for g in list(dict.fromkeys(groups)) + ["overall"]:
        cells = [g]
        for n in names + ["linear_code"]:
            cells.append(f"{result[n]['frame0'][g]:.2f} / {result[n]['frames1_16'][g]:.2f}")
        for n in names:
            d0 = result[n]["frame0"][g] - result["linear_code"]["frame0"][g]
            d1 = result[n]["frames1_16"][g] - result["linear_code"]["frames1_16"][g]
            cells.append(f"{d0:+.2f} / {d1:+.2f}")
        rows.append("| " + " | ".join(cells) + " |")
    (HERE / "frame_psnr.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))
    print(f"frame_psnr: {len(groups)} clips, {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
