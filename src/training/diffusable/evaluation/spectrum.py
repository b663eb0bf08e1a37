"""The paper's diagnostic: 8x8 block DCT spectra of latents and videos, and the zeroing test.

    PYTHONPATH=src/training python3 -m diffusable.evaluation.spectrum \
        --ckpt runs/se/checkpoints/last.pt --out runs/se/spectrum

Spectrum: every frame of every channel is cut into 8x8 blocks, each block goes through an
orthonormal 2D DCT-II, and the squared coefficients are averaged over blocks, channels, frames and
clips, then listed in JPEG zigzag order (index 0 = DC, 63 = highest frequency).
High-frequency share: energy at zigzag indices 32..63 over all AC energy (1..63). DC is left out
because it only measures the mean, which for latents is an arbitrary offset.
Zeroing test: zero zigzag indices 32..63 in every block of the latent, decode, and report the PSNR
drop against the plain reconstruction; do the same to the decoded video for comparison. A latent
that hides detail in its high frequencies loses much more when they are removed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Dict, List

import torch

from .metrics import grid_ratio, grid_steps, psnr, ssim
from ..models.scale_equivariance import area_downsample

BLOCK = 8
HALF = BLOCK * BLOCK // 2


def dct_matrix(n: int = BLOCK) -> torch.Tensor:
    """Orthonormal DCT-II matrix D, so that coefficients = D @ block @ D.T."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


def zigzag_order(n: int = BLOCK) -> List[int]:
    """Flat (row * n + col) indices of an n x n block in JPEG zigzag order."""
    cells = [(r, c) for r in range(n) for c in range(n)]
    cells.sort(key=lambda rc: (rc[0] + rc[1], rc[0] if (rc[0] + rc[1]) % 2 else rc[1]))
    return [r * n + c for r, c in cells]


