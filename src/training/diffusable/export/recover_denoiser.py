"""A bundle's denoiser back as a training checkpoint, from its ONNX file.

The shipped denoisers' training checkpoints were never committed (only their ONNX graphs), so
they could not be trained further. The graph holds every weight under its state_dict name
(onnx_weights), and the manifest holds the config and the runs: that is a checkpoint. The
weights are exactly the ones the bundle computes with (int8 codes times fp16 scales), so the
checkpoint is stored int8 again without further loss, and `train_diffusion --init` continues
from it on the autoencoder whose latents the bundle's denoiser was trained on.

    PYTHONPATH=src/training /usr/bin/python3 -m diffusable.export.recover_denoiser \\
        --bundle models/small-se \\
        --ae docs/results/runs/ae-conv-small-gpu-se/checkpoints/ema-int8.pt \\
        --out docs/results/runs/dit-compact-gpu-se-cpu/checkpoints/ema-int8.pt
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..models.checkpoint import (
    bundle_latents,
    compact_state,
    latents_of,
    load_autoencoder,
    save_checkpoint,
)
from ..models.denoiser import Denoiser, DenoiserConfig
from ..events import portable_path
from .onnx_export import sha256_file
from .onnx_weights import read_initializers, state_from_initializers


def recover(bundle: Path, ae: Path) -> dict:
    """The checkpoint state (float32 EMA weights) of `bundle`'s denoiser, checked against `ae`."""
    manifest_path = bundle / "manifest.json"
    if not manifest_path.is_file():
        raise ValueError(f"{bundle.name} is not a bundle (no manifest.json)")
    manifest = json.loads(manifest_path.read_text())
    name = manifest.get("onnx", {}).get("denoiser")
    if not name or "denoiser_config" not in manifest:
        raise ValueError(f"bundle {manifest.get('name', bundle.name)} has no denoiser")
    cfg = DenoiserConfig.from_dict(manifest["denoiser_config"])
    model = Denoiser(cfg)
    state = state_from_initializers(read_initializers(bundle / name), model.state_dict().keys())
    model.load_state_dict(state)  # strict: every weight present, every shape right

    # The denoiser is only meaningful on the latents it was trained on.
    _, ae_meta = load_autoencoder(ae)
    ae_latents = latents_of(ae_meta)
    runs = manifest.get("runs", {})
    wanted = bundle_latents(runs.get("autoencoder", {}))
    if ae_latents != wanted:
        raise ValueError(
            f"{Path(ae).name} makes the latents of {ae_latents}, the bundle's denoiser was "
            f"trained on those of {wanted}"
        )
    diffusion = runs.get("diffusion", {})
    return {
        "kind": "denoiser",
        "config": cfg.to_dict(),
        "run_id": diffusion.get("id"),
        "step": diffusion.get("step"),
        "final": True,
        "classes": manifest["classes"],
        "autoencoder": portable_path(ae),
        "autoencoder_run": {"run_id": ae_meta.get("run_id"), "step": ae_meta.get("step")},
        "latents": ae_latents,
        # the sampler the bundle serves with (guidance, steps), the evaluators' default for it
        "sampler": manifest.get("sampler", {}),
        "recovered_from": {
            "bundle": manifest.get("name", bundle.name),
            "file": name,
            "sha256": sha256_file(bundle / name),
            "weights": manifest["onnx"].get("denoiser_weights", "fp32"),
        },
        "ema": model.state_dict(),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="A bundle's denoiser as a training checkpoint.")
    ap.add_argument("--bundle", required=True, help="bundle folder (manifest.json, denoiser)")
    ap.add_argument("--ae", required=True, help="autoencoder checkpoint making its latents")
    ap.add_argument("--out", required=True, help="checkpoint file to write (int8 weights)")
    args = ap.parse_args(argv)
    try:
        state = recover(Path(args.bundle), Path(args.ae))
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        print(f"recover_denoiser: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, compact_state(state, "int8"))
    print(f"recover_denoiser: {state['run_id']} step {state['step']} -> {portable_path(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
