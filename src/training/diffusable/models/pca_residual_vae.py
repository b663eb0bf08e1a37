"""Causal 3D autoencoder for video: a linear code (PCA) plus a learned causal residual.

Shapes follow the bundle contract (docs/bundle.md):
    video  (B, 3, 1 + 4k, H, W) in [-1, 1]  ->  latent (B, C, 1 + k, H / 8, W / 8)

Design, and why:
  * Pixels are folded into tokens at the latent resolution right away: frame 0 alone and then each
    group of 4 frames, 8 x 8 pixels each (a 4x8x8x3 = 768-vector; frame 0 is replicated into its 4
    slots, so an image is a still group). Everything learned runs on these tokens, 64x fewer
    positions than pixels: on 2 CPU cores that is the difference between a model that learns in an
    hour and one that does not (the earlier full-resolution conv net lost to PCA after 40 minutes).
  * The latent is a linear code plus a residual: mean = E_lin(token) + E_res(tokens) and
    token' = D_lin(latent) + D_res(latents). E_lin/D_lin are initialised from the PCA of the
    training split's blocks (`linear_code.py`) and E_res/D_res end in zero-initialised layers, so
    at step 0 the model *is* the linear code (tested), and training can only start from that floor.
    Frame 0 has its own linear maps (its block is 8x8x3, not 4x8x8x3).
  * The residual nets are stacks of pre-norm causal 3x3x3 convolutions over tokens. The norm is a
    per-token RMS norm over channels: nothing mixes frames except the causal convolutions, so frame
    group j of any output depends only on input groups <= j, and a long video can be encoded chunk
    by chunk with a carried cache (`Stream`, visible in `encode_step`'s signature) and give the
    same latents as one pass.
  * Two optional decoder stages, off in the bundles it made and measured in §1 of
    docs/results/2026-12-01-pca-residual-bundles.md: a linear map over 3x3 latent tokens
    (decoder_linear_kernel) and a refinement net over 2x2 sub-tokens (refine_width).
    `CausalVAE.load_from` adds either to a trained model unchanged.
  * `inference_form` is the same function in the ops the ONNX graphs run fastest (the encoder on
    time-major 4-D frames, 2-D convs only, frame 0's temporal taps summed); the export writes it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .vae_base import VideoVAE, check_frames

# The architecture's name, written into checkpoints and the bundle manifest.
ARCHITECTURE = "pca-residual-causal"


# -----------------------------------------------------------------------------
# Config and named variants
# -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AutoencoderConfig:
    name: str = "small"
    in_channels: int = 3
    latent_channels: int = 16
    patch_size: int = 8  # pixels per token side: the spatial factor
    temporal_patch: int = 4  # frames per token after frame 0: the temporal factor
    # The residual nets run at the latent resolution. The decoder gets most of the width: what
    # it adds to the linear code is what the reconstruction gains; the encoder's graph is also
    # exported three times (whole, stream init, stream step), so its size counts thrice.
    encoder_width: int = 160
    decoder_width: int = 256
    encoder_blocks: int = 2
    decoder_blocks: int = 3
    # Temporal kernel of the causal convolutions, in token groups (2 = this group and the last).
    kernel_t: int = 2
    # Spatial kernel of the decoder's linear map over latent tokens. With 1 a token's pixels are
    # a linear function of its own latent only, so decoding the 2x2 average of four latents gives
    # the average of their four 8x8 patches, never the downscaled 16x16 region: the linear part
    # cannot be scale-equivariant and SE has to be learned by the residual alone. With 3 each
    # token's pixels also read its 8 neighbours' latents (a transposed conv of kernel 3p, stride
    # p), which can interpolate. Centre tap = the PCA's, neighbours zero, so step 0 is unchanged.
    decoder_linear_kernel: int = 1
    # An optional refinement stage at twice the latent resolution (0 = none): the decoded tokens
    # are split into 2x2 sub-tokens (4x4 pixels x 4 frames each) and a causal residual net of
    # this width adds detail there, where a 3x3 conv sees 12x12 pixels instead of 24x24. Its
    # last layer is zero-initialised, so adding it to a trained decoder changes nothing.
    refine_width: int = 0
    refine_blocks: int = 2
    logvar_init: float = -10.0  # posterior starts nearly deterministic: step 0 is the linear code
    # What the model is trained on; recorded so that exports and the service never guess.
    resolution: int = 64
    frames: int = 17
    fps: int = 8
    architecture: str = ARCHITECTURE

    def __post_init__(self) -> None:
        if self.decoder_linear_kernel < 1 or self.decoder_linear_kernel % 2 == 0:
            k = self.decoder_linear_kernel
            raise ValueError(f"decoder_linear_kernel must be an odd number >= 1, got {k}")
        if self.refine_width < 0 or self.refine_blocks < 1:
            raise ValueError(
                f"refine_width must be >= 0 (0: no refinement stage) and refine_blocks >= 1, got "
                f"{self.refine_width} and {self.refine_blocks}"
            )

    @property
    def spatial_factor(self) -> int:
        return self.patch_size

    @property
    def temporal_factor(self) -> int:
        return self.temporal_patch

    @property
    def min_frames(self) -> int:
        """The shortest clip the exported graphs take: the decoder's linear map fails on a single
        latent frame inside onnxruntime (an empty group of later tokens), so 1 + 4 frames."""
        return 1 + self.temporal_patch

    @property
    def token_channels(self) -> int:
        return self.in_channels * self.temporal_patch * self.patch_size**2

    @property
    def decoder_context_latents(self) -> int:
        """Latent frames of history a decoder output depends on, plus one so that a window's
        first latent frame (decoded as frame 0) is never inside a kept frame's field."""
        blocks = self.decoder_blocks + (self.refine_blocks if self.refine_width else 0)
        return (self.kernel_t - 1) * blocks + 1

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
        arch = d.get("architecture", ARCHITECTURE)
        if arch != ARCHITECTURE:
            raise ValueError(
                f"autoencoder architecture {arch!r} is not this package's ({ARCHITECTURE!r})"
            )
        return AutoencoderConfig(**d)


