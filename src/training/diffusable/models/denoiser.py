"""DiT-style denoiser over latent video patches (Peebles & Xie, "Scalable Diffusion Models with
Transformers"), conditioned on flow time and class with adaLN-Zero.

    x (B, C, t, h, w), time (B,) in [0, 1], label (B,) int64  ->  v (B, C, t, h, w)

Label id `num_classes` is the null class used for classifier-free guidance. Positional embeddings
are fixed 3D sin-cos computed from the latent grid, so one model serves any t, h, w the patch size
divides. Attention is written out (no scaled_dot_product_attention) so it runs on torch 1.13 and
exports with opset 17.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Dict, Optional

import torch
import torch.nn as nn


@dataclass(frozen=True)
class DenoiserConfig:
    name: str = "small"
    latent_channels: int = 16
    num_classes: int = 13  # the null class is num_classes
    patch_t: int = 1
    patch_s: int = 2
    hidden: int = 256
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    # DiT initialises the class table at std 0.02 and trains for 400k steps. On a CPU budget of a
    # few thousand steps that leaves the label a whisper next to the time embedding: a `small`
    # DiT trained 1000 steps changed v by 3% between two labels and ignored the class. A table at
    # std 1 gives every class a distinct adaLN code from the first step.
    label_init_std: float = 0.02
    # Trained to continue given frames (image-to-video, extension): the `context` input says how
    # many leading latent frames of x are clean, given latents; their tokens carry a learned
    # flag. 0 is plain generation, so one model serves both (docs/sampler.md).
    context: bool = False

    @property
    def null_class(self) -> int:
        return self.num_classes

    def to_dict(self) -> Dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_dict(d: Dict) -> "DenoiserConfig":
        return DenoiserConfig(**d)


DENOISER_CONFIGS: Dict[str, DenoiserConfig] = {
    "tiny": DenoiserConfig(
        name="tiny", latent_channels=4, num_classes=2, hidden=32, depth=2, heads=2
    ),
    "small": DenoiserConfig(name="small"),
    # The shipped default: 4.2 M parameters, so that a whole bundle (autoencoder graphs plus
    # denoiser, weights stored as fp16) stays within the 25 MB bundle budget.
    "compact": DenoiserConfig(name="compact", hidden=192, depth=6, heads=4, label_init_std=1.0),
    # 9.8 M parameters (2.3x compact's FLOPs per token): compact's held-out loss and samples
    # stopped improving after ~18k steps on the shipped latents (RESULTS 0d). Its int8 graph
    # (~10 MB) fits the 25 MB budget beside an autoencoder whose encoder graphs share one weights
    # file (onnx_shared_weights.py), not beside three inline copies.
    "medium": DenoiserConfig(name="medium", hidden=256, depth=8, heads=4, label_init_std=1.0),
    "base": DenoiserConfig(name="base", hidden=768, depth=12, heads=12),
}


def get_denoiser_config(name: str, **overrides) -> DenoiserConfig:
    if name not in DENOISER_CONFIGS:
        raise ValueError(
            f"unknown denoiser config {name!r}; choose from {sorted(DENOISER_CONFIGS)}"
        )
    return replace(DENOISER_CONFIGS[name], **overrides)


# -----------------------------------------------------------------------------
# Embeddings
# -----------------------------------------------------------------------------


def sincos_1d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """(N,) float positions -> (N, dim) with dim/2 sines and dim/2 cosines."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = positions.float()[:, None] * freqs.to(positions.device)[None]  # (N, half)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def sincos_3d(t: int, h: int, w: int, dim: int, device) -> torch.Tensor:
    """Fixed space-time embedding of a t x h x w token grid -> (t*h*w, dim).

    The channels are split between time (dim/4) and the two spatial axes (3*dim/8 each), so that
    positions in space, where grids are larger, get the finer resolution.
    """
    d_t = dim // 4 // 2 * 2
    d_s = (dim - d_t) // 2 // 2 * 2
    d_t = dim - 2 * d_s
    gt = torch.arange(t, device=device)
    gh = torch.arange(h, device=device)
    gw = torch.arange(w, device=device)
    et = sincos_1d(gt, d_t)[:, None, None].expand(t, h, w, d_t)
    eh = sincos_1d(gh, d_s)[None, :, None].expand(t, h, w, d_s)
    ew = sincos_1d(gw, d_s)[None, None, :].expand(t, h, w, d_s)
    return torch.cat([et, eh, ew], dim=-1).reshape(t * h * w, dim)


class TimestepEmbedder(nn.Module):
    """Flow time in [0, 1] -> vector, through sinusoidal features and an MLP."""

    def __init__(self, hidden: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, time: torch.Tensor) -> torch.Tensor:  # (B,)
        # Scale [0, 1] to [0, 1000] so the sinusoid frequencies match DiT's integer timesteps.
        return self.mlp(sincos_1d(time * 1000.0, self.freq_dim))  # (B, hidden)


