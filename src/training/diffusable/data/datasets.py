"""Which clip dataset a command means: 'procedural' (made and cached on first use), 'procedural:N'
(the same generator, seed and val split with N train clips per class; its first train clips are
the default dataset's, so a larger one only adds clips), or a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .clips import read_dataset_meta

# The procedural dataset's default size per class: what the shipped models trained on.
TRAIN_PER_CLASS = 48
VAL_PER_CLASS = 8
# The --data flag's help, the same wherever a command takes one.
DATA_HELP = "dataset folder, 'procedural', or 'procedural:N' (N train clips per class)"


def parse_procedural(data: str, train_per_class: int) -> Optional[int]:
    """Train clips per class that `data` names ('procedural' -> train_per_class, 'procedural:N'
    -> N), or None when it names a folder."""
    name, sep, count = data.partition(":")
    if name != "procedural":
        return None
    if not sep:
        return train_per_class
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"--data {data}: expected procedural:N with N a positive whole number")
    return int(count)


def resolve_dataset(
    data: str,
    cfg=None,
    train_per_class: int = TRAIN_PER_CLASS,
    val_per_class: int = VAL_PER_CLASS,
) -> Path:
    """'procedural' or 'procedural:N' -> the cached procedural dataset at the model config's
    resolution, frames and fps (the shipped models' 64x64, 17 frames, 8 fps without one);
    anything else must be a dataset folder (fails with a readable message if it is not)."""
    per_class = parse_procedural(data, train_per_class)
    if per_class is None:
        path = Path(data)
        read_dataset_meta(path)
        return path
    from .procedural import ensure_procedural

    shape = {} if cfg is None else dict(size=cfg.resolution, frames=cfg.frames, fps=cfg.fps)
    return ensure_procedural(
        None, seed=0, train_per_class=per_class, val_per_class=val_per_class, **shape
    )
