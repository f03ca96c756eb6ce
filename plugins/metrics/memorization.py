"""``memorization``: does the model replay its training data? Nearest-training-neighbour
distances of the samples, against those of the test split.

For a point ``x`` in feature space let ``L(x)`` be its distance to the nearest training
point. The test split is data the model never saw, so ``L`` of test points is what "new"
looks like. Samples and test points are equal in number (the smaller count; the test split's
fixed seeded subset when larger; recorded, as for ``prdc``). Keys:

* ``copy_rate``: the share of samples with ``L`` below the 1st percentile (``copy_percentile``)
  of the test points' ``L``. About 0.01 for fresh data by construction; near 1 for a model
  that replays training points. Lower is better.
* ``authenticity``: AuthPct (Alaa et al. 2022, "How Faithful is your Synthetic Data?", as
  used by Stein et al. 2023): the percentage (0..100) of samples farther from their nearest
  training point ``t`` than ``t`` is from its own nearest other training point. A copy of a
  training point is never authentic. Higher is better.
* ``ct``: the data-copying statistic C_T of Meehan, Chaudhuri & Dasgupta (AISTATS 2020,
  "A Non-Parametric Test to Detect Data-Copying in Generative Models"). K-means
  (``cells``, seeded) partitions the training points into cells; test points and samples
  fall into the cell of their nearest centre. In each cell ``pi`` with ``n`` test points and
  ``m`` samples, the Mann-Whitney statistic ``U`` (pairs with ``L(sample) > L(test)``, ties
  counted 1/2) is z-scored under the null of equal distributions,
  ``Z_U = (U - mn/2) / sqrt(mn(n + m + 1)/12)``, and
  ``C_T = sum_pi P_n(pi) Z_U(pi) / sum_pi P_n(pi)`` over the cells holding at least
  ``min_cell_samples`` samples (the paper's ``Pi_tau``, with ``tau = 20 / m``), ``P_n(pi)``
  the test split's fraction in the cell. About 0 (a standard normal's scale) for fresh
  data, clearly negative for copying, positive for samples farther from the training data
  than new data is (underfitting). It has no "better" direction: closer to 0 is better, and
  the leaderboards only know higher or lower, so it is informative (no direction). NaN, with
  the reason in the details (``ct_note``), when no cell has enough samples.

One difference from the paper's code: ``L`` is the distance to the nearest training point
of the whole training set, not of the cell's training points only (they differ only for
points near a cell boundary); one nearest-neighbour search serves all three keys.

Features are the run's extractor's k-NN layer (``prc``; raw coordinates for vectors). The
training points are the whole training split unless ``max_train`` caps them (then a fixed
seeded subset: a copy of an item outside it goes undetected; recorded). Distances are
exact (brute force) and computed in chunks (:mod:`.neighbours`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
from annotated_types import Interval

from genbench import ConfigError, CountNeed, EvalContext, MetricResult, hookimpl

from .inputs import RECOMMENDED_REFERENCE, Count, FeatureMetric, Seed, shared_equal_count_features
from .neighbours import limited_sklearn, nearest_neighbours


def copy_rate(gen_dist: np.ndarray, test_dist: np.ndarray, percentile: float = 1.0
              ) -> tuple[float, float]:
    """``(rate, threshold)``: the share of ``gen_dist`` strictly below the ``percentile``-th
    percentile (linear interpolation) of ``test_dist``, and that percentile."""
    threshold = float(np.percentile(test_dist, percentile))
    return float(np.mean(gen_dist < threshold)), threshold


def authenticity(gen_dist: np.ndarray, gen_nearest: np.ndarray, train) -> float:
    """AuthPct: 100 x the share of samples whose distance ``gen_dist`` to their nearest
    training point ``gen_nearest`` (an index into ``train``) exceeds that point's distance to
    its nearest other training point. Only those training points' neighbours are searched."""
    train = np.asarray(train, dtype=np.float64)
    used, where = np.unique(gen_nearest, return_inverse=True)
    # The 2 nearest of a training point are itself (0) and its nearest other point; with an
    # exact duplicate both are at 0, which is the right radius.
    radius = nearest_neighbours(train[used], train, k=2)[0][:, 1]
    return float(100.0 * np.mean(gen_dist > radius[where]))


def mann_whitney_z(gen_dist: np.ndarray, test_dist: np.ndarray) -> float:
    """Z-scored Mann-Whitney U of ``gen_dist`` (m values) against ``test_dist`` (n values):
    ``(U - mn/2) / sqrt(mn(n + m + 1)/12)``, ``U`` = #pairs with gen > test (+ 1/2 per tie).
    Negative when the samples are closer to the training data than the test points."""
    from scipy.stats import mannwhitneyu  # here, not at import: `genbench list` stays fast

    m, n = len(gen_dist), len(test_dist)
    u = mannwhitneyu(gen_dist, test_dist, alternative="two-sided").statistic  # U of the first
    return float((u - m * n / 2.0) / math.sqrt(m * n * (n + m + 1) / 12.0))