class PlainLayerNorm(nn.Module):
    """LayerNorm without affine parameters (adaLN supplies them), written out because torch
    1.13 exports nn.LayerNorm(elementwise_affine=False) as an invalid opset-17 node."""

    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        var = (x - mean).square().mean(dim=-1, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


# -----------------------------------------------------------------------------
# Transformer
# -----------------------------------------------------------------------------


class Attention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, D)
        b, n, d = x.shape
        h, dh = self.heads, d // self.heads
        qkv = self.qkv(x).reshape(b, n, 3, h, dh).permute(2, 0, 3, 1, 4)  # (3, B, h, N, dh)
        # Batched matmuls over contiguous (B*h, N, dh) blocks: on CPU, torch 1.13 runs bmm on
        # permuted 4D views matrix by matrix, about 50x slower (measured).
        q, k, v = qkv.reshape(3, b * h, n, dh).contiguous().unbind(0)  # each (B*h, N, dh)
        attn = torch.bmm(q, k.transpose(1, 2)) * dh**-0.5  # (B*h, N, N)
        y = torch.bmm(attn.softmax(dim=-1), v)  # (B*h, N, dh)
        return self.proj(y.reshape(b, h, n, dh).transpose(1, 2).reshape(b, n, d))


class DiTBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = PlainLayerNorm()
        self.attn = Attention(hidden, heads)
        self.norm2 = PlainLayerNorm()
        mlp = int(hidden * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden, mlp), nn.GELU(), nn.Linear(mlp, hidden))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:  # (B, N, D), (B, D)
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c).chunk(6, dim=1)
        x = x + g1[:, None] * self.attn(modulate(self.norm1(x), sh1, sc1))
        return x + g2[:, None] * self.mlp(modulate(self.norm2(x), sh2, sc2))


class FinalLayer(nn.Module):
    def __init__(self, hidden: int, out: int):
        super().__init__()
        self.norm = PlainLayerNorm()
        self.linear = nn.Linear(hidden, out)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.ada(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm(x), shift, scale))


class Denoiser(nn.Module):
    def __init__(self, cfg: DenoiserConfig):
        super().__init__()
        self.cfg = cfg
        pt, ps, c = cfg.patch_t, cfg.patch_s, cfg.latent_channels
        self.patch_dim = c * pt * ps * ps
        self.embed = nn.Linear(self.patch_dim, cfg.hidden)
        self.time_embed = TimestepEmbedder(cfg.hidden)
        self.label_embed = nn.Embedding(cfg.num_classes + 1, cfg.hidden)  # + the null class
        self.blocks = nn.ModuleList(
            [DiTBlock(cfg.hidden, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth)]
        )
        self.final = FinalLayer(cfg.hidden, self.patch_dim)
        if cfg.context:
            if cfg.patch_t != 1:
                raise ValueError("a context-conditioned denoiser needs patch_t = 1")
            self.context_flag = nn.Parameter(torch.zeros(cfg.hidden))
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.label_embed.weight, std=self.cfg.label_init_std)
        nn.init.normal_(self.time_embed.mlp[0].weight, std=0.02)
        nn.init.normal_(self.time_embed.mlp[2].weight, std=0.02)
        # adaLN-Zero: every residual branch and the output start at zero, so the untrained
        # network is the identity on its residual stream and predicts v = 0.
        for block in self.blocks:
            nn.init.zeros_(block.ada[-1].weight)
            nn.init.zeros_(block.ada[-1].bias)
        nn.init.zeros_(self.final.ada[-1].weight)
        nn.init.zeros_(self.final.ada[-1].bias)
        nn.init.zeros_(self.final.linear.weight)
        nn.init.zeros_(self.final.linear.bias)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        pt, ps = self.cfg.patch_t, self.cfg.patch_s
        x = x.reshape(b, c, t // pt, pt, h // ps, ps, w // ps, ps)
        x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)  # (B, t', h', w', C, pt, ps, ps)
        return x.reshape(b, (t // pt) * (h // ps) * (w // ps), self.patch_dim)  # (B, N, P)

    def unpatchify(self, x: torch.Tensor, t: int, h: int, w: int) -> torch.Tensor:
        b = x.shape[0]
        pt, ps, c = self.cfg.patch_t, self.cfg.patch_s, self.cfg.latent_channels
        x = x.reshape(b, t // pt, h // ps, w // ps, c, pt, ps, ps)
        x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)  # (B, C, t', pt, h', ps, w', ps)
        return x.reshape(b, c, t, h, w)

    def forward(
        self,
        x: torch.Tensor,
        time: torch.Tensor,
        label: torch.Tensor,
        context: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """x (B, C, t, h, w), time (B,), label (B,) int64; context (B,) int64: how many leading
        latent frames of x are clean given frames (a context-trained model; None = 0)."""
        b, _, t, h, w = x.shape  # (B, C, t, h, w)
        pt, ps = self.cfg.patch_t, self.cfg.patch_s
        tokens = self.embed(self.patchify(x))  # (B, N, D)
        tokens = tokens + sincos_3d(t // pt, h // ps, w // ps, self.cfg.hidden, x.device)[None]
        if self.cfg.context and context is not None:
            frame = torch.arange(t, device=x.device)  # patch_t = 1: one token frame per latent
            given = (frame[None, :] < context[:, None]).to(tokens.dtype)  # (B, t)
            per_token = given[:, :, None].expand(b, t, (h // ps) * (w // ps)).reshape(b, -1, 1)
            tokens = tokens + per_token * self.context_flag  # (B, N, D)
        c = self.time_embed(time) + self.label_embed(label)  # (B, D)
        for block in self.blocks:
            tokens = block(tokens, c)
        return self.unpatchify(self.final(tokens, c), t, h, w)  # (B, C, t, h, w)
