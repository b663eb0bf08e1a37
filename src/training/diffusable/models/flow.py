"""Rectified flow: the training pair and the Euler / Heun samplers with classifier-free guidance.

Convention (the TypeScript sampler in src/pipeline reproduces it; see docs/sampler.md):
    x_t = (1 - t) * x_0 + t * e,   e ~ N(0, I),   t in [0, 1];   target v = e - x_0
so t = 1 is pure noise and sampling integrates dx/dt = v from t = 1 down to t = 0 on the grid
t_i = shift(1 - i / N), i = 0..N, with shift(u) = s u / (1 + (s - 1) u) (s = 1: uniform; s < 1
spends more steps near t = 0, where the fine detail is drawn). Guidance: v = v_null + g * (v_label -
v_null) for t inside the guidance interval [lo, hi], plain conditional (g = 1, no null pass)
outside it: guidance at high noise mostly narrows the layouts, near t = 0 it only sharpens
(Kynkaanniemi et al. 2024, "Applying guidance in a limited interval").

The service's sampler (src/pipeline/generate/sampler.ts) reproduces the uniform grid with
guidance at every step, the bundles' setting. The shift and the guidance interval are
sampler_sweep's levers: measured on the shipped denoisers, neither paid (docs/RESULTS.md 0i), so
the service does not take them.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

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


def draw_context(batch: int, frames: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """(B,) int64: how many leading latent frames each training example is given clean; 0 with
    probability 1 - p, else uniform in 1 .. frames - 1 (1: image-to-video; more: extension).
    Two numbers are drawn per row whatever p is, so runs that differ only in p see the same
    labels, noise and times."""
    u = torch.rand(batch, generator=generator)
    k = 1 + (torch.rand(batch, generator=generator) * max(frames - 1, 1)).long()
    k = k.clamp(max=max(frames - 1, 0))
    return torch.where(u < p, k, torch.zeros_like(k))


def drop_labels(
    labels: torch.Tensor, null_class: int, p: float, generator: torch.Generator
) -> torch.Tensor:
    """Replace each label by the null class with probability p (classifier-free guidance)."""
    drop = torch.rand(labels.shape, generator=generator) < p
    return torch.where(drop.to(labels.device), torch.full_like(labels, null_class), labels)


def guided_velocity(
    model: VelocityFn,
    x: torch.Tensor,
    t: float,
    label: torch.Tensor,
    guidance: float,
    null: int,
    context: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """context (B,) int64 is passed on to a context-trained model (both passes get it)."""
    time = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
    extra = () if context is None else (context,)
    if guidance == 1.0:
        return model(x, time, label, *extra)
    # One batch of 2B: labelled first, null second. The denoiser never mixes batch entries, so
    # this equals two separate calls.
    extra = () if context is None else (torch.cat([context, context]),)
    v = model(
        torch.cat([x, x]),
        torch.cat([time, time]),
        torch.cat([label, torch.full_like(label, null)]),
        *extra,
    )
    v_label, v_null = v.chunk(2)
    return v_null + guidance * (v_label - v_null)


# The sampler methods, as the service's generate/sampler.ts names them (tested to match).
SAMPLER_METHODS = ("euler", "heun")
# How given leading frames are kept (see sample).
CONTEXT_MODES = ("trained", "replace")
# The whole time range: guidance at every step.
FULL_INTERVAL = (0.0, 1.0)


def shifted_time(u: float, shift: float) -> float:
    """The sampling grid's time for uniform u in [0, 1]; shift 1 returns u exactly."""
    return shift * u / (1 + (shift - 1) * u)


def check_shift(shift: float) -> float:
    """The time-grid shift, or ValueError unless it is > 0."""
    if not shift > 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    return shift


def check_guidance_interval(interval: Tuple[float, float]) -> Tuple[float, float]:
    """(lo, hi), or ValueError unless 0 <= lo <= hi <= 1."""
    lo, hi = interval
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"guidance_interval must satisfy 0 <= lo <= hi <= 1, got {lo}, {hi}")
    return lo, hi


def sampling_times(steps: int, shift: float = 1.0) -> List[float]:
    """t_0 = 1 > t_1 > ... > t_steps = 0."""
    check_shift(shift)
    return [shifted_time(1.0 - i / steps, shift) for i in range(steps + 1)]


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
    context: Optional[torch.Tensor] = None,
    context_mode: str = "trained",
    guidance_interval: Tuple[float, float] = FULL_INTERVAL,
    shift: float = 1.0,
) -> torch.Tensor:
    """Integrate from x_1 = noise to x_0 in `steps` steps; returns x_0 (same shape as noise).

    guidance_interval (lo, hi): guidance applies at times lo <= t <= hi, g = 1 elsewhere.
    shift: the time grid's shift (module docstring); 1 is the uniform grid.

    context (B, C, k, h, w): given latents of the first k frames, kept fixed while the rest is
    generated. context_mode "trained": those frames hold the clean latents at every step and
    the model is told k (a context-trained denoiser); "replace": the training-free alternative,
    those frames are set to the context noised to the current time, (1 - t) c + t e, with e
    this sample's own noise, and the model is not told (any denoiser)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if method not in SAMPLER_METHODS:
        raise ValueError(f"unknown method {method!r} ({' | '.join(SAMPLER_METHODS)})")
    if context_mode not in CONTEXT_MODES:
        raise ValueError(f"unknown context mode {context_mode!r} ({' | '.join(CONTEXT_MODES)})")
    lo, hi = check_guidance_interval(guidance_interval)
    times = sampling_times(steps, shift)
    k = 0 if context is None else context.shape[2]
    given = None
    if k and context_mode == "trained":
        given = torch.full((noise.shape[0],), k, dtype=torch.long, device=noise.device)

    def pin(x: torch.Tensor, t: float) -> torch.Tensor:
        if not k:
            return x
        c = context if context_mode == "trained" else (1 - t) * context + t * noise[:, :, :k]
        return torch.cat([c, x[:, :, k:]], dim=2)

    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        g = guidance if lo <= t <= hi else 1.0
        return guided_velocity(model, x, t, label, g, null_class, given)

    x = pin(noise, 1.0)
    for i in range(steps):
        t_now, t_next = times[i], times[i + 1]
        dt = t_next - t_now  # negative
        d1 = velocity(x, t_now)
        if method == "heun" and i < steps - 1:
            # Heun's correction at t_next; the last step (t_next = 0) stays Euler, as in EDM.
            x_e = pin(x + dt * d1, t_next)
            d2 = velocity(x_e, t_next)
            x = x + dt * 0.5 * (d1 + d2)
        else:
            x = x + dt * d1
        x = pin(x, t_next)
        if on_step is not None:
            on_step(i + 1, x)
    return x
