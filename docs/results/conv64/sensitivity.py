#!/usr/bin/env python3
"""How much a decoder amplifies an error in its latent: every val clip encoded, white Gaussian
noise of sd sigma added to the scaled latent (the space the denoiser works in, unit variance per
channel), decoded; PSNR against the clean decode and the 0.971 classifier's score of the result.
A denoiser's leftover error reaches the samples through this map, so two latent spaces that are
equally easy to denoise can still give samples of different quality.

    PYTHONPATH=src/training /usr/bin/python3 docs/results/conv64/sensitivity.py \
        OUT.json NAME=CKPT ...
(from the repository root, on the default procedural dataset; torch threads from
DIFFUSABLE_THREADS, default 2)."""
import json
import sys

import torch
from diffusable.models.checkpoint import load_autoencoder
from diffusable.evaluation.classifier import ClassifierConfig, class_scores, get_classifier
from diffusable.data.clips import ClipDataset
from probes import dataset, mean_psnr, parse_args

SIGMAS = (0.0, 0.25, 0.5)


def main() -> int:
    out, ckpts = parse_args("sensitivity.py OUT.json NAME=CKPT ...")
    root = dataset()
    val = ClipDataset(root, "val")
    video, labels = val.batch(list(range(len(val))))
    classifier, info = get_classifier(root, ClassifierConfig())
    size = info["config"]["size"]
    result = {"sigmas": list(SIGMAS), "val_clips": len(val), "classifier": info, "models": {}}
    for name, path in ckpts:
        vae, meta = load_autoencoder(path)
        vae.eval()
        rows = []
        with torch.no_grad():
            z = torch.cat([vae.encode_scaled(video[i : i + 8]) for i in range(0, len(video), 8)])
            clean = torch.cat(
                [vae.decode_scaled(z[i : i + 8]).clamp(-1, 1) for i in range(0, len(z), 8)]
            )
            gen = torch.Generator().manual_seed(0)
            noise = torch.randn(z.shape, generator=gen)
            for s in SIGMAS:
                zs = z + s * noise
                dec = torch.cat(
                    [vae.decode_scaled(zs[i : i + 8]).clamp(-1, 1) for i in range(0, len(z), 8)]
                )
                score = class_scores(classifier, dec, labels, val.classes, size)["mean"]
                rows.append(
                    {
                        "sigma": s,
                        "psnr_vs_clean_decode": mean_psnr(dec, clean) if s else None,
                        "psnr_vs_clip": mean_psnr(dec, video),
                        "class_score": score,
                    }
                )
        result["models"][name] = {
            "run_id": meta.get("run_id"),
            "step": meta.get("step"),
            "rows": rows,
        }
        for r in rows:
            print(name, json.dumps(r), flush=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
