"""Choose a bundle's sampler defaults by measurement: guidance x steps x method on one run.

    PYTHONPATH=src/training /usr/bin/python3 -m diffusable.experiments.sampler_sweep \
        --dit runs/protocol-conv/dit-conv-compact-se --guidance 1.5 2 3 4 --steps 16 \
        --json runs/sweep-se.json --threads 1

Every setting samples the same noise and labels (`--per-class` clips of every class, label only)
with the run's EMA denoiser, decodes them with its autoencoder and reports the class score (the
class-score classifier's top-1 on the intended labels), fd_cls3d against real train clips and
the 8-px grid ratio. `denoiser_bundle --guidance/--steps/--method` writes the chosen setting into
the bundle's manifest.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Tuple

import torch

from ..evaluation.classifier import ClassifierConfig, get_classifier, predict, scores_of
from .context_eval import ContextSampler
from ..data.clips import ClipDataset
from ..data.datasets import resolve_dataset
from ..evaluation.features import FeatureExtractor
from ..models.flow import SAMPLER_METHODS, check_guidance_interval, check_shift
from ..evaluation.frechet import feature_stats, frechet_distance
from ..evaluation.metrics import grid_ratio, grid_steps
from ..evaluation.sample_sheet import contact_sheet
from ..threads import set_threads


def parse_interval(text: str) -> Tuple[float, float]:
    """ "lo,hi" -> (lo, hi), checked as flow.sample checks it."""
    try:
        lo, hi = (float(p) for p in text.split(","))
    except ValueError:
        raise ValueError(f"{text!r} is not two numbers lo,hi") from None
    return check_guidance_interval((lo, hi))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Sweep sampler settings of a diffusion run.")
    ap.add_argument("--dit", required=True, help="diffusion run folder (or checkpoint)")
    ap.add_argument("--ae", help="autoencoder checkpoint (default: the one the run recorded)")
    ap.add_argument("--guidance", type=float, nargs="+", default=[1.5, 2.0, 3.0, 4.0])
    ap.add_argument("--steps", type=int, nargs="+", default=[16])
    ap.add_argument("--method", nargs="+", default=["euler"], choices=SAMPLER_METHODS)
    ap.add_argument(
        "--interval",
        nargs="+",
        default=["0,1"],
        help="guidance intervals lo,hi in t (guidance only where lo <= t <= hi); 0,1: every step",
    )
    ap.add_argument("--shift", type=float, nargs="+", default=[1.0], help="time-grid shifts")
    ap.add_argument("--per-class", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default="procedural")
    ap.add_argument("--classifier-steps", type=int, default=ClassifierConfig().steps)
    ap.add_argument("--json", help="also write the table here")
    ap.add_argument(
        "--sheet",
        help="a contact sheet of each setting's clips here (PNG; with several settings, "
        "one per setting: NAME-1.png, NAME-2.png, ... in the table's order)",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    if args.per_class < 1 or min(args.steps) < 1:
        print("sampler_sweep: --per-class and --steps must be >= 1", file=sys.stderr)
        return 2
    if args.sheet and (Path(args.sheet).suffix.lower() != ".png" or Path(args.sheet).is_dir()):
        print(f"sampler_sweep: --sheet must name a .png file, got {args.sheet}", file=sys.stderr)
        return 2
    # checked before the models load, as flow.sample would check them after
    try:
        flag = "--interval"
        intervals = [parse_interval(text) for text in args.interval]
        flag = "--shift"
        for shift in args.shift:
            check_shift(shift)
    except ValueError as err:
        print(f"sampler_sweep: {flag}: {err}", file=sys.stderr)
        return 2
    try:
        s = ContextSampler(Path(args.dit), 1, None, Path(args.ae) if args.ae else None)
        root = resolve_dataset(args.data, s.vae.cfg)
        classifier, info = get_classifier(root, ClassifierConfig(steps=args.classifier_steps))
        train = ClipDataset(root, "train")
    except (FileNotFoundError, KeyError, ValueError) as err:
        print(f"sampler_sweep: {err}", file=sys.stderr)
        return 2
    k = len(s.classes)
    labels = torch.arange(k).repeat_interleave(args.per_class)  # (N,)
    g = torch.Generator().manual_seed(args.seed)
    # (C, t, h, w) of one clip's latents, from the autoencoder's config
    shape = s.vae.cfg.latent_shape(train.frames, train.height, train.width)
    noise = torch.randn((len(labels),) + tuple(shape), generator=g)
    cls3d = FeatureExtractor.classifier(classifier, info, train.frames)
    real_idx = torch.randperm(len(train), generator=g)[: len(labels)].tolist()
    real = feature_stats(cls3d.features(train.batch(real_idx)[0]))
    size = info["config"]["size"]
    rows = []
    settings = list(
        itertools.product(args.guidance, args.steps, args.method, intervals, args.shift)
    )
    for i, (guidance, steps, method, interval, shift) in enumerate(settings):
        t0 = time.time()
        s.guidance, s.steps, s.method = guidance, steps, method
        s.guidance_interval, s.shift = interval, shift
        video = s.window(noise, labels, None, "trained")
        pred = predict(classifier, video, size)
        row = {
            "guidance": guidance,
            "steps": steps,
            "method": method,
            "guidance_interval": list(interval),
            "shift": shift,
            "class_score": scores_of(pred, labels, s.classes)["mean"],
            "fd_cls3d": frechet_distance(*real, *feature_stats(cls3d.features(video))),
            "grid_ratio": grid_ratio(grid_steps(video)),
            "wall_s": round(time.time() - t0, 1),
        }
        rows.append(row)
        if args.sheet:
            sheet = Path(args.sheet)
            if len(settings) > 1:
                sheet = sheet.with_name(f"{sheet.stem}-{i + 1}{sheet.suffix}")
            contact_sheet(
                video,
                labels.tolist(),
                pred.tolist(),
                s.classes,
                sheet,
                f"{s.run_id}, step {s.step}: {steps} {method} steps, guidance {guidance:g}, "
                f"class score {row['class_score']:.3f}",
            )
        print(
            f"guidance {guidance:g} on [{interval[0]:g}, {interval[1]:g}], {steps} {method} steps, "
            f"shift {shift:g}: class score "
            f"{row['class_score']:.3f}, fd_cls3d {row['fd_cls3d']:.2f}, grid ratio "
            f"{row['grid_ratio']:.2f} ({row['wall_s']:.0f} s)",
            flush=True,
        )
    if args.json:
        record = {
            "run": s.run_id,
            "step": s.step,
            "clips": len(labels),
            "classifier": {k: info.get(k) for k in ("key", "weights_hash", "val_accuracy")},
            "threads": torch.get_num_threads(),
            "rows": rows,
        }
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
