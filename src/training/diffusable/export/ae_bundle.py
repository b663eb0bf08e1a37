"""Export an autoencoder checkpoint as a model bundle: models/<name>/{*.onnx, manifest.json}.

    PYTHONPATH=src/training python3 -m diffusable.export.ae_bundle \
        --ckpt runs/se/checkpoints/last.pt --out models/se-small

Files (contract in docs/bundle.md and ../shared/DESIGN.md):
  encoder.onnx       video  (B, 3, 1+4k, H, W) in [-1, 1] -> latent (B, C, 1+k, H/8, W/8), scaled
  decoder.onnx       latent (B, C, 1+k, h, w)             -> video  (B, 3, 1+4k, 8h, 8w) in [-1, 1]
  encoder_init.onnx  video  (B, 3, 1, H, W)   -> latent (B, C, 1, h, w), cache_out_0..n-1
  encoder_step.onnx  video  (B, 3, 4m, H, W), cache_0..n-1 -> latent (B, C, m, h, w), cache_out_*
  encoder.weights    the three encoder graphs' parameters, once (ONNX external data)
The init/step pair encodes a long video chunk by chunk (frame 0, then 4m frames at a time),
carrying each causal convolution's last frames; the latents equal encoder.onnx's on the whole.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch
import torch.nn as nn

from ..models.autoencoders import inference_form
from ..models.checkpoint import bundle_latents
from .onnx_export import add_weights_flag, bundle_file_entries, export_onnx
from .onnx_shared_weights import share_weights

BUNDLE_FORMAT = "diffusable-bundle/1"
ENCODER_WEIGHTS = "encoder.weights"


class _Encode(nn.Module):
    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, video):
        return self.vae.encode_scaled(video)


class _Decode(nn.Module):
    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, latent):
        return self.vae.decode_scaled(latent).clamp(-1.0, 1.0)


class _EncodeInit(nn.Module):
    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, video):
        latent, caches = self.vae.encode_step(video)
        return (latent, *caches)


class _EncodeStep(nn.Module):
    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, video, *caches):
        latent, new_caches = self.vae.encode_step(video, list(caches))
        return (latent, *new_caches)


VIDEO_AXES = {0: "batch", 2: "frames", 3: "height", 4: "width"}
LATENT_AXES = {0: "batch", 2: "latent_frames", 3: "latent_height", 4: "latent_width"}
CACHE_AXES = {0: "batch", 3: "cache_height", 4: "cache_width"}


def export_autoencoder(
    vae: nn.Module, out: Path, metadata: Dict[str, str], weights: str = "fp32"
) -> Dict:
    """Write the four ONNX files; returns the manifest's "onnx" section.

    weights="fp16" stores parameters as fp16 (the graphs still compute in fp32).
    """
    cfg = vae.cfg
    vae = inference_form(vae.eval().float())  # the same maths in fewer, faster ops
    size = cfg.spatial_factor * 2  # small, but deep enough that every layer has 2x2 or more
    video = torch.zeros(1, 3, 1 + cfg.temporal_factor, size, size)
    latent = vae.encode_scaled(video).detach()
    md = lambda role: {**metadata, "diffusable.role": role}  # noqa: E731

    export_onnx(
        _Encode(vae),
        (video,),
        out / "encoder.onnx",
        ["video"],
        ["latent"],
        {"video": VIDEO_AXES, "latent": LATENT_AXES},
        md("encoder"),
        weights,
    )
    export_onnx(
        _Decode(vae),
        (latent,),
        out / "decoder.onnx",
        ["latent"],
        ["video"],
        {"latent": LATENT_AXES, "video": VIDEO_AXES},
        md("decoder"),
        weights,
    )

    _, caches = vae.encode_step(video[:, :, :1])
    n = len(caches)
    cache_in = [f"cache_{i}" for i in range(n)]
    cache_out = [f"cache_out_{i}" for i in range(n)]
    out_axes = {name: CACHE_AXES for name in cache_out}
    in_axes = {name: CACHE_AXES for name in cache_in}
    export_onnx(
        _EncodeInit(vae),
        (video[:, :, :1],),
        out / "encoder_init.onnx",
        ["video"],
        ["latent"] + cache_out,
        {"video": VIDEO_AXES, "latent": LATENT_AXES, **out_axes},
        md("encoder_init"),
        weights,
    )
    step_args = (video[:, :, 1:], *[c.detach() for c in caches])
    export_onnx(
        _EncodeStep(vae),
        step_args,
        out / "encoder_step.onnx",
        ["video"] + cache_in,
        ["latent"] + cache_out,
        {"video": VIDEO_AXES, "latent": LATENT_AXES, **in_axes, **out_axes},
        md("encoder_step"),
        weights,
    )
    # The three encoder graphs compute with the same parameters: stored once, they leave room in
    # the bundle budget for the denoiser (inline, the encoder took three times its size).
    encoders = ["encoder.onnx", "encoder_init.onnx", "encoder_step.onnx"]
    share_weights([out / g for g in encoders], out / ENCODER_WEIGHTS)
    return {
        "weights": weights,
        "encoder": "encoder.onnx",
        "decoder": "decoder.onnx",
        "external_data": [ENCODER_WEIGHTS],
        "encoder_stream": {
            "init": "encoder_init.onnx",
            "step": "encoder_step.onnx",
            "chunk_frames": cfg.temporal_factor,
            "caches": [
                {
                    "name": f"cache_{i}",
                    "channels": int(c.shape[1]),
                    "frames": int(c.shape[2]),
                    "downscale": size // int(c.shape[3]),
                }
                for i, c in enumerate(caches)
            ],
        },
    }


def last_event(events_path: Optional[Path], type_: str) -> Optional[Dict]:
    if events_path is None or not events_path.is_file():
        return None
    found = None
    for line in events_path.read_text().splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("type") == type_:
            found = event
    return found


def dataset_name(config_event: Dict) -> Optional[str]:
    """The dataset a run trained on, as a name that means something on another machine."""
    data = config_event.get("data")
    return Path(data).name if data else None


def bundle_sizes(cfg) -> Dict:
    """trained_sizes ([height, width] pairs) and, when the architecture runs at any size that is
    a multiple of its spatial factor (the conv autoencoders), tiling: tile and overlap sizes that
    cover its receptive fields."""
    sizes: Dict = {"trained_sizes": [[cfg.resolution, cfg.resolution]]}
    tiling = getattr(cfg, "spatial_tiling", None)
    if tiling is not None:
        sizes["trained_sizes"] = cfg.trained_sizes
        sizes["tiling"] = tiling()
    return sizes


def build_manifest(
    vae: nn.Module,
    name: str,
    variant: str,
    onnx: Dict,
    out: Path,
    *,
    classes: List[str],
    run: Dict,
    metrics: Dict,
) -> Dict:
    cfg = vae.cfg
    return {
        "format": BUNDLE_FORMAT,
        "name": name,
        "variant": variant,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "resolution": cfg.resolution,
        "fps": cfg.fps,
        "frames": {
            "rule": f"1+{cfg.temporal_factor}k",
            "default": cfg.frames,
            "min": cfg.min_frames,
            "max": 1 + 16 * cfg.temporal_factor,
        },
        "architecture": cfg.architecture,
        "spatial_factor": cfg.spatial_factor,
        "temporal_factor": cfg.temporal_factor,
        # Latent frames of history a decoder output depends on: windowed decoding feeds this
        # many frames in front of each window (the service never re-derives it).
        "decoder_context_latents": cfg.decoder_context_latents,
        "latent_channels": cfg.latent_channels,
        # The sizes it was trained on and, for a convolutional autoencoder, how the service tiles
        # larger frames (docs/bundle.md "Tiling"), both from the config.
        **bundle_sizes(cfg),
        "latent": {
            "scaled": True,
            "shift": vae.latent_shift.tolist(),
            "scale": vae.latent_scale.tolist(),
        },
        "classes": classes,
        "autoencoder_config": cfg.to_dict(),
        "onnx": onnx,
        "runs": {"autoencoder": run},
        "metrics": metrics,
        "files": bundle_file_entries(out),
    }


# What denoiser_bundle adds to a manifest; an autoencoder export into a bundle carries it over
# when the new autoencoder has the same latents as the one it replaces.
DENOISER_KEYS = ("denoiser_config", "sampler", "conditioning", "null_class")


def denoiser_kept(previous: Optional[Dict], run: Dict) -> bool:
    """Whether a bundle's denoiser (previous: its manifest) stays valid under an autoencoder
    from `run` (a manifest's runs.autoencoder record): both make the same latents."""
    if not previous or "denoiser" not in previous.get("onnx", {}):
        return False
    old = previous.get("runs", {}).get("autoencoder", {})
    return bundle_latents(old) == bundle_latents(run)


def carry_denoiser(manifest: Dict, previous: Dict) -> None:
    for key in DENOISER_KEYS:
        if key in previous:
            manifest[key] = previous[key]
    manifest["classes"] = previous["classes"]
    for key in ("denoiser", "denoiser_weights"):
        manifest["onnx"][key] = previous["onnx"][key]
    manifest["runs"]["diffusion"] = previous["runs"]["diffusion"]
    manifest["metrics"]["diffusion"] = previous.get("metrics", {}).get("diffusion", {})


def main(argv=None) -> int:
    from ..models.checkpoint import load_autoencoder

    ap = argparse.ArgumentParser(description="Export an autoencoder checkpoint as a model bundle.")
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--out", required=True, help="bundle folder, e.g. models/se-small")
    ap.add_argument("--name", help="bundle name (default: the folder's name)")
    ap.add_argument("--events", help="the run's events.jsonl (default: next to checkpoints/)")
    add_weights_flag(ap)
    args = ap.parse_args(argv)

    ckpt = Path(args.ckpt)
    try:
        vae, meta = load_autoencoder(ckpt)
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"ae_bundle: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    name = args.name or out.name
    events = Path(args.events) if args.events else ckpt.parent.parent / "events.jsonl"
    config_event = last_event(events, "config") or {}
    val = last_event(events, "val") or {}
    metrics = {k: val[k] for k in val if k not in ("type", "time")}
    if "psnr" in metrics:
        # The service's tests check reconstructions of videos unlike the training data against
        # this floor, so it sits well below the validation figure.
        metrics["psnr_floor_db"] = round(metrics["psnr"] - 8.0, 1)
    variant = meta.get("variant", "unknown")
    metadata = {
        "diffusable.bundle": name,
        "diffusable.variant": variant,
        "diffusable.autoencoder_config": vae.cfg.to_json(),
    }
    run = {"id": meta.get("run_id"), "step": meta.get("step"), "data": dataset_name(config_event)}
    if meta.get("latents_from"):  # a decoder fine-tune: its latents are another run's
        run["latents_from"] = meta["latents_from"]
    try:
        previous = json.loads((out / "manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        previous = None
    keep_denoiser = denoiser_kept(previous, run)
    out.mkdir(parents=True, exist_ok=True)
    if not keep_denoiser:  # a denoiser of other latents would sample noise: never leave one
        (out / "denoiser.onnx").unlink(missing_ok=True)
    onnx = export_autoencoder(vae, out, metadata, args.weights)
    manifest = build_manifest(
        vae,
        name,
        variant,
        onnx,
        out,
        classes=config_event.get("classes", []),
        run=run,
        metrics=metrics,
    )
    if keep_denoiser:
        carry_denoiser(manifest, previous)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if events.is_file():
        from ..events import EventLog, portable_path

        EventLog(events).write(
            "export",
            step=meta.get("step"),
            bundle=name,
            path=portable_path(out),
            files=manifest["files"],
        )
    kept = " (its denoiser kept: same latents)" if keep_denoiser else ""
    print(f"exported {name} ({variant}, step {meta.get('step')}) to {out}{kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
