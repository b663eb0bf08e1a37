"""Image metrics: SSIM against a float64 reference, the grid ratio on known patterns."""

import torch
import torch.nn.functional as F

from diffusable.evaluation.metrics import _gaussian_window, grid_ratio, grid_steps, psnr, ssim


def ssim_float64(x, y):
    """The textbook computation: float64, grouped per channel, values in [0, 1]."""
    b, c, t, h, w = x.shape
    win = _gaussian_window(11).double()[None, None].repeat(c, 1, 1, 1)
    f = lambda v: ((v.double() + 1) / 2).transpose(1, 2).reshape(b * t, c, h, w)  # noqa: E731
    a, d = f(x), f(y)
    mu_a, mu_d = F.conv2d(a, win, groups=c), F.conv2d(d, win, groups=c)
    var_a = F.conv2d(a * a, win, groups=c) - mu_a**2
    var_d = F.conv2d(d * d, win, groups=c) - mu_d**2
    cov = F.conv2d(a * d, win, groups=c) - mu_a * mu_d
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_d + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_d**2 + c1) * (var_a + var_d + c2)
    )
    return s.reshape(b, -1).mean(dim=1)


def test_ssim_matches_the_float64_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 3, 24, 20, generator=g) * 2 - 1
    y = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    assert torch.allclose(ssim(x, y).double(), ssim_float64(x, y), atol=1e-5)
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-5)
    assert (psnr(x, y) < psnr(x, (x + y) / 2)).all()


def test_grid_ratio_sees_a_block_pattern_and_not_noise():
    g = torch.Generator().manual_seed(1)
    noise = torch.rand(1, 3, 2, 32, 32, generator=g)
    assert abs(grid_ratio(grid_steps(noise)) - 1.0) < 0.05
    blocks = (
        torch.rand(1, 3, 2, 4, 4, generator=g).repeat_interleave(8, -1).repeat_interleave(8, -2)
    )
    assert grid_ratio(grid_steps(blocks + 0.01 * noise)) > 10
    # A smooth ramp has equal steps everywhere.
    ramp = torch.linspace(0, 1, 32).expand(1, 1, 1, 32, 32)
    assert abs(grid_ratio(grid_steps(ramp)) - 1.0) < 1e-6
