"""Convolutional causal video VAE: a strided encoder and an upsampling decoder.

Shapes follow the bundle contract (docs/bundle.md):
    video  (B, 3, 1 + 4k, H, W) in [-1, 1]  ->  latent (B, C, 1 + k, H / 8, W / 8)

Design, and why:
  * Time is folded into channels first: frame 0 alone (replicated into 4 slots, so an image is a
    still group) and each later group of 4 frames become one 12-channel "group frame". Every layer
    then runs on 1 + k group frames instead of 1 + 4k frames, 4x fewer positions, which is what
    lets a conv AE train on 2 CPU cores. The latent frame j is group j, as in every f8t4 video VAE.
  * Space: a 2x space-to-channel fold (48 channels at H/2), then two stride-2 convolutions to H/8.
    The decoder mirrors it with nearest-neighbour 2x upsampling followed by 3x3 convolutions and a
    last 2x channel-to-space unfold. No layer renders a latent token into its own 8x8 patch, so a
    latent error spreads smoothly instead of drawing a square (the PCA-per-token AE's grid).
  * Causal in time at group granularity: the only layers that mix group frames are `CausalConv`s
    (this group and the previous kernel_t - 1, the first replicated in front, as the bundle
    contract asks), and the norm is per position (RMS over channels), so output group j depends
    only on input groups <= j. The streaming state is explicit: `encode_step(chunk, caches)`
    returns the caches it needs next, as diffusers' CogVideoX VAE passes `conv_cache`.
  * Every tensor inside is a time-major 4-D batch of group frames, (t*B, C, h, w), so every layer
    is a 2-D op on the whole batch (what onnxruntime and CPU PyTorch run fastest) and the exported
    graphs need no separate inference form.
  * Replicate padding everywhere in space: zero padding draws a dark border that the SE term (a
    downscaled border) keeps paying for (EQ-VAE's finding).
  * Optional parameter-free shortcuts (DC-AE): in the encoder a space-to-channel fold averaged
    down to the next width around each downsampling; in the decoder a bilinear upsampling of the
    features averaged or repeated to the next width (bilinear, not DC-AE's pixel shuffle: that
    shortcut draws the 8-pixel grid, measured in the pilot recorded in ../shared/DESIGN.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .vae_base import VideoVAE, check_frames

ARCHITECTURE = "conv-causal"


# -----------------------------------------------------------------------------
# Config and named variants
# -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvVAEConfig:
    name: str = "conv-small"
    in_channels: int = 3
    latent_channels: int = 16
    temporal_factor: int = 4  # frames per latent frame after frame 0
    fold: int = 2  # the first space-to-channel fold; spatial factor = fold * 2 ** len(widths) - 1
    # Widths of the levels from the finest (H / fold) to the latent's (H / 8).
    widths: Tuple[int, ...] = (64, 128, 256)
    encoder_blocks: Tuple[int, ...] = (1, 1, 2)
    decoder_blocks: Tuple[int, ...] = (1, 1, 2)
    kernel_t: int = 2  # temporal taps of each causal conv, in group frames
    shortcuts: bool = True  # DC-AE's parameter-free shortcuts around the resampling layers
    logvar_init: float = -6.0
    resolution: int = 64
    frames: int = 17
    fps: int = 8
    architecture: str = ARCHITECTURE

    def __post_init__(self) -> None:
        n = len(self.widths)
        if len(self.encoder_blocks) != n or len(self.decoder_blocks) != n:
            raise ValueError(
                f"encoder_blocks and decoder_blocks need one count per width ({n}), got "
                f"{list(self.encoder_blocks)} and {list(self.decoder_blocks)}"
            )
        if self.fold < 1 or self.kernel_t < 1:
            raise ValueError(f"fold and kernel_t must be >= 1, got {self.fold}, {self.kernel_t}")

    @property
    def spatial_factor(self) -> int:
        return self.fold * 2 ** (len(self.widths) - 1)

    @property
    def min_frames(self) -> int:
        """The shortest clip the graphs take: one image is one latent frame."""
        return 1

    @property
    def decoder_context_latents(self) -> int:
        """Latent frames of history a decoder output depends on, plus one (the window's first
        latent frame is decoded as frame 0, so it must lie outside every kept frame's field)."""
        return (self.kernel_t - 1) * (1 + sum(self.decoder_blocks)) + 1

    def encoder_receptive_pixels(self) -> Tuple[int, int]:
        """(left, right): latent cell q depends on the input pixels f*q - left .. f*q + right
        (f = spatial_factor) along each spatial axis and on no others, walked through the
        encoder's layers from the config (every 3x3 conv widens by one cell each side; a stride-2
        conv maps [a, b] to [2a - 1, 2b + 1]; the space-to-channel folds to [k*a, k*b + k - 1])."""
        lo, hi = -1, 1  # conv_out
        for i in reversed(range(len(self.widths))):
            lo, hi = lo - 2 * self.encoder_blocks[i], hi + 2 * self.encoder_blocks[i]
            if i > 0:  # the Down into level i (its shortcut fold reads [2a, 2b + 1]: inside)
                lo, hi = 2 * lo - 1, 2 * hi + 1
        lo, hi = lo - 1, hi + 1  # conv_in
        return -self.fold * lo, self.fold * hi + self.fold - 1

    def decoder_receptive_latents(self) -> Tuple[int, int]:
        """(left, right): every output pixel of latent cell q depends on the latent cells
        q - left .. q + right and on no others (the decoder's layers walked back from the pixels
        of one latent cell: a 3x3 conv widens by one each side, a 2x upsampling, nearest or
        bilinear, each followed by a 3x3 conv, maps [a, b] to [floor((a - 1) / 2),
        floor((b + 1) / 2)])."""
        f = self.spatial_factor
        left = right = 0
        blocks = list(reversed(self.decoder_blocks))
        for p in range(f):  # the pixels of latent cell 0
            lo = hi = p // self.fold  # the pixel unshuffle
            lo, hi = lo - 1, hi + 1  # conv_out
            for i in reversed(range(len(blocks))):
                lo, hi = lo - 2 * blocks[i], hi + 2 * blocks[i]
                if i > 0:  # the Up into level i: its conv, then the 2x upsampling
                    lo, hi = (lo - 1) // 2, (hi + 1) // 2
            lo, hi = lo - 1, hi + 1  # conv_in
            left, right = max(left, -lo), max(right, hi)
        return left, right

    def spatial_tiling(self, tile_latents: int = 32, blend_latents: int = 2) -> Dict:
        """What the service needs to encode and decode frames larger than it was trained on in
        tiles (docs/bundle.md "Tiling"): tiles of tile_latents latent cells a side, overlapping
        by overlap_latents = 2 * margin + blend, where margin covers both receptive fields (the
        margin cells next to an inner tile edge, which see that edge's padding, get weight 0) and
        the blend cells in the middle of the overlap are ramped linearly between the two tiles.
        With margin >= the receptive field the tiled result equals the untiled one."""
        f = self.spatial_factor
        enc_left, enc_right = self.encoder_receptive_pixels()
        dec_left, dec_right = self.decoder_receptive_latents()
        # Encoder: latent q is clean when f*q - enc_left >= 0 and f*q + enc_right <= f*T - 1.
        margin = max(-(-enc_left // f), -(-(enc_right - (f - 1)) // f), dec_left, dec_right)
        overlap = 2 * margin + blend_latents
        if tile_latents <= overlap:
            raise ValueError(
                f"tile_latents must be more than the overlap {overlap} (2 x margin {margin} + "
                f"blend {blend_latents}), got {tile_latents}"
            )
        return {
            "tile_latents": tile_latents,
            "tile_pixels": tile_latents * f,
            "overlap_latents": overlap,
            "overlap_pixels": overlap * f,
            "margin_latents": margin,
            "blend_latents": blend_latents,
            "receptive_field": {
                "encoder_pixels": [enc_left, enc_right],
                "decoder_latents": [dec_left, dec_right],
            },
        }

    @property
    def trained_sizes(self) -> List[List[int]]:
        """[height, width] of the clips the autoencoder was trained on (square crops)."""
        return [[self.resolution, self.resolution]]

    def latent_shape(self, frames: int, height: int, width: int) -> Tuple[int, int, int, int]:
        check_frames(frames, self.temporal_factor)
        f = self.spatial_factor
        if height % f or width % f:
            raise ValueError(f"height and width must be multiples of {f}, got {height}x{width}")
        t = 1 + (frames - 1) // self.temporal_factor
        return (self.latent_channels, t, height // f, width // f)

    def to_dict(self) -> Dict:
        d = asdict(self)
        for k in ("widths", "encoder_blocks", "decoder_blocks"):
            d[k] = list(d[k])  # JSON has no tuples; from_dict turns them back
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_dict(d: Dict) -> "ConvVAEConfig":
        d = dict(d)
        if d.get("architecture", ARCHITECTURE) != ARCHITECTURE:
            raise ValueError(f"not a {ARCHITECTURE} config: {d.get('architecture')!r}")
        for k in ("widths", "encoder_blocks", "decoder_blocks"):
            if k in d:
                d[k] = tuple(d[k])
        return ConvVAEConfig(**d)


CONV_CONFIGS: Dict[str, ConvVAEConfig] = {
    # Tests: a fraction of a second a step.
    "conv-tiny": ConvVAEConfig(
        name="conv-tiny",
        latent_channels=4,
        widths=(8, 16, 16),
        encoder_blocks=(1, 0, 1),
        decoder_blocks=(0, 1, 1),
        resolution=32,
        frames=9,
    ),
    # 64x64x17 on two CPU cores: the shipped bundles.
    "conv-small": ConvVAEConfig(name="conv-small"),
    # The paper's scaling claim (issue 21, part 5): the same network with 4x the latent channels
    # (a 12x compression of 64x64x17 instead of 48x); only the two layers at the latent change.
    "conv-small-64": ConvVAEConfig(name="conv-small-64", latent_channels=64),
    # Half the width: about 4x fewer FLOPs a step.
    "conv-narrow": ConvVAEConfig(name="conv-narrow", widths=(32, 64, 128)),
    # One GPU, 128x128.
    "conv-base": ConvVAEConfig(
        name="conv-base",
        widths=(128, 256, 384),
        encoder_blocks=(2, 2, 2),
        decoder_blocks=(2, 2, 3),
        resolution=128,
    ),
}


# -----------------------------------------------------------------------------
# Time-major group frames
# -----------------------------------------------------------------------------


def to_groups(video: torch.Tensor, tf: int, first: bool) -> torch.Tensor:
    """(B, 3, T, H, W) -> (t*B, 3*tf, H, W) time-major, channels ordered (c, dt).

    first=True: T = 1 + tf*k and frame 0 fills all tf slots of group 0; otherwise T = tf*k."""
    if first:
        video = torch.cat([video[:, :, :1]] * (tf - 1) + [video], dim=2)
    b, c, t, h, w = video.shape
    g = video.reshape(b, c, t // tf, tf, h, w).permute(2, 0, 1, 3, 4, 5)  # (t', B, c, tf, H, W)
    return g.reshape((t // tf) * b, c * tf, h, w)


def from_groups(rows: torch.Tensor, clips, c: int, tf: int, first: bool) -> torch.Tensor:
    """Inverse of to_groups: (t*B, c*tf, H, W) -> (B, c, T, H, W); group 0 of a first chunk
    gives frame 0 from its last slot."""
    n, _, h, w = rows.shape
    t = n // clips
    v = (
        rows.reshape(t, clips, c, tf, h, w)
        .permute(1, 2, 0, 3, 4, 5)
        .reshape(clips, c, t * tf, h, w)
    )
    return v[:, :, tf - 1 :] if first else v


def rows_to_clips(rows: torch.Tensor, clips) -> torch.Tensor:
    """(t*B, C, h, w) time-major -> (B, C, t, h, w)."""
    return rows.reshape(-1, clips, *rows.shape[1:]).permute(1, 2, 0, 3, 4)


def clips_to_rows(x: torch.Tensor) -> torch.Tensor:
    """(B, C, t, h, w) -> (t*B, C, h, w) time-major."""
    return x.permute(2, 0, 1, 3, 4).flatten(0, 1)


# -----------------------------------------------------------------------------
# Layers
# -----------------------------------------------------------------------------


class ConvCache:
    """The streaming state of one pass: the caches read (None on a first chunk) and written, in
    the order the causal convolutions run."""

    def __init__(self, inputs: Optional[List[torch.Tensor]], clips):
        self.inputs = inputs
        self.outputs: List[torch.Tensor] = []
        self.clips = clips


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, padding_mode="replicate")


class CausalConv(nn.Module):
    """kernel_t x 3 x 3 causal convolution over time-major group frames, computed as one 2-D
    convolution of the kernel_t taps stacked on channels. Frame 0 is replicated in front on a
    first chunk; a later chunk reads the previous chunk's last frames from the cache."""

    def __init__(self, c_in: int, c_out: int, kernel_t: int):
        super().__init__()
        self.kernel_t = kernel_t
        self.conv = conv3x3(kernel_t * c_in, c_out)

    def forward(self, x: torch.Tensor, clips, cache: Optional[ConvCache]) -> torch.Tensor:
        pad = self.kernel_t - 1
        if pad == 0:
            return self.conv(x)
        n = x.shape[0]  # t*B rows
        if cache is not None and cache.inputs is not None:
            prev = clips_to_rows(cache.inputs[len(cache.outputs)])  # (pad*B, C, h, w)
            x = torch.cat([prev, x])
        else:
            x = torch.cat([x[:clips]] * pad + [x])  # (pad + t)*B rows
        if cache is not None:
            cache.outputs.append(rows_to_clips(x[n:], clips))  # (B, C, pad, h, w)
        taps = torch.cat([x[k * clips : k * clips + n] for k in range(self.kernel_t)], dim=1)
        return self.conv(taps)  # (t*B, O, h, w)


class PixelNorm(nn.Module):
    """RMS norm over the channels of each position: never mixes positions or frames."""

    def __init__(self, c: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, h, w)
        x = x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + self.eps)
        return x * self.weight.view(1, -1, 1, 1)


class ResBlock(nn.Module):
    """x + conv(silu(norm(causal conv(silu(norm x))))): one causal conv (time and space), one
    spatial conv, the second zero-initialised so a new block starts as the identity."""

    def __init__(self, c: int, kernel_t: int):
        super().__init__()
        self.norm1 = PixelNorm(c)
        self.conv1 = CausalConv(c, c, kernel_t)
        self.norm2 = PixelNorm(c)
        self.conv2 = conv3x3(c, c)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x, clips, cache):
        h = self.conv1(F.silu(self.norm1(x)), clips, cache)
        return x + self.conv2(F.silu(self.norm2(h)))


def channel_resize(x: torch.Tensor, c: int, c_out: int) -> torch.Tensor:
    """Parameter-free width change of x (N, c, h, w): average consecutive channel groups, or
    repeat channels. The widths are the layer's own (Python ints: a traced export keeps them)."""
    if c == c_out:
        return x
    if c > c_out:
        if c % c_out:
            raise ValueError(f"cannot average {c} channels into {c_out}")
        n, _, h, w = x.shape
        return x.reshape(n, c_out, c // c_out, h, w).mean(dim=2)
    if c_out % c:
        raise ValueError(f"cannot repeat {c} channels into {c_out}")
    n, _, h, w = x.shape  # expand, not repeat_interleave: its ONNX export fixes the shape
    return x[:, :, None].expand(n, c, c_out // c, h, w).reshape(n, c_out, h, w)


class Down(nn.Module):
    """Stride-2 3x3 conv; with shortcuts, plus the DC-AE space-to-channel fold averaged to width."""

    def __init__(self, c_in: int, c_out: int, shortcut: bool):
        super().__init__()
        self.conv = conv3x3(c_in, c_out, stride=2)
        self.shortcut = shortcut
        self.widths = (c_in, c_out)

    def forward(self, x):
        y = self.conv(x)
        if self.shortcut:
            c_in, c_out = self.widths
            y = y + channel_resize(F.pixel_unshuffle(x, 2), 4 * c_in, c_out)
        return y


class Up(nn.Module):
    """Nearest 2x upsampling then a 3x3 conv; with shortcuts, plus the features upsampled
    bilinearly and resized to width (smooth: no block pattern reaches the output)."""

    def __init__(self, c_in: int, c_out: int, shortcut: bool):
        super().__init__()
        self.conv = conv3x3(c_in, c_out)
        self.shortcut = shortcut
        self.widths = (c_in, c_out)

    def forward(self, x):
        y = self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        if self.shortcut:
            up = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            y = y + channel_resize(up, *self.widths)
        return y


# -----------------------------------------------------------------------------
# Encoder, decoder, VAE
# -----------------------------------------------------------------------------


class ConvEncoder(nn.Module):
    def __init__(self, cfg: ConvVAEConfig):
        super().__init__()
        self.cfg = cfg
        c_in = cfg.in_channels * cfg.temporal_factor * cfg.fold**2
        w = cfg.widths
        self.conv_in = CausalConv(c_in, w[0], cfg.kernel_t)
        self.levels = nn.ModuleList()
        self.downs = nn.ModuleList()
        for i, width in enumerate(w):
            self.levels.append(
                nn.ModuleList([ResBlock(width, cfg.kernel_t) for _ in range(cfg.encoder_blocks[i])])
            )
            if i + 1 < len(w):
                self.downs.append(Down(width, w[i + 1], cfg.shortcuts))
        self.norm_out = PixelNorm(w[-1])
        self.conv_out = conv3x3(w[-1], 2 * cfg.latent_channels)

    def forward(self, video: torch.Tensor, first: bool, cache: Optional[ConvCache] = None):
        """(B, 3, T, H, W) -> moments (B, 2C, t, h, w): mean, then log-variance."""
        cfg, b = self.cfg, video.shape[0]
        x = to_groups(video, cfg.temporal_factor, first)  # (t*B, 12, H, W)
        x = F.pixel_unshuffle(x, cfg.fold)  # (t*B, 12*fold^2, H/fold, W/fold)
        x = self.conv_in(x, b, cache)
        for i, blocks in enumerate(self.levels):
            for block in blocks:
                x = block(x, b, cache)
            if i < len(self.downs):
                x = self.downs[i](x)
        h = self.conv_out(F.silu(self.norm_out(x)))  # (t*B, 2C, h, w)
        if cfg.shortcuts:
            mean_sc = channel_resize(x, cfg.widths[-1], cfg.latent_channels)
            h = h + torch.cat([mean_sc, torch.zeros_like(mean_sc)], dim=1)
        return rows_to_clips(h, b)


class ConvDecoder(nn.Module):
    def __init__(self, cfg: ConvVAEConfig):
        super().__init__()
        self.cfg = cfg
        w = list(reversed(cfg.widths))
        blocks = list(reversed(cfg.decoder_blocks))
        self.conv_in = CausalConv(cfg.latent_channels, w[0], cfg.kernel_t)
        self.levels = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i, width in enumerate(w):
            self.levels.append(
                nn.ModuleList([ResBlock(width, cfg.kernel_t) for _ in range(blocks[i])])
            )
            if i + 1 < len(w):
                self.ups.append(Up(width, w[i + 1], cfg.shortcuts))
        self.norm_out = PixelNorm(w[-1])
        self.conv_out = conv3x3(w[-1], cfg.in_channels * cfg.temporal_factor * cfg.fold**2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C, t, h, w), t counted from frame 0 -> (B, 3, 1 + 4(t-1), H, W)."""
        cfg, b = self.cfg, z.shape[0]
        x = clips_to_rows(z)  # (t*B, C, h, w)
        h = self.conv_in(x, b, None)
        if cfg.shortcuts:
            h = h + channel_resize(x, cfg.latent_channels, cfg.widths[-1])
        for i, blocks in enumerate(self.levels):
            for block in blocks:
                h = block(h, b, None)
            if i < len(self.ups):
                h = self.ups[i](h)
        out = F.pixel_shuffle(self.conv_out(F.silu(self.norm_out(h))), cfg.fold)  # (t*B, 12, H, W)
        return from_groups(out, b, cfg.in_channels, cfg.temporal_factor, first=True)


class ConvCausalVAE(VideoVAE):
    """The autoencoder interface (see autoencoders.py): encode, decode, scaled latents,
    streaming encode with explicit caches, inference_form for export."""

    def __init__(self, cfg: ConvVAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = ConvEncoder(cfg)
        self.decoder = ConvDecoder(cfg)
        self.register_latent_affine(cfg.latent_channels)

    @torch.no_grad()
    def load_from(self, base: "ConvCausalVAE") -> None:
        if base.cfg != self.cfg:
            raise ValueError(f"cannot start a {self.cfg.name} model from a {base.cfg.name} one")
        self.load_state_dict(base.state_dict())

    def encode(self, video: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if not torch.jit.is_tracing():
            check_frames(video.shape[2], self.cfg.temporal_factor)
        mean, logvar = self.encoder(video, first=True).chunk(2, dim=1)
        return mean, (logvar + self.cfg.logvar_init).clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def encode_step(
        self, chunk: torch.Tensor, caches: Optional[List[torch.Tensor]] = None
    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Scaled latent means of one chunk, and the caches the next chunk needs. The first chunk
        (caches None) is frame 0 alone; later ones hold a multiple of temporal_factor frames."""
        cache = ConvCache(caches, chunk.shape[0])
        moments = self.encoder(chunk, first=caches is None, cache=cache)
        return self.scale_latent(moments[:, : self.cfg.latent_channels]), cache.outputs

    def output_layer(self) -> nn.Module:
        return self.decoder.conv_out

    def inference_form(self) -> "ConvCausalVAE":
        """Already the form the graphs run (2-D ops on time-major frames): a copy in eval mode."""
        import copy

        return copy.deepcopy(self).eval()


def get_conv_config(name: str, **overrides) -> ConvVAEConfig:
    if name not in CONV_CONFIGS:
        raise ValueError(
            f"unknown conv autoencoder config {name!r}; choose from {sorted(CONV_CONFIGS)}"
        )
    return replace(CONV_CONFIGS[name], **overrides)
