"""Autoencoder losses: reconstruction, KL, and an optional per-frame patch discriminator."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 + L2, means over every element: L1 keeps edges sharp, L2 punishes big misses."""
    return F.l1_loss(recon, target) + F.mse_loss(recon, target)


def gradient_loss(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the horizontal and vertical neighbour steps of recon and of target (..., H, W).

    A pixel loss weighs an alternating pattern of amplitude a by a; this term weighs it by 2a
    and sees nothing of a smooth offset, so it goes after the 2-pixel pattern the decoder's last
    channel-to-space unfold draws (and the block edges the 8-pixel grid ratio counts)."""
    dx = lambda v: v[..., :, 1:] - v[..., :, :-1]  # noqa: E731
    dy = lambda v: v[..., 1:, :] - v[..., :-1, :]  # noqa: E731
    return F.l1_loss(dx(recon), dx(target)) + F.l1_loss(dy(recon), dy(target))


def step_profile(x: torch.Tensor, period: int = 8) -> torch.Tensor:
    """Mean |step| between neighbouring pixels at each of the `period` phases, per clip:
    (B, C, T, H, W) -> (B, 2, period), horizontal then vertical; phase p holds the steps from
    pixel p - 1 to p (mod period), so phase 0 is the step across a block edge. The 8-pixel grid
    ratio (metrics.grid_ratio) is phase 0 over the mean of the others."""
    dh = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(1, 2, 3))  # (B, W-1)
    dv = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(1, 2, 4))  # (B, H-1)

    def fold(d: torch.Tensor) -> torch.Tensor:  # (B, n) -> (B, period), by the phase j + 1
        n = d.shape[1]
        pad = (-(n + 1)) % period  # room for the phases before step 1 and after the last one
        d = F.pad(d, (1, pad))  # position 0 (no step) and the tail are empty
        mask = F.pad(torch.ones_like(d[:, 1 : n + 1]), (1, pad))
        sums = d.reshape(d.shape[0], -1, period).sum(dim=1)
        counts = mask.reshape(d.shape[0], -1, period).sum(dim=1)
        return sums / counts

    return torch.stack([fold(dh), fold(dv)], dim=1)


def step_profile_loss(recon: torch.Tensor, target: torch.Tensor, period: int = 8) -> torch.Tensor:
    """L1 between the shapes of the step profiles (step_profile, each divided by its own mean
    over the phases) of recon and target. A pixel loss lets a decoder put its errors where they
    cost least; the conv VAE's last channel-to-space unfold puts them across its 2x2 cells and
    block edges, a periodic pattern of larger steps there and flatter pixels inside (grid ratio
    1.4 where real video has 1.0). Only the shape is compared: a reconstruction that is smoother
    than its target everywhere is the pixel loss's business, not this term's (matching the
    magnitudes pushed the decoder to sharpen everything: a 0.7 relative error, all blur)."""
    pr, pt = step_profile(recon, period), step_profile(target, period)
    shape_r = pr / pr.mean(dim=2, keepdim=True).clamp_min(1e-4)
    shape_t = pt / pt.mean(dim=2, keepdim=True).clamp_min(1e-4)
    return (shape_r - shape_t).abs().mean()


def kl_loss(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per latent element; weighted lightly, it only keeps latents tame."""
    return 0.5 * torch.mean(mean.square() + logvar.exp() - 1.0 - logvar)


class PatchDiscriminator(nn.Module):
    """PatchGAN on single frames. It judges frames, not motion, so it never sees the future."""

    def __init__(self, channels: int = 3, width: int = 32, layers: int = 3):
        super().__init__()
        mods = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = width
        for _ in range(layers - 1):
            mods += [nn.Conv2d(c, 2 * c, 4, 2, 1), nn.GroupNorm(8, 2 * c), nn.LeakyReLU(0.2)]
            c *= 2
        mods.append(nn.Conv2d(c, 1, 3, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, video: torch.Tensor) -> torch.Tensor:  # (B, 3, T, H, W)
        b, c, t, h, w = video.shape
        frames = video.transpose(1, 2).reshape(b * t, c, h, w)  # (B*T, 3, H, W)
        # In float32 under any autocast: the network is small, and torch 1.13's CPU autocast
        # hands GroupNorm bf16 activations with float32 weights, which it refuses.
        with torch.autocast(video.device.type, enabled=False):
            return self.net(frames.float())  # (B*T, 1, h', w') logits


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def generator_adv_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


def adaptive_weight(
    rec_loss: torch.Tensor, adv_loss: torch.Tensor, last_weight: torch.Tensor, cap: float = 1e4
) -> torch.Tensor:
    """||d rec_loss / d W|| / ||d adv_loss / d W|| at the decoder's last layer W, detached
    (VQGAN's balancing). A fixed weight means a different pull at every step, as the
    discriminator sharpens and the reconstruction loss falls; this one keeps the adversarial
    term's gradient at a set fraction of the reconstruction's."""
    g_rec = torch.autograd.grad(rec_loss, last_weight, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv_loss, last_weight, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0.0, cap).detach()
