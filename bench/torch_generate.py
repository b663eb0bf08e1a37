"""PyTorch-eager side of bench/generate.ts, and the bench bundle it runs.

    PYTHONPATH=src/training /usr/bin/python3 bench/torch_generate.py --out DIR
        [--config compact] [--source models/small-se] [--threads 2] [--steps 25]
        [--guidance 2] [--batch 1] [--seconds 5] [--weights fp16|fp32]
        [--bundle-only | --denoiser-only | --time-only]

Builds DIR/<config>-bench/: a randomly initialised DiT of the given config (seed 0, every weight
perturbed by N(0, 0.05^2) so that adaLN-Zero does not make it predict v = 0), exported with
diffusable.export.denoiser_bundle.export_denoiser_onnx (weights stored as fp16 by default, as shipped)
next to a copy of the source bundle's autoencoder graphs, with the manifest updated like
denoiser_bundle does. Latency does not depend on trained weights. Then (unless --bundle-only)
times flow.sample in PyTorch eager on the same weights: `batch` clips of the bundle's default
frames, `steps` Euler steps with guidance (one 2B denoiser call per step, as the TypeScript
sampler makes), and prints one JSON line.
--denoiser-only writes just DIR/denoiser.onnx (16 latent channels, 13 classes), for tests;
--time-only rebuilds the same weights in memory (seed 0) for a bundle made before, and times.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from diffusable.models.denoiser import Denoiser, get_denoiser_config
from diffusable.export.denoiser_bundle import export_denoiser_onnx, sampler_defaults
from diffusable.models.flow import sample
from diffusable.threads import set_threads
from diffusable.export.onnx_export import add_weights_flag, bundle_file_entries, round_weights_fp16


def random_denoiser(
    config: str, latent_channels: int, num_classes: int, weights: str = "fp16"
) -> Denoiser:
    cfg = get_denoiser_config(config, latent_channels=latent_channels, num_classes=num_classes)
    torch.manual_seed(0)
    model = Denoiser(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    if weights == "fp16":
        round_weights_fp16(model)  # the values an fp16-stored export computes with
    return model


def build_bundle(
    out: Path, config: str, source: Path, steps: int, guidance: float, weights: str
) -> Denoiser:
    manifest = json.loads((source / "manifest.json").read_text())
    model = random_denoiser(config, manifest["latent_channels"], len(manifest["classes"]), weights)
    cfg = model.cfg
    bundle = out / f"{config}-bench"
    bundle.mkdir(parents=True, exist_ok=True)
    for name in manifest["files"]:
        if name != "denoiser.onnx":
            shutil.copyfile(source / name, bundle / name)
    metadata = {"diffusable.bundle": bundle.name, "diffusable.bench": "1"}
    export_denoiser_onnx(model, bundle / "denoiser.onnx", metadata, weights)
    manifest.update(
        name=bundle.name,
        null_class=cfg.null_class,
        denoiser_config=cfg.to_dict(),
        sampler=sampler_defaults({"sample_steps": steps, "guidance": guidance}),
    )
    manifest["onnx"]["denoiser"] = "denoiser.onnx"
    manifest["onnx"]["denoiser_weights"] = weights
    manifest["runs"]["diffusion"] = {"id": None, "note": "random init (bench)"}
    manifest["files"] = bundle_file_entries(bundle)
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--config", default="compact")
    ap.add_argument("--source", default="models/small-se")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=2.0)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5.0, help="time spent timing")
    ap.add_argument("--bundle-only", action="store_true")
    ap.add_argument("--denoiser-only", action="store_true")
    ap.add_argument("--time-only", action="store_true")
    add_weights_flag(ap)
    a = ap.parse_args()
    out = Path(a.out)
    if a.denoiser_only:
        model = random_denoiser(a.config, 16, 13, a.weights)
        export_denoiser_onnx(model, out / "denoiser.onnx", {"diffusable.bench": "1"}, a.weights)
        print(json.dumps({"denoiser": str(out / "denoiser.onnx"), "config": model.cfg.to_dict()}))
        return
    if a.time_only:
        m = json.loads((out / f"{a.config}-bench" / "manifest.json").read_text())
        model = random_denoiser(a.config, m["latent_channels"], len(m["classes"]), a.weights)
    else:
        model = build_bundle(out, a.config, Path(a.source), a.steps, a.guidance, a.weights)
    if a.bundle_only:
        print(json.dumps({"bundle": str(out / f"{a.config}-bench")}))
        return
    manifest = json.loads((out / f"{a.config}-bench" / "manifest.json").read_text())
    set_threads(a.threads)
    frames = manifest["frames"]["default"]
    hw = manifest["resolution"] // manifest["spatial_factor"]
    t = 1 + (frames - 1) // manifest["temporal_factor"]
    shape = (a.batch, manifest["latent_channels"], t, hw, hw)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(shape, generator=g)
    label = torch.zeros(a.batch, dtype=torch.long)

    def run():
        return sample(
            model,
            noise,
            label,
            steps=a.steps,
            guidance=a.guidance,
            null_class=manifest["null_class"],
        )

    with torch.no_grad():
        run()  # warm-up
        times = []
        start = time.perf_counter()
        while len(times) < 3 or time.perf_counter() - start < a.seconds:
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    print(
        json.dumps(
            {
                "config": a.config,
                "shape": list(shape),
                "steps": a.steps,
                "guidance": a.guidance,
                "threads": a.threads,
                "torch": torch.__version__,
                "iters": len(times),
                "seconds_per_sample": median,
                "clips_per_s": a.batch / median,
            }
        )
    )


if __name__ == "__main__":
    main()