def _blocks(x: torch.Tensor) -> torch.Tensor:
    """(..., H, W) -> (..., H/8, W/8, 8, 8)."""
    *lead, h, w = x.shape
    if h % BLOCK or w % BLOCK:
        raise ValueError(f"spatial size {h}x{w} is not a multiple of the {BLOCK}x{BLOCK} DCT block")
    x = x.reshape(*lead, h // BLOCK, BLOCK, w // BLOCK, BLOCK)
    return x.transpose(-3, -2)


def _unblocks(x: torch.Tensor) -> torch.Tensor:
    *lead, hb, wb, _, _ = x.shape
    return x.transpose(-3, -2).reshape(*lead, hb * BLOCK, wb * BLOCK)


def block_dct(x: torch.Tensor) -> torch.Tensor:
    d = dct_matrix().to(x.device)
    return d @ _blocks(x.double()) @ d.T  # (..., H/8, W/8, 8, 8)


def block_idct(coef: torch.Tensor) -> torch.Tensor:
    d = dct_matrix().to(coef.device)
    return _unblocks(d.T @ coef @ d)


def spectrum(x: torch.Tensor) -> torch.Tensor:
    """Mean energy per zigzag frequency of (B, C, T, H, W) -> (64,) float64."""
    energy = block_dct(x).square().reshape(-1, BLOCK * BLOCK).mean(dim=0)
    return energy[zigzag_order()]


def channel_spectra(x: torch.Tensor) -> torch.Tensor:
    """Energy per zigzag frequency of each channel of (B, C, T, H, W) -> (C, 64) float64 sums
    over blocks (divide by the block count for means)."""
    c = x.shape[1]
    coef = block_dct(x.transpose(0, 1)).square()  # (C, B, T, h/8, w/8, 8, 8)
    return coef.reshape(c, -1, BLOCK * BLOCK).sum(dim=1)[:, zigzag_order()]


def channel_moments(x: torch.Tensor) -> torch.Tensor:
    """(C, 3) float64 per channel of (B, C, ...): count, sum, sum of squares (summable across
    batches, for standardised_spectrum)."""
    m = x.double().transpose(0, 1).flatten(1)  # (C, N)
    return torch.stack([torch.full_like(m[:, 0], m.shape[1]), m.sum(1), m.square().sum(1)], dim=1)


def standardised_spectrum(spec_sums: torch.Tensor, moments: torch.Tensor) -> torch.Tensor:
    """The mean spectrum of channel-standardised latents (what a denoiser sees, every channel at
    unit variance), from per-channel spectrum sums (C, 64) and moments (C, 3): count, sum, sum of
    squares. The DCT is orthonormal, so dividing a channel's energy by its variance is the same
    as standardising it first (the mean only moves the DC term, which hf_share leaves out)."""
    n, s1, s2 = moments.unbind(dim=1)
    var = (s2 / n - (s1 / n).square()).clamp_min(1e-12)  # (C,)
    blocks = n / (BLOCK * BLOCK)  # blocks per channel
    return (spec_sums / blocks[:, None] / var[:, None]).mean(dim=0)


# The scale-equivariance check: decode(down(z)) against down(x), at these spatial factors.
SE_FACTORS = (2, 4)


def hf_share(spec: torch.Tensor) -> float:
    """Energy at zigzag 32..63 over AC energy (1..63)."""
    return float(spec[HALF:].sum() / spec[1:].sum().clamp_min(1e-30))


def standardised_hf_share(latents: torch.Tensor) -> float:
    """hf_share of (B, C, T, h, w) latents with every channel at unit variance (what a denoiser
    sees): analyse's latent_hf_share_std, for latents from anywhere (a sampler's, say)."""
    z = latents.double()
    return hf_share(standardised_spectrum(channel_spectra(z), channel_moments(z)))


def lowpass(x: torch.Tensor) -> torch.Tensor:
    """Zero the upper half of zigzag frequencies in every 8x8 block; same dtype and shape."""
    coef = block_dct(x)
    mask = torch.zeros(BLOCK * BLOCK, dtype=coef.dtype, device=x.device)
    mask[torch.tensor(zigzag_order()[:HALF])] = 1.0
    coef = coef * mask.reshape(BLOCK, BLOCK)
    return block_idct(coef).to(x.dtype)


@torch.no_grad()
def analyse(model, clips: torch.Tensor, batch_size: int = 8) -> Dict:
    """Reconstruction quality, spectra, scale consistency, grid ratio and zeroing test of clips
    (N, 3, T, H, W) in [-1, 1].

    - latent_hf_share: variance-weighted (the smooth, high-variance channels dominate it);
      latent_hf_share_std: on channel-standardised latents, beside video_hf_share_latent_scale,
      the video area-downscaled to the latent's grid (the fair reference: same scale);
    - se_psnr_s{f}: PSNR of decode(area_down(z, f)) against area_down(x, f); se_bound_s{f}:
      PSNR of area_down(decode(z), f) against area_down(x, f), what an equivariant decoder gets;
    - grid_ratio: mean |step| across 8-pixel block edges over inside blocks, of reconstructions
      (grid_ratio_input: of the clips themselves);
    The spectral part needs latents of at least 8x8; smaller ones (tiny test models) get only
    PSNR, SSIM, the grid ratio and the SE checks that fit.
    """
    device = next(model.parameters()).device
    sums: Dict[str, float] = {}
    lat_spec = vid_spec = vid_small_spec = ch_spec = ch_moments = None
    grid = torch.zeros(4, dtype=torch.float64)
    grid_in = torch.zeros(4, dtype=torch.float64)
    n = 0

    def add(key: str, values: torch.Tensor) -> None:
        sums[key] = sums.get(key, 0.0) + float(values.sum())

    def acc(total, value):
        return value if total is None else total + value

    for start in range(0, clips.shape[0], batch_size):
        x = clips[start : start + batch_size].to(device)
        mean, _ = model.encode(x)  # (B, C, t, h, w)
        recon = model.decode(mean).clamp(-1, 1)
        b = x.shape[0]
        add("psnr", psnr(recon, x))
        add("ssim", ssim(recon, x))
        grid += grid_steps(recon.cpu())
        grid_in += grid_steps(x.cpu())
        for f in SE_FACTORS:
            if min(mean.shape[-2:]) % f or min(mean.shape[-2:]) < f:
                continue
            small = area_downsample(x, f)
            add(f"se_psnr_s{f}", psnr(model.decode(area_downsample(mean, f)).clamp(-1, 1), small))
            add(f"se_bound_s{f}", psnr(area_downsample(recon, f), small))
        if min(mean.shape[-2:]) >= BLOCK:
            ls, vs = spectrum(mean).cpu() * b, spectrum(x).cpu() * b
            lat_spec, vid_spec = acc(lat_spec, ls), acc(vid_spec, vs)
            scale = x.shape[-1] // mean.shape[-1]
            vid_small_spec = acc(vid_small_spec, spectrum(area_downsample(x, scale)).cpu() * b)
            ch_spec = acc(ch_spec, channel_spectra(mean).cpu())
            ch_moments = acc(ch_moments, channel_moments(mean).cpu())
            add("psnr_latent_lowpass", psnr(model.decode(lowpass(mean)).clamp(-1, 1), x))
            add("psnr_video_lowpass", psnr(lowpass(recon).clamp(-1, 1), x))
        n += b
    result: Dict = {"clips": n, **{k: v / n for k, v in sums.items()}}
    result["grid_ratio"] = grid_ratio(grid)
    result["grid_ratio_input"] = grid_ratio(grid_in)
    if lat_spec is not None:
        lat_spec, vid_spec, vid_small_spec = lat_spec / n, vid_spec / n, vid_small_spec / n
        std_spec = standardised_spectrum(ch_spec, ch_moments)
        result.update(
            latent_spectrum=lat_spec.tolist(),
            latent_spectrum_std=std_spec.tolist(),
            video_spectrum=vid_spec.tolist(),
            video_spectrum_latent_scale=vid_small_spec.tolist(),
            latent_hf_share=hf_share(lat_spec),
            latent_hf_share_std=hf_share(std_spec),
            video_hf_share=hf_share(vid_spec),
            video_hf_share_latent_scale=hf_share(vid_small_spec),
            psnr_drop_latent_lowpass=result["psnr"] - result["psnr_latent_lowpass"],
            psnr_drop_video_lowpass=result["psnr"] - result["psnr_video_lowpass"],
        )
    return result


def plot(result: Dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    for key, label in (("latent_spectrum", "latent"), ("video_spectrum", "video")):
        spec = torch.tensor(result[key])
        ax.semilogy(range(1, 64), (spec[1:] / spec[1:].sum()).tolist(), label=label)
    ax.axvline(HALF, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("zigzag frequency index (8x8 block DCT)")
    ax.set_ylabel("share of AC energy")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    from ..models.checkpoint import load_autoencoder
    from ..data.clips import ClipDataset
    from ..events import EventLog
    from ..data.datasets import resolve_dataset

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", required=True, help="autoencoder checkpoint (.pt)")
    ap.add_argument("--data", default="procedural", help="dataset folder, or 'procedural'")
    ap.add_argument("--split", default="val")
    ap.add_argument("--clips", type=int, default=64, help="at most this many clips")
    ap.add_argument("--out", required=True, help="folder for spectrum.json and spectrum.png")
    ap.add_argument("--events", help="events.jsonl to append a 'spectrum' event to")
    args = ap.parse_args(argv)

    try:
        model, meta = load_autoencoder(args.ckpt)
        ds = ClipDataset(resolve_dataset(args.data, model.cfg), args.split)
    except (FileNotFoundError, ValueError, KeyError) as err:
        print(f"spectrum: {err}", file=sys.stderr)
        return 2
    clips, _ = ds.batch(list(range(min(args.clips, len(ds)))))
    result = analyse(model.eval(), clips)
    result.update(checkpoint=str(args.ckpt), step=meta.get("step"), split=args.split)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "spectrum.json").write_text(json.dumps(result, indent=1))
    plot(result, out / "spectrum.png", f"{meta.get('variant', '')} step {meta.get('step')}")
    if args.events:
        EventLog(args.events).write("spectrum", step=meta.get("step"), **result)
    summary = {k: round(v, 4) for k, v in result.items() if isinstance(v, float)}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
