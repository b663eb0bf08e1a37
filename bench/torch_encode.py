"""PyTorch-eager side of bench/encode.ts: encoder throughput on the same weights as the ONNX run.

    PYTHONPATH=src/training /usr/bin/python3 bench/torch_encode.py --out DIR
        (--manifest models/small-se/manifest.json | --ckpt PATH) [--threads 2] [--batch 4]

The model is a checkpoint's, or one built from a bundle manifest's `autoencoder_config` (the
shipped bundle's architecture and size, with seeded random weights: throughput does not depend
on their values), or without either the tiny fixture. Its bundle is exported to DIR (so the ONNX
side runs exactly these weights); a seeded input batch and PyTorch's latents are saved for a
parity check. Prints one JSON line: clips/s of encode_scaled (on the model as trained, and on
the inference form the export runs, `autoencoders.inference_form`), the encoder's FLOPs per batch
in each form (2 x the multiply-adds of every convolution called, on the real shapes; the
inference form does fewer, as frame 0's temporal taps are summed) and the machine's fp32
GEMM rate at the same thread count, measured now (the peak the convolutions are held against).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from gemm_peak import gemm_gflops  # bench/ is the script's folder, first on sys.path

from diffusable.models.autoencoders import build, config_from_dict, inference_form
from diffusable.export.ae_bundle import export_autoencoder
from diffusable.export.fixtures import make_tiny_bundle, perturb_zero_init
from diffusable.export.onnx_export import export_onnx, round_weights_fp16
from diffusable.threads import set_threads


class _ConvFlops(TorchFunctionMode):
    """Counts 2 x the multiply-adds of every convolution called while it is active, module or
    functional (the inference form calls F.conv2d with weights it computes)."""

    CONVS = (F.conv2d, F.conv3d, torch.conv2d, torch.conv3d)

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in self.CONVS:
            weight = args[1] if len(args) > 1 else kwargs["weight"]  # (O, C/groups, k...)
            self.flops += 2 * out.numel() * weight[0].numel()
        return out


def conv_flops(vae, video) -> int:
    """2 x multiply-adds of every convolution of one encode_scaled call on video."""
    counter = _ConvFlops()
    with torch.no_grad(), counter:
        vae.encode_scaled(video)
    return counter.flops


def time_encode(vae, video, budget: float):
    """(iterations, seconds per encode_scaled call) over about `budget` seconds, after a warm-up."""
    with torch.no_grad():
        vae.encode_scaled(video)
        start, iters = time.perf_counter(), 0
        while iters < 3 or time.perf_counter() - start < budget:
            vae.encode_scaled(video)
            iters += 1
    return iters, (time.perf_counter() - start) / iters


class _MatMul(torch.nn.Module):
    """x @ W with a fixed 1024 x 1024 weight: onnxruntime's MLAS GEMM, timed by the node side."""

    def __init__(self, n: int = 1024):
        super().__init__()
        self.register_buffer("w", torch.randn(n, n, generator=torch.Generator().manual_seed(1)))

    def forward(self, x):
        return x @ self.w


def export_gemm(path: Path, n: int = 1024) -> None:
    """gemm.onnx beside the bundle: the fp32 GEMM reference measured in onnxruntime itself
    (torch's OpenBLAS matmul reaches a quarter of what these convolutions do here)."""
    export_onnx(
        _MatMul(n), (torch.zeros(n, n),), path, ["x"], ["y"], {}, {"diffusable.role": "gemm"}
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--ckpt")
    ap.add_argument("--manifest", help="a bundle's manifest.json: its autoencoder_config")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=3.0, help="time spent timing")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.ckpt:
        from diffusable.models.checkpoint import load_autoencoder

        vae, _ = load_autoencoder(a.ckpt)
        vae = vae.eval().float()
        export_autoencoder(vae, out / "bundle", {"diffusable.bundle": "bench"})
        source = a.ckpt
    elif a.manifest:
        manifest = json.loads(Path(a.manifest).read_text())
        torch.manual_seed(0)
        cfg = config_from_dict(manifest["autoencoder_config"])  # any registered architecture
        vae = perturb_zero_init(build(cfg)).eval()
        export_autoencoder(vae, out / "bundle", {"diffusable.bundle": "bench"}, "fp16")
        # as the fp16-stored export rounds them: time and compare the same numbers
        vae = round_weights_fp16(vae)
        source = f"config of {manifest.get('name')} ({cfg.name}), seeded random weights"
    else:
        vae = make_tiny_bundle(out)  # writes out/bundle
        source = "diffusable.export.fixtures.make_tiny_bundle(seed=0)"
    cfg = vae.cfg
    set_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    shape = (a.batch, 3, cfg.frames, cfg.resolution, cfg.resolution)
    video = torch.rand(shape, generator=g) * 2 - 1
    with torch.no_grad():
        latent = vae.encode_scaled(video)  # the parity reference
    iters, seconds = time_encode(vae, video, a.seconds)
    # The same function in the form the ONNX graph runs (export/ae_bundle.py): PyTorch gains from it too,
    # so onnxruntime is also held against this.
    fast = inference_form(vae)
    _, seconds_inference = time_encode(fast, video, a.seconds)
    flops = conv_flops(vae, video)
    flops_inference = conv_flops(fast, video)  # fewer: frame 0's temporal taps are summed
    peak = gemm_gflops()
    export_gemm(out / "gemm.onnx")
    np.save(out / "input.npy", video.numpy())
    np.save(out / "expected.npy", latent.numpy())
    result = {
        "source": source,
        "config": cfg.name,
        "shape": list(shape),
        "threads": a.threads,
        "torch": torch.__version__,
        "iters": iters,
        "seconds_per_batch": seconds,
        "clips_per_s": a.batch / seconds,
        "clips_per_s_inference_form": a.batch / seconds_inference,
        "flops_per_batch": flops,
        "flops_per_batch_inference_form": flops_inference,
        "gflops_per_s": flops / seconds / 1e9,
        "gemm_gflops_per_s": peak,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
