"""events.jsonl: the run's record, one JSON object a line, read by the service's run registry.

Every event has "type" and "time" (Unix seconds); training events also have "step".
Types: config, status (started | resumed | completed | failed), train (losses), val (metrics),
spectrum, checkpoint, export. Unknown fields are allowed; readers skip unknown types.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Optional

from . import paths


def _clean(value: Any) -> Any:
    """JSON has no NaN/Infinity: write them as null so every line stays parseable."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def portable_path(path) -> str:
    """A path as it may be written into a log that is committed or moved to another machine:
    relative to the repository when inside it, else just its last component (a dataset's folder
    name is its content hash, so it still identifies the data)."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(paths.REPO_ROOT))
    except ValueError:
        return p.name


class EventLog:
    def __init__(self, path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled  # only rank 0 writes
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, type_: str, **fields: Any) -> None:
        if not self.enabled:
            return
        record = {"type": type_, "time": round(time.time(), 3), **_clean(fields)}
        # One write per line, flushed, so a reader tailing the file never sees half an event
        # except at the very end of a killed run (the registry tolerates that).
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")


class Progress:
    """Steps/s and ETA on stderr, from the wall time since the (re)start."""

    def __init__(self, total: int, start_step: int, enabled: bool = True):
        self.total, self.start_step, self.enabled = total, start_step, enabled
        self.t0 = time.time()

    def rate(self, step: int) -> float:
        return (step - self.start_step) / max(time.time() - self.t0, 1e-9)

    def line(self, step: int, **scalars: float) -> Optional[str]:
        if not self.enabled:
            return None
        rate = self.rate(step)
        eta = (self.total - step) / rate if rate > 0 else float("inf")
        parts = [f"step {step}/{self.total}"]
        parts += [f"{k} {v:.4g}" for k, v in scalars.items()]
        parts += [f"{rate:.2f} it/s", f"ETA {format_seconds(eta)}"]
        text = " | ".join(parts)
        print(text, file=sys.stderr, flush=True)
        return text


def format_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
