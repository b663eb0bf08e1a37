"""The fallback video metric (fd_rand3d) rises along the degradation ladder."""

import numpy as np
import torch

from diffusable.degrade import DEGRADATIONS, STRENGTHS, ladder
from diffusable.features import FeatureExtractor, Preprocessing


def moving_blobs(n: int, seed: int) -> torch.Tensor:
    """Smooth coloured blobs drifting across textured backgrounds: (n, 3, 17, 32, 32)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    clips = torch.empty(n, 3, 17, 32, 32)
    for i in range(n):
        colour = torch.rand(3, generator=g) * 2 - 1
        bg = torch.rand(3, 1, 1, generator=g) * 0.5 - 0.25
        texture = 0.3 * torch.sin(xx / (1 + 3 * torch.rand(1, generator=g)) + yy / 3)
        x0, y0, vx, vy = (torch.rand(4, generator=g) * torch.tensor([32, 32, 3, 3])).tolist()
        for t in range(17):
            d = ((xx - x0 - vx * t) % 32 - 16) ** 2 + ((yy - y0 - vy * t) % 32 - 16) ** 2
            blob = torch.exp(-d / 30.0)
            clips[i, :, t] = (bg + texture) * (1 - blob) + colour[:, None, None] * blob
    return clips.clamp(-1, 1)


def test_extractor_is_deterministic_and_described():
    a, b = FeatureExtractor(seed=0), FeatureExtractor(seed=0)
    x = moving_blobs(2, 0)
    assert np.array_equal(a.features(x), b.features(x))
    assert a.hash == b.hash != FeatureExtractor(seed=1).hash
    info = a.describe()
    assert info["metric"] == "fd_rand3d" and info["preprocessing"]["frames"] == 16


def test_metric_rises_along_the_degradation_ladder():
    extractor = FeatureExtractor(pre=Preprocessing(size=32))  # small, to stay quick on CPU
    table = ladder(extractor, moving_blobs(32, 1), moving_blobs(32, 2))
    assert set(table) == set(DEGRADATIONS)
    for name, row in table.items():
        assert len(row) == len(STRENGTHS)
        assert row[-1] > 2 * row[0], (name, row)
        assert all(b >= a * 0.98 for a, b in zip(row, row[1:])), (name, row)
