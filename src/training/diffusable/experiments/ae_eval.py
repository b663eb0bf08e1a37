"""The reconstruction benchmark: autoencoders beside the linear code, on the same clips.

    PYTHONPATH=src/training python3 -m diffusable.experiments.ae_eval \\
        --ckpt baseline=runs/ae-small-baseline/checkpoints/last.pt \\
        --ckpt se=runs/ae-small-se/checkpoints/last.pt --out runs/ae-eval

For every checkpoint, PSNR and SSIM (posterior mean, decoded, clamped) per class and overall on
two clip sets, and PSNR by frame position (frame 0, a latent frame of its own, apart from the
later frames, which share latent frames), beside two references computed in the same run on the
same clips:
  * `linear_code`: PCA of the causal block structure (frame 0 as an 8x8x3 block, each later
    group of 4 frames as a 4x8x8x3 block) with the latent's size, fitted on the training split
    (`linear_code.py`);
  * `block_average_8x8`: each frame's 8x8 patches replaced by their mean colour.
Clip sets: (a) the procedural dataset's validation split, per class; (b) the real-video eval
set: every real-camera video Debian packages ship (`data.debian_media`), resampled to the
model's fps (or kept at its own when too short for that), scaled and centre-cropped to its
resolution, cut into clips of its frame count (at most --clips-per-video, evenly spread; see
`real_clips`), per video. The real set is never trained on.
Also the paper's diagnostic for each model and the linear code, on the procedural val clips
(`spectrum.analyse`): latent and video 8x8 block-DCT spectra, high-frequency share and
the zeroing test, drawn side by side in spectra.png. Writes ae_eval.json, ae_eval.md and, with
--events, an `ae_eval` line per run (not again for a step it already has one for).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from .compare_runs import read_events
from ..data.clips import ClipDataset, FfmpegError, clips_to_tensor, ffmpeg_rgb
from ..models.linear_code import (
    block_average,
    fit_linear_code_on,
    linear_code_config,
    linear_code_model,
)
from ..evaluation.metrics import grid_ratio, grid_steps, psnr, ssim
from ..evaluation.spectrum import analyse
from ..threads import set_threads

SPECTRUM_KEYS = (
    "latent_hf_share_std",
    "video_hf_share_latent_scale",
    "latent_hf_share",
    "video_hf_share",
    "se_psnr_s2",
    "se_bound_s2",
    "se_psnr_s4",
    "se_bound_s4",
    "grid_ratio",
    "grid_ratio_input",
    "psnr_drop_latent_lowpass",
    "psnr_drop_video_lowpass",
)

REFERENCES = ("linear_code", "block_average_8x8")


def real_clips(
    cfg, per_video: int, cache: Optional[Path] = None
) -> Tuple[List[torch.Tensor], List[str], Dict[str, Dict]]:
    """The real-video eval set: per video a (k, 3, T, H, W) tensor in [-1, 1], each clip's video
    name, and per video how it was sampled.

    A video is resampled to the model's fps when that leaves at least one clip of the model's
    frame count; most of Debian's physics videos last 1-2 s, so those are taken at their own
    frame rate instead, and a video shorter than that gives one clip of the longest 1 + 4k
    frames it has. Up to per_video clips are spread evenly (overlapping when the video is short).
    """
    from ..data.debian_media import real_videos

    s, t, tf = cfg.resolution, cfg.frames, cfg.temporal_factor
    crop = f"scale={s}:{s}:force_original_aspect_ratio=increase:flags=area,crop={s}:{s}"
    tensors, names, how = [], [], {}
    for name, path in sorted(real_videos(cache).items()):
        fps = f"{cfg.fps}"
        try:
            frames = ffmpeg_rgb(["-i", str(path), "-vf", f"fps={cfg.fps},{crop}"], s, s, 120)
            if len(frames) < t:
                fps = "native"
                frames = ffmpeg_rgb(["-i", str(path), "-vf", crop], s, s, 120)
        except FfmpegError as err:
            raise FfmpegError(f"{name}: {err.reason}") from None
        length = min(t, 1 + (len(frames) - 1) // tf * tf)
        if length < 1 + tf:
            how[name] = {"frames": len(frames), "fps": fps, "clips": 0}
            continue
        starts = np.linspace(0, len(frames) - length, min(per_video, len(frames) - length + 1))
        starts = np.unique(starts.round().astype(int))
        clips = np.stack([frames[i : i + length] for i in starts])
        tensors.append(clips_to_tensor(clips))
        names += [name] * len(starts)
        how[name] = {"frames": len(frames), "fps": fps, "clip_frames": length, "clips": len(starts)}
    return tensors, names, how


@dataclass
class Scores:
    """Per-clip figures of one reconstruction function over a clip set, in order."""

    psnr: torch.Tensor  # (N,) dB, the whole clip
    ssim: torch.Tensor  # (N,)
    # Frame 0 is a latent frame of its own; the later frames share latent frames (4 each in
    # the shipped AEs), so the two parts say where a model wins or loses. (N,) dB each; the
    # later frames' PSNR pools their squared error, as the whole clip's does.
    psnr_frame0: torch.Tensor
    psnr_later: torch.Tensor
    grid_ratio: float  # 8-pixel grid ratio of all the reconstructions


@torch.no_grad()
def scores(recon_fn, parts: List[torch.Tensor], batch: int = 8) -> Scores:
    """Scores of recon_fn over clip tensors (k, 3, T, H, W), T > 1."""
    p, s, p0, later = [], [], [], []
    grid = torch.zeros(4, dtype=torch.float64)
    for clips in parts:
        for i in range(0, len(clips), batch):
            x = clips[i : i + batch]
            r = recon_fn(x).clamp(-1, 1)
            p.append(psnr(r, x))
            s.append(ssim(r, x))
            p0.append(psnr(r[:, :, :1], x[:, :, :1]))
            later.append(psnr(r[:, :, 1:], x[:, :, 1:]))
            grid += grid_steps(r)
    cat = torch.cat
    return Scores(cat(p), cat(s), cat(p0), cat(later), grid_ratio(grid))


def input_grid_ratio(parts: List[torch.Tensor], batch: int = 8) -> float:
    """The 8-pixel grid ratio of the clips themselves, pooled as scores() pools a model's."""
    sums = sum(grid_steps(c[i : i + batch]) for c in parts for i in range(0, len(c), batch))
    return grid_ratio(sums)


