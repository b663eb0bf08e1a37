"""Where things live on this machine, defined once: the repository root and the cache."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def cache_root() -> Path:
    """Generated datasets and fetched Debian media: $DIFFUSABLE_CACHE or <repo>/.cache."""
    env = os.environ.get("DIFFUSABLE_CACHE")
    return Path(env) if env else REPO_ROOT / ".cache"