AE_CONFIGS: Dict[str, AutoencoderConfig] = {
    # Tests: well under a second a step on one CPU core.
    "tiny": AutoencoderConfig(
        name="tiny",
        latent_channels=4,
        encoder_width=32,
        decoder_width=32,
        encoder_blocks=1,
        decoder_blocks=1,
        resolution=32,
        frames=9,
    ),
    # 64x64x17 on two CPU cores (the shipped bundles).
    "small": AutoencoderConfig(name="small"),
    # One GPU: 128x128, wider and deeper residual nets; sized so that three bundles (the
    # protocol's fine-tunes, fp16 weights) fit the GPU recipe's 8 x 16 MiB of results.
    "base": AutoencoderConfig(
        name="base",
        encoder_width=192,
        decoder_width=384,
        encoder_blocks=2,
        decoder_blocks=4,
        resolution=128,
        frames=17,
    ),
}


def get_config(name: str, **overrides) -> AutoencoderConfig:
    if name not in AE_CONFIGS:
        raise ValueError(f"unknown autoencoder config {name!r}; choose from {sorted(AE_CONFIGS)}")
    return replace(AE_CONFIGS[name], **overrides)


# -----------------------------------------------------------------------------
# Tokens: pixels <-> (frame 0, groups of 4 frames) x 8x8 patches
# -----------------------------------------------------------------------------


