"""The one place that talks to torch-fidelity's metric functions: FID, IS, KID, PRC.

Each function takes features (from :meth:`genbench.EvalContext.features`, see
:mod:`genbench.features.job_features`) and calls torch-fidelity's own code (``fid_statistics_to_metric``,
``isc_features_to_metric`` (re-done split by split: see :func:`isc_from_logits`), ``kid_features_to_metric``
(re-done subset by subset with its ``kernel_mmd``: see :func:`kid_from_features`),
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
from torch_fidelity.metric_kid import kernel_mmd
from torch_fidelity.metric_prc import (
    KEY_METRIC_F_SCORE,
    KEY_METRIC_PRECISION,
    KEY_METRIC_RECALL,
    prc_features_to_metric,
)

from genbench.api.errors import ConfigError
from genbench.features.feature_matrix import FeatureMatrix
from genbench.features.job_features import LAYER_METRICS

__all__ = [
    "METRICS", "fid_from_statistics", "fid_statistics", "isc_from_logits",
    "kid_from_features", "kid_subset_size", "prc_from_features",
]

#: Features as the functions below take them: in memory, or in a file read block by block.
Rows = torch.Tensor | FeatureMatrix

#: The layer kinds metrics read (torch-fidelity's metric names, and ``"spatial"``).
METRICS = LAYER_METRICS


def _rows(features: Rows) -> Rows:
    return features.detach().cpu() if isinstance(features, torch.Tensor) else features


def fid_statistics(features: Rows, chunk: int = 4096) -> dict[str, np.ndarray]:
    """Mean ``mu`` and covariance ``sigma`` (``N - 1`` in the denominator, as ``np.cov`` and
    torch-fidelity's ``fid_features_to_statistics``) of features ``(N, D)``, in float64: a
    tensor or a :class:`~genbench.features.feature_matrix.FeatureMatrix` (read ``chunk``
    rows at a time).

    Accumulated ``chunk`` rows at a time as sums and sums of outer products (shifted by the
    first row, against cancellation), so no float64 copy of all ``N`` rows is made: what
    torch-fidelity's version, which casts the whole matrix, cannot do at 50,000 samples
    without doubling the memory. Its mean is also float64 where torch-fidelity keeps the
    features' float32."""
    n = len(features)
    if n < 2:
        raise ConfigError(f"FID needs at least 2 samples, got {n}")
    features = _rows(features)
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


def isc_from_logits(logits: Rows, splits: int = 10, shuffle: bool = True,
                    rng_seed: int = 2020, chunk: int = 2048) -> tuple[float, float]:
    """Inception Score ``(mean, std)`` over ``splits`` splits of class logits ``(N, K)`` (a
    tensor or a :class:`~genbench.features.feature_matrix.FeatureMatrix`, read a block of
    rows at a time).

    torch-fidelity's ``isc_features_to_metric`` split by split: the same permutation
    (``RandomState(rng_seed).permutation(N)``), the same float64 softmax of each row and the
    same per-split KL. A split of at most ``chunk`` rows is computed as torch-fidelity does,
    so the same numbers to the bit; a larger one in two passes of ``chunk`` rows (the
    marginal, then the mean KL), equal to rounding (about 1e-15 relative), so memory holds
    ``chunk`` rows whatever ``N``, where torch-fidelity makes three float64 copies of all
    ``N`` rows (1.2 GB for 50,000 Inception logits)."""
    n = len(logits)
    if not 1 <= splits <= n:
        raise ConfigError(f"isc: splits must lie in [1, {n}] (the sample count), got {splits}")
    logits = _rows(logits)
    order = (torch.from_numpy(np.random.RandomState(rng_seed).permutation(n)) if shuffle
             else torch.arange(n))
    step = max(1, chunk)
    scores = []
    for i in range(splits):
        rows = order[i * n // splits:(i + 1) * n // splits]
        if len(rows) <= step:
            block = logits[rows].double()
            p, log_p = block.softmax(dim=1), block.log_softmax(dim=1)
            q = p.mean(dim=0, keepdim=True)
            scores.append((p * (log_p - q.log())).sum(dim=1).mean().exp().item())
            continue
        blocks = [rows[j:j + step] for j in range(0, len(rows), step)]
        q = sum(logits[b].double().softmax(dim=1).sum(dim=0, keepdim=True) for b in blocks) / len(rows)
        kl = 0.0
        for b in blocks:
            block = logits[b].double()
            kl += (block.softmax(dim=1) * (block.log_softmax(dim=1) - q.log())).sum().item()
        scores.append(float(np.exp(kl / len(rows))))
    return float(np.mean(scores)), float(np.std(scores))


def kid_subset_size(n_generated: int, n_reference: int, requested: int = 1000) -> int:
    """The KID subset size actually used: ``min(requested, n_generated, n_reference)``."""
    return int(min(requested, n_generated, n_reference))


def kid_from_features(generated: Rows, reference: Rows, *, subsets: int = 100,
                      subset_size: int = 1000, rng_seed: int = 2020, degree: int = 3,
                      gamma: float | None = None, coef0: float = 1.0
                      ) -> tuple[float, float, int]:
    """Kernel Inception Distance ``(mean, std, subset size used)``, polynomial kernel.

    torch-fidelity's ``kid_features_to_metric`` subset by subset: the same random subsets
    (``RandomState(rng_seed).choice`` of each set, generated first, without replacement),
    each compared by its own ``kernel_mmd``, so the same numbers; but only the two subsets
    are read at a time (``generated`` may be a
    :class:`~genbench.features.feature_matrix.FeatureMatrix`), where torch-fidelity converts
    both sets whole. The subset size shrinks to the smaller sample count (torch-fidelity's
    default of 1,000 fails on fewer samples); the size used is returned so that it can be
    recorded.
    """
    generated, reference = _rows(generated), _rows(reference)
    n1, n2 = len(generated), len(reference)
    used = kid_subset_size(n1, n2, subset_size)
    if used < 2:
        raise ConfigError(f"KID needs at least 2 samples in each set, got {n1} and {n2}")
    if generated.shape[1] != reference.shape[1]:
        raise ConfigError(f"KID compares features of one width, got {generated.shape[1]} and "
                          f"{reference.shape[1]}")
    options = dict(kid_kernel="poly", kid_kernel_poly_degree=degree,
                   kid_kernel_poly_gamma=gamma, kid_kernel_poly_coef0=coef0)
    rng = np.random.RandomState(rng_seed)
    mmds = np.zeros(subsets)
    for i in range(subsets):
        f1 = generated[torch.from_numpy(rng.choice(n1, used, replace=False))].numpy()
        f2 = reference[torch.from_numpy(rng.choice(n2, used, replace=False))].numpy()
        mmds[i] = kernel_mmd(f1, f2, **options)
    return float(np.mean(mmds)), float(np.std(mmds)), used


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
