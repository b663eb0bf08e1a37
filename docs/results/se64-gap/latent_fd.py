"""Session 26: is the 64-channel SE gap in the latents the denoisers generate, or in the decoding?

Every number `fd_cls3d` gives passes through a decoder. This measures the same samples before
the decoder: for each arm (baseline, se, se-half) and each of the grid's three denoiser seeds
(step 2000), 8 samples a class (136) with the grid's sampler (12 Euler steps, guidance 2, the
noise of seed 0, as sampler_sweep draws it), kept as scaled latents (every channel at about unit
variance on training data, what the denoiser sees). Against the arm's own encoded train clips:

- `lfd`: a Frechet distance on fixed random 3D-conv features of the latent (the same weights for
  every arm: all three have 64 channels), divided by the same distance for the starting Gaussian
  noise. The share of the way from noise to the data the sampler has not covered; 0 is perfect.
  A ratio, but spaces scale it differently: session 27 reads it on each space's ladder (`lfd_t`).
- `tok_fd`: the same ratio for the distribution of single latent tokens (64-vectors).
- `hf_share`: the standardised HF share of the generated latents beside the real ones' (does
  the sampler reproduce each space's spectrum?).
- `recon_fd_cls3d`: `fd_cls3d` of each autoencoder's reconstructions of the same train clips
  against those clips: what the decoder costs with no denoiser at all.

    PYTHONPATH=src/training DIFFUSABLE_THREADS=2 /usr/bin/python3 \
        docs/results/se64-gap/latent_fd.py docs/results/se64-gap/latent-fd.json
    ... latent_fd.py docs/results/se64-gap/latent-fd-check.json --check   # is lfd trustworthy?
    ... latent_fd.py OUT --arm NAME=RUN_PATTERN ...   # other runs; {} in the pattern: the seed
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from diffusable.evaluation.classifier import ClassifierConfig, get_classifier
from diffusable.experiments.context_eval import ContextSampler
from diffusable.data.clips import ClipDataset
from diffusable.data.datasets import resolve_dataset
from diffusable.evaluation.features import FeatureExtractor, LatentRand3D
from diffusable.evaluation.frechet import frechet_distance_of
from diffusable.evaluation.spectrum import standardised_hf_share
from diffusable.threads import set_threads

ARMS = {  # arm: denoiser run folder per seed (each run records its autoencoder)
    "baseline": "runs/conv64/grid/dit-compact-conv64-baseline-s{}",
    "se": "runs/conv64/grid/dit-compact-conv64-se-s{}",
    "se-half": "runs/s25/grid/dit-compact-conv64-se-half-s{}",
}
# The denoiser seeds of a grid; a run pattern without {} is one denoiser sampled with these noise
# seeds instead (a shipped bundle's).
SEEDS = (0, 1, 2)
REAL = 544  # train clips encoded per arm (32 a class)


def latent_features(channels: int):
    """features.LatentRand3D (the trainer's `lfd` since session 27; this script's own copy until
    then, the same weights): (B, C, t, h, w) -> (B, 768) float64 numpy."""
    net = LatentRand3D(channels)
    return lambda z: net(z).double().numpy()


def tokens(z):  # (B, C, T, h, w) -> (B*T*h*w, C)
    return z.permute(0, 2, 3, 4, 1).reshape(-1, z.shape[1]).double().numpy()


@torch.no_grad()
def measure(out: str, arms, guidance: float = 2.0) -> int:
    set_threads(0)
    rows, real_cache = [], {}
    for arm, pattern in arms.items():
        for seed in SEEDS:
            t0 = time.time()
            s = ContextSampler(Path(pattern.format(seed)), 12, guidance)
            # the same weights for every arm of one channel count
            net = latent_features(s.vae.cfg.latent_channels)
            ae_key = str(s.vae.latent_scale.sum().item())
            if arm not in real_cache:
                root = resolve_dataset("procedural", s.vae.cfg)
                train = ClipDataset(root, "train")
                g = torch.Generator().manual_seed(1)
                idx = torch.randperm(len(train), generator=g)[:REAL].tolist()
                video = train.batch(idx)[0]
                z_real = s.encode(video)
                classifier, info = get_classifier(root, ClassifierConfig())
                cls3d = FeatureExtractor.classifier(classifier, info, train.frames)
                recon = s.decode(z_real)
                real_cache[arm] = {
                    "z": z_real,
                    "key": ae_key,
                    "recon_fd_cls3d": frechet_distance_of(
                        cls3d.features(video), cls3d.features(recon)
                    ),
                    "hf_real": standardised_hf_share(z_real),
                }
                print(f"{arm}: recon fd_cls3d {real_cache[arm]['recon_fd_cls3d']:.2f}", flush=True)
            real = real_cache[arm]
            assert real["key"] == ae_key, "the seeds of one arm share one autoencoder"
            k = len(s.classes)
            labels = torch.arange(k).repeat_interleave(8)
            g = torch.Generator().manual_seed(0 if "{}" in pattern else seed)
            shape = s.vae.cfg.latent_shape(17, 64, 64)
            noise = torch.randn((len(labels),) + tuple(shape), generator=g)
            z = s.latents(noise, labels)
            fr, fz, fn = net(real["z"]), net(z), net(noise)
            tr, tz, tn = tokens(real["z"]), tokens(z), tokens(noise)
            row = {
                "arm": arm,
                "seed": seed,
                "step": s.step,
                "lfd": frechet_distance_of(fr, fz) / frechet_distance_of(fr, fn),
                "lfd_raw": frechet_distance_of(fr, fz),
                "lfd_noise": frechet_distance_of(fr, fn),
                "tok_fd": frechet_distance_of(tr, tz) / frechet_distance_of(tr, tn),
                "hf_share": standardised_hf_share(z),
                "hf_share_real": real["hf_real"],
                "recon_fd_cls3d": real["recon_fd_cls3d"],
                "wall_s": round(time.time() - t0, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    Path(out).write_text(
        json.dumps({"threads": torch.get_num_threads(), "real_clips": REAL, "rows": rows}, indent=1)
        + "\n"
    )
    return 0


@torch.no_grad()
def check(out: str, arms) -> int:
    """Does `lfd` separate real from degraded? Per arm: the 136 held-out val clips' latents (the
    floor a perfect sampler reaches with this many samples), and the same latents blended with
    the Gaussian noise as the sampler's path at time t (1 - t) z + t n, for t in 0.1 .. 0.5."""
    set_threads(0)
    rows = []
    for arm, pattern in arms.items():
        s = ContextSampler(Path(pattern.format(0)), 12, 2.0)
        net = latent_features(s.vae.cfg.latent_channels)
        root = resolve_dataset("procedural", s.vae.cfg)
        train, val = ClipDataset(root, "train"), ClipDataset(root, "val")
        idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(1))[:REAL]
        fr = net(s.encode(train.batch(idx.tolist())[0]))
        z = s.encode(val.batch(list(range(len(val))))[0])
        n = torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
        base = frechet_distance_of(fr, net(n))
        for t in (0.0, 0.1, 0.2, 0.3, 0.5):
            row = {
                "arm": arm,
                "t": t,
                "lfd": frechet_distance_of(fr, net((1 - t) * z + t * n)) / base,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    Path(out).write_text(json.dumps({"real_clips": REAL, "rows": rows}, indent=1) + "\n")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--check", action="store_true", help="lfd of real and noise-blended latents")
    ap.add_argument("--arm", nargs="+", help="NAME=RUN_PATTERN ({}: the seed); default ARMS")
    ap.add_argument("--guidance", type=float, default=2.0, help="the grid's; the bundles': 3")
    args = ap.parse_args(argv)
    arms = dict(a.split("=", 1) for a in args.arm) if args.arm else ARMS
    if args.check:
        return check(args.out, arms)
    return measure(args.out, arms, args.guidance)


if __name__ == "__main__":
    sys.exit(main())