def to_tokens(x: torch.Tensor, p: int, tp: int, first: bool) -> torch.Tensor:
    """(B, 3, T, H, W) -> (B, 3*tp*p*p, t, H/p, W/p), channels ordered (c, dt, py, px).

    With first=True, frame 0 is a token of its own (replicated into its tp slots) and T = 1 + tp*k;
    otherwise T = tp*k (a later chunk of a stream).
    """
    if first:
        x = torch.cat([x[:, :, :1]] * (tp - 1) + [x], dim=2)  # (B, 3, tp*(1+k), H, W)
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t // tp, tp, h // p, p, w // p, p)
    x = x.permute(0, 1, 3, 5, 7, 2, 4, 6)  # (B, 3, tp, p, p, t', h, w)
    return x.reshape(b, c * tp * p * p, t // tp, h // p, w // p)


def from_tokens(tok: torch.Tensor, c: int, p: int, tp: int) -> torch.Tensor:
    """Inverse of to_tokens(first=True): (B, 3*tp*p*p, 1+k, h, w) -> (B, 3, 1 + tp*k, H, W)."""
    b, _, t, h, w = tok.shape
    x = tok.reshape(b, c, tp, p, p, t, h, w)
    x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)  # (B, 3, t, tp, h, p, w, p)
    x = x.reshape(b, c, t * tp, h * p, w * p)
    return x[:, :, tp - 1 :]  # token 0 is frame 0: keep its last slot only


# -----------------------------------------------------------------------------
# Streaming state: the carried cache of every causal convolution
# -----------------------------------------------------------------------------


@dataclass
class Stream:
    """Caches for chunked (streaming) inference, visited in the modules' call order.

    inputs is None for the first chunk (the convolutions pad by replication, exactly as in one
    pass); afterwards it is the previous chunk's outputs.
    """

    inputs: Optional[List[torch.Tensor]] = None
    outputs: List[torch.Tensor] = field(default_factory=list)


def clips_first(rows: torch.Tensor, clips) -> torch.Tensor:
    """Time-major frames (T*B, C, H, W) of the encoder's inference form -> (B, C, T, H, W)."""
    return rows.reshape(-1, clips, *rows.shape[1:]).permute(1, 2, 0, 3, 4)


