"""Parity fixtures for the node tests: a tiny bundle plus inputs and PyTorch's outputs.

    PYTHONPATH=src/training python3 -m diffusable.export.fixtures --out DIR

Writes DIR/bundle/ (as export/ae_bundle.py does, from a seeded tiny model) and DIR/cases.json:
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

from ..models.pca_residual_vae import CausalVAE, get_config
from ..models.autoencoders import build
from ..models.autoencoders import get_config as get_any_config
from ..models.denoiser import Denoiser, get_denoiser_config
from .ae_bundle import build_manifest, export_autoencoder
from .onnx_export import bundle_file_entries, round_weights_fp16, round_weights_int8
from .denoiser_bundle import export_denoiser_onnx, sampler_defaults
from ..models.flow import sample

TOLERANCE = 1e-4


def _save(out: Path, name: str, tensor: torch.Tensor) -> str:
    np.save(out / name, tensor.detach().cpu().numpy().astype(np.float32))
    return name


@torch.no_grad()
def perturb_zero_init(model: torch.nn.Module, std: float = 0.02, seed: int = 0) -> torch.nn.Module:
    """Give every all-zero parameter small random values: a freshly built autoencoder's residual
    nets end in zero layers, so without this its graphs would compute only the linear code."""
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        if p.numel() > 1 and not p.any():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


def make_tiny_bundle(out: Path, seed: int = 0) -> CausalVAE:
    torch.manual_seed(seed)
    vae = perturb_zero_init(CausalVAE(get_config("tiny")), seed=seed).eval()
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
    # fp16 weight storage, as the shipped bundles have it (the inference form must not round
    # anything it derives from the weights); PyTorch computes with the same rounded weights.
    round_weights_fp16(vae)
    onnx = export_autoencoder(vae, bundle, metadata, "fp16")
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


def make_tiny_denoiser(out: Path, seed: int = 0) -> Denoiser:
    """A tiny denoiser with every weight perturbed (adaLN-Zero alone would predict v = 0).

    It is exported with fp16 weight storage, as shipped bundles are, so the parity cases cover
    that path; its weights are rounded to fp16 first, so PyTorch computes with the same values.
    """
    torch.manual_seed(seed)
    model = Denoiser(get_denoiser_config("tiny")).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    round_weights_fp16(model)
    bundle = out / "bundle"
    export_denoiser_onnx(
        model, bundle / "denoiser.onnx", {"diffusable.bundle": "tiny-fixture"}, "fp16"
    )
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest.update(
        null_class=model.cfg.null_class,
        denoiser_config=model.cfg.to_dict(),
        sampler=sampler_defaults({"sample_steps": 4, "guidance": 2.0}),
    )
    manifest["onnx"]["denoiser"] = "denoiser.onnx"
    manifest["onnx"]["denoiser_weights"] = "fp16"
    manifest["files"] = bundle_file_entries(bundle)
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return model


@torch.no_grad()
def denoiser_cases(model: Denoiser, out: Path) -> List[Dict]:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 4, 2, 4, 6, generator=g)
    t = torch.tensor([1.0, 0.5, 0.03])
    label = torch.tensor([0, 1, model.cfg.null_class])
    np.save(out / "den_label.npy", label.numpy().astype(np.int64))
    cases = [
        {
            "name": "denoiser",
            "model": "bundle/denoiser.onnx",
            "inputs": {
                "x": _save(out, "den_x.npy", x),
                "t": _save(out, "den_t.npy", t),
                "label": "den_label.npy",
            },
            "outputs": {"v": _save(out, "den_v.npy", model(x, t, label))},
        }
    ]
    # Whole sampler runs from fixed noise, for the TypeScript sampler's parity test.
    noise = torch.randn(2, 4, 2, 4, 4, generator=g)
    labels = torch.tensor([0, 1])
    np.save(out / "sampler_labels.npy", labels.numpy().astype(np.int64))
    runs = []
    for method, steps, guidance in (("euler", 4, 2.0), ("heun", 3, 1.5), ("euler", 1, 1.0)):
        x0 = sample(
            model,
            noise,
            labels,
            steps=steps,
            guidance=guidance,
            null_class=model.cfg.null_class,
            method=method,
        )
        name = f"sampler_{method}_{steps}_{guidance}.npy"
        runs.append(
            {"method": method, "steps": steps, "guidance": guidance, "output": _save(out, name, x0)}
        )
    (out / "sampler.json").write_text(
        json.dumps(
            {
                "noise": _save(out, "sampler_noise.npy", noise),
                "labels": "sampler_labels.npy",
                "null_class": model.cfg.null_class,
                "runs": runs,
                "tolerance": TOLERANCE,
            },
            indent=1,
        )
    )
    return cases


@torch.no_grad()
def make_cases(vae: torch.nn.Module, out: Path, folder: str = "bundle", shapes=None) -> List[Dict]:
    """Every graph of the bundle in `folder`: whole-clip encoder and decoder on each shape, and
    the streaming pair over three chunks. Files are prefixed by the folder's name."""
    g = torch.Generator().manual_seed(1)
    cases = []
    pre = "" if folder == "bundle" else f"{folder}_"
    name_pre = "" if folder == "bundle" else f"{folder} "
    # One pass, and a second shape to exercise the dynamic axes (batch 2, 48x40, 5 frames).
    shapes = shapes or (("a", (1, 3, 9, 32, 32)), ("b", (2, 3, 5, 48, 40)))
    for tag, shape in shapes:
        video = torch.rand(shape, generator=g) * 2 - 1
        latent = vae.encode_scaled(video)
        cases.append(
            {
                "name": f"{name_pre}encoder {tag}",
                "model": f"{folder}/encoder.onnx",
                "inputs": {"video": _save(out, f"{pre}enc_{tag}_video.npy", video)},
                "outputs": {"latent": _save(out, f"{pre}enc_{tag}_latent.npy", latent)},
            }
        )
        decoded = vae.decode_scaled(latent).clamp(-1, 1)
        cases.append(
            {
                "name": f"{name_pre}decoder {tag}",
                "model": f"{folder}/decoder.onnx",
                "inputs": {"latent": _save(out, f"{pre}dec_{tag}_latent.npy", latent)},
                "outputs": {"video": _save(out, f"{pre}dec_{tag}_video.npy", decoded)},
            }
        )
    # Streaming: frame 0, then 4 frames, then 4 more; every step's outputs are checked.
    video = torch.rand((1, 3, 9, 32, 32), generator=g) * 2 - 1
    latent, caches = vae.encode_step(video[:, :, :1])
    outputs = {"latent": _save(out, f"{pre}init_latent.npy", latent)}
    outputs.update(
        {f"cache_out_{i}": _save(out, f"{pre}init_cache_{i}.npy", c) for i, c in enumerate(caches)}
    )
    cases.append(
        {
            "name": f"{name_pre}encoder_init",
            "model": f"{folder}/encoder_init.onnx",
            "inputs": {"video": _save(out, f"{pre}init_video.npy", video[:, :, :1])},
            "outputs": outputs,
        }
    )
    for k, start in enumerate((1, 5)):
        inputs = {"video": _save(out, f"{pre}step{k}_video.npy", video[:, :, start : start + 4])}
        inputs.update(
            {
                f"cache_{i}": _save(out, f"{pre}step{k}_cache_{i}.npy", c)
                for i, c in enumerate(caches)
            }
        )
        latent, caches = vae.encode_step(video[:, :, start : start + 4], caches)
        outputs = {"latent": _save(out, f"{pre}step{k}_latent.npy", latent)}
        outputs.update(
            {
                f"cache_out_{i}": _save(out, f"{pre}step{k}_cache_out_{i}.npy", c)
                for i, c in enumerate(caches)
            }
        )
        cases.append(
            {
                "name": f"{name_pre}encoder_step {k}",
                "model": f"{folder}/encoder_step.onnx",
                "inputs": inputs,
                "outputs": outputs,
            }
        )
    for case in cases:
        case["tolerance"] = TOLERANCE
    return cases


