"""The class-score classifier: deterministic training, the cache, the record and the bar."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from diffusable.evaluation import classifier as clf
from diffusable.evaluation.classifier import (
    ClassifierConfig,
    ClassifierTooWeak,
    check_accuracy,
    get_classifier,
    train_classifier,
)
from diffusable.data.clips import write_dataset_meta, write_shard
from diffusable.evaluation.features import FeatureExtractor

TINY = ClassifierConfig(size=16, width=8, steps=3, batch_size=4, train_per_class=0)


def moving_squares(n: int, seed: int):
    """Two classes told apart by motion only: a square moving left (0) or right (1), 16x16x6."""
    rng = np.random.default_rng(seed)
    clips = np.zeros((n, 6, 16, 16, 3), np.uint8)
    labels = np.arange(n) % 2
    for i in range(n):
        x0, y0 = rng.integers(3, 9, 2)
        colour = rng.integers(80, 256, 3)
        step = 1 if labels[i] else -1
        for t in range(6):
            x = x0 + step * t // 2 + 2
            clips[i, t, y0 : y0 + 5, max(0, x) : x + 5] = colour
    return clips, labels


def make_dataset(root, train=8, val=4):
    for split, n, seed in (("train", train, 0), ("val", val, 1)):
        clips, labels = moving_squares(n, seed)
        write_shard(root, split, 0, clips, labels)
    split = {"train": train, "val": val}
    write_dataset_meta(
        root,
        {
            "name": "squares",
            "classes": ["left", "right"],
            "frames": 6,
            "height": 16,
            "width": 16,
            "fps": 8,
            "splits": {s: {"shards": [f"{s}-00000"], "count": n} for s, n in split.items()},
        },
    )
    return root


def test_training_is_deterministic_for_a_seed_and_leaves_the_global_rng_alone():
    clips, labels = moving_squares(8, 0)
    clips, labels = torch.from_numpy(clips), torch.from_numpy(labels)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = train_classifier(clips, labels, 2, TINY)
    assert torch.equal(torch.rand(3), before)  # callers seed their own work after this
    b = train_classifier(clips, labels, 2, TINY)
    c = train_classifier(clips, labels, 2, replace(TINY, seed=1))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_the_cached_classifier_is_reused_with_its_record(tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "squares")
    model, info = get_classifier(root, TINY)
    cached = list(root.glob("classifier-*.pt"))
    assert [p.name for p in cached] == [f"classifier-{info['key']}.pt"]
    assert info["weights_hash"] == clf.weights_hash(model)
    assert info["val_clips"] == 4 and info["train_clips"] == 8
    assert sum(map(sum, info["confusion"])) == 4 and set(info["val_per_class"]) <= {"left", "right"}
    assert 0.0 <= info["val_accuracy"] <= 1.0
    json.dumps(info)  # the record goes into JSON logs as it is

    def no_training(*_, **__):
        raise AssertionError("the cached classifier should have been loaded, not retrained")

    monkeypatch.setattr(clf, "train_classifier", no_training)
    again, info2 = get_classifier(root, TINY)
    assert info2 == info and clf.weights_hash(again) == info["weights_hash"]
    # size 0 means the dataset's own resolution: the same configuration, the same cache file
    assert get_classifier(root, replace(TINY, size=0))[1] == info
    # fd_cls3d names the classifier by the same hash and carries its accuracy
    described = FeatureExtractor.classifier(again, info2, frames=6).describe()
    assert described["extractor_hash"] == info["weights_hash"]
    assert described["val_accuracy"] == info["val_accuracy"]


def test_a_classifier_below_the_bar_is_refused(tmp_path):
    root = make_dataset(tmp_path / "squares")
    _, info = get_classifier(root, replace(TINY, steps=1))
    with pytest.raises(ClassifierTooWeak, match="below the bar"):
        check_accuracy({**info, "val_accuracy": 0.94})
    check_accuracy({**info, "val_accuracy": 0.95})
    check_accuracy({**info, "val_accuracy": 0.5}, bar=0.0)
    with pytest.raises(ClassifierTooWeak):
        check_accuracy({**info, "val_accuracy": None})
    # the command line reports the record and exits 3 below the bar, 0 when the bar is lowered
    argv = ["--data", str(root), "--steps", "1", "--threads", "1"]
    if info["val_accuracy"] < clf.MIN_VAL_ACCURACY:
        assert clf.main(argv) == 3
    assert clf.main(argv + ["--min-accuracy", "0"]) == 0


def test_motion_alone_is_learnt():
    """Same look, opposite motion: the frame differences make it a quick lesson."""
    clips, labels = moving_squares(16, 0)
    cfg = ClassifierConfig(size=16, width=8, steps=60, batch_size=8, lr=1e-2, augment=False)
    model = train_classifier(torch.from_numpy(clips), torch.from_numpy(labels), 2, cfg)
    val, val_labels = moving_squares(8, 1)
    video = torch.from_numpy(val).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
    assert (clf.predict(model, video, 16) == torch.from_numpy(val_labels)).all()


def test_a_shipped_classifier_is_used_when_the_cache_has_none(tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "squares")
    model, info = get_classifier(root, TINY)
    shipped = tmp_path / "shipped"
    cached = root / f"classifier-{info['key']}.pt"
    (shipped / root.name).mkdir(parents=True)
    cached.rename(shipped / root.name / cached.name)
    monkeypatch.setattr(clf, "SHIPPED", shipped)

    def no_training(*_, **__):
        raise AssertionError("the shipped classifier should have been loaded, not retrained")

    monkeypatch.setattr(clf, "train_classifier", no_training)
    assert clf.classifier_cached(root, TINY)
    assert get_classifier(root, TINY)[1] == info


def test_a_procedural_n_dataset_is_judged_by_its_default_sets_classifier(tmp_path, monkeypatch):
    """`--data procedural:N` (more train clips a class than the default set) is scored by the
    default set's classifier, so every run on one generator has the same judge, and the shipped
    classifier serves it; the default set is made if that classifier must be trained."""
    from diffusable.data import procedural
    from diffusable.data.clips import ClipDataset

    spec = dict(seed=6, size=16, frames=5, fps=8, train_per_class=2, val_per_class=1)
    monkeypatch.setattr(clf, "JUDGE_TRAIN_PER_CLASS", 2)
    bigger = procedural.ensure_procedural(tmp_path, **{**spec, "train_per_class": 3})
    default = bigger.parent / f"procedural-{procedural.ProceduralSpec(**spec).key()}"
    assert clf.judge_dataset(bigger) == default and not default.exists()
    assert not clf.classifier_cached(bigger, TINY)

    _, info = get_classifier(bigger, TINY)
    assert default == procedural.ensure_procedural(tmp_path, **spec)  # made, as the default set
    assert clf.judge_dataset(default) == default
    assert (default / f"classifier-{info['key']}.pt").is_file()
    assert info["train_data"] == default.name
    assert (
        info["train_clips"]
        == len(ClipDataset(default, "train"))
        < len(ClipDataset(bigger, "train"))
    )
    assert not list(bigger.glob("classifier-*"))

    def no_training(*_, **__):
        raise AssertionError("the default set's classifier should have been loaded")

    monkeypatch.setattr(clf, "train_classifier", no_training)
    assert clf.classifier_cached(bigger, TINY) and clf.classifier_cached(default, TINY)
    assert get_classifier(default, TINY)[1] == info == get_classifier(bigger, TINY)[1]
