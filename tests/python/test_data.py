"""Data: the clip-shard format, the procedural dataset and the real-video ingester.

Sizes are tiny (32², 9 frames, a few clips per class) so the file runs in seconds on 2 cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch

from diffusable.data import ingest, procedural
from diffusable.data.clips import ClipDataset, read_dataset_meta, write_dataset_meta, write_shard

SPEC = dict(seed=3, size=32, frames=9, fps=8, train_per_class=2, val_per_class=1)
PKG_ROOT = Path(__file__).resolve().parents[2] / "src" / "training"


def _files(root: Path) -> Dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def proc(tmp_path_factory) -> Path:
    return procedural.ensure_procedural(tmp_path_factory.mktemp("cache"), **SPEC)


# --- the shard format ----------------------------------------------------------------------


def test_clip_dataset_reads_shards_in_order(tmp_path):
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, size=(7, 5, 8, 6, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2, 0])
    stems = [write_shard(tmp_path, "train", 0, clips[:4], labels[:4])]
    stems.append(write_shard(tmp_path, "train", 1, clips[4:], labels[4:]))
    write_dataset_meta(
        tmp_path,
        {
            "name": "t",
            "classes": ["a", "b", "c"],
            "frames": 5,
            "height": 8,
            "width": 6,
            "fps": 4,
            "splits": {"train": {"shards": stems, "count": 7}},
            "source": {},
            "failed": [],
        },
    )
    assert stems == ["train-00000", "train-00001"]
    ds = ClipDataset(tmp_path, "train")
    assert len(ds) == 7 and ds.classes == ["a", "b", "c"] and ds.frames == 5 and ds.fps == 4
    video, label = ds[5]
    assert video.shape == (3, 5, 8, 6) and video.dtype == torch.float32 and label == 2
    expect = torch.from_numpy(clips[5]).permute(3, 0, 1, 2).float() / 127.5 - 1
    assert torch.equal(video, expect)
    order = [6, 0, 4, 3, -1]
    batch, blabels = ds.batch(order)
    assert batch.shape == (5, 3, 5, 8, 6) and blabels.dtype == torch.int64
    assert torch.equal(batch, torch.stack([ds[i][0] for i in order]))
    assert blabels.tolist() == [int(labels[i]) for i in order]
    with pytest.raises(IndexError):
        ds.batch([7])


def test_write_shard_rejects_wrong_dtype(tmp_path):
    with pytest.raises(ValueError):
        write_shard(tmp_path, "train", 0, np.zeros((2, 3, 4, 4, 3), np.float32), np.zeros(2))


# --- procedural ----------------------------------------------------------------------------


def test_procedural_layout_shapes_and_range(proc):
    meta = read_dataset_meta(proc)
    assert proc.name.startswith("procedural-")
    n = len(meta["classes"])
    assert n >= 10 and len(set(meta["classes"])) == n
    assert (meta["frames"], meta["height"], meta["width"], meta["fps"]) == (9, 32, 32, 8)
    assert meta["splits"]["train"]["count"] == 2 * n and meta["splits"]["val"]["count"] == n
    for stem in meta["splits"]["train"]["shards"]:
        clips = np.load(proc / f"{stem}.clips.npy")
        labels = np.load(proc / f"{stem}.labels.npy")
        assert clips.dtype == np.uint8 and clips.shape[1:] == (9, 32, 32, 3)
        assert labels.dtype == np.int64 and labels.shape == (clips.shape[0],)
    for split in ("train", "val"):
        ds = ClipDataset(proc, split)
        video, labels = ds.batch(range(len(ds)))
        assert video.shape == (len(ds), 3, 9, 32, 32) and video.dtype == torch.float32
        assert video.min() >= -1 and video.max() <= 1
        assert sorted(set(labels.tolist())) == list(range(n))  # every class in every split
    assert not [p for p in proc.parent.iterdir() if ".tmp-" in p.name]  # no temp leftovers


def test_procedural_is_deterministic_and_cached(proc, tmp_path):
    again = procedural.ensure_procedural(tmp_path, **SPEC)
    assert again.name == proc.name and _files(again) == _files(proc)  # byte-identical
    stamp = (again / "dataset.json").stat().st_mtime_ns
    assert procedural.ensure_procedural(tmp_path, **SPEC) == again  # cached: not rebuilt
    assert (again / "dataset.json").stat().st_mtime_ns == stamp
    assert procedural.ProceduralSpec(fps=8).key() == procedural.ProceduralSpec(fps=8.0).key()
    other = procedural.ensure_procedural(tmp_path, **{**SPEC, "seed": 4, "train_per_class": 1})
    assert other != again
    a = ClipDataset(again, "train").batch(range(13))[0]
    b = ClipDataset(other, "train").batch(range(13))[0]
    assert not torch.equal(a, b)


def _stats(video: torch.Tensor) -> torch.Tensor:
    """Per clip: mean RGB, contrast, motion (mean |frame difference|), edges."""
    mean = video.mean(dim=(2, 3, 4))
    contrast = video.std(dim=(1, 2, 3, 4))[:, None]
    motion = (video[:, :, 1:] - video[:, :, :-1]).abs().mean(dim=(1, 2, 3, 4))[:, None]
    edges = (video[..., 1:] - video[..., :-1]).abs().mean(dim=(1, 2, 3, 4))[:, None]
    return torch.cat([mean, contrast, motion, edges], dim=1)


def test_procedural_classes_move_vary_and_differ(proc):
    ds = ClipDataset(proc, "train")
    video, labels = ds.batch(range(len(ds)))
    stats = _stats(video)
    motion = stats[:, 4]
    for k, name in enumerate(ds.classes):
        idx = (labels == k).nonzero()[:, 0]
        assert (motion[idx] > 1e-3).all(), f"{name}: a clip does not move"
        assert (stats[idx, 3] > 0.02).all(), f"{name}: a clip is flat"
        assert not torch.equal(video[idx[0]], video[idx[1]]), f"{name}: clips are identical"
    centroids = torch.stack([stats[labels == k].mean(0) for k in range(len(ds.classes))])
    dist = torch.cdist(centroids, centroids) + torch.eye(len(ds.classes)) * 1e9
    assert dist.min() > 0.01, "two classes have the same frame statistics"


def test_procedural_cli_writes_to_out(tmp_path):
    out = tmp_path / "ds"
    args = [sys.executable, "-m", "diffusable.data.procedural", "--out", str(out)]
    args += ["--seed", "1", "--size", "16", "--frames", "5", "--fps", "4"]
    args += ["--train-per-class", "1", "--val-per-class", "0"]
    run = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(out)
    assert len(ClipDataset(out, "train")) == len(procedural.CLASSES)
    assert len(ClipDataset(out, "val")) == 0


# --- ingester ------------------------------------------------------------------------------


def _env() -> Dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(PKG_ROOT)}


def _make_video(path: Path, source: str, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = "mpeg1video" if path.suffix == ".mpg" else "mpeg4"  # built into every ffmpeg
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", source]
    cmd += ["-t", str(seconds), "-c:v", codec, "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, check=True)


@pytest.fixture()
def videos(tmp_path) -> Path:
    src = tmp_path / "videos"
    _make_video(src / "alpha" / "a1.mp4", "testsrc=s=80x48:r=10", 2.5)  # wide: crop sides
    _make_video(src / "alpha" / "a2.mkv", "mandelbrot=s=48x64:r=12", 2.0)  # tall
    _make_video(src / "beta" / "b1.avi", "life=s=64x64:r=10:seed=1", 2.0)
    _make_video(src / "beta" / "b2.mpg", "testsrc2=s=64x64:r=25", 2.0)
    _make_video(src / "beta" / "short.mp4", "testsrc2=s=64x64:r=25", 0.3)
    (src / "beta" / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    (src / "alpha" / "notes.mp4").write_text("not a video, just text\n")
    return src


ARGS = ["--frames", "9", "--fps", "8", "--size", "32", "--workers", "2"]
ARGS += ["--val-fraction", "0.25", "--clips-per-video", "2"]
BAD = {"corrupt.mp4", "notes.mp4", "short.mp4"}


def _all_clips(out: Path) -> List[bytes]:
    meta = read_dataset_meta(out)
    found = []
    for split in meta["splits"].values():
        for stem in split["shards"]:
            found += [c.tobytes() for c in np.load(out / f"{stem}.clips.npy")]
    return found


def test_ingest_skips_bad_videos_and_resumes(videos, tmp_path, capsys):
    out = tmp_path / "out"
    assert ingest.main(["--src", str(videos), "--out", str(out), *ARGS]) == 0
    err = capsys.readouterr().err
    meta = read_dataset_meta(out)
    assert meta["classes"] == ["alpha", "beta"]
    assert {Path(f["path"]).name for f in meta["failed"]} == BAD
    assert all(f["reason"] for f in meta["failed"])
    assert "too short" in {Path(f["path"]).name: f["reason"] for f in meta["failed"]}["short.mp4"]
    for name in BAD:
        assert name in err  # the summary lists every skipped file with its reason
    assert "clips/s" in err
    counts = {k: v["count"] for k, v in meta["splits"].items()}
    assert counts["train"] + counts["val"] == 4 * 2 and counts["val"] > 0
    train, val = ClipDataset(out, "train"), ClipDataset(out, "val")
    video, _ = train[0]
    assert video.shape == (3, 9, 32, 32) and -1 <= video.min() and video.max() <= 1
    assert sorted(set(train.labels.tolist()) | set(val.labels.tolist())) == [0, 1]
    before = _files(out)
    assert len(set(_all_clips(out))) == 8  # two distinct clips from each good video

    # A rerun finds everything done: no new shards, same bytes, failures still reported.
    assert ingest.main(["--src", str(videos), "--out", str(out), *ARGS]) == 0
    err = capsys.readouterr().err
    assert "0 new videos" in err and "notes.mp4" in err
    after = _files(out)
    assert {k: v for k, v in after.items() if k.endswith(".npy")} == {
        k: v for k, v in before.items() if k.endswith(".npy")
    }

    # A new video is ingested alone; existing shards are kept untouched, nothing duplicates.
    _make_video(videos / "alpha" / "a3.mp4", "testsrc2=s=96x72:r=15", 2.0)
    assert ingest.main(["--src", str(videos), "--out", str(out), *ARGS]) == 0
    assert "1 new videos" in capsys.readouterr().err
    after = _files(out)
    assert all(after[k] == v for k, v in before.items() if k.endswith(".npy"))
    clips = _all_clips(out)
    assert len(clips) == 10 and len(set(clips)) == 10


def test_ingest_resume_discards_unrecorded_shards(videos, tmp_path, capsys):
    out = tmp_path / "out"
    assert ingest.main(["--src", str(videos), "--out", str(out), *ARGS]) == 0
    # Simulate a crash between writing a shard and recording it: the stray must not count.
    stray = np.zeros((1, 9, 32, 32, 3), np.uint8)
    write_shard(out, "train", 7, stray, np.zeros(1, np.int64))
    assert ingest.main(["--src", str(videos), "--out", str(out), *ARGS]) == 0
    capsys.readouterr()
    assert not (out / "train-00007.clips.npy").exists()
    assert len(_all_clips(out)) == 8


def test_ingest_kinetics_csv(videos, tmp_path, capsys):
    root = tmp_path / "k700"
    for rel, src in [
        ("train/air drumming/xyz_000010_000020.mp4", "alpha/a1.mp4"),
        ("train/abseiling/qqq_000005_000015.mp4", "beta/b1.avi"),
        ("val/abseiling/abc_000000_000010.mp4", "alpha/a2.mkv"),
    ]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes((videos / src).read_bytes())
    rows = [
        "label,youtube_id,time_start,time_end,split",
        "air drumming,xyz,10,20,train",
        "abseiling,qqq,5,15,train",
        "abseiling,abc,0,10,val",
        "abseiling,gone,0,10,train",
    ]
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    assert ingest.main(["--src", str(root / "train.csv"), "--out", str(out), *ARGS]) == 0
    capsys.readouterr()
    meta = read_dataset_meta(out)
    assert meta["classes"] == ["abseiling", "air drumming"]
    assert meta["splits"]["train"]["count"] == 4 and meta["splits"]["val"]["count"] == 2
    assert [f["reason"].split(":")[0] for f in meta["failed"]] == ["video file not found"]


@pytest.mark.parametrize("case", ["missing", "empty"])
def test_ingest_bad_arguments_give_one_line(tmp_path, case):
    src = tmp_path / ("nope" if case == "missing" else "empty")
    if case == "empty":
        src.mkdir()
    args = [sys.executable, "-m", "diffusable.data.ingest", "--src", str(src)]
    args += ["--out", str(tmp_path / "out")]
    run = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=120)
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and str(src) in lines[0], run.stderr


def test_clip_starts_spread_over_the_video():
    assert ingest.clip_starts(8, 9, 1) == []
    assert ingest.clip_starts(9, 9, 3) == [0]
    assert ingest.clip_starts(40, 9, 3) == [0, 16, 31]
    assert ingest.clip_starts(27, 9, 3) == [0, 9, 18]  # exactly fits: no overlap


def test_split_assignment_is_stable_and_keeps_every_class_in_train():
    vids = [ingest.Video(f"c{c}/v{i}.mp4", None, f"c{c}", None) for c in range(3) for i in range(5)]
    a = ingest.assign_splits(vids, 0.2)
    assert a == ingest.assign_splits(list(reversed(vids)), 0.2)
    for c in range(3):
        got = [a[v.key] for v in vids if v.label == f"c{c}"]
        assert got.count("val") == 1 and got.count("train") == 4


def test_ingest_refuses_a_folder_it_did_not_make(videos, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("someone else's file\n")
    assert ingest.main(["--src", str(videos), "--out", str(out), *ARGS]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (out / "keep.txt").exists()


def test_procedural_n_names_a_larger_dataset_that_only_adds_train_clips(proc, tmp_path):
    from diffusable.data.datasets import parse_procedural

    assert parse_procedural("procedural", 48) == 48
    assert parse_procedural("procedural:240", 48) == 240
    assert parse_procedural("runs/clips", 48) is None
    for bad in ("procedural:", "procedural:0", "procedural:x", "procedural:-3"):
        with pytest.raises(ValueError, match="procedural:N"):
            parse_procedural(bad, 48)
    bigger = procedural.ensure_procedural(tmp_path, **{**SPEC, "train_per_class": 3})
    small_val, big_val = ClipDataset(proc, "val"), ClipDataset(bigger, "val")
    assert torch.equal(small_val.batch(range(len(small_val)))[0], big_val.batch(range(17))[0])
    small, big = ClipDataset(proc, "train"), ClipDataset(bigger, "train")
    assert len(big) == 3 * 17 and len(small) == 2 * 17
    big_clips = big.batch(range(len(big)))[0].flatten(1)
    for i in range(len(small)):  # each of the smaller dataset's clips is one of the larger's
        clip = small.batch([i])[0].flatten(1)
        assert (big_clips == clip).all(dim=1).any(), f"train clip {i} is not in the larger set"
