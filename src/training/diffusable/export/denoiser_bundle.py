"""Add a trained denoiser to a model bundle: denoiser.onnx, sampler defaults, classes, metrics.

    PYTHONPATH=src/training python3 -m diffusable.export.denoiser_bundle \
        --ckpt runs/dit-small-se/checkpoints/last.pt --bundle models/small-se
    # a new sampler default chosen by measurement (sampler_sweep), nothing else touched:
    PYTHONPATH=src/training python3 -m diffusable.export.denoiser_bundle \
        --bundle models/small-se --sampler-only --steps 12

denoiser.onnx: x float32 (B, C, t, h, w), t float32 (B,) flow time in [0, 1], label int64 (B,)
(the last id, len(classes), is the null class) -> v float32 (B, C, t, h, w); a context-trained
denoiser also takes context int64 (B,): how many leading latent frames of x are given. Sampling is
described in docs/sampler.md. The bundle's autoencoder must be the one the denoiser was trained
on: the manifest's autoencoder run and step are checked.

A context-trained denoiser (its run had context_prob > 0) gets a manifest block "conditioning":
the window it learnt on (window_frames: the training clips' frame count, window_latents: T, their
latent frames), max_context_latents = T - 1 (the most leading latents it was given) and
extension_context_latents (default 2: the context of each window of a chained extension, whose 5
frames carry motion). The service builds image-to-video and extension windows from it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from .. import paths
from ..models.checkpoint import bundle_latents, latents_of, load_checkpoint
from ..models.denoiser import Denoiser, DenoiserConfig
from .ae_bundle import last_event
from ..models.flow import SAMPLER_METHODS
from .onnx_export import add_weights_flag, bundle_file_entries, export_onnx

X_AXES = {0: "batch", 2: "latent_frames", 3: "latent_height", 4: "latent_width"}


def export_denoiser_onnx(
    model: Denoiser, path: Path, metadata: Dict[str, str], weights: str = "fp32"
) -> None:
    cfg = model.cfg
    x = torch.zeros(2, cfg.latent_channels, 2, 2 * cfg.patch_s, 2 * cfg.patch_s)
    t = torch.full((2,), 0.5)
    label = torch.zeros(2, dtype=torch.long)
    inputs, names = (x, t, label), ["x", "t", "label"]
    axes = {"x": X_AXES, "t": {0: "batch"}, "label": {0: "batch"}, "v": X_AXES}
    if cfg.context:  # (B,) int64: leading latent frames of x that are given (0: none)
        inputs, names = inputs + (torch.tensor([0, 1]),), names + ["context"]
        axes["context"] = {0: "batch"}
    export_onnx(
        model.eval(),
        inputs,
        path,
        names,
        ["v"],
        axes,
        {**metadata, "diffusable.role": "denoiser", "diffusable.denoiser_config": cfg.to_json()},
        weights,
    )


def sampler_defaults(train: Dict, chosen: Optional[Dict] = None) -> Dict:
    """The manifest's sampler: the run's evaluation settings unless chosen (e.g. by
    sampler_sweep) overrides some of them."""
    chosen = {k: v for k, v in (chosen or {}).items() if v is not None}
    return {
        "method": chosen.get("method", train.get("sample_method", "euler")),
        "steps": chosen.get("steps", train.get("sample_steps", 25)),
        "guidance": chosen.get("guidance", train.get("guidance", 2.0)),
        "max_steps": 200,
        "schedule": "uniform",
    }


def with_sampler(manifest: Dict, chosen: Dict) -> Dict:
    """The manifest with its sampler defaults changed to `chosen` (None values kept as they are);
    the denoiser, its runs and metrics stay. Raises ValueError for a bundle without a denoiser or
    steps above the bundle's max_steps."""
    sampler = manifest.get("sampler")
    if not manifest.get("onnx", {}).get("denoiser") or not sampler:
        raise ValueError(
            f"{manifest.get('name', 'the bundle')} has no denoiser to set defaults for"
        )
    chosen = {k: v for k, v in chosen.items() if v is not None}
    if not chosen:
        raise ValueError("--sampler-only needs --guidance, --steps or --method")
    merged = {**sampler, **chosen}
    if not 1 <= merged["steps"] <= merged["max_steps"]:
        raise ValueError(f"--steps must be in 1..{merged['max_steps']}, got {merged['steps']}")
    if merged["guidance"] < 0:
        raise ValueError(f"--guidance must be >= 0, got {merged['guidance']}")
    return {**manifest, "sampler": merged}


