"""What every autoencoder architecture shares (autoencoders.py registers them): the posterior
sample, the bundle's scaled latents and chunked encoding on top of each one's own encode,
decode and encode_step."""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn as nn


def check_frames(frames: int, temporal_factor: int) -> None:
    if frames < 1 or (frames - 1) % temporal_factor:
        raise ValueError(
            f"frame count must be 1 + {temporal_factor}k (1, {1 + temporal_factor}, "
            f"{1 + 2 * temporal_factor}, ...), got {frames}"
        )


class VideoVAE(nn.Module):
    """Subclasses set self.cfg and implement encode(video) -> (mean, logvar), decode(z) and
    encode_step(chunk, caches) -> (scaled latent, caches)."""

    def register_latent_affine(self, channels: int) -> None:
        # Per-channel affine that brings latents to roughly zero mean, unit variance; calibrated
        # on training data after training (train_ae.calibrate_latent_scale), baked into exports.
        self.register_buffer("latent_shift", torch.zeros(channels))
        self.register_buffer("latent_scale", torch.ones(channels))

    def forward(
        self, video: torch.Tensor, noise: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (reconstruction, z, mean, logvar); z is sampled when noise is given."""
        mean, logvar = self.encode(video)
        z = mean if noise is None else mean + torch.exp(0.5 * logvar) * noise
        return self.decode(z), z, mean, logvar

    def output_layer(self) -> nn.Module:
        """The decoder's last layer: the adversarial term's weight is balanced on its gradient."""
        raise NotImplementedError(f"{type(self).__name__} has no adversarial training")

    def _affine(self) -> Tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1, 1, 1, 1)
        return self.latent_shift.view(shape), self.latent_scale.view(shape)

    def scale_latent(self, mean: torch.Tensor) -> torch.Tensor:
        shift, scale = self._affine()
        return (mean - shift) * scale

    def encode_scaled(self, video: torch.Tensor) -> torch.Tensor:
        return self.scale_latent(self.encode(video)[0])

    def decode_scaled(self, latent: torch.Tensor) -> torch.Tensor:
        shift, scale = self._affine()
        return self.decode(latent / scale + shift)

    def encode_chunked(self, video: torch.Tensor, chunk_latents: int = 1) -> torch.Tensor:
        """Causal encoding in bounded memory: frame 0, then chunk_latents * tf frames at a time;
        equals encode_scaled of the whole video (tested per architecture)."""
        check_frames(video.shape[2], self.cfg.temporal_factor)
        latent, caches = self.encode_step(video[:, :, :1])
        parts: List[torch.Tensor] = [latent]
        step = chunk_latents * self.cfg.temporal_factor
        for start in range(1, video.shape[2], step):
            latent, caches = self.encode_step(video[:, :, start : start + step], caches)
            parts.append(latent)
        return torch.cat(parts, dim=2)  # (B, C, t, h, w)
