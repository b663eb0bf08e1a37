"""Fréchet distance: agreement with a scipy reference, and zero for identical sets."""

import numpy as np
import pytest
from scipy import linalg

from diffusable.evaluation.frechet import feature_stats, frechet_distance, frechet_distance_of


def scipy_reference(mu_a, cov_a, mu_b, cov_b):
    covmean = linalg.sqrtm(cov_a @ cov_b).real
    diff = mu_a - mu_b
    return diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean)


@pytest.mark.parametrize("dim,seed", [(8, 0), (32, 1), (64, 2)])
def test_matches_scipy_on_random_gaussians(dim, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(500, dim)) @ rng.normal(size=(dim, dim))
    b = rng.normal(loc=0.5, size=(400, dim)) @ rng.normal(size=(dim, dim))
    stats = (*feature_stats(a), *feature_stats(b))
    ours, ref = frechet_distance(*stats), scipy_reference(*stats)
    assert abs(ours - ref) / abs(ref) <= 1e-6


def test_zero_for_identical_sets():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(300, 16))
    assert frechet_distance_of(a, a.copy()) == pytest.approx(0.0, abs=1e-8)


def test_known_closed_form():
    # Two isotropic Gaussians: FD^2 = |mu_a - mu_b|^2 + D (sigma_a - sigma_b)^2.
    d = 5
    value = frechet_distance(np.zeros(d), 4 * np.eye(d), np.ones(d), np.eye(d))
    assert value == pytest.approx(d * 1.0 + d * (2 - 1) ** 2, rel=1e-12)


def test_singular_covariances_stay_finite_and_non_negative():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(10, 50))  # N < D: rank-deficient covariance
    b = rng.normal(size=(10, 50))
    value = frechet_distance_of(a, b)
    assert np.isfinite(value) and value >= 0


def test_rejects_too_few_features():
    with pytest.raises(ValueError, match="N >= 2"):
        feature_stats(np.zeros((1, 4)))


def test_report_reach_is_the_first_evaluation_at_or_below_the_target():
    """report --dit counts as the seed grid does (seed_stats.steps_to_reach): no interpolation."""
    from diffusable.experiments.seed_stats import steps_to_reach

    curve = {0: 40.0, 500: 30.0, 1000: 20.0}
    assert steps_to_reach([curve], 25.0, "lower")["mean"] == 1000
    assert steps_to_reach([curve], 40.0, "lower")["mean"] == 0
    assert steps_to_reach([curve], 19.0, "lower")["mean"] is None
