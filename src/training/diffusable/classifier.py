"""Class score: a small video classifier trained on the real clips' labels, used to ask whether a
generated clip of class c looks like class c (its accuracy on generated clips, per class).

The classifier is trained once per dataset and cached next to it (classifier-<key>.pt); its
validation accuracy on real clips is recorded, since a class score is only as good as that.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class ClassifierConfig:
    size: int = 32  # frames are resized to size x size: colour, layout and motion suffice
    width: int = 32
    steps: int = 400
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 0


class VideoClassifier(nn.Module):
    def __init__(self, num_classes: int, width: int = 32):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv3d(3, w, 3, stride=(1, 2, 2), padding=1),
            nn.GroupNorm(8, w),
            nn.SiLU(),
            nn.Conv3d(w, 2 * w, 3, stride=2, padding=1),
            nn.GroupNorm(8, 2 * w),
            nn.SiLU(),
            nn.Conv3d(2 * w, 4 * w, 3, stride=2, padding=1),
            nn.GroupNorm(8, 4 * w),
            nn.SiLU(),
        )
        self.head = nn.Linear(4 * w, num_classes)

    def forward(self, video: torch.Tensor) -> torch.Tensor:  # (B, 3, T, S, S)
        return self.head(self.net(video).mean(dim=(2, 3, 4)))  # (B, classes) logits


def _resize(video: torch.Tensor, size: int) -> torch.Tensor:
    b, c, t, h, w = video.shape
    frames = video.transpose(1, 2).reshape(b * t, c, h, w)
    frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
    return frames.reshape(b, t, c, size, size).transpose(1, 2)


@torch.no_grad()
def predict(
    model: VideoClassifier, video: torch.Tensor, size: int, batch: int = 64
) -> torch.Tensor:
    model.eval()
    return torch.cat(
        [model(_resize(video[i : i + batch], size)).argmax(1) for i in range(0, len(video), batch)]
    )


def get_classifier(
    data_root: Path, cfg: ClassifierConfig = ClassifierConfig()
) -> Tuple[VideoClassifier, Dict]:
    """Train (or load the cached) classifier for a clip dataset; returns it and its record."""
    from .data.clips import ClipDataset

    key = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:10]
    path = Path(data_root) / f"classifier-{key}.pt"
    train, val = ClipDataset(data_root, "train"), ClipDataset(data_root, "val")
    model = VideoClassifier(len(train.classes), cfg.width)
    if path.is_file():
        state = torch.load(path, map_location="cpu")
        model.load_state_dict(state["model"])
        return model.eval(), state["info"]
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    model.train()
    for step in range(cfg.steps):
        idx = torch.randint(len(train), (cfg.batch_size,), generator=g).tolist()
        video, labels = train.batch(idx)
        loss = F.cross_entropy(model(_resize(video, cfg.size)), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    video, labels = val.batch(list(range(len(val))))
    acc = float((predict(model, video, cfg.size) == labels).float().mean())
    info = {"config": asdict(cfg), "key": key, "val_accuracy": acc, "val_clips": len(val)}
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "info": info}, tmp)
    tmp.replace(path)
    return model.eval(), info


def class_scores(
    model: VideoClassifier, video: torch.Tensor, labels: torch.Tensor, classes: List[str], size: int
) -> Dict[str, float]:
    """Accuracy of the classifier on (generated) clips, per intended class and overall."""
    pred = predict(model, video, size)
    scores = {}
    for c, name in enumerate(classes):
        mask = labels == c
        if mask.any():
            scores[name] = float((pred[mask] == c).float().mean())
    scores["mean"] = float((pred == labels).float().mean())
    return scores
