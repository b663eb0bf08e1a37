"""Give a finished run another id: its folder, its events and its checkpoints.

A run's id is its folder's name (trainer.Run.run_id), written into every event and checkpoint.
A run continued from a shipped one under the same folder name would carry the same id as its
ancestor, and the service's run registry (and a bundle's manifest) could not tell them apart.
This renames such a run once it has stopped, before it is exported or committed:

    PYTHONPATH=src/training /usr/bin/python3 -m diffusable.training.rename_run \\
        runs/big/dit-medium-se dit-medium-data-se

Only the run's own id changes: `init`, `autoencoder` and the other records of *other* runs keep
theirs, even where an ancestor has the old name.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from ..atomic_file import atomic_write_text
from ..models.checkpoint import load_checkpoint, save_checkpoint

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def rename_run(folder: Path, new_id: str) -> Path:
    """Move `folder` to a sibling named `new_id`, rewriting the run's own id; returns the path."""
    folder = Path(folder)
    old_id = folder.name
    if not _ID.match(new_id):
        raise ValueError(f"new id {new_id!r}: letters, digits, '.', '_' and '-' only")
    events = folder / "events.jsonl"
    if not events.is_file():
        raise FileNotFoundError(f"{folder.name} is not a run folder (no events.jsonl)")
    target = folder.parent / new_id
    if target.exists():
        raise ValueError(f"{new_id} already exists beside {old_id}")
    lines = []
    for line in events.read_text().splitlines():
        if not line.strip():
            continue
        event = json.loads(line)
        if event.get("run_id") == old_id:  # the run's own id; nested records are other runs'
            event["run_id"] = new_id
        lines.append(json.dumps(event, separators=(",", ":")))
    checkpoints = sorted((folder / "checkpoints").glob("*.pt"))
    states = {}
    for path in checkpoints:
        state = load_checkpoint(path)
        if state.get("run_id") == old_id:
            states[path.name] = {**state, "run_id": new_id}
    # Everything read and checked first; then the folder moves and the files are rewritten in it.
    os.rename(folder, target)
    atomic_write_text(target / "events.jsonl", "\n".join(lines) + "\n")
    for name, state in states.items():
        save_checkpoint(target / "checkpoints" / name, state)
    return target


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Give a stopped run another id.")
    ap.add_argument("folder", help="the run folder (its name is the run's id)")
    ap.add_argument("new_id", help="the new id: the folder's new name, beside the old one")
    args = ap.parse_args(argv)
    try:
        target = rename_run(Path(args.folder), args.new_id)
    except (FileNotFoundError, ValueError) as err:
        print(f"rename_run: {err}", file=sys.stderr)
        return 2
    print(f"rename_run: {Path(args.folder).name} -> {target.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