def autoencode(model):
    return lambda x: model.decode(model.encode(x)[0])


def grouped(values: torch.Tensor, groups: List[str]) -> Dict[str, float]:
    out: Dict[str, float] = {}
    for g in dict.fromkeys(groups):
        mask = torch.tensor([x == g for x in groups])
        out[g] = float(values[mask].mean())
    out["overall"] = float(values.mean())
    return out


def evaluate(
    models: Dict[str, torch.nn.Module],
    sets: Dict[str, Tuple[List[torch.Tensor], List[str]]],
    fit,
) -> Dict:
    cfg = next(iter(models.values())).cfg
    recon = {name: autoencode(m.eval()) for name, m in models.items()}
    recon["linear_code"] = autoencode(linear_code_model(linear_code_config(cfg), fit))
    recon["block_average_8x8"] = block_average
    result: Dict = {}
    for set_name, (clips, groups) in sets.items():
        entry: Dict = {"clips": len(groups), "groups": list(dict.fromkeys(groups)), "models": {}}
        for name, fn in recon.items():
            sc = scores(fn, clips)
            entry["models"][name] = {
                "psnr": grouped(sc.psnr, groups),
                "ssim": grouped(sc.ssim, groups),
                "psnr_frame0": grouped(sc.psnr_frame0, groups),
                "psnr_later": grouped(sc.psnr_later, groups),
                "grid_ratio": sc.grid_ratio,
            }
        entry["grid_ratio_input"] = input_grid_ratio(clips)
        result[set_name] = entry
    return result


