"""``fid-inf``: FD-infinity (Chong & Forsyth 2020, "Effectively Unbiased FID and Inception
Score and where to find them"), FID without its sample-size bias.

FID computed from ``N`` samples is biased upwards, and the bias depends on the model as well
as on ``N``, enough to reorder rankings; to first order it is linear in ``1/N``. So FID is
computed at ``points`` sample counts evenly spaced in ``N`` from ``min_fraction`` of the job's
samples to all of them (the paper: 15 counts from 5,000 to 50,000, i.e. ``min_fraction`` =
0.1), each on a seeded random subset of the generated features (``rng_seed``; all of them
at the largest count) against the statistics of the full reference (the test split, up to
``max_reference`` items, as ``fid``). A least-squares line ``FID = a / N + b`` is fitted and
``fid_inf = b``, its value at ``1/N = 0``. Keys: ``fid_inf`` (lower is better) and ``r2``, the
fit's coefficient of determination (informative: near 1 when the ``1/N`` model holds).

It reads the job's features (``ctx.features()``, the extractor's FID layer): no extraction
of its own. Every count and its FID, the slope and the FID at the largest count are
recorded. Cost: ``points`` FIDs (a matrix square root each).
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import torch
from annotated_types import Ge

from genbench import CountNeed, EvalContext, MetricResult, hookimpl

from .inputs import RECOMMENDED_REFERENCE, Count, FeatureMetric, OpenUnit, Seed


def sample_counts(total: int, points: int, min_fraction: float) -> list[int]:
    """``points`` sample counts evenly spaced from ``min_fraction * total`` (at least 2) to
    ``total``, rounded, without repeats."""
    low = max(2, int(round(min_fraction * total)))
    if total < 2 or low >= total:
        raise ValueError(f"fid-inf needs a range of sample counts, but the job has {total} "
                         f"samples and the smallest count would be {low}")
    return sorted({int(n) for n in np.linspace(low, total, points).round()})


def fid_infinity(generated: torch.Tensor, reference: dict[str, np.ndarray], counts: list[int],
                 rng_seed: int = 2020) -> tuple[float, float, dict[str, Any]]:
    """``(fid_inf, r2, fit)``: FID of seeded random subsets of ``generated`` ``(N, D)`` of each
    size in ``counts`` against ``reference`` statistics, fitted linearly in ``1/N`` and
    extrapolated to ``1/N = 0``. ``fit`` holds the counts, their FIDs and the slope."""
    from scipy.stats import linregress  # here, not at import: `genbench list` stays fast

    from genbench import fid_from_statistics, fid_statistics

    if len(counts) < 2:
        raise ValueError(f"fid-inf needs at least 2 sample counts to fit a line, got {counts}")
    rng = np.random.default_rng(rng_seed)
    fids = []
    for n in counts:
        subset = generated if n >= len(generated) else \
            generated[torch.from_numpy(np.sort(rng.choice(len(generated), n, replace=False)))]
        fids.append(fid_from_statistics(fid_statistics(subset), reference))
    fit = linregress(1.0 / np.asarray(counts, dtype=np.float64), np.asarray(fids))
    r2 = float(fit.rvalue ** 2) if np.isfinite(fit.rvalue) else float("nan")
    return float(fit.intercept), r2, {"counts": list(counts), "fids": fids, "slope": float(fit.slope)}


def fewest_samples(min_fraction: float) -> int:
    """The fewest samples :func:`sample_counts` makes a range of (at least two counts) from."""
    total = 3
    while max(2, int(round(min_fraction * total))) >= total:
        total += 1
    return total


class FIDInfinity(FeatureMetric):
    """FID extrapolated to infinitely many samples from a linear fit against 1/N.

    Needs samples enough for two counts from ``min_fraction`` of them (3 at the default
    0.1; :func:`fewest_samples`) and 2 test items (a covariance); recommended: at least
    :data:`~.inputs.RECOMMENDED_REFERENCE` test items."""

    description = ("FD-infinity (Chong & Forsyth 2020): FID at several sample counts (seeded "
                   "subsets), fitted linearly in 1/N and extrapolated to N = infinity; with the "
                   "fit's r^2")
    data_kinds = ("image", "vector")
    higher_is_better = {"fid_inf": False}  # r2: informative
    primary = "fid_inf"
    nonfinite_ok = frozenset({"r2"})  # NaN when the fit's correlation is undefined
    layer_metric = "fid"

    def __init__(self, points: Annotated[int, Ge(2)] = 15, min_fraction: OpenUnit = 0.1,
                 max_reference: Count = 10_000, rng_seed: Seed = 2020):
        """``points``: at least 2, to fit a line."""
        self.points, self.min_fraction = points, float(min_fraction)
        self.max_reference, self.rng_seed = max_reference, rng_seed

    def count_needs(self) -> tuple[CountNeed, ...]:
        return (CountNeed("samples", fewest_samples(self.min_fraction),
                          why=f"a line through FIDs at 2 or more sample counts from "
                              f"min_fraction = {self.min_fraction} of them"),
                CountNeed("test", 2, RECOMMENDED_REFERENCE, self.max_reference,
                          "a covariance needs 2 points"))

    def compute(self, ctx: EvalContext) -> MetricResult:
        from genbench import fid_statistics

        feats = ctx.features()
        layer = feats.layer(self.layer_metric)
        generated = feats.generated()[layer]
        ref = feats.test(self.max_reference)
        counts = sample_counts(len(generated), self.points, self.min_fraction)
        value, r2, fit = fid_infinity(generated, fid_statistics(ref[layer]), counts, self.rng_seed)
        details = {**self.feature_details(feats), "n_generated": len(generated),
                   "n_reference": ref.n, "n_reference_total": ref.n_total,
                   "reference_cache": ref.cache, "reference_key": ref.key,
                   "points": self.points, "min_fraction": self.min_fraction,
                   "rng_seed": self.rng_seed, "fid_at_largest_n": fit["fids"][-1], **fit}
        return MetricResult({"fid_inf": value, "r2": r2}, details)


@hookimpl
def register_metrics(register):
    register("fid-inf", FIDInfinity)
