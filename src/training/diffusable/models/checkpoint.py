"""Checkpoints: written atomically, always carrying the model config, loadable without the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple

import torch

import torch.nn as nn

from ..atomic_file import atomic_write
from .autoencoders import build, config_from_dict


def save_checkpoint(path, state: Dict[str, Any]) -> None:
    """Whole or not at all (atomic_write): a killed run never leaves a torn checkpoint, and two
    processes saving one path at once (trainers started together) never rename each other's."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(state, f))


def torch_load_trusted(path) -> Any:
    """torch.load of a file this project wrote. torch >= 2.6 defaults to weights_only=True,
    which refuses some of the plain objects our checkpoints carry; 1.13 (CPU here) takes the
    flag too, older versions do not."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except TypeError:
        return torch.load(path, map_location="cpu")


def load_checkpoint(path) -> Dict[str, Any]:
    """A checkpoint as its trainer wrote it; compact weights (compact_state) come back as
    float32 tensors under their usual key, so every reader sees one format."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    state = torch_load_trusted(path)
    for key in [k for k in state if k.endswith(INT8_SUFFIX)]:
        state[key[: -len(INT8_SUFFIX)]] = expand_int8(state.pop(key))
    return state


# -----------------------------------------------------------------------------
# Compact weights: what travels back from a GPU machine or is committed
# -----------------------------------------------------------------------------

INT8_SUFFIX = "_int8"


def quantize_int8(weights: Dict[str, torch.Tensor]) -> Dict[str, Dict[str, torch.Tensor]]:
    """Per-output-channel symmetric int8 codes with fp16 scales for every float tensor of 2 or
    more dims (convolution and linear weights: a quarter of fp32); the rest stays float32.
    The bundles store the autoencoder this way (docs/bundle.md); on its weights the round trip
    moved val PSNR by less than 0.001 dB."""
    codes, scales, plain = {}, {}, {}
    for k, v in weights.items():
        v = v.detach().cpu()
        if v.is_floating_point() and v.dim() >= 2:
            amax = v.float().abs().amax(dim=tuple(range(1, v.dim())), keepdim=True)
            scale = (amax / 127.0).clamp_min(1e-12)
            codes[k] = (v.float() / scale).round().clamp(-127, 127).to(torch.int8)
            scales[k] = scale.half()
        else:
            plain[k] = v.float() if v.is_floating_point() else v
    return {"codes": codes, "scales": scales, "plain": plain}


def expand_int8(packed: Dict[str, Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """Inverse of quantize_int8 (up to rounding): float32 tensors by name."""
    out = dict(packed["plain"])
    for k, q in packed["codes"].items():
        out[k] = q.float() * packed["scales"][k].float()
    return out


def compact_state(state: Dict[str, Any], weights: str = "fp16") -> Dict[str, Any]:
    """A finished checkpoint without what only resuming needs (optimizer, raw weights): its
    metadata and EMA weights, stored as fp16 or int8 (load_checkpoint reads both)."""
    keep = ("latent_shift", "latent_scale")  # the latent calibration stays float32
    out = {k: v for k, v in state.items() if k not in ("model", "ema", "opt", "disc", "disc_opt")}
    ema = state["ema"]
    if weights == "int8":
        out["ema" + INT8_SUFFIX] = quantize_int8(ema)
    elif weights == "fp16":
        out["ema"] = {
            k: v.half() if v.is_floating_point() and k.split(".")[-1] not in keep else v
            for k, v in ema.items()
        }
    else:
        raise ValueError(f"weights must be fp16 or int8, got {weights!r}")
    return out


def save_weights_fp16(
    path, model: nn.Module, variant: str, run_id: str, step: int, latents_from=None
) -> None:
    """The small file a run commits to be resumed or exported anywhere: config and fp16 weights
    (and, for a decoder fine-tune, the run whose latents it keeps: see train_ae)."""
    meta = {
        "kind": "autoencoder",
        "architecture": model.cfg.architecture,
        "config": model.cfg.to_dict(),
        "variant": variant,
        "run_id": run_id,
        "step": step,
        "final": True,
        "ema": model.state_dict(),
    }
    if latents_from is not None:
        meta["latents_from"] = latents_from
    save_checkpoint(path, compact_state(meta, "fp16"))


def latents_of(meta: Dict) -> Dict:
    """Which latents an autoencoder makes, from its checkpoint metadata (run_id, step,
    latents_from): {run_id, step} of the run whose encoder it has (its own, or for a decoder
    fine-tune the one it kept, `latents_from`). Two autoencoders with the same answer serve the
    same denoisers."""
    return meta.get("latents_from") or {"run_id": meta.get("run_id"), "step": meta.get("step")}


def bundle_latents(record: Dict) -> Dict:
    """latents_of for a manifest's runs.autoencoder record, which names its run `id`."""
    return latents_of({**record, "run_id": record.get("id")})


def load_autoencoder(path, weights: str = "ema") -> Tuple[nn.Module, Dict[str, Any]]:
    """The autoencoder of a checkpoint (EMA weights by default) and the checkpoint's metadata."""
    state = load_checkpoint(path)
    if state.get("kind") != "autoencoder":
        raise ValueError(f"{path} is not an autoencoder checkpoint (kind={state.get('kind')!r})")
    config = dict(state["config"])
    config.setdefault("architecture", state.get("architecture"))
    model = build(config_from_dict(config))  # ValueError names an unknown architecture
    # fp16 files (save_weights_fp16) load into the float32 model as is.
    model.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in state[weights].items()}
    )
    meta = {
        k: v
        for k, v in state.items()
        if k in ("variant", "step", "run_id", "train", "final", "latents_from")
    }
    return model, meta