@torch.no_grad()
def grown_decoder_cases(out: Path, seed: int = 3) -> List[Dict]:
    """The decoder with both optional stages (a 3x3 linear map over latent tokens, a refinement
    stage at twice the latent resolution), exported as a bundle would be. The shipped models use
    neither, so the bundle above does not cover their graph ops (edge padding, sub-tokens)."""
    g = torch.Generator().manual_seed(seed)
    vae = CausalVAE(get_config("tiny", decoder_linear_kernel=3, refine_width=16)).eval()
    for p in vae.parameters():  # every tap and the zero-initialised layers must matter
        p.add_(torch.randn(p.shape, generator=g) * 0.05)
    round_weights_fp16(vae)
    export_autoencoder(vae, out / "grown", {"diffusable.bundle": "grown-fixture"}, "fp16")
    latent = torch.randn(2, vae.cfg.latent_channels, 3, 4, 5, generator=g)
    return [
        {
            "name": "decoder, 3x3 linear map and refinement stage",
            "model": "grown/decoder.onnx",
            "inputs": {"latent": _save(out, "grown_latent.npy", latent)},
            "outputs": {
                "video": _save(out, "grown_video.npy", vae.decode_scaled(latent).clamp(-1, 1))
            },
        }
    ]


@torch.no_grad()
def conv_bundle_cases(out: Path, seed: int = 4) -> List[Dict]:
    """The convolutional causal VAE (conv_vae.py) exported as a bundle, every weight perturbed
    and stored as int8 codes (fp16 scales), with its four graphs checked on clips, on one image
    (a single latent
    frame, which the PCA-residual decoder cannot decode) and over the stream."""
    torch.manual_seed(seed)
    vae = build(get_any_config("conv-tiny")).eval()
    g = torch.Generator().manual_seed(seed)
    for p in vae.parameters():
        p.add_(torch.randn(p.shape, generator=g) * 0.05)
    c = vae.cfg.latent_channels
    vae.latent_shift.copy_(torch.linspace(-0.2, 0.2, c))
    vae.latent_scale.copy_(torch.linspace(0.5, 2.0, c))
    round_weights_int8(vae)  # the shipped conv bundles store int8 weights
    metadata = {"diffusable.bundle": "conv-fixture", "diffusable.variant": "se"}
    onnx = export_autoencoder(vae, out / "conv", metadata, "int8")
    manifest = build_manifest(
        vae, "conv-fixture", "se", onnx, out / "conv", classes=["a"], run={"id": None}, metrics={}
    )
    (out / "conv" / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shapes = (("a", (1, 3, 9, 32, 32)), ("b", (2, 3, 5, 48, 40)), ("image", (2, 3, 1, 40, 32)))
    return make_cases(vae, out, "conv", shapes)


@torch.no_grad()
def context_denoiser_cases(out: Path, seed: int = 5) -> List[Dict]:
    """A context-trained tiny denoiser (image-to-video and extension): its fourth input, the
    count of given leading latent frames, through onnxruntime (0, 1 and 2 in one batch)."""
    torch.manual_seed(seed)
    model = Denoiser(get_denoiser_config("tiny", context=True)).eval()
    for p in model.parameters():
        p.add_(torch.randn_like(p) * 0.05)
    round_weights_int8(model)
    export_denoiser_onnx(model, out / "ctx" / "denoiser.onnx", {"diffusable.bundle": "ctx"}, "int8")
    g = torch.Generator().manual_seed(6)
    x = torch.randn(3, 4, 3, 4, 4, generator=g)
    t = torch.tensor([0.9, 0.4, 0.1])
    label = torch.tensor([0, 1, model.cfg.null_class])
    context = torch.tensor([0, 1, 2])
    np.save(out / "ctx_label.npy", label.numpy().astype(np.int64))
    np.save(out / "ctx_context.npy", context.numpy().astype(np.int64))
    context_sampler_runs(model, out)
    return [
        {
            "name": "context-trained denoiser",
            "model": "ctx/denoiser.onnx",
            "inputs": {
                "x": _save(out, "ctx_x.npy", x),
                "t": _save(out, "ctx_t.npy", t),
                "label": "ctx_label.npy",
                "context": "ctx_context.npy",
            },
            "outputs": {"v": _save(out, "ctx_v.npy", model(x, t, label, context))},
        }
    ]


@torch.no_grad()
def context_sampler_runs(model: Denoiser, out: Path) -> None:
    """Conditioned sampler runs (flow.sample with given leading latent frames), added to
    sampler.json as "context_runs": the context-trained tiny denoiser in both context modes, from
    saved noise and context latents, for the TypeScript sampler's parity test."""
    g = torch.Generator().manual_seed(7)
    noise = torch.randn(2, 4, 4, 4, 4, generator=g)
    labels = torch.tensor([1, 0])
    np.save(out / "ctxs_labels.npy", labels.numpy().astype(np.int64))
    runs = []
    for k, mode, method, steps, guidance in (
        (1, "trained", "euler", 4, 2.0),
        (2, "trained", "heun", 3, 1.5),
        (1, "replace", "euler", 4, 2.0),
        (3, "replace", "heun", 3, 1.0),
    ):
        context = torch.randn(2, 4, k, 4, 4, generator=g)
        x0 = sample(
            model,
            noise,
            labels,
            steps=steps,
            guidance=guidance,
            null_class=model.cfg.null_class,
            method=method,
            context=context,
            context_mode=mode,
        )
        name = f"ctxs_{mode}_{k}_{method}_{steps}"
        runs.append(
            {
                "model": "ctx/denoiser.onnx",
                "mode": mode,
                "frames": k,
                "context": _save(out, f"{name}_context.npy", context),
                "method": method,
                "steps": steps,
                "guidance": guidance,
                "output": _save(out, f"{name}.npy", x0),
            }
        )
    path = out / "sampler.json"
    fixture = json.loads(path.read_text()) if path.exists() else {"tolerance": TOLERANCE}
    fixture["context"] = {
        "noise": _save(out, "ctxs_noise.npy", noise),
        "labels": "ctxs_labels.npy",
        "null_class": model.cfg.null_class,
        "runs": runs,
    }
    path.write_text(json.dumps(fixture, indent=1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Write ONNX parity fixtures for the node tests.")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    vae = make_tiny_bundle(out)
    denoiser = make_tiny_denoiser(out)
    cases = make_cases(vae, out) + denoiser_cases(denoiser, out) + grown_decoder_cases(out)
    cases += conv_bundle_cases(out) + context_denoiser_cases(out)
    for case in cases:
        case["tolerance"] = TOLERANCE
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
