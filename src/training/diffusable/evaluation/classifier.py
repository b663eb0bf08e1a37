"""Class score: a small video classifier trained on the real clips' labels, used to ask whether a
generated clip of class c looks like class c (its accuracy on generated clips, per class).

    PYTHONPATH=src/training /usr/bin/python3 -m diffusable.evaluation.classifier --threads 1

The network (``motion3d``) sees every frame *and* its difference from the previous one, so
motion is an input rather than something to infer: a 4x4 patch stem, four 3D conv stages
(GroupNorm, SiLU) and a global mean pool give the features (``features``, what fd_cls3d reads)
that a linear head classifies. It trains on the train split only, with random horizontal flips,
crops of 81-100% of the frame resized back, and windows of the last three quarters of the
frames or more (the global pool takes any length); it is evaluated on val.

The classifier is trained once per dataset and configuration and cached next to the dataset
(classifier-<key>.pt). Its record (``info``) goes beside every score: key, weights hash, val
accuracy overall and per class, confusion matrix. A class score is only as good as that
accuracy; ``check_accuracy`` refuses a classifier below MIN_VAL_ACCURACY.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import paths
from ..atomic_file import atomic_write
from ..models.checkpoint import torch_load_trusted

# The bar for a classifier whose scores mean something (issue 21): top-1 on real val clips.
MIN_VAL_ACCURACY = 0.95


@dataclass(frozen=True)
class ClassifierConfig:
    size: int = 0  # frames are resized to size x size; 0: the dataset's own resolution
    width: int = 32
    steps: int = 2400
    batch_size: int = 32  # larger batches run slower per clip on this CPU
    lr: float = 3e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    augment: bool = True
    seed: int = 0
    arch: str = "motion3d-1"  # names the network and training recipe: part of the cache key
    # A procedural dataset's classifier trains on this many clips per class of the same generator
    # and seed (train split; the dataset's own train clips are the first of them, its val split is
    # the same); 0, or any other dataset: the dataset's own train split.
    train_per_class: int = 144


class ClassifierTooWeak(ValueError):
    """A classifier's val accuracy is below the bar asked for: its scores would mean little."""


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(8, c)


def _stage(c_in: int, c_out: int, kernel, stride=1, padding=1) -> List[nn.Module]:
    return [nn.Conv3d(c_in, c_out, kernel, stride, padding), _norm(c_out), nn.SiLU()]


ARCHS = ("motion3d-1", "motion3d-2")


class VideoClassifier(nn.Module):
    """motion3d-1: 4x4 patches, then 3D convs at 1/4, 1/8, 1/16 of the frame. motion3d-2: 2x2
    patches and a first 3D conv at 1/2, so motion up to about 6 px a frame is seen directly."""

    def __init__(self, num_classes: int, width: int = 32, arch: str = "motion3d-1"):
        super().__init__()
        w = width
        if arch == "motion3d-1":
            layers = _stage(6, w, (1, 4, 4), (1, 4, 4), 0) + _stage(w, w, 3)
        elif arch == "motion3d-2":
            layers = _stage(6, w // 2, (1, 2, 2), (1, 2, 2), 0) + _stage(w // 2, w, 3, (1, 2, 2))
        else:
            raise ValueError(f"unknown classifier arch {arch!r} (have {', '.join(ARCHS)})")
        layers += _stage(w, 2 * w, 3, 2) + _stage(2 * w, 2 * w, 3) + _stage(2 * w, 4 * w, 3, 2)
        self.net = nn.Sequential(*layers)
        self.head = nn.Linear(4 * w, num_classes)

    def features(self, video: torch.Tensor) -> torch.Tensor:  # (B, 3, T, S, S) in [-1, 1]
        motion = torch.cat([torch.zeros_like(video[:, :, :1]), video.diff(dim=2)], dim=2)
        x = torch.cat([video, 4.0 * motion], dim=1)  # (B, 6, T, S, S)
        return self.net(x).mean(dim=(2, 3, 4))  # (B, 4 * width): what the head reads

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(video))  # (B, classes) logits


