#!/usr/bin/env python3
"""Frame 8 of the first val clip of each class: the clip, then its reconstruction by each
autoencoder checkpoint, one row each (what the eye checks beside ae_eval's numbers).

    PYTHONPATH=src/training /usr/bin/python3 docs/results/decoder-gan/look.py OUT.png NAME=CKPT ...
(from the repository root, on the default procedural dataset). `linear=CKPT` adds the linear code
with CKPT's latent grid (fitted on the train split), the floor each reconstruction stands beside."""
import sys
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from diffusable.models.checkpoint import load_autoencoder
from diffusable.data.clips import ClipDataset
from diffusable.data.datasets import resolve_dataset
from diffusable.models.linear_code import fit_linear_code_on, linear_code_config, linear_code_model

out = sys.argv[1]
ckpts = sys.argv[2:]
torch.set_num_threads(1)
root = resolve_dataset("procedural")  # the default dataset, found or built as the trainers do
val = ClipDataset(root, "val")
idx = [i * 8 for i in range(17)]
video, labels = val.batch(idx)
rows = [("real", video)]
for c in ckpts:
    name, path = c.split("=")
    vae, _ = load_autoencoder(path)
    if name == "linear":
        name = f"linear code ({vae.cfg.latent_channels} ch)"
        train = ClipDataset(root, "train")
        vae = linear_code_model(
            linear_code_config(vae.cfg), fit_linear_code_on(linear_code_config(vae.cfg), train)
        )
    vae.eval()
    with torch.no_grad():
        rows.append(
            (name, torch.cat([vae(video[i : i + 6])[0].clamp(-1, 1) for i in range(0, 17, 6)]))
        )
fig, ax = plt.subplots(len(rows), 17, figsize=(17 * 1.3, len(rows) * 1.4))
for r, (name, v) in enumerate(rows):
    for j in range(17):
        img = ((v[j, :, 8].permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy()
        ax[r, j].imshow(img, interpolation="nearest")
        ax[r, j].set_xticks([])
        ax[r, j].set_yticks([])
        if j == 0:
            ax[r, j].set_ylabel(name, fontsize=7)
        if r == 0:
            ax[r, j].set_title(val.classes[int(labels[j])][:12], fontsize=6)
plt.tight_layout()
plt.savefig(out, dpi=80)
