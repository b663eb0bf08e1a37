"""Checkpoints: written atomically, always carrying the model config, loadable without the run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Tuple

import torch

from .autoencoder import AutoencoderConfig, CausalVAE


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


def load_autoencoder(path, weights: str = "ema") -> Tuple[CausalVAE, Dict[str, Any]]:
    """The autoencoder of a checkpoint (EMA weights by default) and the checkpoint's metadata."""
    state = load_checkpoint(path)
    if state.get("kind") != "autoencoder":
        raise ValueError(f"{path} is not an autoencoder checkpoint (kind={state.get('kind')!r})")
    model = CausalVAE(AutoencoderConfig.from_dict(state["config"]))
    model.load_state_dict(state[weights])
    meta = {k: v for k, v in state.items() if k in ("variant", "step", "run_id", "train", "final")}
    return model, meta
