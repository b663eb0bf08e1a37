"""Checkpoints: written atomically, always carrying the model config, loadable without the run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Tuple

import torch

import torch.nn as nn

from .autoencoders import build, config_from_dict


def save_checkpoint(path, state: Dict[str, Any]) -> None:
    """Write to a temporary name, then rename: a killed run never leaves a torn checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location="cpu")


def save_weights_fp16(path, model: nn.Module, variant: str, run_id: str, step: int) -> None:
    """The small file a run commits to be resumed or exported anywhere: config and fp16 weights."""
    keep = ("latent_shift", "latent_scale")  # calibration stays float32
    state = {
        k: v.half() if v.is_floating_point() and k not in keep else v
        for k, v in model.state_dict().items()
    }
    save_checkpoint(
        path,
        {
            "kind": "autoencoder",
            "architecture": model.cfg.architecture,
            "config": model.cfg.to_dict(),
            "variant": variant,
            "run_id": run_id,
            "step": step,
            "final": True,
            "ema": state,
        },
    )


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
    meta = {k: v for k, v in state.items() if k in ("variant", "step", "run_id", "train", "final")}
    return model, meta