def data_copying_ct(gen_dist: np.ndarray, gen_cell: np.ndarray, test_dist: np.ndarray,
                    test_cell: np.ndarray, cells: int, min_cell_samples: int = 20
                    ) -> tuple[float, list[dict[str, Any]]]:
    """C_T (Meehan et al. 2020) from nearest-training distances and cell labels (0..cells-1):
    the test-fraction-weighted mean of the per-cell Mann-Whitney z-scores over the cells with
    at least ``min_cell_samples`` samples (and a test point). Returns ``(C_T, per-cell rows)``;
    C_T is NaN when no cell qualifies."""
    rows, num, den = [], 0.0, 0.0
    for c in range(cells):
        g, t = gen_dist[gen_cell == c], test_dist[test_cell == c]
        row: dict[str, Any] = {"cell": c, "n_test": len(t), "n_generated": len(g), "z": None}
        if len(g) >= min_cell_samples and len(t) > 0:
            z = mann_whitney_z(g, t)
            weight = len(t) / len(test_dist)  # P_n(pi)
            row["z"], num, den = z, num + weight * z, den + weight
        rows.append(row)
    return (num / den if den > 0 else math.nan), rows


class Memorization(FeatureMetric):
    """Copy rate, authenticity and the C_T data-copying statistic, from nearest-training
    distances of samples and test points in feature space.

    Needs ``cells`` (and 2) training items for its K-means cells and a test item;
    recommended: at least :data:`~.inputs.RECOMMENDED_REFERENCE` test items (the copy
    threshold is a percentile of their distances)."""

    description = ("memorisation: copy rate (samples nearer a training point than the 1st "
                   "percentile of test points), AuthPct (Alaa et al. 2022) and C_T (Meehan et al. "
                   "2020), on equal numbers of samples and test points, in extractor features")
    data_kinds = ("image", "vector")
    higher_is_better = {"copy_rate": False, "authenticity": True}  # ct: best near 0, informative
    primary = "copy_rate"
    nonfinite_ok = frozenset({"ct"})  # NaN when no cell holds enough samples (ct_note says so)
    layer_metric = "prc"

    def __init__(self, cells: Count = 10, min_cell_samples: Count = 20,
                 copy_percentile: Annotated[float, Interval(gt=0, lt=100)] = 1.0,
                 max_reference: Count = 10_000, max_train: Count | None = None,
                 kmeans_seed: Seed = 0):
        if max_train is not None and max_train < max(cells, 2):
            raise ConfigError(f"memorization: max_train ({max_train}) must be at least cells "
                              f"({cells}) and 2")
        self.cells, self.min_cell_samples = cells, min_cell_samples
        self.copy_percentile, self.kmeans_seed = float(copy_percentile), kmeans_seed
        self.max_reference, self.max_train = max_reference, max_train

    def count_needs(self) -> tuple[CountNeed, ...]:
        return (CountNeed("test", 1, RECOMMENDED_REFERENCE, self.max_reference,
                          "nearest-training distances of new data"),
                CountNeed("train", max(self.cells, 2), cap=self.max_train,
                          why=f"K-means with cells = {self.cells}"))

    def compute(self, ctx: EvalContext) -> MetricResult:
        from sklearn.cluster import KMeans

        gen, test, details = shared_equal_count_features(ctx, self.layer_metric, self.max_reference)
        feats = ctx.features()
        train_feats = feats.train(self.max_train)
        train = train_feats[details["feature_layer"]].double().numpy()
        if len(train) < max(self.cells, 2):
            raise ValueError(f"memorization: {self.cells} cells need at least as many training "
                             f"items (and 2), got {len(train)}")
        gen, test = gen.numpy(), test.numpy()
        gen_d, gen_nn = (a[:, 0] for a in nearest_neighbours(gen, train))
        test_d = nearest_neighbours(test, train)[0][:, 0]
        rate, threshold = copy_rate(gen_d, test_d, self.copy_percentile)
        with limited_sklearn():
            kmeans = KMeans(n_clusters=self.cells, n_init=1, random_state=self.kmeans_seed).fit(train)
            gen_cell, test_cell = kmeans.predict(gen), kmeans.predict(test)
        ct, cell_rows = data_copying_ct(gen_d, gen_cell, test_d, test_cell, self.cells,
                                        self.min_cell_samples)
        values = {"copy_rate": rate, "authenticity": authenticity(gen_d, gen_nn, train), "ct": ct}
        details.update(
            n_train=train_feats.n, n_train_total=train_feats.n_total, train_cache=train_feats.cache,
            copy_percentile=self.copy_percentile, copy_threshold=threshold,
            median_generated_distance=float(np.median(gen_d)),
            median_test_distance=float(np.median(test_d)),
            cells=self.cells, min_cell_samples=self.min_cell_samples, kmeans_seed=self.kmeans_seed,
            cells_used=sum(r["z"] is not None for r in cell_rows), ct_cells=cell_rows)
        if math.isnan(ct):
            details["ct_note"] = (f"no cell holds {self.min_cell_samples} or more of the "
                                  f"{len(gen_d)} samples; use fewer cells or more samples")
        return MetricResult(values, details)


@hookimpl
def register_metrics(register):
    register("memorization", Memorization)
