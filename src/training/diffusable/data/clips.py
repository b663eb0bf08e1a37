"""The clip-shard dataset format ("diffusable-clips/1") and the one helper that runs ffmpeg.

A dataset folder holds ``dataset.json`` and, per split, shards ``<split>-<NNNNN>.clips.npy``
(uint8, (N, T, H, W, 3)) with ``<split>-<NNNNN>.labels.npy`` (int64, (N,)). Plain ``.npy`` files
so that readers can memory-map them: a training step touches a few clips, never a whole shard.
Both the procedural generator and the real-video ingester write this format, so the trainer has
a single data path.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..atomic_file import atomic_write, atomic_write_text

try:
    import torch
    from torch.utils.data import Dataset
except ImportError:  # the dataset tools (procedural, ingest) need only numpy and ffmpeg
    torch = None  # type: ignore[assignment]
    Dataset = object  # type: ignore[assignment,misc]

FORMAT = "diffusable-clips/1"
META_NAME = "dataset.json"
PathLike = Union[str, "os.PathLike[str]"]


def shard_stem(split: str, index: int) -> str:
    """File stem of shard ``index`` of ``split``: ``train-00003``."""
    return f"{split}-{index:05d}"


def write_shard(
    root: PathLike, split: str, index: int, clips: np.ndarray, labels: np.ndarray
) -> str:
    """Write one shard of ``split`` and return its stem. Does not touch ``dataset.json``.

    clips: uint8 (N, T, H, W, 3); labels: integer (N,), stored as int64.
    """
    clips = np.asarray(clips)
    labels = np.asarray(labels)
    if clips.dtype != np.uint8 or clips.ndim != 5 or clips.shape[-1] != 3:
        raise ValueError(f"clips must be uint8 (N, T, H, W, 3), got {clips.dtype} {clips.shape}")
    if labels.ndim != 1 or labels.shape[0] != clips.shape[0]:
        raise ValueError(f"labels must be ({clips.shape[0]},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stem = shard_stem(split, index)
    # Labels first: a clips file is only ever present with its labels beside it.
    labels64 = np.ascontiguousarray(labels, dtype=np.int64)
    atomic_write(root / f"{stem}.labels.npy", lambda f: np.save(f, labels64))
    atomic_write(root / f"{stem}.clips.npy", lambda f: np.save(f, np.ascontiguousarray(clips)))
    return stem


def write_dataset_meta(root: PathLike, meta: Dict[str, Any]) -> None:
    """Write ``dataset.json`` atomically, with sorted keys so equal metadata gives equal bytes."""
    meta = dict(meta)
    meta.setdefault("format", FORMAT)
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    atomic_write_text(Path(root) / META_NAME, text)


def read_dataset_meta(root: PathLike) -> Dict[str, Any]:
    """Read and sanity-check ``dataset.json``."""
    path = Path(root) / META_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {META_NAME} in {root}")
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    for key in ("classes", "frames", "height", "width", "fps", "splits"):
        if key not in meta:
            raise ValueError(f"{path}: missing {key!r}")
    return meta


def clips_to_tensor(clips: np.ndarray) -> "torch.Tensor":
    """uint8 (..., T, H, W, 3) → float32 (..., 3, T, H, W) in [-1, 1]."""
    arr = np.ascontiguousarray(clips)
    if not arr.flags.writeable:  # a memory-mapped shard: torch tensors need writable memory
        arr = arr.copy()  # uint8, a quarter of the float32 result made below anyway
    return uint8_to_video(torch.from_numpy(arr))


def uint8_to_video(x: "torch.Tensor") -> "torch.Tensor":
    """uint8 (..., T, H, W, 3) tensor, on any device → float32 (..., 3, T, H, W) in [-1, 1]."""
    nd = x.dim()
    x = x.permute(*range(nd - 4), nd - 1, nd - 4, nd - 3, nd - 2)
    # 255 / 127.5 - 1 is exactly 1.0 in float32, so no clamp is needed.
    return x.to(torch.float32).div_(127.5).sub_(1.0).contiguous()


@dataclass(frozen=True)
class _Shard:
    stem: str
    start: int  # index of the shard's first clip in the split
    count: int


class ClipDataset(Dataset):
    """One split of a clip-shard dataset; items are ``(video (3, T, H, W) in [-1, 1], label)``."""

    def __init__(self, root: PathLike, split: str) -> None:
        if torch is None:
            raise ImportError("ClipDataset needs PyTorch")
        self.root = Path(root)
        self.split = split
        self.meta = read_dataset_meta(self.root)
        if split not in self.meta["splits"]:
            raise KeyError(f"{self.root}: no split {split!r} (have {sorted(self.meta['splits'])})")
        self.classes: List[str] = list(self.meta["classes"])
        self.frames: int = int(self.meta["frames"])
        self.height: int = int(self.meta["height"])
        self.width: int = int(self.meta["width"])
        self.fps: float = float(self.meta["fps"])
        stems = list(self.meta["splits"][split].get("shards", []))

        shards: List[_Shard] = []
        labels: List[np.ndarray] = []
        start = 0
        self._clips: Optional[List[np.ndarray]] = self._open(stems)
        for stem, arr in zip(stems, self._clips):
            want = (self.frames, self.height, self.width, 3)
            if arr.dtype != np.uint8 or arr.shape[1:] != want:
                raise ValueError(
                    f"{stem}: clips {arr.dtype} {arr.shape}, expected uint8 (N, *{want})"
                )
            lab = np.load(self.root / f"{stem}.labels.npy")
            if lab.shape != (arr.shape[0],):
                raise ValueError(f"{stem}: {lab.shape[0]} labels for {arr.shape[0]} clips")
            shards.append(_Shard(stem, start, arr.shape[0]))
            labels.append(lab.astype(np.int64))
            start += arr.shape[0]
        self._shards = shards
        self._starts = np.array([s.start for s in shards], dtype=np.int64)
        self.labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
        expected = self.meta["splits"][split].get("count")
        if expected is not None and int(expected) != len(self.labels):
            raise ValueError(
                f"{self.root}: {split} has {len(self.labels)} clips, meta says {expected}"
            )
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(f"{self.root}: {split} has labels outside 0..{len(self.classes) - 1}")

    def _open(self, stems: Sequence[str]) -> List[np.ndarray]:
        return [np.load(self.root / f"{s}.clips.npy", mmap_mode="r") for s in stems]

    def _arrays(self) -> List[np.ndarray]:
        if self._clips is None:  # after unpickling in a DataLoader worker
            self._clips = self._open([s.stem for s in self._shards])
        return self._clips

    def __getstate__(self) -> Dict[str, Any]:
        # Pickling a memmap copies its whole contents; send only paths to worker processes.
        state = self.__dict__.copy()
        state["_clips"] = None
        return state

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def _locate(self, indices: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        n = len(self)
        if indices.size and (indices.min() < -n or indices.max() >= n):
            raise IndexError(f"index out of range for {n} clips")
        indices = np.where(indices < 0, indices + n, indices)
        shard = np.searchsorted(self._starts, indices, side="right") - 1
        return shard, indices - self._starts[shard]

    def __getitem__(self, i: int) -> Tuple["torch.Tensor", int]:
        shard, offset = self._locate(np.array([int(i)], dtype=np.int64))
        clip = np.array(self._arrays()[shard[0]][offset[0]])  # copy out of the read-only map
        return clips_to_tensor(clip), int(self.labels[int(i)])

    def batch(self, indices: Sequence[int]) -> Tuple["torch.Tensor", "torch.Tensor"]:
        """Clips ``indices`` as ``(video (B, 3, T, H, W), labels LongTensor (B,))``, in order."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        shard, offset = self._locate(idx)
        out = np.empty((idx.size, self.frames, self.height, self.width, 3), dtype=np.uint8)
        arrays = self._arrays()
        # One fancy-index read per shard touched, with sorted offsets so the reads go forward.
        for s in np.unique(shard):
            where = np.nonzero(shard == s)[0]
            order = np.argsort(offset[where], kind="stable")
            out[where[order]] = arrays[s][offset[where][order]]
        labels = torch.from_numpy(self.labels[np.where(idx < 0, idx + len(self), idx)].copy())
        return clips_to_tensor(out), labels

    def on_device(self, device) -> "DeviceClips":
        """The whole split as uint8 on `device`: on a GPU the host-side copy and conversion of
        each batch would otherwise take longer than the step (200 MB for the shipped data)."""
        return DeviceClips(self, device)


