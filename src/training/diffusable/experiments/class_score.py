"""Class score of videos made outside the trainer, and of autoencoder reconstructions.

The class score is the accuracy of the procedural dataset's small video classifier
(classifier.py) on clips that were meant to show a class. Two sources:

``videos DIR``   the files a running service generated (``DIR/samples.json`` lists
                 ``{"file", "label"}`` items, as written by ``scripts/generate-per-class.ts``);
                 each file is decoded by ffmpeg, so this also checks that every file plays.
``recon CKPT``   validation clips passed through an autoencoder checkpoint: the ceiling a
                 generator on that latent space can reach with this classifier. With
                 ``--linear``: through the linear code of CKPT's latent grid instead (fitted on
                 the train split), the reference every reconstruction stands beside.

    PYTHONPATH=src/training /usr/bin/python3 -m diffusable.experiments.class_score \
        videos runs/samples/small-se
    PYTHONPATH=src/training /usr/bin/python3 -m diffusable.experiments.class_score recon \\
        runs/ae-small-se/checkpoints/last.pt
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from ..evaluation.classifier import (
    MIN_VAL_ACCURACY,
    ClassifierConfig,
    check_accuracy,
    class_scores,
    get_classifier,
    predict,
    scores_of,
)
from ..data.clips import ClipDataset, FfmpegError, clips_to_tensor, ffmpeg_rgb
from ..data.datasets import DATA_HELP, resolve_dataset
from ..evaluation.metrics import grid_ratio, grid_steps
from ..threads import set_threads


# How the files are turned back into RGB: as a player shows them, the 4:2:0 chroma interpolated
# to every pixel. swscale's default gives each pair of pixels one chroma value, which adds a
# 2-pixel pattern that no generated frame had and raises the grid ratio of a served mp4 by about
# 0.26 (session 19, docs/results/grid-codec/).
DECODE_FLAGS = "area+full_chroma_int+accurate_rnd"


def decode_video(path: Path, size: int, frames: int) -> torch.Tensor:
    """A generated file -> (3, frames, size, size) in [-1, 1]; fails if it does not decode."""
    scale = f"scale={size}:{size}:flags={DECODE_FLAGS}"
    rgb = ffmpeg_rgb(["-i", str(path), "-vf", scale], size, size)
    if len(rgb) < frames:
        raise FfmpegError(f"{path.name}: {len(rgb)} frames decoded, expected {frames}")
    return clips_to_tensor(rgb[:frames])


def load_samples(folder: Path) -> Tuple[Dict, torch.Tensor]:
    """A folder of generated videos (scripts/generate-per-class.ts: samples.json and the files
    it lists) -> its listing and the videos (N, 3, T, H, W) in [-1, 1], in the listing's order."""
    listing = json.loads((folder / "samples.json").read_text())
    frames = int(listing.get("frames", 17))
    size = int(listing.get("resolution", 64))
    files = [folder / it["file"] for it in listing["items"]]
    return listing, torch.stack([decode_video(f, size, frames) for f in files])


def score_videos(
    folder: Path, data_root: Path, cfg: ClassifierConfig, sheet: Optional[Path] = None
) -> Dict:
    listing, video = load_samples(folder)
    classifier, info = get_classifier(data_root, cfg)
    classes: List[str] = ClipDataset(data_root, "train").classes
    items = listing["items"]
    labels = torch.tensor([classes.index(it["label"]) for it in items])
    pred = predict(classifier, video, info["config"]["size"])
    scores = scores_of(pred, labels, classes)
    # 8-px block edges against the inside of blocks: a decoder that draws tiles shows here
    grid = grid_ratio(grid_steps(video))
    if sheet is not None:
        from ..evaluation.sample_sheet import contact_sheet

        predicted = pred.tolist()
        title = (
            f"{listing.get('model')}: service-generated samples, class score "
            f"{scores['mean']:.3f} (chance {1 / len(classes):.3f}), grid ratio {grid:.2f}"
        )
        contact_sheet(video, labels.tolist(), predicted, classes, sheet, title)
    return {
        "source": "videos",
        "folder": str(folder),
        "model": listing.get("model"),
        "videos_decoded": len(items),
        "class_score": scores["mean"],
        "class_scores": scores,
        "grid_ratio": grid,
        "chance": 1 / len(classes),
        "classifier": info,
    }


def score_reconstructions(
    ckpt: Path, data_root: Path, cfg: ClassifierConfig, linear: bool = False
) -> Dict:
    from ..models.checkpoint import load_autoencoder

    vae, meta = load_autoencoder(ckpt)
    if linear:
        from ..models.linear_code import fit_linear_code_on, linear_code_config, linear_code_model

        lin = linear_code_config(vae.cfg)
        vae = linear_code_model(lin, fit_linear_code_on(lin, ClipDataset(data_root, "train")))
        meta = {"run_id": f"linear code ({lin.latent_channels} ch)", "step": None}
    vae.eval()
    # outside no_grad: where the classifier is not cached yet, this trains it
    classifier, info = get_classifier(data_root, cfg)
    val = ClipDataset(data_root, "val")
    video, labels = val.batch(list(range(len(val))))
    with torch.no_grad():
        recon = [vae(video[i : i + 8])[0].clamp(-1, 1) for i in range(0, len(video), 8)]
    recon = torch.cat(recon)
    size = info["config"]["size"]
    # Per class: the reconstructions' score is the ceiling a denoiser on these latents can reach
    # (a perfect one samples clips its decoder renders no better than a reconstruction).
    per_class = class_scores(classifier, recon, labels, val.classes, size)
    return {
        "source": "recon",
        "autoencoder": {"run_id": meta.get("run_id"), "step": meta.get("step")},
        "val_clips": len(val),
        "class_score_real": class_scores(classifier, video, labels, val.classes, size)["mean"],
        "class_score": per_class.pop("mean"),
        "per_class": per_class,
        "chance": 1 / len(val.classes),
        "classifier": info,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Class score of generated videos or reconstructions.")
    ap.add_argument("source", choices=["videos", "recon"])
    ap.add_argument("path", help="videos: folder with samples.json; recon: AE checkpoint")
    ap.add_argument("--data", default="procedural", help=DATA_HELP)
    ap.add_argument("--classifier-steps", type=int, default=ClassifierConfig().steps)
    ap.add_argument(
        "--min-accuracy",
        type=float,
        default=MIN_VAL_ACCURACY,
        help="refuse to score with a classifier below this val top-1 (0: score anyway)",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--json", help="also write the result here")
    ap.add_argument("--sheet", help="videos: also draw a contact sheet (PNG) of the clips here")
    ap.add_argument(
        "--linear",
        action="store_true",
        help="recon: score the linear code of the checkpoint's latent grid instead",
    )
    args = ap.parse_args(argv)
    if args.linear and args.source != "recon":
        ap.error("--linear applies to recon only")
    set_threads(args.threads)
    try:
        data_root = resolve_dataset(args.data)
        cfg = ClassifierConfig(steps=args.classifier_steps)
        check_accuracy(get_classifier(data_root, cfg)[1], args.min_accuracy)
        path = Path(args.path)
        if args.source == "videos":
            result = score_videos(path, data_root, cfg, Path(args.sheet) if args.sheet else None)
        else:
            result = score_reconstructions(path, data_root, cfg, args.linear)
    except (FileNotFoundError, ValueError, KeyError, FfmpegError) as err:
        print(f"class_score: {err}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
