"""Image-to-video and extension, measured on held-out clips (issue 23's "must show").

    PYTHONPATH=src/training /usr/bin/python3 -m diffusable.experiments.context_eval \
        --dit runs/protocol-conv/dit-conv-compact-se --out docs/results/context --threads 1

For every val clip of the denoiser's dataset (8 per class, never trained on), with the run's EMA
denoiser and its autoencoder, and for each context mode (`trained`: the denoiser is told which
latent frames are given; `replace`: the training-free alternative, docs/sampler.md):

- **image-to-video**: the clip's frame 0, encoded alone, is latent frame 0; the rest is sampled.
  Frame 0 of the output against the autoencoder's reconstruction of the image (PSNR, float; the
  service's contract is >= 40 dB), how much the rest moves (mean |frame step|, beside the real
  clips'), and the classifier's verdict on the whole output.
- **extension** by `4 g` frames: the clip's last `1 + 4 (k - 1)` frames (k = T - g), re-encoded
  as a clip of their own, are the context of one window (docs/sampler.md). The classifier names
  the continuation's class (only the generated frames are shown to it; its ceiling, the same
  classifier on as many last frames of the real clips, stands beside it), and the *seam step*
  (PSNR between the last input frame and the first generated one) stands beside the step
  between consecutive real frames of the same clips.
- **chained extensions**: the continuation extended again `--chain - 1` times, each window from
  the tail of the last; the class score of each link shows drift.
- label-only samples with the same noise and labels, for reference.

Writes context.json, context.md and contact sheets (inputs and their continuations; chains).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch

from .. import paths
from ..models.checkpoint import load_autoencoder, load_checkpoint
from ..evaluation.classifier import ClassifierConfig, get_classifier, predict, scores_of
from ..data.clips import ClipDataset
from ..data.datasets import resolve_dataset
from ..models.denoiser import Denoiser, DenoiserConfig
from ..models.flow import CONTEXT_MODES, FULL_INTERVAL, sample
from ..evaluation.metrics import grid_ratio, grid_steps, psnr
from ..threads import set_threads


def _frame_psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR (dB) of single frames (B, 3, H, W) in [-1, 1] -> (B,)."""
    return psnr(a[:, :, None], b[:, :, None])


def real_step_psnr(video: torch.Tensor) -> torch.Tensor:
    """Mean PSNR between consecutive frames of each clip (B, 3, T, H, W) -> (B,)."""
    t = video.shape[2]
    steps = [_frame_psnr(video[:, :, i], video[:, :, i + 1]) for i in range(t - 1)]
    return torch.stack(steps, dim=1).mean(dim=1)


def motion(video: torch.Tensor) -> float:
    """Mean |step| between consecutive frames, on the [0, 1] scale."""
    return float(video.diff(dim=2).abs().mean() / 2)


