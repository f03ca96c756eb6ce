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
  "A Non-Parametric Test to Detect Data-Copying in Generative Models"), as their code
  (``C_T`` in ``data_copying_tests.py`` of github.com/casey-meehan/data-copying) computes it.
  K-means (``cells``, seeded) partitions the training points into cells; training points,
  test points and samples fall into the cell of their nearest centre. In each cell ``pi``
  with ``n`` test points and ``m`` samples, ``L_pi(x)`` is the distance of ``x`` to the
  nearest training point *of its own cell*, the Mann-Whitney statistic ``U`` (pairs with
  ``L_pi(sample) > L_pi(test)``, ties counted 1/2) is z-scored under the null of equal
  distributions with the official code's continuity correction,
  ``Z_U = (U - (mn/2 - 0.5)) / sqrt(mn(n + m + 1)/12)``, and
  ``C_T = sum_pi P_n(pi) Z_U(pi) / sum_pi P_n(pi)`` over the cells holding more than
  ``cell_threshold`` samples (the code's ``Q_m(pi) > tau`` with ``tau = 20 / m``; a cell
  with exactly 20 does not count), ``P_n(pi)`` the test split's fraction in the cell. About
  0 (a standard normal's scale) for fresh data, clearly negative for copying, positive for
  samples farther from the training data than new data is (underfitting). It has no
  "better" direction: closer to 0 is better, and the leaderboards only know higher or
  lower, so it is informative (no direction). NaN, with the reason in the details
  (``ct_note``), when no cell holds enough samples. A cell without test points (weight 0)
  or without training points (no distance to measure) never counts.

``copy_rate`` and ``authenticity`` use the distance to the nearest training point of the
whole training set; ``ct`` the in-cell distances, as the paper's code does (in 64-d
features most test points have their global nearest training point in another cell, so the
two differ, and C_T's published values are the in-cell ones).

Features are the run's extractor's k-NN layer (``prc``; raw coordinates for vectors). The
training points are the whole training split unless ``max_train`` caps them (then a fixed
seeded subset: a copy of an item outside it goes undetected; recorded). Distances are
exact (brute force) and computed in chunks (:mod:`.neighbours`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
from annotated_types import Ge, Interval

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
    """Z-scored Mann-Whitney U of ``gen_dist`` (m values) against ``test_dist`` (n values),
    as Meehan et al.'s code computes it: ``(U - (mn/2 - 0.5)) / sqrt(mn(n + m + 1)/12)``,
    ``U`` = #pairs with gen > test (+ 1/2 per tie), the 0.5 its continuity correction (no tie
    correction). Negative when the samples are closer to the training data than the test
    points."""
    from scipy.stats import mannwhitneyu  # here, not at import: `genbench list` stays fast

    m, n = len(gen_dist), len(test_dist)
    u = mannwhitneyu(gen_dist, test_dist, alternative="two-sided").statistic  # U of the first
    return float((u - (m * n / 2.0 - 0.5)) / math.sqrt(m * n * (n + m + 1) / 12.0))


def in_cell_distances(points: np.ndarray, point_cell: np.ndarray, train: np.ndarray,
                      train_cell: np.ndarray) -> np.ndarray:
    """Distance of each of ``points`` to the nearest row of ``train`` in the same cell (cell
    labels ``point_cell``, ``train_cell``); NaN for a point whose cell has no training row."""
    dist = np.full(len(points), np.nan)
    for c in np.unique(point_cell):
        here, cell_train = point_cell == c, train[train_cell == c]
        if len(cell_train):
            dist[here] = nearest_neighbours(points[here], cell_train)[0][:, 0]
    return dist


def data_copying_ct(gen_dist: np.ndarray, gen_cell: np.ndarray, test_dist: np.ndarray,
                    test_cell: np.ndarray, train_cell: np.ndarray, cells: int,
                    cell_threshold: int = 20) -> tuple[float, list[dict[str, Any]]]:
    """C_T (Meehan et al. 2020) from in-cell nearest-training distances and cell labels
    (0..cells-1) of samples, test points and training points: the test-fraction-weighted
    mean of the per-cell :func:`mann_whitney_z` over the cells with more than
    ``cell_threshold`` samples, a test point and a training point. Returns
    ``(C_T, per-cell rows)``; C_T is NaN when no cell qualifies."""
    rows, num, den = [], 0.0, 0.0
    for c in range(cells):
        g, t = gen_dist[gen_cell == c], test_dist[test_cell == c]
        n_train = int(np.sum(train_cell == c))
        row: dict[str, Any] = {"cell": c, "n_train": n_train, "n_test": len(t),
                               "n_generated": len(g), "z": None}
        if len(g) > cell_threshold and len(t) > 0 and n_train > 0:
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

    def __init__(self, cells: Count = 10, cell_threshold: Annotated[int, Ge(0)] = 20,
                 copy_percentile: Annotated[float, Interval(gt=0, lt=100)] = 1.0,
                 max_reference: Count = 10_000, max_train: Count | None = None,
                 kmeans_seed: Seed = 0):
        if max_train is not None and max_train < max(cells, 2):
            raise ConfigError(f"memorization: max_train ({max_train}) must be at least cells "
                              f"({cells}) and 2")
        self.cells, self.cell_threshold = cells, cell_threshold
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
            gen_cell, test_cell, train_cell = (kmeans.predict(a) for a in (gen, test, train))
        gen_in = in_cell_distances(gen, gen_cell, train, train_cell)
        test_in = in_cell_distances(test, test_cell, train, train_cell)
        ct, cell_rows = data_copying_ct(gen_in, gen_cell, test_in, test_cell, train_cell,
                                        self.cells, self.cell_threshold)
        values = {"copy_rate": rate, "authenticity": authenticity(gen_d, gen_nn, train), "ct": ct}
        details.update(
            n_train=train_feats.n, n_train_total=train_feats.n_total, train_cache=train_feats.cache,
            copy_percentile=self.copy_percentile, copy_threshold=threshold,
            median_generated_distance=float(np.median(gen_d)),
            median_test_distance=float(np.median(test_d)),
            cells=self.cells, cell_threshold=self.cell_threshold, kmeans_seed=self.kmeans_seed,
            cells_used=sum(r["z"] is not None for r in cell_rows), ct_cells=cell_rows)
        if math.isnan(ct):
            details["ct_note"] = (f"no cell holds more than {self.cell_threshold} of the "
                                  f"{len(gen_d)} samples (and a test and a training point); "
                                  f"use fewer cells or more samples")
        return MetricResult(values, details)


@hookimpl
def register_metrics(register):
    register("memorization", Memorization)