class DeviceClips:
    """A split held as one uint8 (N, T, H, W, 3) tensor on a device; batch() as ClipDataset's,
    converted there. Same values as ClipDataset.batch (tested)."""

    def __init__(self, ds: ClipDataset, device) -> None:
        self.frames, self.height, self.width = ds.frames, ds.height, ds.width
        self.classes = ds.classes
        self.labels = ds.labels
        whole = np.concatenate([np.asarray(a) for a in ds._arrays()]) if len(ds) else None
        self.clips = torch.from_numpy(whole).to(device)  # (N, T, H, W, 3) uint8

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, indices: Sequence[int]) -> Tuple["torch.Tensor", "torch.Tensor"]:
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64).reshape(-1))
        labels = torch.from_numpy(self.labels[idx.numpy()].copy())
        return uint8_to_video(self.clips[idx.to(self.clips.device)]), labels  # (B, 3, T, H, W)


# --- ffmpeg -------------------------------------------------------------------------------
# Every ffmpeg call of the data package goes through these two functions, so flags (no stdin,
# quiet logs, raw rgb24 on a pipe) and error handling live in one place.


class FfmpegError(RuntimeError):
    """ffmpeg failed; ``reason`` is its last meaningful stderr line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def ffmpeg_rgb(
    args: Sequence[str], width: int, height: int, timeout: Optional[float] = None
) -> np.ndarray:
    """Run ``ffmpeg <args> -f rawvideo -pix_fmt rgb24 -`` and return frames (N, H, W, 3) uint8.

    ``args`` are the inputs and filters; the output frame size must be ``width``×``height``.
    Raises FfmpegError with ffmpeg's own reason when it fails.
    """
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", *args]
    cmd += ["-an", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise FfmpegError(f"ffmpeg timed out after {timeout:g} s") from None
    except FileNotFoundError:
        raise FfmpegError("ffmpeg is not installed (not found on PATH)") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.decode("utf-8", "replace").splitlines()]
        lines = [ln for ln in lines if ln]
        reason = lines[-1] if lines else f"ffmpeg exited with status {proc.returncode}"
        raise FfmpegError(reason[:300])
    frame = width * height * 3
    if len(proc.stdout) % frame:
        raise FfmpegError(
            f"ffmpeg wrote {len(proc.stdout)} bytes, not whole {width}x{height} frames"
        )
    return np.frombuffer(proc.stdout, dtype=np.uint8).reshape(-1, height, width, 3)


def ffmpeg_version() -> str:
    """First line of ``ffmpeg -version``, recorded in dataset provenance."""
    try:
        out = subprocess.run(["ffmpeg", "-version"], capture_output=True, check=False).stdout
    except FileNotFoundError:
        return "ffmpeg not found"
    first = out.decode("utf-8", "replace").splitlines()[:1]
    return first[0].strip() if first else "unknown"
