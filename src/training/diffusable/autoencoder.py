"""Causal 3D variational autoencoder for video.

Shapes follow the bundle contract (see ../shared/DESIGN.md and docs/):
    video  (B, 3, 1 + 4k, H, W) in [-1, 1]  ->  latent (B, C, 1 + k, H / 8, W / 8)

Causality is the design's backbone: every temporal operation looks only at the past, so frame i of
any output depends only on input frames <= i. That is what lets us
  * encode a long video chunk by chunk with a carried cache and get the same latents as one pass;
  * treat frame 0 as an image (1 frame -> 1 latent frame), which is why the frame rule is 1 + 4k.
Concretely: causal convolutions pad k - 1 frames in front by replicating the first frame, the
normalisation is per frame, there is no attention, temporal downsampling keeps frame 0 and
temporal upsampling emits one frame for latent frame 0 and two for every later one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


# -----------------------------------------------------------------------------
# Config and named variants
# -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AutoencoderConfig:
    name: str = "small"
    in_channels: int = 3
    latent_channels: int = 16
    # Pixels are first folded into channels in p x p patches per frame (space-to-depth), so no
    # convolution runs at full resolution: on CPU that is most of the cost for little quality.
    patch_size: int = 2
    base_channels: int = 24
    # One entry per resolution level; len - 1 spatial 2x downsamples after the patching.
    channel_mult: Tuple[int, ...] = (1, 2, 4)
    # One entry per downsample: does it also halve time (keeping frame 0)? Two of them = 4x.
    temporal_down: Tuple[bool, ...] = (True, True)
    num_res_blocks: int = 1
    norm_groups: int = 8
    # What the model is trained on; recorded so that exports and the service never guess.
    resolution: int = 64
    frames: int = 17
    fps: int = 8

    @property
    def spatial_factor(self) -> int:
        return self.patch_size * 2 ** (len(self.channel_mult) - 1)

    @property
    def temporal_factor(self) -> int:
        return 2 ** sum(self.temporal_down)

    def latent_shape(self, frames: int, height: int, width: int) -> Tuple[int, int, int, int]:
        check_frames(frames, self.temporal_factor)
        if height % self.spatial_factor or width % self.spatial_factor:
            raise ValueError(
                f"height and width must be multiples of {self.spatial_factor}, got {height}x{width}"
            )
        return (
            self.latent_channels,
            1 + (frames - 1) // self.temporal_factor,
            height // self.spatial_factor,
            width // self.spatial_factor,
        )

    def to_dict(self) -> Dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_dict(d: Dict) -> "AutoencoderConfig":
        d = dict(d)
        for key in ("channel_mult", "temporal_down"):
            d[key] = tuple(d[key])
        return AutoencoderConfig(**d)


AE_CONFIGS: Dict[str, AutoencoderConfig] = {
    # Tests: seconds on one CPU core.
    "tiny": AutoencoderConfig(
        name="tiny",
        latent_channels=4,
        base_channels=8,
        channel_mult=(1, 2, 2),
        norm_groups=4,
        resolution=32,
        frames=9,
    ),
    # 64x64x17 on two CPU cores.
    "small": AutoencoderConfig(name="small"),
    # GPU: 128x128 or larger.
    "base": AutoencoderConfig(
        name="base",
        patch_size=1,
        base_channels=64,
        channel_mult=(1, 2, 4, 4),
        temporal_down=(True, True, False),
        num_res_blocks=2,
        norm_groups=32,
        resolution=128,
        frames=17,
        fps=8,
    ),
}


def get_config(name: str, **overrides) -> AutoencoderConfig:
    if name not in AE_CONFIGS:
        raise ValueError(f"unknown autoencoder config {name!r}; choose from {sorted(AE_CONFIGS)}")
    return replace(AE_CONFIGS[name], **overrides)


def check_frames(frames: int, temporal_factor: int) -> None:
    if frames < 1 or (frames - 1) % temporal_factor:
        raise ValueError(
            f"frame count must be 1 + {temporal_factor}k (1, {1 + temporal_factor}, "
            f"{1 + 2 * temporal_factor}, ...), got {frames}"
        )


# -----------------------------------------------------------------------------
# Streaming state: the carried cache of every causal convolution
# -----------------------------------------------------------------------------


@dataclass
class Stream:
    """Caches for chunked (streaming) inference, visited in the modules' call order.

    inputs is None for the first chunk (the convolutions pad by replication, exactly as in one
    pass); afterwards it is the previous chunk's outputs. Chunks after the first must hold a
    multiple of the temporal factor of frames, so every stride-2 layer stays in phase.
    """

    inputs: Optional[List[torch.Tensor]] = None
    outputs: List[torch.Tensor] = field(default_factory=list)


class CausalConv3d(nn.Module):
    """3D convolution that only looks back in time (replicate-pads k_t - 1 frames in front)."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int = 3, stride_t: int = 1, stride_s: int = 1
    ):
        super().__init__()
        self.kernel_t = kernel
        self.stride_t = stride_t
        self.conv = nn.Conv3d(
            c_in,
            c_out,
            kernel_size=kernel,
            stride=(stride_t, stride_s, stride_s),
            padding=(0, kernel // 2, kernel // 2),
        )
        # Set by CausalVAE around a streaming call; None in ordinary one-pass use.
        self.stream: Optional[Stream] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        pad = self.kernel_t - 1
        stream = self.stream
        if stream is not None and stream.inputs is not None and pad > 0:
            cache = stream.inputs[len(stream.outputs)]
            x = torch.cat([cache, x], dim=2)  # (B, C, keep + T, H, W)
        elif pad > 0:
            x = torch.cat([x[:, :, :1]] * pad + [x], dim=2)  # (B, C, pad + T, H, W)
        if stream is not None and pad > 0:
            # The next chunk's first window starts stride_t frames after this chunk's last one.
            keep = self.kernel_t - self.stride_t
            stream.outputs.append(x[:, :, -keep:])
        return self.conv(x)


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm over (C, H, W) of each frame separately: statistics never mix frames."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        b, c, t, h, w = x.shape
        y = x.transpose(1, 2).reshape(b * t, c, h, w)  # (B*T, C, H, W)
        y = F.group_norm(y, self.num_groups, self.weight, self.bias, self.eps)
        return y.reshape(b, t, c, h, w).transpose(1, 2)  # (B, C, T, H, W)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.norm1 = FrameGroupNorm(groups, c_in)
        self.conv1 = CausalConv3d(c_in, c_out)
        self.norm2 = FrameGroupNorm(groups, c_out)
        self.conv2 = CausalConv3d(c_out, c_out)
        self.skip = nn.Conv3d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Downsample(nn.Module):
    """2x in space, optionally 2x in time keeping frame 0: 1 + 2k frames -> 1 + k."""

    def __init__(self, c: int, temporal: bool):
        super().__init__()
        self.conv = CausalConv3d(c, c, stride_t=2 if temporal else 1, stride_s=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """2x in space, optionally 2x in time keeping frame 0: 1 + k frames -> 1 + 2k.

    Time goes up by depth-to-time: a causal conv makes two frames' worth of channels per frame,
    they are interleaved into 2T frames and the first is dropped, so latent frame 0 yields one
    frame and each later latent frame j yields frames 2j - 1 and 2j (no look-ahead).
    """

    def __init__(self, c: int, temporal: bool):
        super().__init__()
        self.temporal = temporal
        if temporal:
            self.time_conv = CausalConv3d(c, 2 * c)
        self.conv = CausalConv3d(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        if self.temporal:
            b, c, t, h, w = x.shape
            y = self.time_conv(x).reshape(b, 2, c, t, h, w)  # (B, 2, C, T, H, W)
            y = y.permute(0, 2, 3, 1, 4, 5).reshape(b, c, 2 * t, h, w)  # (B, C, 2T, H, W)
            x = y[:, :, 1:]  # (B, C, 2T - 1, H, W)
        x = F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest")  # (B, C, T', 2H, 2W)
        return self.conv(x)


def space_to_depth(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, C p², T, H/p, W/p), each frame on its own."""
    if p == 1:
        return x
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t, h // p, p, w // p, p)
    x = x.permute(0, 1, 4, 6, 2, 3, 5)  # (B, C, p, p, T, H/p, W/p)
    return x.reshape(b, c * p * p, t, h // p, w // p)


def depth_to_space(x: torch.Tensor, p: int) -> torch.Tensor:
    """Inverse of space_to_depth: (B, C p², T, h, w) -> (B, C, T, h p, w p)."""
    if p == 1:
        return x
    b, cpp, t, h, w = x.shape
    c = cpp // (p * p)
    x = x.reshape(b, c, p, p, t, h, w)
    x = x.permute(0, 1, 4, 5, 2, 6, 3)  # (B, C, T, h, p, w, p)
    return x.reshape(b, c, t, h * p, w * p)


# -----------------------------------------------------------------------------
# Encoder, decoder, VAE
# -----------------------------------------------------------------------------


class Encoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        chans = [cfg.base_channels * m for m in cfg.channel_mult]
        self.patch = cfg.patch_size
        self.conv_in = CausalConv3d(cfg.in_channels * cfg.patch_size**2, chans[0])
        blocks: List[nn.Module] = []
        c = chans[0]
        for level, c_level in enumerate(chans):
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(c, c_level, cfg.norm_groups))
                c = c_level
            if level < len(chans) - 1:
                blocks.append(Downsample(c, cfg.temporal_down[level]))
        blocks.append(ResBlock(c, c, cfg.norm_groups))  # middle
        self.blocks = nn.Sequential(*blocks)
        self.norm_out = FrameGroupNorm(cfg.norm_groups, c)
        self.conv_out = CausalConv3d(c, 2 * cfg.latent_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, T, H, W)
        x = space_to_depth(x, self.patch)  # (B, 3p², T, H/p, W/p)
        h = self.blocks(self.conv_in(x))
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, 2C, t, h, w): mean and log-variance


class Decoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        chans = [cfg.base_channels * m for m in cfg.channel_mult]
        c = chans[-1]
        self.conv_in = CausalConv3d(cfg.latent_channels, c)
        blocks: List[nn.Module] = [ResBlock(c, c, cfg.norm_groups)]  # middle
        for level in reversed(range(len(chans))):
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(c, chans[level], cfg.norm_groups))
                c = chans[level]
            if level > 0:
                blocks.append(Upsample(c, cfg.temporal_down[level - 1]))
        self.blocks = nn.Sequential(*blocks)
        self.norm_out = FrameGroupNorm(cfg.norm_groups, c)
        self.patch = cfg.patch_size
        self.conv_out = CausalConv3d(c, cfg.in_channels * cfg.patch_size**2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, C, t, h, w)
        h = self.blocks(self.conv_in(z))
        h = self.conv_out(F.silu(self.norm_out(h)))  # (B, 3p², T, H/p, W/p)
        return depth_to_space(h, self.patch)  # (B, 3, T, H, W)


class CausalVAE(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        # Per-channel affine that brings latents to roughly zero mean, unit variance; calibrated
        # on training data after training (calibrate_latent_scale) and baked into the exports.
        self.register_buffer("latent_shift", torch.zeros(cfg.latent_channels))
        self.register_buffer("latent_scale", torch.ones(cfg.latent_channels))

    # --- the posterior ------------------------------------------------------------------------
    def encode(self, video: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if not torch.jit.is_tracing():  # in an ONNX graph the caller checks the frame rule
            check_frames(video.shape[2], self.cfg.temporal_factor)
        moments = self.encoder(video)  # (B, 2C, t, h, w)
        mean, logvar = moments.chunk(2, dim=1)  # (B, C, t, h, w) each
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, 3, T, H, W)

    def forward(
        self, video: torch.Tensor, noise: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (reconstruction, z, mean, logvar); z is sampled when noise is given."""
        mean, logvar = self.encode(video)
        z = mean if noise is None else mean + torch.exp(0.5 * logvar) * noise
        return self.decode(z), z, mean, logvar

    # --- scaled latents: what the bundle's encoder.onnx / decoder.onnx speak ---------------------
    def _affine(self) -> Tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1, 1, 1, 1)
        return self.latent_shift.view(shape), self.latent_scale.view(shape)

    def encode_scaled(self, video: torch.Tensor) -> torch.Tensor:
        shift, scale = self._affine()
        return (self.encode(video)[0] - shift) * scale

    def decode_scaled(self, latent: torch.Tensor) -> torch.Tensor:
        shift, scale = self._affine()
        return self.decode(latent / scale + shift)

    # --- streaming ------------------------------------------------------------------------------
    def causal_convs(self, module: nn.Module) -> List[CausalConv3d]:
        return [m for m in module.modules() if isinstance(m, CausalConv3d) and m.kernel_t > 1]

    def encode_step(
        self, chunk: torch.Tensor, caches: Optional[List[torch.Tensor]] = None
    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Encode one chunk to scaled latent means, carrying caches between calls.

        The first chunk (caches None) is frame 0 alone; later chunks hold a multiple of
        temporal_factor frames. Concatenating the outputs equals encode_scaled of the whole video.
        """
        stream = Stream(inputs=caches)
        convs = self.causal_convs(self.encoder)
        for conv in convs:
            conv.stream = stream
        try:
            moments = self.encoder(chunk)  # (B, 2C, t, h, w)
        finally:
            for conv in convs:
                conv.stream = None
        mean = moments[:, : self.cfg.latent_channels]
        shift, scale = self._affine()
        return (mean - shift) * scale, stream.outputs

    def encode_chunked(self, video: torch.Tensor, chunk_latents: int = 1) -> torch.Tensor:
        """Causal encoding in bounded memory: frame 0, then chunk_latents * tf frames at a time."""
        check_frames(video.shape[2], self.cfg.temporal_factor)
        latent, caches = self.encode_step(video[:, :, :1])
        parts = [latent]
        step = chunk_latents * self.cfg.temporal_factor
        for start in range(1, video.shape[2], step):
            latent, caches = self.encode_step(video[:, :, start : start + step], caches)
            parts.append(latent)
        return torch.cat(parts, dim=2)  # (B, C, t, h, w)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