class CausalConv3d(nn.Module):
    """k_t x 3 x 3 convolution that only looks back in time (replicate-pads k_t - 1 frames in
    front)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3):
        super().__init__()
        self.kernel_t = kernel
        self.conv = nn.Conv3d(c_in, c_out, kernel_size=(kernel, 3, 3), padding=(0, 1, 1))
        # Set by CausalVAE around a streaming call; None in ordinary one-pass use.
        self.stream: Optional[Stream] = None
        # The inference form (fold_time): the same convolution as one 2-D conv over stacked taps.
        # Its weights are this module's own, so an fp16-stored export casts them before forward.
        self.weight2d: Optional[nn.Parameter] = None  # (O, kt*C, 3, 3)
        self.bias2d: Optional[nn.Parameter] = None  # (O,)
        # The encoder's inference form: the norm's weight before this conv (absorb_input_scale).
        self.in_scale: Optional[nn.Parameter] = None

    def fold_time(self) -> None:
        """Become the inference form: the k_t temporal taps stacked on channels and one 3x3 2-D
        convolution per output frame. Same maths; onnxruntime runs 2-D convs faster than 3-D
        ones of this shape. Weights are copied: fold a copy, never a model still training."""
        w = self.conv.weight.detach()  # (O, C, kt, 3, 3)
        o, c, kt = w.shape[:3]
        # input channel k*C + c of the 2-D conv is tap k (frame t + k of the padded input)
        self.weight2d = nn.Parameter(w.permute(0, 2, 1, 3, 4).reshape(o, kt * c, 3, 3).clone())
        self.bias2d = nn.Parameter(self.conv.bias.detach().clone())

    def _conv_folded(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, pad + T, H, W)
        b, c, tt, h, w = x.shape
        t = tt - (self.kernel_t - 1)
        taps = torch.cat([x[:, :, k : k + t] for k in range(self.kernel_t)], dim=1)
        taps = taps.transpose(1, 2).reshape(b * t, self.kernel_t * c, h, w)  # (B*T, kt*C, H, W)
        y = F.conv2d(taps, self.weight2d, self.bias2d, padding=1)  # (B*T, O, H, W)
        return y.reshape(b, t, -1, h, w).transpose(1, 2)  # (B, O, T, H, W)

    def absorb_input_scale(self, scale: torch.Tensor) -> None:
        """Take over a per-channel scale of the input (the norm before it): the folded conv's
        weight is multiplied by it inside the graph, so onnxruntime folds the product once, in
        fp32, from the stored weights (a stored product would be rounded to fp16 again)."""
        self.in_scale = nn.Parameter(scale.detach().clone())

    def _folded_weight(self) -> torch.Tensor:  # (O, kt*C, 3, 3)
        w = self.weight2d
        if self.in_scale is None:
            return w
        return w * self.in_scale.repeat(self.kernel_t).view(1, -1, 1, 1)

    def _conv_taps(self, x: torch.Tensor, clips, frames) -> torch.Tensor:
        """x: (pad + T) * B time-major rows; -> T * B rows, each output frame a 2-D conv of its
        kt taps stacked on channels (tap k of output frame j is input row block j + k)."""
        n = frames * clips
        taps = torch.cat([x[k * clips : k * clips + n] for k in range(self.kernel_t)], dim=1)
        return F.conv2d(taps, self._folded_weight(), self.bias2d, padding=1)  # (T*B, O, H, W)

    def _forward_time_major(self, x: torch.Tensor, clips) -> torch.Tensor:  # (T*B, C, H, W)
        """The encoder's inference form: frames as one 4-D batch, time-major (row t*B + b is
        frame t of clip b), so every layer is a 2-D conv on the whole batch, a frame's previous
        frames are whole row blocks away, and no layer reshapes between (B, T) and B*T. The
        stream cache keeps the bundle's (B, C, pad, H, W) layout."""
        pad = self.kernel_t - 1
        frames = x.shape[0] // clips
        stream = self.stream
        if stream is not None and stream.inputs is not None:
            cache = stream.inputs[len(stream.outputs)]  # (B, C, pad, H, W)
            x = torch.cat([cache.permute(2, 0, 1, 3, 4).flatten(0, 1), x])  # (pad + T)*B rows
            tail = x[frames * clips :]  # the last pad frames, pad*B rows
            stream.outputs.append(clips_first(tail, clips))
            return self._conv_taps(x, clips, frames)
        # The first chunk is replicate-padded, so every tap of frame 0 holds frame 0: its output
        # is one conv of frame 0 with the taps' kernels summed (kt times fewer FLOPs), and the
        # later frames need only pad - 1 copies of frame 0 in front.
        first = x[:clips]  # (B, C, H, W)
        if stream is not None:
            tail = torch.cat([first] * pad + [x])[frames * clips :]  # the last pad frames
            stream.outputs.append(clips_first(tail, clips))
        o, c = self.conv.out_channels, self.conv.in_channels  # Python ints, not traced shapes
        w0 = self._folded_weight().reshape(o, self.kernel_t, c, 3, 3).sum(dim=1)  # (O, C, 3, 3)
        y0 = F.conv2d(first, w0, self.bias2d, padding=1)  # (B, O, H, W)
        if frames == 1:  # a trace-time branch, as the encoder's graphs are per chunk kind
            return y0
        rest = torch.cat([first] * (pad - 1) + [x])  # (pad - 1 + T)*B rows
        return torch.cat([y0, self._conv_taps(rest, clips, frames - 1)])  # (T*B, O, H, W)

    def forward(self, x: torch.Tensor, clips=None) -> torch.Tensor:
        """x: (B, C, T, H, W); or, with clips (the encoder's inference form), (T*B, C, H, W)
        time-major frames of that many clips."""
        if clips is not None:
            return self._forward_time_major(x, clips)
        pad = self.kernel_t - 1
        stream = self.stream
        if stream is not None and stream.inputs is not None:
            cache = stream.inputs[len(stream.outputs)]
            x = torch.cat([cache, x], dim=2)  # (B, C, pad + T, H, W)
        else:
            x = torch.cat([x[:, :, :1]] * pad + [x], dim=2)  # (B, C, pad + T, H, W)
        if stream is not None:
            stream.outputs.append(x[:, :, -pad:])
        return self.conv(x) if self.weight2d is None else self._conv_folded(x)


class TokenNorm(nn.Module):
    """RMS norm over the channels of each token: never mixes positions or frames."""

    def __init__(self, c: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        x = x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + self.eps)
        if self.weight is None:  # absorbed by the conv after it (the encoder's inference form)
            return x
        return x * self.weight.view([-1] + [1] * (x.dim() - 2))  # (B, C, ...) of any rank


