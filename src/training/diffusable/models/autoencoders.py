"""The registry of autoencoder architectures: a new one is its module plus one line here.

Every architecture provides the same interface (see ``conv_vae.ConvCausalVAE``):
    cfg                         a frozen config dataclass with to_dict / to_json / from_dict,
                                spatial_factor, temporal_factor, latent_channels,
                                decoder_context_latents, latent_shape(frames, h, w), resolution,
                                frames, fps, architecture
    encode(video)               -> (mean, logvar), (B, C, 1+k, h, w) each
    decode(z)                   -> video (B, 3, 1+4k, H, W)
    encode_scaled / decode_scaled   the bundle's scaled latents (latent_shift, latent_scale)
    encode_step(chunk, caches)  -> (scaled latent, caches): streaming, the state passed in and out
    load_from(base)             start a fine-tune from a trained model
Checkpoints, export, training, ae_eval, fixtures and the service's manifest all go through here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Dict, Optional

import torch.nn as nn

from . import conv_vae, pca_residual_vae


@dataclass(frozen=True)
class Architecture:
    name: str
    config_cls: type
    model_cls: type
    configs: Dict[str, object]  # named variants
    # How a fresh pre-train starts: "linear" (the PCA of the training split) or "scratch".
    init: str
    # A copy of a model in the form its ONNX graphs run.
    inference_form: Callable[[nn.Module], nn.Module]


ARCHITECTURES: Dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture(
            pca_residual_vae.ARCHITECTURE,
            pca_residual_vae.AutoencoderConfig,
            pca_residual_vae.CausalVAE,
            pca_residual_vae.AE_CONFIGS,
            "linear",
            pca_residual_vae.inference_form,
        ),
        Architecture(
            conv_vae.ARCHITECTURE,
            conv_vae.ConvVAEConfig,
            conv_vae.ConvCausalVAE,
            conv_vae.CONV_CONFIGS,
            "scratch",
            lambda m: m.inference_form(),
        ),
    )
}


def architecture_of(cfg) -> Architecture:
    return ARCHITECTURES[cfg.architecture]


def named_configs() -> Dict[str, object]:
    """Every named config of every architecture (names are unique across them)."""
    out: Dict[str, object] = {}
    for arch in ARCHITECTURES.values():
        out.update(arch.configs)
    return out


def get_config(name: str, **overrides):
    """A named config with fields overridden; a field the architecture lacks is a ValueError."""
    configs = named_configs()
    if name not in configs:
        raise ValueError(f"unknown autoencoder config {name!r}; choose from {sorted(configs)}")
    try:
        return replace(configs[name], **overrides)
    except TypeError as err:  # an override that is not a field of this architecture's config
        fields = ", ".join(sorted(overrides))
        raise ValueError(f"config {name!r} has no such setting ({fields}): {err}") from None


def config_from_dict(d: Dict):
    arch = d.get("architecture", pca_residual_vae.ARCHITECTURE)
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"autoencoder architecture {arch!r} is not one of {sorted(ARCHITECTURES)} "
            "(checkpoints of the earlier conv autoencoder no longer load)"
        )
    return ARCHITECTURES[arch].config_cls.from_dict(d)


def build(cfg) -> nn.Module:
    return architecture_of(cfg).model_cls(cfg)


def inference_form(model: nn.Module) -> nn.Module:
    return architecture_of(model.cfg).inference_form(model)


def fresh_init(cfg) -> str:
    return architecture_of(cfg).init


def count_parameters(module: Optional[nn.Module]) -> int:
    return sum(p.numel() for p in module.parameters()) if module is not None else 0
