"""Sample-quality metrics through torch-fidelity: ``fid``, ``sfid``, ``isc``, ``kid`` and ``prc``.

All four read the job's shared features (``ctx.features()``: one extractor pass per sample
set, the test split's features cached on disk by content) and compare the generated samples
with the test split (up to ``max_reference`` items, a fixed seeded subset when larger),
through :mod:`genbench.features.fidelity`. The extractor is the job's (``--extractor`` / spec, else
the dataset's default, else ``raw`` for vectors). Every result records the extractor, its
weights' sha256, the sample counts, whether the reference came from the cache and, for KID,
the subset size used. Precision/recall use equal numbers of generated and test points (the
smaller count, recorded as ``n_used``); FID, KID and IS use every sample, read from the
generated features' files a block at a time (``generated_rows``), so their memory does not
grow with the sample count.

Before training each states the sample and test-split sizes it needs (``count_needs``):
below a floor it cannot be computed and the suite stops; below
:data:`~.inputs.RECOMMENDED_REFERENCE` test items it runs, with a warning.

torch-fidelity 0.4 is imported only when a metric runs.
"""

from __future__ import annotations

from typing import Any

from genbench import (CountNeed, EvalContext, Headline, JobFeatures, KeyPresentation, Metric,
                      MetricResult, SplitFeatures, hookimpl, layer_skip_reason, preflight_features)

from .inputs import RECOMMENDED_REFERENCE, Count, shared_equal_count_features


class _FidelityMetric(Metric):
    """Shared skip logic and details: an extractor must be chosen, apply to the data and have
    the metric's layer; every result records the extractor and the sample counts."""

    data_kinds = ("image", "vector")
    #: The layer kind the metric reads (torch-fidelity's name of
    #: the metric, or ``"spatial"``); its layer is the extractor's default for it.
    fidelity_name: str = ""

    def data_skip_reason(self, data_info, *, feature_extractor, registries) -> str | None:
        return (super().data_skip_reason(data_info, feature_extractor=feature_extractor,
                                         registries=registries)
                or layer_skip_reason(data_info, self.fidelity_name,
                                     extractor=feature_extractor, registries=registries))

    def preflight(self, data_info, *, feature_extractor, feature_weights, registries) -> None:
        """Before training: the extractor must exist and its weights file be present and intact."""
        if data_info.kind not in self.data_kinds:
            return
        preflight_features(self.fidelity_name, data_info, feature_extractor=feature_extractor,
                           feature_weights=feature_weights, registries=registries)

    def details(self, feats: JobFeatures,
                reference: SplitFeatures | None = None) -> dict[str, Any]:
        """Extractor provenance, the layer read, the sample counts and the reference's cache state."""
        d = {**feats.provenance(), "feature_layer": feats.layer(self.fidelity_name),
             "n_generated": feats.ctx.num_samples}
        if reference is not None:
            d.update(n_reference=reference.n, reference_cache=reference.cache,
                     reference_key=reference.key)
        return d


class FID(_FidelityMetric):
    """Frechet distance between Gaussians fitted to generated and test-split features.

    Needs at least 2 samples and 2 test items (a covariance); recommended: at least
    :data:`~.inputs.RECOMMENDED_REFERENCE` test items."""

    description = "Frechet Inception Distance (torch-fidelity) against the test split, in extractor features"
    higher_is_better = {"fid": False}
    primary = "fid"
    presentation = {"fid": KeyPresentation("FID", (Headline(10, board="image"),), quality=1)}
    fidelity_name = "fid"

    def __init__(self, max_reference: Count = 10000):
        self.max_reference = max_reference

    def count_needs(self) -> tuple[CountNeed, ...]:
        why = "a covariance needs 2 points"
        return (CountNeed("samples", 2, why=why),
                CountNeed("test", 2, RECOMMENDED_REFERENCE, self.max_reference, why))

    def compute(self, ctx: EvalContext) -> MetricResult:
        from genbench import fid_from_statistics, fid_statistics

        feats = ctx.features()
        layer = feats.layer(self.fidelity_name)
        ref = feats.test(self.max_reference)
        value = fid_from_statistics(fid_statistics(feats.generated_rows()[layer]), fid_statistics(ref[layer]))
        return MetricResult({self.primary: value}, self.details(feats, ref))


class SpatialFID(FID):
    """sFID (Nash et al. 2021): the Frechet distance of FID on the extractor's spatial
    features (Inception's ``mixed_6/conv``, first 7 channels, as OpenAI's ADM evaluator),
    which respond to spatial structure that the pooled features average away."""

    description = ("sFID (Nash et al. 2021): Frechet distance on spatial features (Inception's "
                   "mixed_6/conv, 7 channels, as the ADM evaluator) against the test split")
    higher_is_better = {"sfid": False}
    primary = "sfid"
    presentation = {"sfid": KeyPresentation("sFID", quality=1)}
    fidelity_name = "spatial"


