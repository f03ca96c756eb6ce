"""``ndb``: Number of statistically Different Bins (Richardson & Weiss 2018, "On GANs and
GMMs", Sec. 4).

The training split's features are clustered by K-means into K bins (``bins``, default K = 100
as in the paper's code, ``NDB(number_of_bins=100)`` of github.com/eitanrich/gans-n-gmms, and
its MNIST results; seeded with a fixed ``kmeans_seed``, so every model of a board is binned
alike); every generated sample falls into the bin of its nearest centre. Per bin, a two-sided
two-proportion z-test compares the training proportion ``p`` (of ``N`` training points) with
the generated one ``q`` (of ``M`` samples)::

    pooled = (p N + q M) / (N + M)
    z = (p - q) / sqrt(pooled (1 - pooled) (1/N + 1/M))

and the bin is different when its p-value ``2 Phi(-|z|)`` is below ``alpha`` (0.05). A bin
that neither set reaches is not different. Keys: ``ndb_k`` = NDB / K (lower is better;
about ``alpha`` for a perfect model, because of false positives) and ``ndb_js``, the
Jensen-Shannon divergence between the two bin histograms in nats (0..log 2).

Features are the run's extractor's embedding layer (raw coordinates for vectors); at most
``max_train`` training items (a fixed seeded subset) make the bins.
"""

from __future__ import annotations

import numpy as np

from genbench import ConfigError, CountNeed, EvalContext, MetricResult, hookimpl

from .inputs import Count, FeatureMetric, OpenUnit, Seed
from .neighbours import limited_sklearn


def different_bins(p: np.ndarray, n: int, q: np.ndarray, m: int, alpha: float) -> np.ndarray:
    """Which bins differ at level ``alpha``: two-sided two-proportion z-test per bin of the
    proportions ``p`` (of ``n`` points) and ``q`` (of ``m``)."""
    from scipy.stats import norm  # here, not at import: `genbench list` stays fast

    pooled = (p * n + q * m) / (n + m)
    se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n + 1.0 / m))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (p - q) / se, 0.0)
    return 2.0 * norm.sf(np.abs(z)) < alpha


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence of two histograms, in nats."""
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(p, q)) ** 2  # scipy returns its square root


class NDB(FeatureMetric):
    """NDB/K and JS divergence of the generated samples' K-means bin histogram against the
    training split's. Needs ``bins`` training items (one per K-means bin)."""

    description = ("NDB/K (Richardson & Weiss 2018): K-means bins of training features, "
                   "two-proportion z-test per bin; and JS divergence of the bin histograms")
    data_kinds = ("image", "vector")
    higher_is_better = {"ndb_k": False, "ndb_js": False}
    primary = "ndb_k"
    layer_metric = "fid"

    def __init__(self, bins: Count = 100, alpha: OpenUnit = 0.05, max_train: Count = 20_000,
                 kmeans_seed: Seed = 0):
        if max_train < bins:
            raise ConfigError(f"ndb: max_train ({max_train}) must be at least bins ({bins})")
        self.bins, self.alpha, self.max_train, self.kmeans_seed = bins, float(alpha), max_train, kmeans_seed

    def count_needs(self) -> tuple[CountNeed, ...]:
        return (CountNeed("train", self.bins, cap=self.max_train,
                          why=f"K-means with bins = {self.bins}"),)

    def compute(self, ctx: EvalContext) -> MetricResult:
        from sklearn.cluster import KMeans

        feats = ctx.features()
        layer = feats.layer(self.layer_metric)
        train = feats.train(self.max_train)
        x_train = train[layer].double().numpy()
        x_gen = feats.generated()[layer].double().numpy()
        if len(x_train) < self.bins:
            raise ValueError(f"ndb: {self.bins} bins need at least as many training items, "
                             f"got {len(x_train)}")
        with limited_sklearn():
            kmeans = KMeans(n_clusters=self.bins, n_init=1, random_state=self.kmeans_seed).fit(x_train)
            gen_bins = kmeans.predict(x_gen)
        p = np.bincount(kmeans.labels_, minlength=self.bins) / len(x_train)
        q = np.bincount(gen_bins, minlength=self.bins) / len(x_gen)
        different = different_bins(p, len(x_train), q, len(x_gen), self.alpha)
        values = {"ndb_k": float(different.mean()), "ndb_js": js_divergence(p, q)}
        details = {**self.feature_details(feats), "bins": self.bins, "alpha": self.alpha,
                   "kmeans_seed": self.kmeans_seed, "ndb": int(different.sum()),
                   "n_train": train.n, "n_train_total": train.n_total, "train_cache": train.cache,
                   "n_generated": len(x_gen), "different_bins": np.flatnonzero(different).tolist()}
        return MetricResult(values, details)


@hookimpl
def register_metrics(register):
    register("ndb", NDB)