@torch.no_grad()
def spectra(models: Dict[str, torch.nn.Module], clips: torch.Tensor, fit) -> Dict:
    """Latent spectrum, HF share and zeroing test of each model and of the linear code."""
    cfg = next(iter(models.values())).cfg
    every = dict(models, linear_code=linear_code_model(linear_code_config(cfg), fit))
    lists = ("latent_spectrum", "latent_spectrum_std", "video_spectrum")
    out = {}
    for name, model in every.items():
        r = analyse(model.eval(), clips)
        if "latent_spectrum" not in r:
            return {}  # latents under 8x8 (tiny test models) have no block spectrum
        out[name] = {k: r[k] for k in SPECTRUM_KEYS + lists + ("video_spectrum_latent_scale",)}
    return out


def spectra_markdown(spec: Dict) -> str:
    if not spec:
        return ""
    lines = [
        "",
        "### latents (procedural val): 8x8 block DCT spectrum, scale consistency, grid",
        "",
        "HF share = energy at zigzag 32-63 of AC. *standardised*: every latent channel at unit "
        "variance (what a denoiser sees), beside the video downscaled to the latent's grid; "
        "*variance-weighted*: the earlier figure, beside the full-resolution video. SE-s*f* "
        "= PSNR of decode(down_f(z)) against down_f(x); bound = PSNR of down_f(decode(z)).",
        "",
        "| | HF share, standardised | HF share, variance-weighted | SE-s2 / bound (dB) "
        "| SE-s4 / bound (dB) | grid ratio | PSNR drop, high half zeroed (dB) |",
        "|---|---|---|---|---|---|---|",
    ]
    video = next(iter(spec.values()))
    lines.append(
        f"| video | {video['video_hf_share_latent_scale']:.4f} (at the latent's scale) | "
        f"{video['video_hf_share']:.4f} | | | {video['grid_ratio_input']:.3f} | "
        f"{video['psnr_drop_video_lowpass']:.3f} (the video's own high half) |"
    )

    def se(s, f):
        if f"se_psnr_s{f}" not in s:
            return ""
        return f"{s[f'se_psnr_s{f}']:.2f} / {s[f'se_bound_s{f}']:.2f}"

    for name, s in spec.items():
        lines.append(
            f"| {name} latent | {s['latent_hf_share_std']:.4f} | {s['latent_hf_share']:.4f} | "
            f"{se(s, 2)} | {se(s, 4)} | {s['grid_ratio']:.3f} | "
            f"{s['psnr_drop_latent_lowpass']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def plot_spectra(spec: Dict, path: Path) -> None:
    """The DCT profiles (the paper's figure): share of AC energy per zigzag frequency, for the
    standardised latents beside the video at the latent's scale, and variance-weighted beside
    the full-resolution video."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    first = next(iter(spec.values()))
    panels = (
        ("latent_spectrum_std", "video_spectrum_latent_scale", "standardised latents"),
        ("latent_spectrum", "video_spectrum", "variance-weighted (earlier figure)"),
    )
    for ax, (lat_key, vid_key, title) in zip(axes, panels):
        video = torch.tensor(first[vid_key])
        ax.semilogy(range(1, 64), (video[1:] / video[1:].sum()).tolist(), "k-", lw=2, label="video")
        for name, s in spec.items():
            lat = torch.tensor(s[lat_key])
            ax.semilogy(range(1, 64), (lat[1:] / lat[1:].sum()).tolist(), label=f"{name}")
        ax.axvline(32, color="grey", lw=0.8, ls="--")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("zigzag frequency index (8x8 block DCT)")
        ax.set_ylabel("share of AC energy")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@torch.no_grad()
def plot_latent_channels(models: Dict[str, torch.nn.Module], clip: torch.Tensor, path: Path):
    """The first 8 channels of one clip's latent (latent frame 1), one row per model, each
    channel standardised over the clip: the paper's latent picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(models.items())
    fig, axes = plt.subplots(len(rows), 9, figsize=(9.5, 1.15 * len(rows) + 0.3), squeeze=False)
    for r, (name, model) in enumerate(rows):
        z = model.eval().encode(clip[None])[0][0]  # (C, t, h, w)
        frame = min(1, z.shape[1] - 1)
        axes[r][0].imshow(((clip[:, 4 * frame].permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy())
        axes[r][0].set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
        for c in range(8):
            ax = axes[r][c + 1]
            if c < z.shape[0]:
                ch = z[c]
                img = ((ch - ch.mean()) / ch.std().clamp_min(1e-6))[frame]
                ax.imshow(img.numpy(), cmap="RdBu_r", vmin=-2.5, vmax=2.5, interpolation="nearest")
            if r == 0:
                ax.set_title(f"ch {c}", fontsize=7)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.subplots_adjust(left=0.12, right=0.99, top=0.9, bottom=0.02, wspace=0.06, hspace=0.1)
    fig.savefig(path)
    plt.close(fig)


@torch.no_grad()
def plot_reconstructions(
    models: Dict[str, torch.nn.Module], picks: List[Tuple[torch.Tensor, str]], path: Path
):
    """Input and every model's reconstruction of a few clips, two frames each: what a person
    checks for the grid and for blur."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [("input", None)] + list(models.items())
    n_frames = 2
    fig, axes = plt.subplots(
        len(picks),
        len(cols) * n_frames,
        figsize=(1.25 * len(cols) * 2, 1.3 * len(picks) + 0.4),
        squeeze=False,
    )
    for i, (x, label) in enumerate(picks):
        frames = (0, x.shape[1] - 1)
        for j, (name, model) in enumerate(cols):
            v = x[None] if model is None else model.eval().decode(model.encode(x[None])[0])
            for k, f in enumerate(frames):
                ax = axes[i][j * n_frames + k]
                ax.imshow(((v[0, :, f].permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy())
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_title(f"{name} f{f}", fontsize=6)
        axes[i][0].set_ylabel(label[:18], fontsize=6, rotation=0, ha="right", va="center")
    fig.subplots_adjust(left=0.1, right=0.99, top=0.93, bottom=0.01, wspace=0.04, hspace=0.08)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def grid_cell(ratio: float) -> str:
    """A grid ratio for the table; flat 8x8 blocks (no step inside) make it unbounded."""
    return f"{ratio:.3f}" if ratio < 1000 else "> 1000 (flat blocks)"


def markdown(result: Dict, names: List[str]) -> str:
    lines = []
    cols = names + list(REFERENCES)
    for set_name, entry in result.items():
        lines += [f"### {set_name} ({entry['clips']} clips), PSNR dB / SSIM", ""]
        head = " | ".join(cols)
        lines.append(
            f"| group | {head} | " + " | ".join(f"{n} − linear (dB)" for n in names) + " |"
        )
        lines.append("|---" * (1 + len(cols) + len(names)) + "|")
        for g in entry["groups"] + ["overall"]:
            m = entry["models"]
            cells = [f"{m[c]['psnr'][g]:.2f} / {m[c]['ssim'][g]:.3f}" for c in cols]
            lin = m["linear_code"]["psnr"][g]
            deltas = [f"{m[n]['psnr'][g] - lin:+.2f}" for n in names]
            label = f"**{g}**" if g == "overall" else g
            lines.append(f"| {label} | " + " | ".join(cells + deltas) + " |")
        grids = " | ".join(grid_cell(entry["models"][c]["grid_ratio"]) for c in cols)
        lines.append(f"| 8-px grid ratio (input {entry['grid_ratio_input']:.3f}) | {grids} |")
        lines.append("")
        lines += by_position_markdown(set_name, entry, names)
    return "\n".join(lines)


def by_position_markdown(set_name: str, entry: Dict, names: List[str]) -> List[str]:
    """PSNR of frame 0 (a latent frame of its own) and of the later frames, beside the linear
    code: where in the clip each model wins or loses."""
    cols = names + ["linear_code"]
    m = entry["models"]
    lines = [f"### {set_name}: PSNR dB by frame position, frame 0 / later frames", ""]
    lines.append(
        "| group | "
        + " | ".join(cols)
        + " | "
        + " | ".join(f"{n} − linear (dB)" for n in names)
        + " |"
    )
    lines.append("|---" * (1 + len(cols) + len(names)) + "|")
    for g in entry["groups"] + ["overall"]:
        cells = [f"{m[c]['psnr_frame0'][g]:.2f} / {m[c]['psnr_later'][g]:.2f}" for c in cols]
        lin = m["linear_code"]
        for n in names:
            d0 = m[n]["psnr_frame0"][g] - lin["psnr_frame0"][g]
            d1 = m[n]["psnr_later"][g] - lin["psnr_later"][g]
            cells.append(f"{d0:+.2f} / {d1:+.2f}")
        label = f"**{g}**" if g == "overall" else g
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines + [""]


def pick_clips(sets: Dict) -> List[Tuple[torch.Tensor, str]]:
    """Up to four clips of different groups (classes, videos) from each set, for the picture."""
    picks: List[Tuple[torch.Tensor, str]] = []
    for parts, groups in sets.values():
        clips = [clip for part in parts for clip in part]  # real videos differ in length
        seen: List[str] = []
        for clip, group in zip(clips, groups):
            if group not in seen and len(seen) < 4:
                seen.append(group)
                picks.append((clip, group))
    return picks


def parse_ckpt(spec: str) -> Tuple[str, Path]:
    name, _, path = spec.rpartition("=")
    path_ = Path(path)
    return (name or path_.parent.parent.name or path_.stem), path_


def clip_layout(cfg) -> Tuple:
    """What checkpoints compared on the same clips against one linear code must share (the
    architectures may differ: the PCA-residual AEs stand in the same table as the conv ones)."""
    return (
        cfg.resolution,
        cfg.frames,
        cfg.fps,
        cfg.in_channels,
        cfg.spatial_factor,
        cfg.temporal_factor,
        cfg.latent_channels,
    )


def evaluated_at(events: Path, step) -> bool:
    """Whether a run's events.jsonl already holds an ae_eval line for this step."""
    return any(
        e.get("type") == "ae_eval" and e.get("step") == step for e in read_events(events.parent)
    )


def main(argv=None) -> int:
    from ..models.checkpoint import load_autoencoder
    from ..data.datasets import DATA_HELP, resolve_dataset
    from ..training.train_ae import TRAIN_PRESETS

    ap = argparse.ArgumentParser(description="Autoencoders beside the linear code, same clips.")
    ap.add_argument("--ckpt", action="append", required=True, help="[name=]checkpoint, repeatable")
    ap.add_argument("--data", default="procedural", help=DATA_HELP)
    ap.add_argument("--val-clips", type=int, default=0, help="at most this many (0 = all)")
    ap.add_argument("--clips-per-video", type=int, default=8)
    ap.add_argument("--no-real", action="store_true", help="skip the real-video eval set")
    ap.add_argument("--out", required=True, help="folder for ae_eval.json and ae_eval.md")
    ap.add_argument("--events", action="store_true", help="append an ae_eval line to each run")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    set_threads(args.threads)
    start = time.time()
    try:
        models, metas = {}, {}
        for spec in args.ckpt:
            name, path = parse_ckpt(spec)
            models[name], metas[name] = load_autoencoder(path)
            metas[name]["path"] = path
        # The clips, the linear code and the latent grid must be the same for every checkpoint;
        # the networks may differ (e.g. fine-tunes with a wider decoder linear map).
        layouts = {clip_layout(m.cfg) for m in models.values()}
        if len(layouts) != 1:
            raise ValueError(
                "all checkpoints must share one clip size, frame rate, spatial and temporal "
                "factors and latent channels (the same clips and linear code)"
            )
        cfg = next(iter(models.values())).cfg
        preset = TRAIN_PRESETS[cfg.name]
        root = resolve_dataset(args.data, cfg, preset.train_per_class, preset.val_per_class)
        train, val = ClipDataset(root, "train"), ClipDataset(root, "val")
        fit = fit_linear_code_on(linear_code_config(cfg), train)
        k = len(val) if not args.val_clips else min(args.val_clips, len(val))
        clips, labels = val.batch(list(range(k)))
        sets = {"procedural_val": ([clips], [val.classes[int(i)] for i in labels])}
        sampling = {}
        if not args.no_real:
            real, names, sampling = real_clips(cfg, args.clips_per_video)
            sets["real_video"] = (real, names)
    except (FileNotFoundError, ValueError, KeyError, FfmpegError) as err:
        print(f"ae_eval: {err}", file=sys.stderr)
        return 2
    result = evaluate(models, sets, fit)
    spec = spectra(models, sets["procedural_val"][0][0], fit)
    info = {
        "checkpoints": {
            n: {"run_id": m.get("run_id"), "step": m.get("step"), "variant": m.get("variant")}
            for n, m in metas.items()
        },
        "dataset": Path(root).name,
        "real_video_sampling": sampling,
        "linear_code": {"train_blocks": fit.blocks, "train_frame0_blocks": fit.blocks0},
        "wall_s": round(time.time() - start, 1),
        "threads": torch.get_num_threads(),
    }
    result = {"info": info, "sets": result, "spectra": spec}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ae_eval.json").write_text(json.dumps(result, indent=1) + "\n")
    md = markdown(result["sets"], list(models)) + spectra_markdown(spec)
    if spec:
        plot_spectra(spec, out / "spectra.png")
        named = dict(models, linear_code=linear_code_model(linear_code_config(cfg), fit))
        plot_latent_channels(named, sets["procedural_val"][0][0][0], out / "latent-channels.png")
        if args.events:  # each run folder gets the picture the admin page shows
            for name, meta in metas.items():
                plot_latent_channels(
                    {name: models[name], "linear_code": named["linear_code"]},
                    sets["procedural_val"][0][0][0],
                    meta["path"].parent.parent / "latent-channels.png",
                )
    linear = linear_code_model(linear_code_config(cfg), fit)
    plot_reconstructions(
        dict(models, linear_code=linear), pick_clips(sets), out / "reconstructions.png"
    )
    (out / "ae_eval.md").write_text(md)
    if args.events:
        from ..events import EventLog

        for name, meta in metas.items():
            events = meta["path"].parent.parent / "events.jsonl"
            # A run already evaluated at this step keeps its line (the protocol re-evaluates
            # its pre-train, which may be a committed run, e.g. --pretrain docs/results/...).
            if events.is_file() and not evaluated_at(events, meta.get("step")):
                summary = {
                    s: {
                        "psnr": e["models"][name]["psnr"]["overall"],
                        "ssim": e["models"][name]["ssim"]["overall"],
                        "psnr_linear_code": e["models"]["linear_code"]["psnr"]["overall"],
                        "psnr_block_average_8x8": e["models"]["block_average_8x8"]["psnr"][
                            "overall"
                        ],
                        "psnr_frame0": e["models"][name]["psnr_frame0"]["overall"],
                        "psnr_later": e["models"][name]["psnr_later"]["overall"],
                        "clips": e["clips"],
                    }
                    for s, e in result["sets"].items()
                }
                if name in spec:
                    summary["spectrum"] = {k: spec[name][k] for k in SPECTRUM_KEYS}
                EventLog(events).write("ae_eval", step=meta.get("step"), **summary)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
