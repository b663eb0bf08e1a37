"""A contact sheet of generated clips: one row per class, a few frames of a few clips each, with
what the class-score classifier said of every clip, so a reader can judge the samples by eye.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def contact_sheet(
    video: torch.Tensor,  # (N, 3, T, H, W) in [-1, 1]
    labels: Sequence[int],
    predicted: Sequence[int],
    classes: List[str],
    path: Path,
    title: str,
    clips_per_class: int = 2,
    frames: Sequence[int] = (0, 8, 16),
) -> Path:
    t = video.shape[2]
    frames = [f for f in frames if f < t]
    rows = [c for c in range(len(classes)) if c in set(labels)]
    cols = clips_per_class * len(frames)
    fig, axes = plt.subplots(
        len(rows), cols, figsize=(0.9 * cols + 1.6, 0.95 * len(rows) + 0.8), squeeze=False
    )
    for r, c in enumerate(rows):
        idx = [i for i, y in enumerate(labels) if y == c][:clips_per_class]
        for k in range(clips_per_class):
            for j, f in enumerate(frames):
                ax = axes[r][k * len(frames) + j]
                ax.set_xticks([])
                ax.set_yticks([])
                if k >= len(idx):
                    ax.axis("off")
                    continue
                i = idx[k]
                img = ((video[i, :, f].permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1)
                ax.imshow(np.ascontiguousarray(img), interpolation="nearest")
                if j == 0:
                    ok = predicted[i] == c
                    ax.set_title(
                        "✓" if ok else f"→ {classes[predicted[i]]}",
                        fontsize=6,
                        color="green" if ok else "crimson",
                        loc="left",
                        pad=2,
                    )
                if r == len(rows) - 1:
                    ax.set_xlabel(f"clip {k + 1}, frame {f}", fontsize=5)
        axes[r][0].set_ylabel(classes[c], fontsize=6, rotation=0, ha="right", va="center")
    height = 0.95 * len(rows) + 0.8
    fig.suptitle(title, fontsize=8, y=1 - 0.12 / height)
    fig.subplots_adjust(left=0.17, right=0.99, top=1 - 0.55 / height, bottom=0.25 / height)
    fig.subplots_adjust(wspace=0.05, hspace=0.35)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
