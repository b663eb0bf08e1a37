"""Fréchet distance between two sets of features, in float64.

    FD^2 = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))

The trace of the matrix square root is taken without forming (S_a S_b)^(1/2), which is not
symmetric and makes scipy.linalg.sqrtm wobble (complex parts, negative traces) on near-singular
covariances: with R = S_a^(1/2) (symmetric, from eigh), S_a S_b is similar to R S_b R, which is
symmetric positive semi-definite, so Tr((S_a S_b)^(1/2)) = sum of sqrt(eigenvalues of R S_b R),
with tiny negative eigenvalues from rounding clipped to 0.

What the features are decides the metric's name: I3D Kinetics-400 logits give FVD (`fvd_i3d`);
a randomly initialised network gives `fd_rand3d`, which is not FVD (see features.py).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np


def feature_stats(features: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be (N >= 2, D), got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu_a, cov_a, mu_b, cov_b) -> float:
    """Squared Fréchet distance between N(mu_a, cov_a) and N(mu_b, cov_b) (the usual 'FID')."""
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    root_a = _sqrt_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(eig, 0, None)).sum())
    diff = mu_a - mu_b
    value = float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * tr_sqrt)
    return max(value, 0.0)


def frechet_distance_of(features_a: np.ndarray, features_b: np.ndarray) -> float:
    return frechet_distance(*feature_stats(features_a), *feature_stats(features_b))
