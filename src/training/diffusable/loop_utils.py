"""Pieces every training loop here shares: per-step generators, the LR schedule, EMA."""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """All randomness of one step: resuming at step s replays exactly what s would have drawn."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 1009 + rank)


def lr_at(step: int, lr: float, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine down to 10% at the last step."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, step: int, decay: float) -> None:
    # Short runs: ramp the decay up so the EMA is not dominated by the random init.
    d = min(decay, (1 + step) / (10 + step))
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.mul_(d).add_(pm.detach(), alpha=1 - d)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)
