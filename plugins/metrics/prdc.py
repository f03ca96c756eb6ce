"""``prdc``: density and coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity
Metrics for Generative Models"), k = 5.

With real points ``X_1..X_N`` and generated ``Y_1..Y_M`` in feature space and ``r_i`` the
distance from ``X_i`` to its k-th nearest other real point:

* density  = 1/(kM) * sum_j #{i : |Y_j - X_i| < r_i}   (about 1 when the sets match; > 1 when
  samples crowd into dense real regions)
* coverage = 1/N * #{i : min_j |Y_j - X_i| < r_i}        (fraction of real neighbourhoods
  that hold at least one sample; 1 - (1/2)^k in expectation for identical distributions)

Real points are the test split; both sets have the same size, the smaller of the two counts
(and ``max_reference``), recorded. Features are the run's extractor's k-NN layer (raw
coordinates for vectors). Distances are computed in chunks (:mod:`.neighbours`), so memory
grows linearly with the number of points.
"""

from __future__ import annotations

from genbench import (ConfigError, CountNeed, EvalContext, Headline, KeyPresentation, MetricResult,
                      hookimpl)

from .inputs import RECOMMENDED_REFERENCE, Count, FeatureMetric, shared_equal_count_features
from .neighbours import ball_membership, kth_neighbour_distances


def density_coverage(real, fake, k: int = 5) -> dict[str, float]:
    """Density and coverage of ``fake`` ``(M, d)`` against ``real`` ``(N, d)``."""
    radii = kth_neighbour_distances(real, k)
    inside, hit = ball_membership(fake, real, radii)
    return {"density": float(inside.sum() / (k * len(inside))), "coverage": float(hit.mean())}


class DensityCoverage(FeatureMetric):
    """Density and coverage against the test split on equal numbers of points.

    Needs more than ``k`` samples and test items (each real point's k-th nearest other real
    point); recommended: at least :data:`~.inputs.RECOMMENDED_REFERENCE` test items."""

    description = ("density and coverage (Naeem et al. 2020, k-NN balls of the test split) on "
                   "equal numbers of real and generated points, in extractor features")
    data_kinds = ("image", "vector")
    higher_is_better = {"density": True, "coverage": True}
    primary = "coverage"
    presentation = {"coverage": KeyPresentation("coverage", (Headline(50, 1, board="image"),))}
    layer_metric = "prc"

    def __init__(self, k: Count = 5, max_reference: Count = 10_000):
        if max_reference <= k:
            raise ConfigError(f"prdc: max_reference ({max_reference}) must exceed k ({k})")
        self.k, self.max_reference = k, max_reference

    def count_needs(self) -> tuple[CountNeed, ...]:
        why = f"the k-th nearest other real point, k = {self.k}, on equal counts"
        return (CountNeed("samples", self.k + 1, why=why),
                CountNeed("test", self.k + 1, RECOMMENDED_REFERENCE, self.max_reference, why))

    def compute(self, ctx: EvalContext) -> MetricResult:
        gen, ref, details = shared_equal_count_features(ctx, self.layer_metric, self.max_reference)
        if len(ref) <= self.k:
            raise ValueError(f"prdc needs more than k={self.k} points of each set, got {len(ref)}")
        return MetricResult(density_coverage(ref, gen, self.k), {**details, "k": self.k})


@hookimpl
def register_metrics(register):
    register("prdc", DensityCoverage)
