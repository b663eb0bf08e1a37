"""Scale-equivariance (SE) regularisation: downscale-consistency in space and time.

Skorokhodov et al., "Improving the Diffusability of Autoencoders" (ICML 2025): a decoder that must
reconstruct a downscaled video from the equally downscaled latent cannot hide detail in the
latent's high frequencies, so the latent spectrum comes to resemble the video's and diffusion
learns it faster. The paper downscales space only; we also downscale time.

Every mode keeps the frame rule: space 2x/4x leaves 1 + k latent frames; time 2x keeps frame 0
and averages causal pairs, 1 + 2m latent frames -> 1 + m, and the video 1 + 4(2m) -> 1 + 4m, so
the small latent decodes to exactly as many frames as the small video has.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

# name -> (spatial factor, temporal factor)
SE_MODES: Dict[str, Tuple[int, int]] = {
    "s2": (2, 1),
    "s4": (4, 1),
    "t2": (1, 2),
    "s2t2": (2, 2),
}


def available_modes(latent_frames: int, latent_h: int, latent_w: int) -> List[str]:
    """Modes whose factors divide the latent grid (time needs an even number of frames after 0)."""
    modes = []
    for name, (fs, ft) in SE_MODES.items():
        if latent_h % fs or latent_w % fs or latent_h // fs < 1:
            continue
        if ft == 2 and ((latent_frames - 1) % 2 or latent_frames < 3):
            continue
        modes.append(name)
    return modes


# The autoencoder variants of the protocol: which modes each one's SE term draws from.
VARIANT_MODES: Dict[str, Tuple[str, ...]] = {
    "baseline": (),
    "se": ("s2", "s4", "t2", "s2t2"),
    "se-spatial": ("s2", "s4"),
}


def draw_mode(
    generator: torch.Generator,
    latent_shape: Tuple[int, ...],
    allowed: Tuple[str, ...] = tuple(SE_MODES),
) -> Optional[str]:
    """One mode, uniformly among the allowed ones that fit, from the step's own generator.

    Exactly one uniform number is drawn whatever `allowed` is, so variants that allow different
    modes (or none: the baseline, which gets None) consume the generator identically and see the
    same batches and noise."""
    _, _, t, h, w = latent_shape
    u = float(torch.rand(1, generator=generator))
    if not allowed:
        return None
    modes = [m for m in available_modes(t, h, w) if m in allowed]
    if not modes:
        raise ValueError(f"no scale-equivariance mode fits a latent of shape {tuple(latent_shape)}")
    return modes[min(int(u * len(modes)), len(modes) - 1)]


def causal_pair_average(x: torch.Tensor) -> torch.Tensor:
    """(B, C, 1 + 2m, H, W) -> (B, C, 1 + m, H, W): keep frame 0, average frames (2j-1, 2j)."""
    b, c, t, h, w = x.shape
    if (t - 1) % 2:
        raise ValueError(f"temporal 2x needs 1 + 2m frames, got {t}")
    pairs = x[:, :, 1:].reshape(b, c, (t - 1) // 2, 2, h, w).mean(dim=3)  # (B, C, m, H, W)
    return torch.cat([x[:, :, :1], pairs], dim=2)


def area_downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, C, T, H/f, W/f), box filter over f x f per frame."""
    if factor == 1:
        return x
    return F.avg_pool3d(x, kernel_size=(1, factor, factor))


def bilinear_downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, C, T, H/f, W/f), antialiased bilinear per frame (the paper's
    choice); its footprint overlaps the neighbouring f x f cells, unlike the box filter."""
    if factor == 1:
        return x
    b, c, t, h, w = x.shape
    frames = x.transpose(1, 2).reshape(b * t, c, h, w)
    small = F.interpolate(
        frames,
        size=(h // factor, w // factor),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    return small.reshape(b, t, c, h // factor, w // factor).transpose(1, 2)


# Spatial filters an SE term can use, by name (TrainConfig.se_filter).
SE_FILTERS = {"area": area_downsample, "bilinear": bilinear_downsample}


def downsample(x: torch.Tensor, mode: str, spatial_filter: str = "area") -> torch.Tensor:
    """Apply an SE mode to a latent or a video alike.

    In time both are pair-averaged at their own rate: latent 1 + 2m -> 1 + m frames, video
    1 + 8m -> 1 + 4m, and latent frame j of the small pair still covers video frames 4j-3..4j.
    """
    fs, ft = SE_MODES[mode]
    x = SE_FILTERS[spatial_filter](x, fs)
    if ft == 2:
        x = causal_pair_average(x)
    return x


def se_pair(
    latent: torch.Tensor, video: torch.Tensor, mode: str, spatial_filter: str = "area"
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The (small latent, small video) pair the decoder is asked to agree on."""
    return downsample(latent, mode, spatial_filter), downsample(video, mode, spatial_filter)
