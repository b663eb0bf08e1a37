"""Image-quality metrics on videos in [-1, 1]: PSNR and SSIM, per clip."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each clip, on the [0, 1] scale. (B, 3, T, H, W) x2 -> (B,)"""
    mse = ((x - y) / 2).square().flatten(1).mean(dim=1).clamp_min(1e-10)
    return -10.0 * torch.log10(mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).float()  # (size, size)


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of each clip (Wang et al. 2004: 11x11 Gaussian, sigma 1.5, per frame and
    channel, valid windows only, on the [0, 1] scale). (B, 3, T, H, W) x2 -> (B,)"""
    b, c, t, h, w = x.shape
    size = min(11, h, w)
    win = _gaussian_window(size).to(x)[None, None].repeat(c, 1, 1, 1)  # (3, 1, k, k)

    def frames(v: torch.Tensor) -> torch.Tensor:
        return ((v + 1) / 2).transpose(1, 2).reshape(b * t, c, h, w)  # (B*T, 3, H, W)

    a, d = frames(x).double(), frames(y).double()
    win = win.double()
    mu_a = F.conv2d(a, win, groups=c)
    mu_d = F.conv2d(d, win, groups=c)
    var_a = F.conv2d(a * a, win, groups=c) - mu_a**2
    var_d = F.conv2d(d * d, win, groups=c) - mu_d**2
    cov = F.conv2d(a * d, win, groups=c) - mu_a * mu_d
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_d + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_d**2 + c1) * (var_a + var_d + c2)
    )
    return s.reshape(b, -1).mean(dim=1).float()


def grid_steps(x: torch.Tensor, period: int = 8) -> torch.Tensor:
    """Sums of |step| between neighbouring pixels across `period`-pixel block edges and inside
    blocks, horizontally and vertically: (edge sum, edge count, inside sum, inside count).
    (..., H, W) -> (4,) float64; grid_ratio turns the sums into the ratio."""
    x = x.double()
    dh = (x[..., :, 1:] - x[..., :, :-1]).abs()  # (..., H, W-1): step from column j to j+1
    dv = (x[..., 1:, :] - x[..., :-1, :]).abs()  # (..., H-1, W)
    eh = (torch.arange(1, x.shape[-1], device=x.device) % period) == 0  # the step crosses an edge
    ev = (torch.arange(1, x.shape[-2], device=x.device) % period) == 0
    edge = dh[..., eh].sum() + dv[..., ev, :].sum()
    inner = dh[..., ~eh].sum() + dv[..., ~ev, :].sum()
    n_edge = dh[..., eh].numel() + dv[..., ev, :].numel()
    n_inner = dh[..., ~eh].numel() + dv[..., ~ev, :].numel()
    return torch.tensor([float(edge), n_edge, float(inner), n_inner], dtype=torch.float64)


def grid_ratio(sums: torch.Tensor) -> float:
    """Mean |step| across block edges over mean |step| inside blocks (no grid: about 1)."""
    edge, n_edge, inner, n_inner = sums.tolist()
    return (edge / max(n_edge, 1)) / max(inner / max(n_inner, 1), 1e-12)
