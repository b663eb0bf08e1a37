"""Where things live on this machine, defined once: the repository root, the package's source
root (what PYTHONPATH names for a child process) and the cache."""

from __future__ import annotations

import os
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1]  # src/training, which holds diffusable/
REPO_ROOT = SOURCE_ROOT.parents[1]


def cache_root() -> Path:
    """Generated datasets and fetched Debian media: $DIFFUSABLE_CACHE or <repo>/.cache."""
    env = os.environ.get("DIFFUSABLE_CACHE")
    return Path(env) if env else REPO_ROOT / ".cache"
