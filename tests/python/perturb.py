"""A model whose every parameter is nudged off its initialisation, for tests that need a
non-trivial map (adaLN-Zero starts at v = 0; residual nets end in zero layers)."""

import torch


def perturbed_model(make, seed: int = 0, std: float = 0.05):
    """`make()` built under `seed`, in eval mode, every parameter plus N(0, std^2) noise drawn
    from the same seeded stream."""
    torch.manual_seed(seed)
    model = make().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * std)
    return model
