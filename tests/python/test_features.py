"""The Fréchet metrics (fd_rand3d, fd_cls3d) rise along the degradation ladder."""

import numpy as np
import pytest
import torch

from diffusable.evaluation.degrade import DEGRADATIONS, STRENGTHS, ladder, ladder_concordance
from diffusable.evaluation.features import FeatureExtractor, Preprocessing


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
    assert ladder_concordance(table) == 1.0


def test_concordance_counts_correctly_ordered_pairs():
    assert ladder_concordance({"a": [1, 2, 3], "b": [3, 2, 1]}) == 0.5
    assert ladder_concordance({"a": [1, 3, 2]}) == 2 / 3


def test_classifier_features_rise_along_the_ladder():
    """fd_cls3d on a classifier trained (here, briefly) to tell two kinds of clip apart."""
    import torch.nn.functional as F

    from diffusable.evaluation.classifier import VideoClassifier, weights_hash

    torch.manual_seed(0)
    model = VideoClassifier(2, width=16)
    clips = torch.cat([moving_blobs(16, 3), moving_blobs(16, 4).flip(2)])  # forwards, backwards
    labels = torch.tensor([0] * 16 + [1] * 16)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(30):
        loss = F.cross_entropy(model(clips), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    info = {"config": {"size": 32}, "key": "test", "val_accuracy": None}
    extractor = FeatureExtractor.classifier(model.eval(), info, frames=17)
    assert extractor.describe()["metric"] == "fd_cls3d"
    assert extractor.describe()["extractor_hash"] == weights_hash(model)
    assert extractor.features(clips[:2]).shape == (2, 64)
    table = ladder(extractor, moving_blobs(32, 1), moving_blobs(32, 2))
    # A 30-step toy classifier of motion direction has no reason to notice blur or broken motion;
    # pixel noise, which floods its frame differences, it must. The real classifier's whole
    # ladder is measured by `python3 -m diffusable.evaluation.degrade` (RESULTS.md).
    row = table["noise"]
    assert row[-1] > 1.5 * row[0] and all(b >= 0.95 * a for a, b in zip(row, row[1:])), row


def smooth_latents(n: int, seed: int, smoothing: int = 1) -> torch.Tensor:
    """Latent-like fields (n, 8, 3, 8, 8): `smoothing` 3x3 box filters of white noise in space,
    unit variance, channels mixed by one fixed rotation, offset (as real latents are)."""
    z = torch.randn(n, 8, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    for _ in range(smoothing):
        z = torch.nn.functional.avg_pool3d(
            z, (1, 3, 3), stride=1, padding=(0, 1, 1), count_include_pad=False
        )
    mix = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(99)))[0]
    return torch.einsum("dc,bcthw->bdthw", mix, z / z.std()) + 0.5


def test_latent_fd_separates_real_latents_from_degraded_ones():
    from diffusable.evaluation.features import LatentFD

    noise = torch.randn(96, 8, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    lfd = LatentFD(smooth_latents(256, 1), noise)
    held_out = smooth_latents(96, 2)
    # blended with the noise as the sampler's path at time t (the fixture's variance dips
    # below either end near t = 0.5, so the ladder stops short of it)
    blended = [lfd((1 - t) * held_out + t * noise) for t in (0.0, 0.1, 0.2, 0.3)]
    assert blended == sorted(blended) and blended[0] < 0.2 and lfd(noise) == 1.0
    # the same mean, variance and channel mixing with the wrong spatial correlation (white,
    # or smoothed twice or three times): further from the data than held-out latents
    for smoothing in (0, 2, 3):
        assert lfd(smooth_latents(96, 2, smoothing)) > 1.3 * blended[0]
    info = lfd.describe()
    assert info["metric"] == "lfd" and info["n_real"] == 256 and info["extractor_hash"]
    assert LatentFD(smooth_latents(256, 1), noise).hash == lfd.hash  # fixed weights


def test_noise_equivalent_t_reads_lfd_on_the_spaces_own_ladder():
    from diffusable.evaluation.features import noise_equivalent_t

    ladder = {0.0: 0.1, 0.1: 0.14, 0.2: 0.23, 0.5: 0.57, 1.0: 1.0}
    assert noise_equivalent_t(0.05, ladder) == 0.0  # below the floor: as good as real latents
    assert noise_equivalent_t(0.1, ladder) == 0.0
    assert noise_equivalent_t(0.14, ladder) == pytest.approx(0.1)
    assert noise_equivalent_t(0.185, ladder) == pytest.approx(0.15)
    assert noise_equivalent_t(2.0, ladder) == 1.0
    # two spaces, one lfd: the space that moves less under the same noise is further along
    smoother = {0.0: 0.1, 0.1: 0.12, 0.2: 0.2, 0.5: 0.52, 1.0: 1.0}
    assert noise_equivalent_t(0.15, smoother) > noise_equivalent_t(0.15, ladder)
    # a ladder that dips past t = 0.5 (a blend's variance is lowest there): the first bracket
    dip = {0.0: 0.1, 0.3: 0.6, 0.5: 1.1, 1.0: 1.0}
    assert noise_equivalent_t(1.05, dip) == pytest.approx(0.3 + 0.2 * 0.45 / 0.5)