class InceptionScore(_FidelityMetric):
    """exp E[KL(p(y|x) || p(y))] over the extractor's class logits, mean and std over splits.

    Needs at least ``splits`` samples (one per split)."""

    description = "Inception Score (torch-fidelity): mean and std over splits of the generated samples"
    higher_is_better = {"mean": True}
    presentation = {"std": KeyPresentation()}  # declared, so it can be a primary_metric
    fidelity_name = "isc"

    def __init__(self, splits: Count = 10, rng_seed: int = 2020):
        self.splits, self.rng_seed = splits, rng_seed

    def count_needs(self) -> tuple[CountNeed, ...]:
        return (CountNeed("samples", self.splits, why=f"one per split, splits = {self.splits}"),)

    def compute(self, ctx: EvalContext) -> MetricResult:
        from genbench import isc_from_logits

        feats = ctx.features()
        mean, std = isc_from_logits(feats.generated_rows()[feats.layer("isc")], self.splits, True,
                                    self.rng_seed)
        return MetricResult({"mean": mean, "std": std},
                            {**self.details(feats), "isc_splits": self.splits, "rng_seed": self.rng_seed})


class KID(_FidelityMetric):
    """Unbiased MMD^2 with a cubic polynomial kernel, averaged over random subsets.

    Needs at least 2 samples and 2 test items (the unbiased estimate's subsets); recommended:
    at least :data:`~.inputs.RECOMMENDED_REFERENCE` test items."""

    description = ("Kernel Inception Distance (torch-fidelity) against the test split; subset size "
                   "min(subset_size, #generated, #reference), recorded")
    higher_is_better = {"mean": False}
    presentation = {"mean": KeyPresentation("KID", (Headline(20, board="image"),)),
                    "std": KeyPresentation()}
    fidelity_name = "kid"

    def __init__(self, max_reference: Count = 10000, subsets: Count = 100,
                 subset_size: Count = 1000, rng_seed: int = 2020):
        self.max_reference, self.subsets = max_reference, subsets
        self.subset_size, self.rng_seed = subset_size, rng_seed

    def count_needs(self) -> tuple[CountNeed, ...]:
        why = "the unbiased estimate compares subsets of at least 2 points"
        return (CountNeed("samples", 2, why=why),
                CountNeed("test", 2, RECOMMENDED_REFERENCE, self.max_reference, why))

    def compute(self, ctx: EvalContext) -> MetricResult:
        from genbench import kid_from_features

        feats = ctx.features()
        layer = feats.layer("kid")
        ref = feats.test(self.max_reference)
        mean, std, used = kid_from_features(feats.generated_rows()[layer], ref[layer], subsets=self.subsets,
                                            subset_size=self.subset_size, rng_seed=self.rng_seed)
        return MetricResult({"mean": mean, "std": std},
                            {**self.details(feats, ref), "kid_subset_size": used,
                             "kid_subsets": self.subsets, "rng_seed": self.rng_seed})


class PrecisionRecall(_FidelityMetric):
    """Improved precision and recall (Kynkaanniemi et al. 2019): k-NN balls in feature space,
    on equal numbers of generated and test points.

    Needs more than k = ``neighborhood`` samples and test items (a point's k-th nearest
    other point); recommended: at least :data:`~.inputs.RECOMMENDED_REFERENCE` test items."""

    description = ("precision, recall and F-score (torch-fidelity, Kynkaanniemi et al. 2019) "
                   "against the test split, k = neighborhood, on equal numbers of real and "
                   "generated points (the smaller count, recorded)")
    higher_is_better = {"precision": True, "recall": True, "f_score": True}
    presentation = {"precision": KeyPresentation("precision", (Headline(30, board="image"),)),
                    "recall": KeyPresentation("recall", (Headline(40, board="image"),))}
    fidelity_name = "prc"

    def __init__(self, max_reference: Count = 10000, neighborhood: Count = 3):
        self.max_reference, self.neighborhood = max_reference, neighborhood

    def count_needs(self) -> tuple[CountNeed, ...]:
        k = self.neighborhood
        why = f"the k-th nearest other point of each, k = neighborhood = {k}"
        return (CountNeed("samples", k + 1, why=why),
                CountNeed("test", k + 1, RECOMMENDED_REFERENCE, self.max_reference, why))

    def compute(self, ctx: EvalContext) -> MetricResult:
        """Recall counts the real points inside the samples' k-NN balls, so unequal counts
        bias it (more samples, more and smaller balls): the first ``n`` samples and ``n``
        test items (a fixed seeded subset when the split is larger), ``n`` the smaller count."""
        from genbench import prc_from_features

        gen, ref, details = shared_equal_count_features(ctx, self.fidelity_name, self.max_reference)
        # The features are float32, returned as float64: exactly the same numbers.
        p, r, f = prc_from_features(gen.float(), ref.float(), neighborhood=self.neighborhood)
        return MetricResult({"precision": p, "recall": r, "f_score": f},
                            {**details, "n_reference": details["n_used"],
                             "prc_neighborhood": self.neighborhood})


@hookimpl
def register_metrics(register):
    register("fid", FID)
    register("sfid", SpatialFID)
    register("isc", InceptionScore)
    register("kid", KID)
    register("prc", PrecisionRecall)
