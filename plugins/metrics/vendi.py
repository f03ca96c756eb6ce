"""``vendi``: the Vendi score (Friedman & Dieng 2023, "The Vendi Score: A Diversity Evaluation
Metric for Machine Learning"), the effective number of distinct samples.

For ``n`` samples with a similarity kernel ``k`` (``k(x, x) = 1``) and ``K_ij = k(x_i, x_j)``,
``VS = exp(-sum_i l_i log l_i)`` where ``l_i`` are the eigenvalues of ``K / n``: 1 when every
sample is the same, ``k`` when they split evenly among ``k`` mutually dissimilar groups, ``n``
at most.

The kernel is the cosine similarity of the samples' features (the run's extractor's
embedding layer; raw coordinates for vectors), the paper's choice for embeddings. It is a
linear kernel of the unit-normalised features ``X`` ``(n, d)``, so ``K / n = X X^T / n`` has the
same non-zero eigenvalues as the ``d x d`` matrix ``X^T X / n`` (the paper's Sec. 3 remark):
the score costs ``O(n d^2)`` and memory linear in ``n``. The score is therefore at most ``d``,
the feature dimension (2 on raw 2-D data; recorded). A sample whose features are all zero
(a dead ReLU layer) has no direction: it is taken as similar to every other all-zero sample
and to nothing else, by one extra coordinate.
"""

from __future__ import annotations

import numpy as np
import torch

from genbench import EvalContext, MetricResult, hookimpl

from .inputs import FeatureMetric


def vendi_score_cosine(x) -> float:
    """The Vendi score of the rows of ``x`` ``(n, d)`` under the cosine kernel."""
    from scipy.stats import entropy  # here, not at import: `genbench list` stays fast

    x = torch.as_tensor(x).reshape(len(x), -1).double()
    norms = x.norm(dim=1, keepdim=True)
    zero = norms[:, 0] == 0
    unit = torch.where(zero[:, None], torch.zeros_like(x), x / norms.clamp_min(1e-300))
    if bool(zero.any()):
        unit = torch.cat([unit, zero.double()[:, None]], dim=1)
    eig = np.linalg.eigvalsh((unit.T @ unit / len(unit)).numpy())
    return float(np.exp(entropy(np.clip(eig, 0.0, None))))


class Vendi(FeatureMetric):
    """exp of the Shannon entropy of the eigenvalues of the samples' cosine similarity
    matrix divided by n."""

    description = ("Vendi score (Friedman & Dieng 2023): effective number of distinct samples, "
                   "cosine kernel on extractor features")
    data_kinds = ("image", "vector")
    higher_is_better = {"vendi": True}
    primary = "vendi"
    layer_metric = "fid"

    def compute(self, ctx: EvalContext) -> MetricResult:
        feats = ctx.features()
        x = feats.generated()[feats.layer(self.layer_metric)]
        details = {**self.feature_details(feats), "kernel": "cosine", "n_samples": len(x),
                   "feature_dim": int(x.shape[1]),
                   "n_zero_features": int((x.abs().sum(dim=1) == 0).sum())}
        return MetricResult({"vendi": vendi_score_cosine(x)}, details)


@hookimpl
def register_metrics(register):
    register("vendi", Vendi)
