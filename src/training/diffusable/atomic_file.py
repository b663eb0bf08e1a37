"""Whole files or none: every file the package writes that another process may read or resume
from (checkpoints, the classifier cache, dataset shards, the latent cache) goes through here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """write(f) into a file beside ``path`` named for this process, then rename it into place:
    a reader (or a resumed run) never sees half a file, processes writing the same file at once
    never touch each other's temporary file, and a write that fails leaves nothing behind."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """atomic_write of UTF-8 text (a JSON record, a log rewritten whole)."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