class ContextSampler:
    """One run's denoiser and autoencoder, sampling windows with given leading latent frames."""

    def __init__(
        self,
        run: Path,
        steps: int,
        guidance: Optional[float],
        ae: Optional[Path] = None,
        batch: int = 34,
    ):
        ckpt = run / "checkpoints" / "last.pt" if run.is_dir() else run
        state = load_checkpoint(ckpt)
        self.cfg = DenoiserConfig.from_dict(state["config"])
        self.model = Denoiser(self.cfg)
        self.model.load_state_dict(state["ema"])
        self.model.eval().requires_grad_(False)
        # the autoencoder the run trained on, as it recorded it (relative to the repository)
        self.vae, _ = load_autoencoder(ae or paths.REPO_ROOT / state["autoencoder"])
        self.vae.eval().requires_grad_(False)
        # a checkpoint rebuilt from a bundle (recover_denoiser) has no training config
        self.train = state.get("train", {})
        self.step = state["step"]
        self.run_id = state.get("run_id", run.name)
        self.classes: List[str] = state["classes"]
        self.steps = steps
        # default guidance: a recovered checkpoint's bundle sampler, else the run's eval setting
        default = state.get("sampler", {}).get("guidance", self.train.get("guidance", 2.0))
        self.guidance = default if guidance is None else guidance
        self.batch = batch
        self.method = "euler"
        self.guidance_interval = FULL_INTERVAL
        self.shift = 1.0

    @torch.no_grad()
    def latents(
        self,
        noise: torch.Tensor,  # (B, C, T, h, w)
        labels: torch.Tensor,  # (B,)
        context: Optional[torch.Tensor] = None,  # (B, C, k, h, w) scaled latents, or None
        mode: str = "trained",
    ) -> torch.Tensor:
        """Sample one window per row: scaled latents (B, C, T, h, w), not decoded."""
        out = []
        for i in range(0, len(noise), self.batch):
            sl = slice(i, i + self.batch)
            out.append(
                sample(
                    self.model,
                    noise[sl],
                    labels[sl],
                    steps=self.steps,
                    guidance=self.guidance,
                    null_class=self.cfg.null_class,
                    context=None if context is None else context[sl],
                    context_mode=mode,
                    method=self.method,
                    guidance_interval=self.guidance_interval,
                    shift=self.shift,
                )
            )
        return torch.cat(out)

    @torch.no_grad()
    def window(
        self,
        noise: torch.Tensor,  # (B, C, T, h, w)
        labels: torch.Tensor,  # (B,)
        context: Optional[torch.Tensor],  # (B, C, k, h, w) scaled latents, or None
        mode: str,
    ) -> torch.Tensor:
        """Sample and decode one window per row: (B, 3, 1 + tf (T - 1), H, W) in [-1, 1]."""
        return self.decode(self.latents(noise, labels, context, mode))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents (N, C, T, h, w) -> video (N, 3, 1 + tf (T - 1), H, W) in [-1, 1]."""
        return torch.cat(
            [
                self.vae.decode_scaled(z[i : i + self.batch]).clamp(-1, 1)
                for i in range(0, len(z), self.batch)
            ]
        )

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.vae.encode_scaled(video[i : i + self.batch])
                for i in range(0, len(video), self.batch)
            ]
        )


def evaluate_run(
    sampler: ContextSampler,
    video: torch.Tensor,  # (N, 3, T, H, W) real val clips in [-1, 1]
    labels: torch.Tensor,
    classifier,
    size: int,
    modes: List[str],
    context_latents: int,
    chain: int,
    seed: int,
) -> Dict:
    tf = sampler.vae.cfg.temporal_factor
    z_real = sampler.encode(video)  # (N, C, T_lat, h, w)
    n, c, t_lat, h, w = z_real.shape
    if not 1 <= context_latents < t_lat:
        raise ValueError(f"--context-latents must be in 1..{t_lat - 1}, got {context_latents}")
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn((chain + 2, n, c, t_lat, h, w), generator=g)
    tail_frames = 1 + tf * (context_latents - 1)

    def score(clips: torch.Tensor) -> float:
        return scores_of(predict(classifier, clips, size), labels, sampler.classes)["mean"]

    # The seam a perfect denoiser would leave: the clip's own next latent frame, decoded after
    # the same k context latents, against the last context frame. The autoencoder's
    # reconstruction error is in every generated frame, so no denoiser's seam can beat this.
    recon = sampler.decode(z_real)  # (N, 3, T, H, W)
    ae_seam = _frame_psnr(video[:, :, tail_frames - 1], recon[:, :, tail_frames])
    real_step = real_step_psnr(video)
    # The continuation's ceiling: the classifier shown as many frames of the real clip (and of its
    # reconstruction), its last ones. Fewer frames than a clip tell the class less well, so an
    # extension score is read against this, not against the whole clip's.
    new = video.shape[2] - tail_frames
    result: Dict = {
        "real": {
            "class_score": score(video),
            "continuation_frames": new,
            "continuation_class_score": score(video[:, :, -new:]),
            "reconstruction_continuation_class_score": score(recon[:, :, -new:]),
            "motion": motion(video[:, :, 1:]),
            "step_psnr": float(real_step.mean()),
            "ae_seam_psnr": float(ae_seam.mean()),
            "ae_seam_minus_real_step_db": float((ae_seam - real_step).mean()),
        }
    }
    t0 = time.time()
    plain = sampler.window(noise[0], labels, None, "trained")
    result["label_only"] = {
        "class_score": score(plain),
        "motion": motion(plain[:, :, 1:]),
        "grid_ratio": grid_ratio(grid_steps(plain)),
    }
    clips: Dict[str, Dict[str, torch.Tensor]] = {}
    # image-to-video: frame 0 alone is latent frame 0; the mode changes only what follows it
    image_latent = z_real[:, :, :1]
    recon0 = sampler.decode(image_latent)[:, :, 0]
    for mode in modes:
        i2v = sampler.window(noise[0], labels, image_latent, mode)
        frame0 = _frame_psnr(i2v[:, :, 0], recon0)
        # extension: the last tail_frames frames, re-encoded as a clip of their own
        tail = video[:, :, -tail_frames:]
        links = []
        for link in range(chain):
            ctx = sampler.encode(tail)  # (N, C, k, h, w)
            win = sampler.window(noise[1 + link], labels, ctx, mode)
            links.append(win[:, :, tail_frames:])  # the continuation alone
            tail = win[:, :, -tail_frames:]
        cont = links[0]
        seam = _frame_psnr(video[:, :, -1], cont[:, :, 0])
        result[mode] = {
            "image_to_video": {
                "frame0_vs_reconstruction_psnr_min": float(frame0.min()),
                "frame0_vs_reconstruction_psnr_mean": float(frame0.clamp(max=100).mean()),
                "frame0_vs_image_psnr": float(_frame_psnr(i2v[:, :, 0], video[:, :, 0]).mean()),
                "motion": motion(i2v[:, :, 1:]),
                "class_score": score(i2v),
                "grid_ratio": grid_ratio(grid_steps(i2v)),
            },
            "extension": {
                "context_latents": context_latents,
                "context_frames": tail_frames,
                "new_frames": cont.shape[2],
                "class_score": score(cont),
                "class_score_per_link": [score(x) for x in links],
                "seam_psnr": float(seam.mean()),
                "real_step_psnr": float(real_step.mean()),
                "seam_minus_real_step_db": float((seam - real_step).mean()),
                "motion": motion(cont),
                "grid_ratio": grid_ratio(grid_steps(cont)),
            },
        }
        clips[mode] = {"i2v": i2v, "links": torch.cat(links, dim=2)}
    result["wall_s"] = round(time.time() - t0, 1)
    result["clips"] = n
    return result, clips


def extension_sheet(
    video: torch.Tensor,
    chained: torch.Tensor,  # (N, 3, chain * new, H, W)
    labels: torch.Tensor,
    classes: List[str],
    path: Path,
    title: str,
    input_frames=(0, 8, 16),
    every: int = 4,
) -> Path:
    """One row per class (its first clip): input frames, then every `every`-th frame of the
    chained continuation, a red bar between input and continuation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    t = video.shape[2]
    input_frames = sorted({min(f, t - 1) for f in input_frames})
    rows = [int((labels == c).nonzero()[0]) for c in range(len(classes)) if (labels == c).any()]
    cont_frames = list(range(0, chained.shape[2], every))
    cols = len(input_frames) + len(cont_frames)
    fig, axes = plt.subplots(
        len(rows), cols, figsize=(0.8 * cols + 1.6, 0.85 * len(rows) + 0.8), squeeze=False
    )
    for r, i in enumerate(rows):
        pics = [video[i, :, f] for f in input_frames] + [chained[i, :, f] for f in cont_frames]
        names = [f"in {f}" for f in input_frames] + [
            f"+{f + 1}" for f in cont_frames
        ]  # frames after the last input frame
        for j, (pic, name) in enumerate(zip(pics, names)):
            ax = axes[r][j]
            ax.set_xticks([])
            ax.set_yticks([])
            img = ((pic.permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1)
            ax.imshow(np.ascontiguousarray(img), interpolation="nearest")
            if j == len(input_frames):
                for s in ax.spines.values():
                    s.set_edgecolor("crimson")
                    s.set_linewidth(1.5)
            if r == len(rows) - 1:
                ax.set_xlabel(name, fontsize=5)
        axes[r][0].set_ylabel(classes[int(labels[i])], fontsize=6, rotation=0, ha="right")
    height = 0.85 * len(rows) + 0.8
    fig.suptitle(title, fontsize=8, y=1 - 0.12 / height)
    fig.subplots_adjust(left=0.15, right=0.99, top=1 - 0.55 / height, bottom=0.3 / height)
    fig.subplots_adjust(wspace=0.05, hspace=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def markdown(results: Dict[str, Dict], modes: List[str]) -> str:
    lines = [
        "| run | step | mode | i2v frame 0 vs recon (min dB) | i2v class score | i2v motion "
        "(real) | ext. class score | per link | seam − real step (dB) | ext. grid ratio |",
        "|---" * 10 + "|",
    ]
    for run, r in results.items():
        for mode in modes:
            i, e = r[mode]["image_to_video"], r[mode]["extension"]
            links = " / ".join(f"{s:.2f}" for s in e["class_score_per_link"])
            lines.append(
                f"| {run} | {r['step']} | {mode} | {i['frame0_vs_reconstruction_psnr_min']:.1f} | "
                f"{i['class_score']:.3f} | {i['motion']:.4f} ({r['real']['motion']:.4f}) | "
                f"{e['class_score']:.3f} | {links} | {e['seam_minus_real_step_db']:+.2f} | "
                f"{e['grid_ratio']:.2f} |"
            )
    lines.append("")
    real = next(iter(results.values()))["real"]
    lines.append(
        "Label-only samples of the same noise and labels, class score: "
        + ", ".join(f"{run} {r['label_only']['class_score']:.3f}" for run, r in results.items())
        + f"; real clips {real['class_score']:.3f}."
    )
    lines.append(
        f"The extension's ceiling, the classifier on the last {real['continuation_frames']} "
        f"frames of the real clips: {real['continuation_class_score']:.3f} (of their "
        f"reconstructions: {real['reconstruction_continuation_class_score']:.3f})."
    )
    lines.append(
        f"Seam of the true continuation through the autoencoder (a perfect denoiser's): "
        f"{real['ae_seam_minus_real_step_db']:+.2f} dB from a real frame step."
    )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Measure image-to-video and extension.")
    ap.add_argument("--dit", nargs="+", required=True, help="diffusion run folders (or ckpts)")
    ap.add_argument("--out", required=True, help="folder for context.json, .md and sheets")
    ap.add_argument("--modes", nargs="+", default=list(CONTEXT_MODES), choices=CONTEXT_MODES)
    ap.add_argument("--context-latents", type=int, default=2, help="k of an extension window")
    ap.add_argument("--chain", type=int, default=3, help="extensions in a row")
    ap.add_argument("--steps", type=int, default=16, help="sampler steps")
    ap.add_argument("--guidance", type=float, default=None, help="default: the run's")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default="procedural")
    ap.add_argument("--ae", help="autoencoder checkpoint (default: the one the run recorded)")
    ap.add_argument("--classifier-steps", type=int, default=ClassifierConfig().steps)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    if args.chain < 1 or args.steps < 1:
        print("context_eval: --chain and --steps must be >= 1", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        ae = Path(args.ae) if args.ae else None
        samplers = [ContextSampler(Path(d), args.steps, args.guidance, ae) for d in args.dit]
        root = resolve_dataset(args.data, samplers[0].vae.cfg)
        val = ClipDataset(root, "val")
        classifier, info = get_classifier(root, ClassifierConfig(steps=args.classifier_steps))
    except (FileNotFoundError, KeyError, ValueError) as err:
        print(f"context_eval: {err}", file=sys.stderr)
        return 2
    video, labels = val.batch(list(range(len(val))))
    size = info["config"]["size"]
    results: Dict[str, Dict] = {}
    for s in samplers:
        if s.classes != val.classes:
            print(f"context_eval: {s.run_id} was trained on other classes", file=sys.stderr)
            return 2
        try:
            r, clips = evaluate_run(
                s,
                video,
                labels,
                classifier,
                size,
                args.modes,
                args.context_latents,
                args.chain,
                args.seed,
            )
        except ValueError as err:
            print(f"context_eval: {err}", file=sys.stderr)
            return 2
        r.update(step=s.step, sampler_steps=s.steps, guidance=s.guidance)
        results[s.run_id] = r
        for mode in args.modes:
            extension_sheet(
                video,
                clips[mode]["links"],
                labels,
                val.classes,
                out / f"extension-{s.run_id}-{mode}.png",
                f"{s.run_id} (step {s.step}), {mode} context: input clip | {args.chain} chained "
                f"extensions of {clips[mode]['links'].shape[2] // args.chain} frames",
            )
        print(f"context_eval: {s.run_id} done in {r['wall_s']:.0f} s", file=sys.stderr)
    record = {
        "command": "python3 -m diffusable.experiments.context_eval "
        + " ".join(argv or sys.argv[1:]),
        "classifier": {k: info.get(k) for k in ("key", "weights_hash", "val_accuracy")},
        "val_clips": len(val),
        "threads": torch.get_num_threads(),
        "runs": results,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "context.json").write_text(json.dumps(record, indent=1) + "\n")
    (out / "context.md").write_text(markdown(results, args.modes))
    print(markdown(results, args.modes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