def pointwise_2d(conv: nn.Conv3d) -> nn.Conv2d:
    """A 1x1x1 Conv3d as the 1x1 Conv2d of the encoder's inference form (4-D frames)."""
    flat = nn.Conv2d(conv.in_channels, conv.out_channels, 1)
    with torch.no_grad():
        flat.weight.copy_(conv.weight.detach()[:, :, 0])
        flat.bias.copy_(conv.bias.detach())
    return flat


class Block(nn.Module):
    """Pre-norm residual: x + W(silu(causal kt x 3 x 3 conv(norm x))). The conv mixes space and
    the kt - 1 previous token groups; the 1x1 conv after it is cheap channel mixing."""

    def __init__(self, c: int, kernel_t: int):
        super().__init__()
        self.norm = TokenNorm(c)
        self.conv = CausalConv3d(c, c, kernel_t)
        self.mix = nn.Conv3d(c, c, 1)

    def forward(self, x: torch.Tensor, clips=None) -> torch.Tensor:  # clips: see CausalConv3d
        return x + self.mix(F.silu(self.conv(self.norm(x), clips)))


class ResidualNet(nn.Module):
    """c_in -> width -> blocks -> c_out, the last layer zero-initialised (starts as 0)."""

    def __init__(self, c_in: int, width: int, blocks: int, c_out: int, kernel_t: int):
        super().__init__()
        self.proj_in = nn.Conv3d(c_in, width, 1)
        self.first = nn.Parameter(torch.zeros(width))  # marks frame 0's token (an image)
        self.blocks = nn.Sequential(*[Block(width, kernel_t) for _ in range(blocks)])
        self.norm = TokenNorm(width)
        self.proj_out = nn.Conv3d(width, c_out, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def time_major_form(self) -> None:
        """Become the encoder's inference form, on proj_in's output as time-major 4-D frames:
        (t*B, width, h, w) -> (t*B, c_out, h, w), every conv a 2-D conv on the whole batch.
        Its input carries frame 0's marker already: the frame-0 patch conv adds it.
        Weights are copied: convert a copy, never a model still training."""
        for m in self.modules():
            if isinstance(m, CausalConv3d):
                m.fold_time()
        for block in self.blocks:
            block.mix = pointwise_2d(block.mix)
            # the norm's weight scales the conv's input channels: one elementwise op fewer
            block.conv.absorb_input_scale(block.norm.weight)
            block.norm.weight = None
        self.proj_out = pointwise_2d(self.proj_out)

    def forward(self, x: torch.Tensor, first: bool, clips=None) -> torch.Tensor:
        """x: (B, C, t, h, w); or, with clips (the encoder's inference form), proj_in's output
        with frame 0's marker already added, as (t*B, width, h, w) time-major frames of that
        many clips: the inference form computes both on pixels, with the linear code."""
        embedded = clips is not None
        h = x if embedded else self.proj_in(x)  # (B, width, t, h, w)
        if first and not embedded:
            mark = torch.zeros_like(h[:, :1, :, :1, :1])  # (B, 1, t, 1, 1)
            mark[:, :, :1] = 1.0
            h = h + mark * self.first.view(1, -1, 1, 1, 1)
        for block in self.blocks:
            h = block(h, clips)
        return self.proj_out(F.silu(self.norm(h)))


class LinearCode(nn.Module):
    """Affine maps over each token (kernel 1) or its k x k spatial neighbourhood, one for frame 0
    and one for later groups (the PCA's at the centre tap, at init). Never mixes frames."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1):
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"the linear code's spatial kernel must be odd, got {kernel}")
        self.kernel = kernel
        size, pad = (1, kernel, kernel), (0, kernel // 2, kernel // 2)
        # Edge padding: a border token's missing neighbours repeat it, as a downscaled video's
        # border pixels do.
        self.frame0 = nn.Conv3d(c_in, c_out, size, padding=pad, padding_mode="replicate")
        self.group = nn.Conv3d(c_in, c_out, size, padding=pad, padding_mode="replicate")

    @torch.no_grad()
    def set_token_maps(self, frame0, frame0_bias, group, group_bias) -> None:
        """Per-token maps (c_out, c_in) at the centre tap, zero elsewhere."""
        k = self.kernel // 2
        for conv, w, b in ((self.frame0, frame0, frame0_bias), (self.group, group, group_bias)):
            conv.weight.zero_()
            conv.weight[:, :, 0, k, k] = w
            conv.bias.copy_(b)

    def forward(self, x: torch.Tensor, first: bool) -> torch.Tensor:  # (B, C, t, h, w)
        if not first:
            return self.group(x)
        if x.shape[2] == 1:
            return self.frame0(x)
        return torch.cat([self.frame0(x[:, :, :1]), self.group(x[:, :, 1:])], dim=2)


# -----------------------------------------------------------------------------
# Encoder, decoder, VAE
# -----------------------------------------------------------------------------


class Frame0Patch(nn.Module):
    """Frame 0's patch conv in the inference form. Its token holds frame 0 in all tp slots, so
    the conv over the token is a 2-D conv on the frame with the kernel summed over the slots.
    The sum is part of the graph, not of the stored weight: onnxruntime folds it once, in fp32,
    from exactly the weights the model has (an fp16-stored export would round a stored sum)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, mark: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight.clone())  # (O, 3, tp, p, p)
        self.bias = nn.Parameter(bias.clone())  # (O,)
        # (O,): the residual net's frame-0 marker on its channels, 0 on the linear code's; added
        # to the bias in the graph, for the same reason as the sum.
        self.mark = nn.Parameter(mark.clone())
        self.patch = int(weight.shape[-1])  # a Python int: a traced shape would be a tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, O, H/p, W/p)
        return F.conv2d(x, self.weight.sum(dim=2), self.bias + self.mark, stride=self.patch)


class Encoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.cfg = cfg
        self.linear = LinearCode(cfg.token_channels, cfg.latent_channels)
        self.residual = ResidualNet(
            cfg.token_channels,
            cfg.encoder_width,
            cfg.encoder_blocks,
            2 * cfg.latent_channels,
            cfg.kernel_t,
        )
        # The inference form (fuse_patches): the 1x1 convs on tokens as strided convs on pixels.
        self.patch_frame0: Optional[Frame0Patch] = None
        self.patch_group: Optional[nn.Conv2d] = None

    def forward(self, x: torch.Tensor, first: bool = True) -> torch.Tensor:  # (B, 3, T, H, W)
        cfg = self.cfg
        if self.patch_group is not None:
            return self._forward_fused(x, first)
        tok = to_tokens(x, cfg.patch_size, cfg.temporal_patch, first)  # (B, 768, t, h, w)
        res = self.residual(tok, first)  # (B, 2C, t, h, w)
        mean = self.linear(tok, first) + res[:, : cfg.latent_channels]
        logvar = res[:, cfg.latent_channels :] + cfg.logvar_init
        return torch.cat([mean, logvar], dim=1)  # (B, 2C, t, h, w): mean and log-variance

    def fuse_patches(self) -> None:
        """Become the inference form, which runs on time-major 4-D frames, (t*B, C, h, w), so
        that every conv is a 2-D conv on the whole batch with no reshapes between layers.

        A 1x1 conv on to_tokens(x) is a conv on pixels with kernel = stride = p, since the token
        channels are ordered (c, dt, py, px) like a conv kernel. The two that read a token group
        (the residual's proj_in and the linear code's group map) become one conv on the group's
        3 x tp frames stacked as channels; frame 0 fills all tp slots of its token, so its two
        (proj_in and the frame-0 map) become one conv on frame 0 with the kernel summed over
        its tp slots. Same maths, with no 8-D to_tokens transpose and no copies of frame 0.
        Weights are copied: fuse a copy, never a model still training."""
        tp, p = self.cfg.temporal_patch, self.cfg.patch_size

        def stacked(convs: List[nn.Conv3d]) -> Tuple[torch.Tensor, torch.Tensor]:
            w = torch.cat([c.weight.detach().reshape(c.out_channels, 3, tp, p, p) for c in convs])
            return w, torch.cat([c.bias.detach() for c in convs])  # (O, 3, tp, p, p), (O,)

        w, b = stacked([self.residual.proj_in, self.linear.frame0])
        mark = torch.cat(
            [self.residual.first.detach(), torch.zeros(self.linear.frame0.out_channels)]
        )
        self.patch_frame0 = Frame0Patch(w, b, mark)
        w, b = stacked([self.residual.proj_in, self.linear.group])
        self.patch_group = nn.Conv2d(3 * tp, w.shape[0], kernel_size=p, stride=p)
        with torch.no_grad():
            self.patch_group.weight.copy_(w.reshape(w.shape[0], 3 * tp, p, p))
            self.patch_group.bias.copy_(b)
        self.residual.time_major_form()

    def _forward_fused(self, x: torch.Tensor, first: bool) -> torch.Tensor:
        cfg, tp, c = self.cfg, self.cfg.temporal_patch, self.cfg.latent_channels
        width = self.residual.proj_in.out_channels
        b, _, _, hh, ww = x.shape
        parts = []  # time-major rows: frame t of clip b is row t*B + b
        if first:
            parts.append(self.patch_frame0(x[:, :, 0]))  # (B, width + C, h, w)
            x = x[:, :, 1:]
        k = x.shape[2] // tp
        if k > 0:
            groups = x.reshape(b, 3, k, tp, hh, ww).permute(2, 0, 1, 3, 4, 5)  # (k, B, 3, tp, ..)
            parts.append(self.patch_group(groups.reshape(k * b, 3 * tp, hh, ww)))  # (k*B, ..)
        y = torch.cat(parts) if len(parts) > 1 else parts[0]  # (t*B, width + C, h, w)
        res = self.residual(y[:, :width], first, clips=b)  # (t*B, 2C, h, w)
        mean = y[:, width:] + res[:, :c]
        logvar = res[:, c:] + cfg.logvar_init
        moments = torch.cat([mean, logvar], dim=1)  # (t*B, 2C, h, w)
        return clips_first(moments, b)  # (B, 2C, t, h, w)


