"""The linear code: PCA of the autoencoder's own block structure, the floor every AE must clear.

A latent of C channels per (frame 0 | group of 4 frames) x 8 x 8 pixels can always be had
linearly: frame 0 as an 8x8x3 block, each later group of 4 frames as a 4x8x8x3 block, each
projected on the C principal components of such blocks in the training split (and the mean
added back to decode). `fit_linear_code` computes it, `init_from_linear_code` writes it into an
autoencoder's linear maps (its residual nets start at zero, so the model then *is* the linear
code), and `linear_code_model` is that step-0 model, used as the reference in `ae_eval`.
The 8x8 block average (each frame's 8x8 patches replaced by their mean colour) is the cruder
reference beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn.functional as F

from .pca_residual_vae import AutoencoderConfig, CausalVAE, to_tokens


@dataclass
class LinearCodeFit:
    mean0: torch.Tensor  # (3 p p,) frame-0 block mean
    basis0: torch.Tensor  # (3 p p, C) principal directions, columns by decreasing variance
    var0: torch.Tensor  # (C,) their variances
    mean: torch.Tensor  # (3 tp p p,) group block mean
    basis: torch.Tensor  # (3 tp p p, C)
    var: torch.Tensor  # (C,)
    blocks0: int  # blocks fitted on
    blocks: int

    def state_dict(self):
        return dict(self.__dict__)


def frame0_slots(cfg: AutoencoderConfig) -> torch.Tensor:
    """Token channels that hold frame 0 once (its token replicates it into all tp slots)."""
    p2, tp = cfg.patch_size**2, cfg.temporal_patch
    return torch.cat(
        [c * tp * p2 + (tp - 1) * p2 + torch.arange(p2) for c in range(cfg.in_channels)]
    )


def _pca(gram: torch.Tensor, total: torch.Tensor, n: int, k: int):
    mean = total / n
    cov = gram / n - torch.outer(mean, mean)
    var, vec = torch.linalg.eigh(cov)  # ascending
    order = torch.argsort(var, descending=True)[:k]
    basis = vec[:, order]
    # Fix each direction's sign (largest entry positive) so fits are reproducible.
    sign = torch.sign(basis.gather(0, basis.abs().argmax(0, keepdim=True)))
    return mean.float(), (basis * sign).float(), var[order].clamp_min(0).float()


@torch.no_grad()
def fit_linear_code(cfg: AutoencoderConfig, batches: Iterable[torch.Tensor]) -> LinearCodeFit:
    """PCA of frame-0 blocks and of later 4-frame blocks over clips (B, 3, 1+4k, H, W)."""
    slots = frame0_slots(cfg)
    d0, d = len(slots), cfg.token_channels
    g0 = torch.zeros(d0, d0, dtype=torch.float64)
    s0 = torch.zeros(d0, dtype=torch.float64)
    g1 = torch.zeros(d, d, dtype=torch.float64)
    s1 = torch.zeros(d, dtype=torch.float64)
    n0 = n1 = 0
    for video in batches:
        tok = to_tokens(video.double(), cfg.patch_size, cfg.temporal_patch, True)
        first = tok[:, slots, 0].permute(0, 2, 3, 1).reshape(-1, d0)  # (B h w, 3 p p)
        rest = tok[:, :, 1:].permute(0, 2, 3, 4, 1).reshape(-1, d)  # (B k h w, 3 tp p p)
        g0 += first.T @ first
        s0 += first.sum(0)
        n0 += first.shape[0]
        g1 += rest.T @ rest
        s1 += rest.sum(0)
        n1 += rest.shape[0]
    if n0 == 0 or n1 == 0:
        raise ValueError("the linear code needs clips of at least 1 + 4 frames")
    c = cfg.latent_channels
    mean0, basis0, var0 = _pca(g0, s0, n0, c)
    mean, basis, var = _pca(g1, s1, n1, c)
    return LinearCodeFit(mean0, basis0, var0, mean, basis, var, n0, n1)


def linear_code_config(cfg) -> AutoencoderConfig:
    """The linear code with the latent grid of any autoencoder config (its own for the
    PCA-residual model): the floor every autoencoder of that size is measured against."""
    if isinstance(cfg, AutoencoderConfig):
        return cfg
    return AutoencoderConfig(
        name="linear",
        latent_channels=cfg.latent_channels,
        # The linear code's model computes its residual nets too (zero-initialised): keep them
        # minimal, they only cost time.
        encoder_width=8,
        decoder_width=8,
        encoder_blocks=1,
        decoder_blocks=1,
        patch_size=cfg.spatial_factor,
        temporal_patch=cfg.temporal_factor,
        resolution=cfg.resolution,
        frames=cfg.frames,
        fps=cfg.fps,
    )


def fit_linear_code_on(cfg: AutoencoderConfig, dataset, batch: int = 32) -> LinearCodeFit:
    """fit_linear_code over every clip of a ClipDataset split, read `batch` clips at a time."""
    n = len(dataset)
    return fit_linear_code(
        cfg, (dataset.batch(list(range(i, min(i + batch, n))))[0] for i in range(0, n, batch))
    )


@torch.no_grad()
def init_from_linear_code(vae: CausalVAE, fit: LinearCodeFit) -> CausalVAE:
    """Write the PCA into the encoder's and decoder's linear maps (the residuals stay as they are:
    zero at initialisation)."""
    cfg = vae.cfg
    slots = frame0_slots(cfg)
    tp, d0 = cfg.temporal_patch, len(slots)
    enc, dec = vae.encoder.linear, vae.decoder.linear
    # encode: z = U^T (x - mu); frame 0 reads its one copy in the replicated token.
    w0 = torch.zeros(cfg.latent_channels, cfg.token_channels)
    w0[:, slots] = fit.basis0.T
    enc.set_token_maps(w0, -fit.basis0.T @ fit.mean0, fit.basis.T, -fit.basis.T @ fit.mean)
    # decode: x = U z + mu; frame 0's block is written to all of its token's slots.
    all_slots = torch.stack([slots - (tp - 1 - dt) * (d0 // cfg.in_channels) for dt in range(tp)])
    wd0 = torch.zeros(cfg.token_channels, cfg.latent_channels)
    bd0 = torch.zeros(cfg.token_channels)
    for s in all_slots:
        wd0[s] = fit.basis0
        bd0[s] = fit.mean0
    dec.set_token_maps(wd0, bd0, fit.basis, fit.mean)
    return vae


def linear_code_model(cfg: AutoencoderConfig, fit: LinearCodeFit) -> CausalVAE:
    """An autoencoder that is exactly the linear code (zero residuals)."""
    return init_from_linear_code(CausalVAE(cfg), fit).eval()


def block_average(video: torch.Tensor, p: int = 8) -> torch.Tensor:
    """Each frame's p x p patches replaced by their mean colour. (B, 3, T, H, W) -> same."""
    small = F.avg_pool3d(video, kernel_size=(1, p, p))
    return F.interpolate(small, scale_factor=(1.0, float(p), float(p)), mode="nearest")
