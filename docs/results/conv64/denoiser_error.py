#!/usr/bin/env python3
"""Where a denoiser's error goes: on the val clips, at fixed noise levels t, each grid run's
one-step estimate of the clean latent (x0_hat = x_t - t * v_hat, with the true label, no
guidance), its squared error in the scaled latent (what the training loss sees, per element),
and the PSNR between the decoded estimate and the decoded true latent (what the samples show).
Two latent spaces compared at equal denoiser training: a lower latent error can still decode
to a larger image error.

    PYTHONPATH=src/training /usr/bin/python3 docs/results/conv64/denoiser_error.py \\
        OUT.json NAME=RUN ...
(RUN: a grid run folder with checkpoints/last.pt; its autoencoder as the run recorded it; from
the repository root, on the default procedural dataset; torch threads from DIFFUSABLE_THREADS,
default 2)."""
import json
import sys

import torch
from diffusable.experiments.context_eval import ContextSampler
from diffusable.data.clips import ClipDataset
from probes import dataset, mean_psnr, parse_args

TIMES = (0.2, 0.4, 0.6, 0.8)


@torch.no_grad()
def main() -> int:
    out, runs = parse_args("denoiser_error.py OUT.json NAME=RUN ...")
    root = dataset()
    val = ClipDataset(root, "val")
    idx = list(range(0, len(val), 2))  # 68 clips, 4 a class
    video, labels = val.batch(idx)
    result = {"times": list(TIMES), "val_clips": len(idx), "runs": {}}
    for name, path in runs:
        s = ContextSampler(path, steps=12, guidance=1.0)
        enc = [s.vae.encode_scaled(video[i : i + 8]) for i in range(0, len(video), 8)]
        x0 = torch.cat(enc)
        clean = torch.cat([s.vae.decode_scaled(x0[i : i + 8]) for i in range(0, len(x0), 8)])
        g = torch.Generator().manual_seed(0)
        noise = torch.randn(x0.shape, generator=g)
        rows = []
        for t in TIMES:
            tt = torch.full((len(x0),), t)
            tb = tt.view(-1, 1, 1, 1, 1)
            xt = (1 - tb) * x0 + tb * noise
            v = torch.cat(
                [
                    s.model(xt[i : i + 8], tt[i : i + 8], labels[i : i + 8])
                    for i in range(0, len(x0), 8)
                ]
            ).float()
            x0_hat = xt - tb * v
            dec = torch.cat([s.vae.decode_scaled(x0_hat[i : i + 8]) for i in range(0, len(x0), 8)])
            row = {
                "t": t,
                "latent_mse": float(((x0_hat - x0) ** 2).mean()),
                "image_psnr_vs_clean_decode": mean_psnr(dec.clamp(-1, 1), clean.clamp(-1, 1)),
            }
            rows.append(row)
            print(name, json.dumps(row), flush=True)
        result["runs"][name] = {"run_id": s.run_id, "step": s.step, "rows": rows}
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
