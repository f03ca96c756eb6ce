"""The one place that talks to torch-fidelity's metric functions: FID, IS, KID, PRC.

Each function takes features (from :meth:`genbench.EvalContext.features`, see
:mod:`genbench.features.job_features`) and calls torch-fidelity's own code (``fid_statistics_to_metric``,
``isc_features_to_metric`` (re-done split by split: see :func:`isc_from_logits`), ``kid_features_to_metric``,
``prc_features_to_metric``) with the generated set as input 1 and the reference as input 2,
exactly as ``torch_fidelity.calculate_metrics`` does, so the numbers are torch-fidelity's.
torch-fidelity's own input pipeline and cache (keyed by a name only) are never used: features
and their content-keyed cache live in :mod:`genbench.features.job_features`. Every direct
``torch_fidelity.calculate_metrics`` call (tests, benchmark) passes ``cuda=`` and
``feature_extractor=`` explicitly.
"""

from __future__ import annotations

import numpy as np
import torch
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric
from torch_fidelity.metric_prc import (
    KEY_METRIC_F_SCORE,
    KEY_METRIC_PRECISION,
    KEY_METRIC_RECALL,
    prc_features_to_metric,
)

from genbench.api.errors import ConfigError
from genbench.features.job_features import LAYER_METRICS

__all__ = [
    "METRICS", "fid_from_statistics", "fid_statistics", "isc_from_logits",
    "kid_from_features", "kid_subset_size", "prc_from_features",
]

#: The sample-quality metrics, in torch-fidelity's names (each reads the extractor's layer for it).
METRICS = LAYER_METRICS


def fid_statistics(features: torch.Tensor, chunk: int = 4096) -> dict[str, np.ndarray]:
    """Mean ``mu`` and covariance ``sigma`` (``N - 1`` in the denominator, as ``np.cov`` and
    torch-fidelity's ``fid_features_to_statistics``) of features ``(N, D)``, in float64.

    Accumulated ``chunk`` rows at a time as sums and sums of outer products (shifted by the
    first row, against cancellation), so no float64 copy of all ``N`` rows is made: what
    torch-fidelity's version, which casts the whole matrix, cannot do at 50,000 samples
    without doubling the memory. Its mean is also float64 where torch-fidelity keeps the
    features' float32."""
    n = len(features)
    if n < 2:
        raise ConfigError(f"FID needs at least 2 samples, got {n}")
    features = features.detach().cpu()
    shift = features[0].double()
    total = torch.zeros_like(shift)
    outer = torch.zeros(len(shift), len(shift), dtype=torch.float64)
    for i in range(0, n, max(1, chunk)):
        x = features[i:i + chunk].double() - shift
        total += x.sum(0)
        outer.addmm_(x.T, x)
    mean = total / n
    sigma = (outer - n * torch.outer(mean, mean)) / (n - 1)
    return {"mu": (mean + shift).numpy(), "sigma": sigma.numpy()}


def fid_from_statistics(generated: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> float:
    """Frechet distance between two Gaussians (torch-fidelity's ``fid_statistics_to_metric``)."""
    return float(fid_statistics_to_metric(generated, reference, False)[KEY_METRIC_FID])


def isc_from_logits(logits: torch.Tensor, splits: int = 10, shuffle: bool = True,
                    rng_seed: int = 2020) -> tuple[float, float]:
    """Inception Score ``(mean, std)`` over ``splits`` splits of class logits ``(N, K)``.

    torch-fidelity's ``isc_features_to_metric`` split by split: the same permutation
    (``RandomState(rng_seed).permutation(N)``), the same float64 softmax of each row and the
    same per-split KL, so the same numbers to the bit; but it makes float64 copies of one
    split at a time, where torch-fidelity's makes three of all ``N`` rows (1.2 GB for
    50,000 Inception logits)."""
    n = len(logits)
    if not 1 <= splits <= n:
        raise ConfigError(f"isc: splits must lie in [1, {n}] (the sample count), got {splits}")
    logits = logits.detach().cpu()
    order = torch.from_numpy(np.random.RandomState(rng_seed).permutation(n)) if shuffle else None
    scores = []
    for i in range(splits):
        a, b = i * n // splits, (i + 1) * n // splits
        chunk = (logits[a:b] if order is None else logits[order[a:b]]).double()
        p, log_p = chunk.softmax(dim=1), chunk.log_softmax(dim=1)
        q = p.mean(dim=0, keepdim=True)
        scores.append((p * (log_p - q.log())).sum(dim=1).mean().exp().item())
    return float(np.mean(scores)), float(np.std(scores))


def kid_subset_size(n_generated: int, n_reference: int, requested: int = 1000) -> int:
    """The KID subset size actually used: ``min(requested, n_generated, n_reference)``."""
    return int(min(requested, n_generated, n_reference))


def kid_from_features(generated: torch.Tensor, reference: torch.Tensor, *, subsets: int = 100,
                      subset_size: int = 1000, rng_seed: int = 2020, degree: int = 3,
                      gamma: float | None = None, coef0: float = 1.0
                      ) -> tuple[float, float, int]:
    """Kernel Inception Distance ``(mean, std, subset size used)``, polynomial kernel.

    The subset size shrinks to the smaller sample count (torch-fidelity's default of 1,000
    fails on fewer samples); the size used is returned so that it can be recorded.
    """
    used = kid_subset_size(len(generated), len(reference), subset_size)
    if used < 2:
        raise ConfigError(f"KID needs at least 2 samples in each set, got {len(generated)} and {len(reference)}")
    out = kid_features_to_metric(
        generated.detach().cpu(), reference.detach().cpu(), kid_subsets=subsets,
        kid_subset_size=used, rng_seed=rng_seed, kid_kernel="poly", kid_kernel_poly_degree=degree,
        kid_kernel_poly_gamma=gamma, kid_kernel_poly_coef0=coef0, verbose=False)
    return float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD]), used


def prc_from_features(generated: torch.Tensor, reference: torch.Tensor, *, neighborhood: int = 3,
                      batch_size: int = 10000, save_cpu_ram: bool = False
                      ) -> tuple[float, float, float]:
    """Improved precision, recall and F-score (Kynkaanniemi et al. 2019) with k = ``neighborhood``."""
    if not 1 <= neighborhood < min(len(generated), len(reference)):
        raise ConfigError(f"prc: neighborhood must lie in [1, {min(len(generated), len(reference)) - 1}], "
                          f"got {neighborhood}")
    out = prc_features_to_metric(generated.detach().cpu(), reference.detach().cpu(),
                                 prc_neighborhood=neighborhood, prc_batch_size=batch_size,
                                 save_cpu_ram=save_cpu_ram, verbose=False)
    return (float(out[KEY_METRIC_PRECISION]), float(out[KEY_METRIC_RECALL]),
            float(out[KEY_METRIC_F_SCORE]))
