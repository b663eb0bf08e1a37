"""Parity fixtures for the node tests: a tiny bundle plus inputs and PyTorch's outputs.

    PYTHONPATH=src/training python3 -m diffusable.fixtures --out DIR

Writes DIR/bundle/ (as export.py does, from a seeded tiny model) and DIR/cases.json:
  {"cases": [{"name", "model", "inputs": {name: file.npy}, "outputs": {name: file.npy},
              "tolerance"}], "metadata": {model: {key: value}}}
Every case is run by onnxruntime-node and compared with the saved PyTorch outputs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

from .autoencoder import CausalVAE, get_config
from .export import build_manifest, export_autoencoder

TOLERANCE = 1e-4


def _save(out: Path, name: str, tensor: torch.Tensor) -> str:
    np.save(out / name, tensor.detach().cpu().numpy().astype(np.float32))
    return name


def make_tiny_bundle(out: Path, seed: int = 0) -> CausalVAE:
    torch.manual_seed(seed)
    vae = CausalVAE(get_config("tiny")).eval()
    # A non-trivial latent affine, so that the test sees it baked into the graphs.
    c = vae.cfg.latent_channels
    vae.latent_shift.copy_(torch.linspace(-0.2, 0.2, c))
    vae.latent_scale.copy_(torch.linspace(0.5, 2.0, c))
    metadata = {
        "diffusable.bundle": "tiny-fixture",
        "diffusable.variant": "baseline",
        "diffusable.autoencoder_config": vae.cfg.to_json(),
    }
    bundle = out / "bundle"
    onnx = export_autoencoder(vae, bundle, metadata)
    manifest = build_manifest(
        vae,
        "tiny-fixture",
        "baseline",
        onnx,
        bundle,
        classes=["a", "b"],
        run={"id": None},
        metrics={},
    )
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return vae


@torch.no_grad()
def make_cases(vae: CausalVAE, out: Path) -> List[Dict]:
    g = torch.Generator().manual_seed(1)
    cases = []
    # One pass, and a second shape to exercise the dynamic axes (batch 2, 48x40, 5 frames).
    for tag, shape in (("a", (1, 3, 9, 32, 32)), ("b", (2, 3, 5, 48, 40))):
        video = torch.rand(shape, generator=g) * 2 - 1
        latent = vae.encode_scaled(video)
        cases.append(
            {
                "name": f"encoder {tag}",
                "model": "bundle/encoder.onnx",
                "inputs": {"video": _save(out, f"enc_{tag}_video.npy", video)},
                "outputs": {"latent": _save(out, f"enc_{tag}_latent.npy", latent)},
            }
        )
        decoded = vae.decode_scaled(latent).clamp(-1, 1)
        cases.append(
            {
                "name": f"decoder {tag}",
                "model": "bundle/decoder.onnx",
                "inputs": {"latent": _save(out, f"dec_{tag}_latent.npy", latent)},
                "outputs": {"video": _save(out, f"dec_{tag}_video.npy", decoded)},
            }
        )
    # Streaming: frame 0, then 4 frames, then 4 more; every step's outputs are checked.
    video = torch.rand((1, 3, 9, 32, 32), generator=g) * 2 - 1
    latent, caches = vae.encode_step(video[:, :, :1])
    outputs = {"latent": _save(out, "init_latent.npy", latent)}
    outputs.update(
        {f"cache_out_{i}": _save(out, f"init_cache_{i}.npy", c) for i, c in enumerate(caches)}
    )
    cases.append(
        {
            "name": "encoder_init",
            "model": "bundle/encoder_init.onnx",
            "inputs": {"video": _save(out, "init_video.npy", video[:, :, :1])},
            "outputs": outputs,
        }
    )
    for k, start in enumerate((1, 5)):
        inputs = {"video": _save(out, f"step{k}_video.npy", video[:, :, start : start + 4])}
        inputs.update(
            {f"cache_{i}": _save(out, f"step{k}_cache_{i}.npy", c) for i, c in enumerate(caches)}
        )
        latent, caches = vae.encode_step(video[:, :, start : start + 4], caches)
        outputs = {"latent": _save(out, f"step{k}_latent.npy", latent)}
        outputs.update(
            {
                f"cache_out_{i}": _save(out, f"step{k}_cache_out_{i}.npy", c)
                for i, c in enumerate(caches)
            }
        )
        cases.append(
            {
                "name": f"encoder_step {k}",
                "model": "bundle/encoder_step.onnx",
                "inputs": inputs,
                "outputs": outputs,
            }
        )
    for case in cases:
        case["tolerance"] = TOLERANCE
    return cases


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Write ONNX parity fixtures for the node tests.")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    vae = make_tiny_bundle(out)
    cases = make_cases(vae, out)
    config = vae.cfg.to_json()
    metadata = {
        f"bundle/{n}.onnx": {"diffusable.autoencoder_config": config, "diffusable.role": n}
        for n in ("encoder", "decoder", "encoder_init", "encoder_step")
    }
    (out / "cases.json").write_text(json.dumps({"cases": cases, "metadata": metadata}, indent=1))
    print(f"wrote {len(cases)} cases to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
