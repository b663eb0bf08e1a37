"""Rectified flow: the training pair and the Euler / Heun samplers with classifier-free guidance.

Convention (the TypeScript sampler in src/pipeline reproduces it; see docs/sampler.md):
    x_t = (1 - t) * x_0 + t * e,   e ~ N(0, I),   t in [0, 1];   target v = e - x_0
so t = 1 is pure noise and sampling integrates dx/dt = v from t = 1 down to t = 0 on the uniform
grid t_i = 1 - i / N, i = 0..N. Guidance: v = v_null + g * (v_label - v_null); g = 1 is plain
conditional sampling and skips the null pass.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

VelocityFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def sample_time(n: int, generator: torch.Generator, dist: str = "logit_normal") -> torch.Tensor:
    """Training times (n,): logit-normal(0, 1) puts more steps mid-way, where v is hardest."""
    if dist == "logit_normal":
        return torch.sigmoid(torch.randn(n, generator=generator))
    if dist == "uniform":
        return torch.rand(n, generator=generator)
    raise ValueError(f"unknown time distribution {dist!r} (logit_normal | uniform)")


def flow_pair(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor):
    """(x_t, v target) for data x0 (B, ...), noise like x0 and times t (B,)."""
    tb = t.reshape(-1, *([1] * (x0.dim() - 1)))
    return (1 - tb) * x0 + tb * noise, noise - x0


def drop_labels(
    labels: torch.Tensor, null_class: int, p: float, generator: torch.Generator
) -> torch.Tensor:
    """Replace each label by the null class with probability p (classifier-free guidance)."""
    drop = torch.rand(labels.shape, generator=generator) < p
    return torch.where(drop.to(labels.device), torch.full_like(labels, null_class), labels)


def guided_velocity(
    model: VelocityFn, x: torch.Tensor, t: float, label: torch.Tensor, guidance: float, null: int
) -> torch.Tensor:
    time = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
    if guidance == 1.0:
        return model(x, time, label)
    # One batch of 2B: labelled first, null second. The denoiser never mixes batch entries, so
    # this equals two separate calls.
    v = model(
        torch.cat([x, x]), torch.cat([time, time]), torch.cat([label, torch.full_like(label, null)])
    )
    v_label, v_null = v.chunk(2)
    return v_null + guidance * (v_label - v_null)


# The sampler methods, as the service's generate/sampler.ts names them (tested to match).
SAMPLER_METHODS = ("euler", "heun")


@torch.no_grad()
def sample(
    model: VelocityFn,
    noise: torch.Tensor,
    label: torch.Tensor,
    *,
    steps: int,
    guidance: float,
    null_class: int,
    method: str = "euler",
    on_step: Optional[Callable[[int, torch.Tensor], None]] = None,
) -> torch.Tensor:
    """Integrate from x_1 = noise to x_0 in `steps` steps; returns x_0 (same shape as noise)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if method not in SAMPLER_METHODS:
        raise ValueError(f"unknown method {method!r} ({' | '.join(SAMPLER_METHODS)})")
    x = noise
    for i in range(steps):
        t_now, t_next = 1.0 - i / steps, 1.0 - (i + 1) / steps
        dt = t_next - t_now  # negative
        d1 = guided_velocity(model, x, t_now, label, guidance, null_class)
        if method == "heun" and i < steps - 1:
            # Heun's correction at t_next; the last step (t_next = 0) stays Euler, as in EDM.
            d2 = guided_velocity(model, x + dt * d1, t_next, label, guidance, null_class)
            x = x + dt * 0.5 * (d1 + d2)
        else:
            x = x + dt * d1
        if on_step is not None:
            on_step(i + 1, x)
    return x