def split_tokens(tok: torch.Tensor, c: int, tp: int, p: int) -> torch.Tensor:
    """(B, c*tp*p*p, t, h, w) -> (B, c*tp*(p/2)^2, t, 2h, 2w): each token's pixels as its 2x2
    sub-tokens, channels still ordered (c, dt, py, px)."""
    b, _, t, h, w = tok.shape
    q = p // 2
    x = tok.reshape(b, c * tp, 2, q, 2, q, t, h, w)  # (B, c*tp, sy, qy, sx, qx, t, h, w)
    x = x.permute(0, 1, 3, 5, 6, 7, 2, 8, 4)  # (B, c*tp, qy, qx, t, h, sy, w, sx)
    return x.reshape(b, c * tp * q * q, t, 2 * h, 2 * w)


def merge_tokens(sub: torch.Tensor, c: int, tp: int, p: int) -> torch.Tensor:
    """Inverse of split_tokens."""
    b, _, t, h2, w2 = sub.shape
    q, h, w = p // 2, h2 // 2, w2 // 2
    x = sub.reshape(b, c * tp, q, q, t, h, 2, w, 2)  # (B, c*tp, qy, qx, t, h, sy, w, sx)
    x = x.permute(0, 1, 6, 2, 8, 3, 4, 5, 7)  # (B, c*tp, sy, qy, sx, qx, t, h, w)
    return x.reshape(b, c * tp * p * p, t, h, w)


class Decoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.cfg = cfg
        self.linear = LinearCode(cfg.latent_channels, cfg.token_channels, cfg.decoder_linear_kernel)
        self.residual = ResidualNet(
            cfg.latent_channels,
            cfg.decoder_width,
            cfg.decoder_blocks,
            cfg.token_channels,
            cfg.kernel_t,
        )
        self.refine: Optional[ResidualNet] = None
        if cfg.refine_width:
            sub = cfg.token_channels // 4
            self.refine = ResidualNet(sub, cfg.refine_width, cfg.refine_blocks, sub, cfg.kernel_t)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, C, t, h, w), t from frame 0
        cfg = self.cfg
        c, tp, p = cfg.in_channels, cfg.temporal_patch, cfg.patch_size
        tok = self.linear(z, True) + self.residual(z, True)  # (B, 768, t, h, w)
        if self.refine is not None:
            sub = split_tokens(tok, c, tp, p)  # (B, 192, t, 2h, 2w)
            tok = merge_tokens(sub + self.refine(sub, True), c, tp, p)
        return from_tokens(tok, c, p, tp)


class CausalVAE(VideoVAE):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.register_latent_affine(cfg.latent_channels)

    @torch.no_grad()
    def load_from(self, base: "CausalVAE") -> None:
        """Start from a trained model: of this config, or of one whose decoder's linear map has a
        smaller spatial kernel (its taps go to the centre, the new neighbour taps start at zero,
        so the function is unchanged: a fine-tune may widen what the pre-train learnt)."""
        cfg, old = self.cfg, base.cfg
        k_new, k_old = cfg.decoder_linear_kernel, old.decoder_linear_kernel
        grows = replace(
            old,
            decoder_linear_kernel=k_new,
            refine_width=cfg.refine_width,
            refine_blocks=cfg.refine_blocks,
        )
        added = old.refine_width == 0 and cfg.refine_width > 0
        if grows != cfg or k_old > k_new or (old.refine_width != cfg.refine_width and not added):
            raise ValueError(
                f"cannot start a {cfg.name} model (decoder linear kernel {k_new}, refine width "
                f"{cfg.refine_width}) from one of another config ({old.name}, decoder linear "
                f"kernel {k_old}, refine width {old.refine_width})"
            )
        state = base.state_dict()
        pad = (k_new - k_old) // 2
        for name in ("decoder.linear.frame0.weight", "decoder.linear.group.weight"):
            state[name] = F.pad(state[name], (pad, pad, pad, pad))  # (O, C, 1, k, k)
        if added:  # a new refinement stage keeps its own (zero-output) initialisation
            state.update(
                {k: v for k, v in self.state_dict().items() if k.startswith("decoder.refine.")}
            )
        self.load_state_dict(state)

    # --- the posterior ------------------------------------------------------------------------
    def encode(self, video: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if not torch.jit.is_tracing():  # in an ONNX graph the caller checks the frame rule
            check_frames(video.shape[2], self.cfg.temporal_factor)
        moments = self.encoder(video)  # (B, 2C, t, h, w)
        mean, logvar = moments.chunk(2, dim=1)  # (B, C, t, h, w) each
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)  # (B, 3, T, H, W)

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
            moments = self.encoder(chunk, first=caches is None)  # (B, 2C, t, h, w)
        finally:
            for conv in convs:
                conv.stream = None
        return self.scale_latent(moments[:, : self.cfg.latent_channels]), stream.outputs


def inference_form(vae: CausalVAE) -> CausalVAE:
    """A copy of vae in the form the ONNX graphs run: patch convs fused into the encoder, every
    causal conv folded to 2-D. The same function of the input (checked here on a random clip,
    and by the node parity tests against the unfused model)."""
    import copy

    fast = copy.deepcopy(vae).eval()
    fast.encoder.fuse_patches()  # and its residual net on time-major frames
    for m in fast.decoder.modules():
        if isinstance(m, CausalConv3d):
            m.fold_time()
    cfg = vae.cfg
    g = torch.Generator().manual_seed(0)
    size = 2 * cfg.spatial_factor
    clip = torch.rand(1, 3, 1 + 2 * cfg.temporal_factor, size, size, generator=g) * 2 - 1
    with torch.no_grad():
        want, got = vae.eval()(clip)[0], fast(clip)[0]
    err = float((want - got).abs().max())
    if err > 1e-4:
        raise RuntimeError(f"inference form differs from the model by {err:.2e}")
    return fast


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
