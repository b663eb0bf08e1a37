"""Session 27: the shipped denoisers' `lfd` and `lfd_t` as the trainer reads them (section 0o).

Session 26 read the shipped pair on a coarser ladder of its own (`shipped-latent-fd/`). Here each
bundle's denoiser (rebuilt from its ONNX graph by `recover_denoiser` into runs/s27/dit/ARM.pt)
samples 128 clips (labels 0..16 in turn, 12 Euler steps, the bundles' guidance 3) from three
noise seeds, and train_diffusion's `lfd_reference` reads them against the arm's cached training
latents with the ladder of held-out val latents blended with that seed's noise.

    PYTHONPATH=src/training /usr/bin/python3 docs/results/lfd-grid/shipped.py > shipped.json
"""

import json
import sys
import time
from pathlib import Path

import torch

from diffusable.experiments.context_eval import ContextSampler
from diffusable.evaluation.features import noise_equivalent_t
from diffusable.training.latent_cache import load_latents
from diffusable.threads import set_threads
from diffusable.training.train_diffusion import DiffusionTrainConfig, lfd_reference

CACHE = "runs/gpu-aes/ae-conv-small-{}/latents/procedural-3595b87955-step1662"
SEEDS = (0, 1, 2)


def main() -> int:
    set_threads(0)
    cfg = DiffusionTrainConfig(eval_samples=128)
    rows = []
    for arm in ("baseline", "se"):
        s = ContextSampler(Path(f"runs/s27/dit/{arm}.pt"), 12, 3.0)
        train, _, _ = load_latents(Path(CACHE.format(arm)), "train")
        val, _, _ = load_latents(Path(CACHE.format(arm)), "val")
        labels = torch.arange(cfg.eval_samples) % len(s.classes)
        for seed in SEEDS:
            t0 = time.time()
            g = torch.Generator().manual_seed(seed)
            noise = torch.randn((cfg.eval_samples,) + tuple(train.shape[1:]), generator=g)
            lfd, space = lfd_reference(train, val, noise, cfg)
            value = lfd(s.latents(noise, labels))
            rows.append(
                {
                    "arm": arm,
                    "seed": seed,
                    "lfd": value,
                    "lfd_t": noise_equivalent_t(value, space["ladder"]),
                    "floor": space["floor"],
                    "ladder": [[t, v] for t, v in space["ladder"].items()],
                    "wall_s": round(time.time() - t0, 1),
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"threads": torch.get_num_threads(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