def weights_hash(model: nn.Module) -> str:
    from .features import weights_hash as _hash

    return _hash(model)


def _resize(video: torch.Tensor, size: int) -> torch.Tensor:
    b, c, t, h, w = video.shape
    if (h, w) == (size, size):
        return video
    frames = video.transpose(1, 2).reshape(b * t, c, h, w)
    frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
    return frames.reshape(b, t, c, size, size).transpose(1, 2)


def _to_video(clips: torch.Tensor) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, 3, T, H, W) in [-1, 1], as ClipDataset.batch gives."""
    return clips.permute(0, 4, 1, 2, 3).float().div_(127.5).sub_(1.0)


def augment(video: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """Random time window, crop, resize to size and horizontal flip: (B, 3, T', size, size).

    One window length per batch (so the clips stack), at a random start per clip; the crop
    (81-100% of the side, anywhere in the frame) and the flip go through one affine grid.
    """
    b, c, t, h, w = video.shape
    n = int(torch.randint(max(1, t - t // 4), t + 1, (1,), generator=g))
    start = torch.randint(0, t - n + 1, (b,), generator=g)
    idx = (start[:, None] + torch.arange(n))[:, None, :, None, None].expand(b, c, n, h, w)
    video = video.gather(2, idx)
    scale = 1.0 - 0.19 * torch.rand(b, generator=g)
    shift = (2 * torch.rand(b, 2, generator=g) - 1) * (1 - scale)[:, None]
    flip = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = scale * flip
    theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    frames = video.transpose(1, 2).reshape(b * n, c, h, w)
    grid = F.affine_grid(theta.repeat_interleave(n, 0), [b * n, c, size, size], False)
    frames = F.grid_sample(frames, grid, "bilinear", "border", align_corners=False)
    return frames.reshape(b, n, c, size, size).transpose(1, 2)


@torch.no_grad()
def predict(
    model: VideoClassifier, video: torch.Tensor, size: int, batch: int = 32
) -> torch.Tensor:
    model.eval()
    device = next(model.parameters()).device  # the video may sit elsewhere (CPU beside a GPU)
    return torch.cat(
        [
            model(_resize(video[i : i + batch].to(device), size)).argmax(1).cpu()
            for i in range(0, len(video), batch)
        ]
    )


def _all_clips(ds) -> Tuple[torch.Tensor, torch.Tensor]:
    """A whole split in memory as uint8 (N, T, H, W, 3) and labels (N,)."""
    clips = np.concatenate([np.asarray(a) for a in ds._arrays()])
    return torch.from_numpy(clips), torch.from_numpy(ds.labels.copy())


def _lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over the first tenth of the steps, then a cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + float(np.cos(np.pi * (step - warmup) / max(1, total - warmup))))


def train_classifier(
    clips: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    cfg: ClassifierConfig,
    log_every: int = 0,
) -> VideoClassifier:
    """Train on uint8 clips (N, T, H, W, 3); the same seed gives the same weights on CPU.

    torch's global RNG is left as it was: callers seed their own work after this.
    """
    if cfg.size <= 0:
        raise ValueError("ClassifierConfig.size must be resolved (> 0) before training")
    g = torch.Generator().manual_seed(cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = VideoClassifier(num_classes, cfg.width, cfg.arch)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = max(1, cfg.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: _lr_factor(i, warmup, cfg.steps))
    model.train()
    t0 = time.time()
    for step in range(cfg.steps):
        idx = torch.randint(len(clips), (cfg.batch_size,), generator=g)
        video = _to_video(clips[idx])
        video = augment(video, cfg.size, g) if cfg.augment else _resize(video, cfg.size)
        loss = F.cross_entropy(model(video), labels[idx], label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log_every and ((step + 1) % log_every == 0 or step + 1 == cfg.steps):
            print(
                f"classifier: step {step + 1}/{cfg.steps}, loss {loss.item():.3f}, "
                f"{time.time() - t0:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    return model.eval()


def evaluate(
    model: VideoClassifier, video: torch.Tensor, labels: torch.Tensor, classes: List[str], size
) -> Dict:
    """Top-1 accuracy overall and per class, and the confusion matrix (rows: true class)."""
    pred = predict(model, video, size)
    k = len(classes)
    confusion = torch.zeros(k, k, dtype=torch.long)
    confusion.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
    per_class = {
        name: float(confusion[c, c] / confusion[c].sum())
        for c, name in enumerate(classes)
        if confusion[c].sum() > 0
    }
    return {
        "val_accuracy": float((pred == labels).float().mean()) if len(labels) else float("nan"),
        "val_per_class": per_class,
        "confusion": confusion.tolist(),
    }


def classifier_key(cfg: ClassifierConfig) -> str:
    return hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:10]


def training_data(data_root: Path, train_per_class: int) -> Path:
    """The dataset whose train split the classifier of data_root learns from: data_root itself,
    or, for a procedural dataset with fewer than train_per_class train clips per class, the same
    generator, seed and val split with that many (made and cached beside it on first use)."""
    from ..data.procedural import build_procedural

    spec = _procedural_spec(Path(data_root))
    if spec is None or train_per_class <= spec.train_per_class:
        return Path(data_root)
    more = replace(spec, train_per_class=train_per_class)
    return build_procedural(Path(data_root).parent / f"procedural-{more.key()}", more)


# Classifiers committed with the repository (docs/results/classifier/<dataset>/), so that a fresh
# clone scores samples without first training one for an hour and a half on a CPU.
SHIPPED = paths.REPO_ROOT / "docs" / "results" / "classifier"

# A procedural dataset with more train clips per class than this (`--data procedural:N`) is judged
# by the classifier of the same spec with this many: the default set, whose classifier ships.
JUDGE_TRAIN_PER_CLASS = 48


def _procedural_spec(data_root: Path):
    """The ProceduralSpec data_root was made from (current generator, key intact), else None."""
    from ..data.clips import read_dataset_meta
    from ..data.procedural import GENERATOR_VERSION, ProceduralSpec

    source = read_dataset_meta(data_root).get("source", {})
    if source.get("kind") != "procedural" or source.get("version") != GENERATOR_VERSION:
        return None
    spec = ProceduralSpec(**source["spec"])
    return spec if spec.key() == source.get("key") else None


def _judge_spec(data_root: Path):
    """For a procedural set with more than JUDGE_TRAIN_PER_CLASS train clips a class, the spec of
    the same generator, seed and val split with that many; else None."""
    spec = _procedural_spec(Path(data_root))
    if spec is None or spec.train_per_class <= JUDGE_TRAIN_PER_CLASS:
        return None
    return replace(spec, train_per_class=JUDGE_TRAIN_PER_CLASS)


def judge_dataset(data_root: Path) -> Path:
    """The dataset whose classifier scores samples of data_root: data_root itself, or the folder
    of its _judge_spec (made only if its classifier must be trained). The judge is then the same
    for every run on that generator, whatever N it trained on, and the val split it reports on
    is the same clips."""
    judge = _judge_spec(data_root)
    return (
        Path(data_root) if judge is None else Path(data_root).parent / f"procedural-{judge.key()}"
    )


def _cache_path(data_root: Path, cfg: ClassifierConfig) -> Tuple[Path, ClassifierConfig]:
    from ..data.clips import ClipDataset

    cfg = replace(cfg, size=cfg.size or ClipDataset(data_root, "val").height)
    judge = judge_dataset(data_root)
    path = judge / f"classifier-{classifier_key(cfg)}.pt"
    shipped = SHIPPED / judge.name / path.name
    if not path.is_file() and shipped.is_file():
        return shipped, cfg
    return path, cfg


def classifier_cached(data_root: Path, cfg: ClassifierConfig = ClassifierConfig()) -> bool:
    """Whether get_classifier would load this classifier rather than train it."""
    return _cache_path(data_root, cfg)[0].is_file()


def get_classifier(
    data_root: Path, cfg: ClassifierConfig = ClassifierConfig()
) -> Tuple[VideoClassifier, Dict]:
    """Train (or load the cached) classifier for a clip dataset; returns it and its record."""
    from ..data.clips import ClipDataset

    val = ClipDataset(data_root, "val")
    path, cfg = _cache_path(data_root, cfg)
    key = classifier_key(cfg)
    if path.is_file():
        state = torch_load_trusted(path)
        model = VideoClassifier(len(val.classes), cfg.width, cfg.arch)
        model.load_state_dict(state["model"])
        return model.eval(), state["info"]
    t0 = time.time()
    judge, judge_spec = path.parent, _judge_spec(data_root)
    if judge_spec is not None:  # the default set of a procedural:N dataset, made on first use
        from ..data.procedural import build_procedural

        build_procedural(judge, judge_spec)
    train = ClipDataset(training_data(judge, cfg.train_per_class), "train")
    if train.classes != val.classes:
        raise ValueError(f"{train.root}: classes differ from {data_root}'s")
    clips, labels = _all_clips(train)
    print(
        f"classifier: training {key} on {len(train)} clips of {train.meta.get('name')} "
        f"(cached as {path.name} when done)",
        file=sys.stderr,
        flush=True,
    )
    model = train_classifier(clips, labels, len(train.classes), cfg, log_every=50)
    del clips
    train_s = time.time() - t0
    video, labels = val.batch(list(range(len(val))))
    info = {
        "config": asdict(cfg),
        "key": key,
        "weights_hash": weights_hash(model),
        **evaluate(model, video, labels, val.classes, cfg.size),
        "val_clips": len(val),
        "train_clips": len(train),
        "train_data": train.meta.get("name", train.root.name),
        "classes": list(train.classes),
        "train_s": round(train_s, 1),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    # concurrent trainers (denoisers started together on a fresh machine) each rename their own
    atomic_write(path, lambda f: torch.save({"model": model.state_dict(), "info": info}, f))
    return model, info


def check_accuracy(info: Dict, bar: float = MIN_VAL_ACCURACY) -> None:
    """Raise ClassifierTooWeak when the classifier's val accuracy is below bar."""
    acc = info.get("val_accuracy")
    if acc is None or not acc >= bar:
        raise ClassifierTooWeak(
            f"classifier {info.get('key')} scores {acc} top-1 on {info.get('val_clips')} real val "
            f"clips, below the bar of {bar}: its class scores and fd_cls3d would mean little "
            "(train it longer or with another ClassifierConfig; --min-accuracy 0 skips this check)"
        )


def class_scores(
    model: VideoClassifier, video: torch.Tensor, labels: torch.Tensor, classes: List[str], size: int
) -> Dict[str, float]:
    """Accuracy of the classifier on (generated) clips, per intended class and overall."""
    return scores_of(predict(model, video, size), labels, classes)


def scores_of(pred: torch.Tensor, labels: torch.Tensor, classes: List[str]) -> Dict[str, float]:
    """class_scores from predictions already made (a caller that also draws them)."""
    scores = {}
    for c, name in enumerate(classes):
        mask = labels == c
        if mask.any():
            scores[name] = float((pred[mask] == c).float().mean())
    scores["mean"] = float((pred == labels).float().mean())
    return scores


def confusion_markdown(info: Dict) -> str:
    """The record's confusion matrix as a Markdown table (rows: true class, columns: predicted)."""
    classes: List[str] = info["classes"]
    short = [str(i) for i in range(len(classes))]
    lines = [
        "| # | true class | " + " | ".join(short) + " | accuracy |",
        "|---" * (len(classes) + 3) + "|",
    ]
    for i, (name, row) in enumerate(zip(classes, info["confusion"])):
        cells = " | ".join(str(v) if v else "." for v in row)
        acc = info["val_per_class"].get(name, float("nan"))
        lines.append(f"| {i} | {name} | {cells} | {acc:.3f} |")
    return "\n".join(lines)


def _evaluate_other_seed(
    model: VideoClassifier, info: Dict, root: Path, seed: int, per_class: int
) -> Dict:
    """The classifier's accuracy on val clips of the same procedural spec made with another seed."""
    from ..data.clips import ClipDataset, read_dataset_meta
    from ..data.procedural import ensure_procedural

    source = read_dataset_meta(root).get("source", {})
    if source.get("kind") != "procedural":
        raise ValueError(f"{root}: --eval-seed needs a procedural dataset")
    spec = {**source["spec"], "seed": seed, "train_per_class": 1, "val_per_class": per_class}
    other = ensure_procedural(root.parent, **spec)
    val = ClipDataset(other, "val")
    if val.classes != info["classes"]:
        raise ValueError(f"{other}: classes differ from the classifier's")
    video, labels = val.batch(list(range(len(val))))
    result = evaluate(model, video, labels, val.classes, info["config"]["size"])
    return {**result, "dataset": val.meta.get("name"), "val_clips": len(val)}


def main(argv: Optional[List[str]] = None) -> int:
    from ..data.datasets import DATA_HELP, resolve_dataset
    from ..threads import set_threads

    ap = argparse.ArgumentParser(description="Train (or load) the class-score classifier.")
    ap.add_argument("--data", default="procedural", help=DATA_HELP)
    ap.add_argument("--steps", type=int, default=ClassifierConfig().steps)
    ap.add_argument("--seed", type=int, default=ClassifierConfig().seed)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--json", help="also write the record here")
    ap.add_argument("--min-accuracy", type=float, default=MIN_VAL_ACCURACY)
    ap.add_argument(
        "--eval-seed",
        type=int,
        help="procedural: also score EVAL_VAL_PER_CLASS val clips per class of the dataset made "
        "with this seed (never trained on), a tighter estimate than 8 clips per class",
    )
    ap.add_argument("--eval-val-per-class", type=int, default=24)
    args = ap.parse_args(argv)
    set_threads(args.threads)
    try:
        from ..models.pca_residual_vae import get_config

        root = resolve_dataset(args.data, get_config("small"))
        cfg = ClassifierConfig(steps=args.steps, seed=args.seed)
        t0 = time.time()
        model, info = get_classifier(root, cfg)
        extra = None
        if args.eval_seed is not None:
            extra = _evaluate_other_seed(model, info, root, args.eval_seed, args.eval_val_per_class)
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"classifier: {err}", file=sys.stderr)
        return 2
    print(
        f"classifier {info['key']} (weights {info['weights_hash']}): val top-1 "
        f"{info['val_accuracy']:.3f} on {info['val_clips']} clips; trained in "
        f"{info['train_s']:.0f} s at {info['threads']} threads on {info['train_clips']} clips "
        f"of {info['train_data']} (this call {time.time() - t0:.0f} s)"
    )
    print(confusion_markdown(info))
    if extra is not None:
        print(
            f"\nval clips of the procedural dataset with seed {args.eval_seed} "
            f"({extra['dataset']}): top-1 {extra['val_accuracy']:.3f} on {extra['val_clips']}"
        )
        print(confusion_markdown({**extra, "classes": info["classes"]}))
    if args.json:
        out = {**info, "other_seed": extra} if extra is not None else info
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    try:
        check_accuracy(info, args.min_accuracy)
    except ClassifierTooWeak as err:
        print(f"classifier: {err}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