def training_window(state: Dict, events: Path, temporal_factor: int) -> Optional[Tuple[int, int]]:
    """(clip frames, latent frames) of the windows the denoiser trained on: the checkpoint's
    "window" (runs since it was recorded), else the run's config event -> its latent cache's
    latents.json (latent_shape) -> the dataset's dataset.json (frames); frames fall back to the
    causal rule 1 + temporal_factor * (T - 1). None where none of these can be read."""
    window = state.get("window")
    if window:
        return int(window["frames"]), int(window["latents"])
    config = None
    if events.is_file():
        for line in events.read_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("type") == "config":
                config = event
                break
    if not config or not config.get("latent_cache"):
        return None
    cache = Path(config["latent_cache"])
    cache = cache if cache.is_absolute() else paths.REPO_ROOT / cache
    try:
        info = json.loads((cache / "latents.json").read_text())
        latents = int(info["latent_shape"][1])
    except (FileNotFoundError, ValueError, KeyError, IndexError, TypeError):
        return None
    frames = 1 + temporal_factor * (latents - 1)
    try:
        frames = int(json.loads((Path(info["data"]) / "dataset.json").read_text())["frames"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        pass
    return frames, latents


def conditioning(
    train: Dict, window: Optional[Tuple[int, int]], extension_context: int = 2
) -> Optional[Dict]:
    """The manifest's "conditioning" block, or None for a denoiser without context training (or
    whose training window is unknown). extension_context is capped at T - 1."""
    if not train.get("context_prob", 0) > 0 or window is None:
        return None
    frames, latents = window
    if latents < 2:
        return None
    return {
        "window_frames": frames,
        "window_latents": latents,
        "max_context_latents": latents - 1,
        "extension_context_latents": max(1, min(extension_context, latents - 1)),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Add a denoiser to a model bundle.")
    ap.add_argument("--ckpt", help="the denoiser's checkpoint (not with --sampler-only)")
    ap.add_argument(
        "--bundle", required=True, help="bundle folder made by diffusable.export.ae_bundle"
    )
    ap.add_argument(
        "--sampler-only",
        action="store_true",
        help="only set the bundle's sampler defaults (--guidance/--steps/--method)",
    )
    ap.add_argument("--guidance", type=float, help="sampler default (default: the run's)")
    ap.add_argument("--steps", type=int, help="sampler steps default (default: the run's)")
    ap.add_argument("--method", choices=SAMPLER_METHODS, help="default: the run's")
    ap.add_argument(
        "--extension-context",
        type=int,
        default=2,
        help="latent frames of context per window of a chained extension (default 2)",
    )
    add_weights_flag(ap)
    args = ap.parse_args(argv)
    chosen = {"guidance": args.guidance, "steps": args.steps, "method": args.method}
    bundle = Path(args.bundle)
    if args.sampler_only:
        return set_sampler_defaults(bundle, chosen, args.ckpt)
    if not args.ckpt:
        print("denoiser_bundle: --ckpt is required (or --sampler-only)", file=sys.stderr)
        return 2
    ckpt = Path(args.ckpt)
    try:
        state = load_checkpoint(ckpt)
        if state.get("kind") != "denoiser":
            raise ValueError(f"{ckpt} is not a denoiser checkpoint")
        manifest = json.loads((bundle / "manifest.json").read_text())
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"denoiser_bundle: {err}", file=sys.stderr)
        return 2
    model = Denoiser(DenoiserConfig.from_dict(state["config"]))
    model.load_state_dict(state["ema"])
    # Recorded relative to the repository (or absolute, by older runs).
    ae_ckpt = load_checkpoint(paths.REPO_ROOT / state["autoencoder"])
    ae_run = manifest["runs"]["autoencoder"]
    # A decoder fine-tune keeps its init's latents bit for bit, so it serves that init's denoiser.
    if latents_of(ae_ckpt) != bundle_latents(ae_run):
        print(
            f"denoiser_bundle: the denoiser was trained on {ae_ckpt.get('run_id')} step "
            f"{ae_ckpt.get('step')}, but {bundle} holds {ae_run.get('id')} step "
            f"{ae_run.get('step')}",
            file=sys.stderr,
        )
        return 2
    metadata = {"diffusable.bundle": manifest["name"], "diffusable.variant": manifest["variant"]}
    export_denoiser_onnx(model, bundle / "denoiser.onnx", metadata, args.weights)

    events = ckpt.parent.parent / "events.jsonl"
    last = last_event(events, "eval") or {}
    manifest["classes"] = state["classes"]
    manifest["null_class"] = len(state["classes"])
    manifest["denoiser_config"] = model.cfg.to_dict()
    manifest["sampler"] = sampler_defaults(state["train"], chosen)
    window = training_window(state, events, int(manifest.get("temporal_factor", 4)))
    block = (
        conditioning(state["train"], window, args.extension_context) if model.cfg.context else None
    )
    if block is None:
        manifest.pop("conditioning", None)
    else:
        manifest["conditioning"] = block
    manifest["onnx"]["denoiser"] = "denoiser.onnx"
    manifest["onnx"]["denoiser_weights"] = args.weights
    manifest["runs"]["diffusion"] = {"id": state.get("run_id"), "step": state.get("step")}
    manifest["metrics"]["diffusion"] = {k: last[k] for k in last if k not in ("type", "time")}
    manifest["files"] = bundle_file_entries(bundle)
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"added denoiser (step {state.get('step')}) to {bundle}")
    return 0


def set_sampler_defaults(bundle: Path, chosen: Dict, ckpt: Optional[str]) -> int:
    """--sampler-only: rewrite the manifest's sampler block, nothing else."""
    if ckpt:
        print("denoiser_bundle: --sampler-only takes no --ckpt", file=sys.stderr)
        return 2
    path = bundle / "manifest.json"
    try:
        manifest = with_sampler(json.loads(path.read_text()), chosen)
    except (FileNotFoundError, ValueError) as err:
        print(f"denoiser_bundle: {err}", file=sys.stderr)
        return 2
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"sampler defaults of {bundle.name}: {manifest['sampler']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
