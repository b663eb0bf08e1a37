"""Which clip dataset a command means: 'procedural' (made and cached on first use) or a folder."""

from __future__ import annotations

from pathlib import Path

from .clips import read_dataset_meta

# The procedural dataset's default size per class: what the shipped models trained on.
TRAIN_PER_CLASS = 48
VAL_PER_CLASS = 8


def resolve_dataset(
    data: str,
    cfg,
    train_per_class: int = TRAIN_PER_CLASS,
    val_per_class: int = VAL_PER_CLASS,
) -> Path:
    """'procedural' -> the cached procedural dataset at the model config's resolution, frames and
    fps; anything else must be a dataset folder (fails with a readable message if it is not)."""
    if data != "procedural":
        path = Path(data)
        read_dataset_meta(path)
        return path
    from .procedural import ensure_procedural

    return ensure_procedural(
        None,
        seed=0,
        size=cfg.resolution,
        frames=cfg.frames,
        fps=cfg.fps,
        train_per_class=train_per_class,
        val_per_class=val_per_class,
    )
