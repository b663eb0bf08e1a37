"""Ingest real videos into clip shards (the format of ``clips.py``).

Inputs: a folder ``<root>/<label>/*.{mp4,webm,avi,mkv,mpg}`` (UCF-101 / Kinetics layout) or a
Kinetics-style CSV (label,youtube_id,time_start,time_end[,split]) whose files live at
``<csv dir or --videos-dir>/<split>/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4``.

Each video is decoded by ffmpeg in a worker process into ``--clips-per-video`` clips of
``--frames`` frames at ``--fps``, its shorter side resized to ``--size`` and centre-cropped.
The run is resumable: ``ingest-state.json`` records every finished video and the shards that
hold its clips, and is only updated after those shards are on disk, so a rerun skips finished
videos and never duplicates a clip. Videos that cannot be used (corrupt, not a video, too short)
are skipped and listed with ffmpeg's reason in ``dataset.json`` "failed".

    PYTHONPATH=src/training python3 -m diffusable.data.ingest --src ROOT_OR_CSV --out DIR
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import multiprocessing
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..atomic_file import atomic_write_text
from .clips import (
    FORMAT,
    FfmpegError,
    ffmpeg_rgb,
    ffmpeg_version,
    shard_stem,
    write_dataset_meta,
    write_shard,
)

VIDEO_EXTS = (".mp4", ".webm", ".avi", ".mkv", ".mpg")
STATE_NAME = "ingest-state.json"
STATE_VERSION = 1
SHARD_BYTES = 64 << 20
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validate": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


class UsageError(Exception):
    """Bad arguments or inputs: reported as one line, exit status 2."""


class UnusableVideo(ValueError):
    """A video that decodes but cannot give a clip (too short, no frames)."""


@dataclass(frozen=True)
class Settings:
    """What shapes the clips; a resumed run must use the same."""

    frames: int = 17
    fps: float = 8
    size: int = 64
    clips_per_video: int = 1
    val_fraction: float = 0.1
    max_seconds: float = 300.0  # decode at most this much of each video (bounds memory)


@dataclass(frozen=True)
class Video:
    key: str  # stable identity across runs: path relative to the source, or the CSV clip id
    path: Optional[Path]  # None when a CSV row's file is not found
    label: str
    split: Optional[str]  # from the CSV; None → decided by --val-fraction
    missing: str = ""  # why path is None


@dataclass
class State:
    settings: Dict[str, Any]
    classes: List[str]
    done: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # key → {split, clips}
    failed: Dict[str, Dict[str, str]] = field(default_factory=dict)  # key → {path, reason}
    shards: Dict[str, List[Dict[str, Any]]] = field(default_factory=dict)  # split → [{stem, count}]
    version: int = STATE_VERSION


# --- finding the videos --------------------------------------------------------------------


def _is_video(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in VIDEO_EXTS and not p.name.startswith(".")


def scan_folder(root: Path) -> List[Video]:
    videos = []
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(p for p in label_dir.iterdir() if _is_video(p)):
            videos.append(Video(f.relative_to(root).as_posix(), f, label_dir.name, None))
    if not videos:
        exts = ",".join(e[1:] for e in VIDEO_EXTS)
        raise UsageError(f"no videos in {root} (expected {root}/<label>/*.{{{exts}}})")
    return videos


def scan_csv(csv_path: Path, videos_dir: Optional[Path]) -> List[Video]:
    base = videos_dir or csv_path.parent
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        need = {"label", "youtube_id", "time_start", "time_end"}
        missing = need - set(reader.fieldnames or [])
        if missing:
            raise UsageError(f"{csv_path}: missing column(s) {', '.join(sorted(missing))}")
        rows = list(reader)
    videos = []
    for n, row in enumerate(rows, start=2):  # line numbers as an editor shows them
        label = (row.get("label") or "").strip()
        if not label:
            raise UsageError(f"{csv_path}:{n}: empty label")
        try:
            start, end = int(float(row["time_start"])), int(float(row["time_end"]))
        except ValueError:
            raise UsageError(f"{csv_path}:{n}: time_start/time_end are not numbers") from None
        raw_split = (row.get("split") or "").strip().lower()
        split = SPLIT_ALIASES.get(raw_split, raw_split) or None
        name = f"{row['youtube_id'].strip()}_{start:06d}_{end:06d}"
        key = f"{raw_split or '-'}/{label}/{name}"
        candidates = []
        for lab in dict.fromkeys([label, label.replace(" ", "_")]):
            for d in ([base / raw_split] if raw_split else []) + [base]:
                candidates += [d / lab / (name + ext) for ext in VIDEO_EXTS]
        candidates += [base / (name + ext) for ext in VIDEO_EXTS]
        found = next((c for c in candidates if c.is_file()), None)
        why = "" if found else f"video file not found: {candidates[0]}"
        videos.append(Video(key, found, label, split, why))
    if not videos:
        raise UsageError(f"{csv_path}: no rows")
    return videos


def assign_splits(videos: Sequence[Video], val_fraction: float) -> Dict[str, str]:
    """Split of each video: the CSV's, or per class the ``val_fraction`` lowest by hash.

    Hashing the stable key (not drawing at random) gives the same split on every run, and
    ranking per class keeps each class in both splits: a class of n >= 2 videos puts
    max(1, round(fraction * n)) in val (at most n - 1) when the fraction is above zero.
    """
    out: Dict[str, str] = {}
    by_class: Dict[str, List[str]] = {}
    for v in videos:
        if v.split:
            out[v.key] = v.split
        else:
            by_class.setdefault(v.label, []).append(v.key)
    for keys in by_class.values():
        keys = sorted(keys, key=lambda k: hashlib.sha1(k.encode()).hexdigest())
        n = len(keys)
        n_val = min(n - 1, max(1, round(val_fraction * n))) if val_fraction > 0 and n >= 2 else 0
        for i, k in enumerate(keys):
            out[k] = "val" if i < n_val else "train"
    return out


# --- decoding (runs in worker processes) ---------------------------------------------------


def clip_starts(n_frames: int, frames: int, k: int) -> List[int]:
    """Up to k clip starts spread evenly over the video (non-overlapping when it is long enough)."""
    if n_frames < frames:
        return []
    return sorted({int(round(s)) for s in np.linspace(0, n_frames - frames, k)})


def decode_clips(path: Path, s: Settings) -> np.ndarray:
    """(K, T, size, size, 3) uint8 clips of one video; FfmpegError/UnusableVideo if unusable."""
    # Square pixels first (anamorphic video), then shorter side → size, then a centre crop.
    vf = (
        f"fps={s.fps:g},scale=iw*sar:ih,setsar=1,"
        f"scale={s.size}:{s.size}:force_original_aspect_ratio=increase,crop={s.size}:{s.size}"
    )
    args = ["-threads", "1", "-t", f"{s.max_seconds:g}", "-i", str(path), "-vf", vf]
    # Generous time limit: a healthy decode of max_seconds at 64² runs far faster than this.
    frames = ffmpeg_rgb(args, s.size, s.size, timeout=max(120.0, 2 * s.max_seconds))
    if frames.shape[0] == 0:
        raise UnusableVideo("ffmpeg decoded no video frames")
    starts = clip_starts(frames.shape[0], s.frames, s.clips_per_video)
    if not starts:
        raise UnusableVideo(
            f"too short: {frames.shape[0]} frames at {s.fps:g} fps, need {s.frames}"
            f" ({s.frames / s.fps:.2f} s)"
        )
    return np.stack([frames[i : i + s.frames] for i in starts])


def _work(task: Tuple[int, str, Settings]) -> Tuple[int, Optional[np.ndarray], str]:
    index, path, settings = task
    try:
        return index, decode_clips(Path(path), settings), ""
    except FfmpegError as e:
        # ffmpeg prefixes its reason with the input path, which the report already shows.
        return index, None, e.reason.replace(f"{path}: ", "", 1)
    except UnusableVideo as e:
        return index, None, str(e)
    except Exception as e:  # a bad video must never end the run
        return index, None, f"{type(e).__name__}: {e}"


def _results(tasks: List[Tuple[int, str, Settings]], workers: int) -> Iterator[Tuple[Any, ...]]:
    if workers <= 1 or len(tasks) <= 1:
        yield from map(_work, tasks)
        return
    with multiprocessing.Pool(min(workers, len(tasks))) as pool:
        # Ordered results: the same inputs give the same shards, whatever finishes first.
        yield from pool.imap(_work, tasks, chunksize=1)


# --- state and output ----------------------------------------------------------------------


def load_state(out: Path) -> Optional[State]:
    path = out / STATE_NAME
    if not path.is_file():
        return None
    try:
        return State(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as e:
        raise UsageError(f"cannot read {path} ({e}); delete {out} to start over") from None


def save_state(out: Path, state: State) -> None:
    atomic_write_text(out / STATE_NAME, json.dumps(asdict(state), indent=1, sort_keys=True) + "\n")


def remove_strays(out: Path, state: State) -> None:
    """Delete shards (and temp files) a crashed run wrote but never recorded in the state."""
    known = {s["stem"] for shards in state.shards.values() for s in shards}
    pattern = re.compile(r"^(.+-\d{5})\.(clips|labels)\.npy$")
    for f in out.iterdir():
        m = pattern.match(f.name)
        if (m and m.group(1) not in known) or (f.name.startswith(".") and ".tmp-" in f.name):
            f.unlink()


def write_meta(out: Path, state: State, src: str, name: str, s: Settings) -> None:
    splits = {k: {"shards": [], "count": 0} for k in ("train", "val")}
    for split, shards in state.shards.items():
        splits[split] = {
            "shards": [x["stem"] for x in shards],
            "count": int(sum(x["count"] for x in shards)),
        }
    meta = {
        "format": FORMAT,
        "name": name,
        "classes": state.classes,
        "frames": s.frames,
        "height": s.size,
        "width": s.size,
        "fps": int(s.fps) if float(s.fps).is_integer() else s.fps,
        "splits": splits,
        "source": {
            "kind": "ingest",
            "src": src,
            "settings": asdict(s),
            "videos": len(state.done),
            "crop": "shorter side resized to size, centre crop; clips spread evenly over video",
            "ffmpeg": ffmpeg_version(),
        },
        "failed": [state.failed[k] for k in sorted(state.failed)],
    }
    write_dataset_meta(out, meta)


@dataclass
class _Pending:
    """Clips decoded but not yet in a shard; their videos are not yet "done"."""

    clips: List[np.ndarray] = field(default_factory=list)
    labels: List[int] = field(default_factory=list)
    videos: Dict[str, int] = field(default_factory=dict)  # key → number of clips

    @property
    def count(self) -> int:
        return len(self.labels)


def _flush(out: Path, state: State, split: str, pending: _Pending) -> None:
    if not pending.count:
        return
    shards = state.shards.setdefault(split, [])
    stem = write_shard(
        out, split, len(shards), np.stack(pending.clips), np.array(pending.labels, np.int64)
    )
    assert stem == shard_stem(split, len(shards))
    shards.append({"stem": stem, "count": pending.count})
    for key, n in pending.videos.items():
        state.done[key] = {"split": split, "clips": n}
    save_state(out, state)  # only now are these videos done: their clips are on disk
    pending.clips, pending.labels, pending.videos = [], [], {}


class _Progress:
    def __init__(self, total: int) -> None:
        self.total, self.videos, self.clips, self.failed = total, 0, 0, 0
        self.start = self.last = time.monotonic()
        self.tty = sys.stderr.isatty()

    def update(self, clips: int, failed: bool, force: bool = False) -> None:
        self.videos += 1
        self.clips += clips
        self.failed += int(failed)
        now = time.monotonic()
        if force or now - self.last >= (0.5 if self.tty else 5.0) or self.videos == self.total:
            self.last = now
            rate = self.clips / max(now - self.start, 1e-9)
            line = (
                f"ingest: {self.videos}/{self.total} videos, {self.clips} clips,"
                f" {rate:.1f} clips/s, {self.failed} failed"
            )
            end = "" if self.tty and self.videos < self.total else "\n"
            print(("\r" if self.tty else "") + line, end=end, file=sys.stderr, flush=True)


# --- the run -------------------------------------------------------------------------------


def ingest(
    src: Path,
    out: Path,
    settings: Settings,
    workers: int = 2,
    videos_dir: Optional[Path] = None,
    name: Optional[str] = None,
    shard_clips: Optional[int] = None,
    retry_failed: bool = False,
) -> Dict[str, Any]:
    """Ingest ``src`` into ``out`` (resuming if ``out`` holds a run); returns a summary dict."""
    t0 = time.monotonic()
    videos = scan_csv(src, videos_dir) if src.is_file() else scan_folder(src)
    classes = sorted({v.label for v in videos})
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file")
    out.mkdir(parents=True, exist_ok=True)

    state = load_state(out)
    if state is None:
        # Only ever clean up after our own runs: a new run needs an empty folder.
        if any(not p.name.startswith(".") for p in out.iterdir()):
            raise UsageError(f"--out {out} is not empty and holds no ingest run")
        state = State(settings=asdict(settings), classes=classes)
        save_state(out, state)
    elif state.settings != asdict(settings):
        diff = ", ".join(
            f"{k}={state.settings.get(k)} (now {v})"
            for k, v in asdict(settings).items()
            if state.settings.get(k) != v
        )
        raise UsageError(f"{out} was ingested with {diff}; rerun with those or use a new --out")
    elif state.classes != classes:
        raise UsageError(
            f"{out} was ingested with classes {state.classes}, now {classes}; use a new --out"
        )
    remove_strays(out, state)
    if retry_failed:
        state.failed.clear()

    splits = assign_splits(videos, settings.val_fraction)
    label_of = {c: i for i, c in enumerate(classes)}
    skipped = sum(1 for v in videos if v.key in state.done or v.key in state.failed)
    todo = [v for v in videos if v.key not in state.done and v.key not in state.failed]
    for v in todo:
        if v.path is None:
            state.failed[v.key] = {"path": v.key, "reason": v.missing}
    todo = [v for v in todo if v.path is not None]

    clip_bytes = settings.frames * settings.size * settings.size * 3
    per_shard = shard_clips or max(1, SHARD_BYTES // clip_bytes)
    pending: Dict[str, _Pending] = {}
    progress = _Progress(len(todo))
    new_clips = 0
    tasks = [(i, str(v.path), settings) for i, v in enumerate(todo)]
    interrupted = False
    try:
        for i, clips, reason in _results(tasks, workers):
            v = todo[i]
            if clips is None:
                state.failed[v.key] = {"path": str(v.path), "reason": reason}
                progress.update(0, True)
                continue
            split = splits[v.key]
            p = pending.setdefault(split, _Pending())
            p.clips.extend(clips)
            p.labels.extend([label_of[v.label]] * len(clips))
            p.videos[v.key] = len(clips)
            new_clips += len(clips)
            if p.count >= per_shard:
                _flush(out, state, split, p)
                write_meta(out, state, str(src), name or _default_name(src), settings)
            progress.update(len(clips), False)
    except KeyboardInterrupt:
        interrupted = True  # keep what was decoded: flush below, so a rerun resumes from here
    for split in sorted(pending):
        _flush(out, state, split, pending[split])
    save_state(out, state)
    write_meta(out, state, str(src), name or _default_name(src), settings)
    counts = {k: sum(x["count"] for x in v) for k, v in sorted(state.shards.items())}
    return {
        "videos": len(videos),
        "new_videos": len(todo) - progress.failed,
        "skipped": skipped,
        "new_clips": new_clips,
        "counts": counts,
        "failed": [state.failed[k] for k in sorted(state.failed)],
        "seconds": time.monotonic() - t0,
        "interrupted": interrupted,
    }


def _default_name(src: Path) -> str:
    return src.stem if src.is_file() else src.resolve().name


def _print_summary(s: Dict[str, Any], out: Path) -> None:
    rate = s["new_clips"] / max(s["seconds"], 1e-9)
    counts = ", ".join(f"{k} {n}" for k, n in s["counts"].items()) or "none"
    print(
        f"ingest: {s['new_videos']} new videos → {s['new_clips']} clips in {s['seconds']:.1f} s"
        f" ({rate:.1f} clips/s); {s['skipped']} videos skipped as seen in an earlier run;"
        f" dataset now has {counts} clips",
        file=sys.stderr,
    )
    if s["failed"]:
        print(f"ingest: {len(s['failed'])} videos failed and were skipped:", file=sys.stderr)
        for f in s["failed"]:
            print(f"  {f['path']}: {f['reason']}", file=sys.stderr)
    if s["interrupted"]:
        print(f"ingest: interrupted; run the same command again to resume {out}", file=sys.stderr)


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = _OneLineParser(prog="diffusable.data.ingest", description=__doc__.split("\n")[0])
    p.add_argument("--src", required=True, help="<root>/<label>/*.mp4 folder, or a Kinetics CSV")
    p.add_argument("--out", required=True, help="dataset folder (resumed if it holds a run)")
    p.add_argument("--videos-dir", help="where a CSV's videos live (default: the CSV's folder)")
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--fps", type=float, default=8)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--clips-per-video", type=int, default=1)
    p.add_argument("--max-seconds", type=float, default=300.0, help="decode at most this much")
    p.add_argument("--shard-clips", type=int, default=None, help="clips per shard (~64 MiB)")
    p.add_argument("--name", help="dataset name (default: the source's name)")
    p.add_argument("--retry-failed", action="store_true", help="retry videos that failed before")
    a = p.parse_args(argv)
    checks = [
        (a.frames >= 1, "--frames must be >= 1"),
        (a.fps > 0, "--fps must be > 0"),
        (a.size >= 8, "--size must be >= 8"),
        (a.workers >= 1, "--workers must be >= 1"),
        (0 <= a.val_fraction < 1, "--val-fraction must be in [0, 1)"),
        (a.clips_per_video >= 1, "--clips-per-video must be >= 1"),
        (a.max_seconds > 0, "--max-seconds must be > 0"),
        (a.shard_clips is None or a.shard_clips >= 1, "--shard-clips must be >= 1"),
        (Path(a.src).exists(), f"--src {a.src} does not exist"),
        (a.videos_dir is None or Path(a.videos_dir).is_dir(), f"no folder {a.videos_dir}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    if Path(a.src).is_file() and Path(a.src).suffix.lower() != ".csv":
        raise UsageError(f"--src {a.src} is neither a folder nor a .csv file")
    return a


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        a = _parse(argv)
        settings = Settings(
            a.frames, a.fps, a.size, a.clips_per_video, a.val_fraction, a.max_seconds
        )
        if ffmpeg_version() == "ffmpeg not found":
            raise UsageError("ffmpeg is not installed (not found on PATH)")
        summary = ingest(
            Path(a.src),
            Path(a.out),
            settings,
            workers=a.workers,
            videos_dir=Path(a.videos_dir) if a.videos_dir else None,
            name=a.name,
            shard_clips=a.shard_clips,
            retry_failed=a.retry_failed,
        )
    except UsageError as e:
        print(f"diffusable.data.ingest: error: {e}", file=sys.stderr)
        return 2
    _print_summary(summary, Path(a.out))
    print(a.out)
    if summary["interrupted"]:
        return 130
    return 0 if sum(summary["counts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
