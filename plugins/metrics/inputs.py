"""What the mode, coverage and diversity metrics compare: their samples and their features.

Shared by ``modes``, ``coverage``, ``prdc``, ``ndb`` and ``vendi`` (not a plugin itself):

* :func:`metric_samples` (:func:`uses_shared_samples`, :func:`sample_batches`): a metric whose
  protocol fixes its own sample count (2,500 on the mixtures; 26,000 to compare with the
  Stacked MNIST tables) reads the first ``n`` of the job's shared samples when the job made
  at least ``n``, and otherwise draws ``n`` of its own from a seeded stream of the job
  (``ctx.draw_samples(n, stream)``, under the row's sampling settings). Either way the count and
  the source are recorded.
* :class:`FeatureMetric`: skip and preflight of a metric that reads one layer of
  ``ctx.features()`` (the run's extractor; raw coordinates for vectors).
* :func:`equal_count_features`: generated vs test-split features on equal numbers of points,
  the smaller count (Naeem et al. 2020; Kynkaanniemi et al. 2019), with what was used;
  :func:`shared_equal_count_features` gives the same points, cut from the reference
  features FID and KID read, so the job makes no extra pass over the test split.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, ClassVar

import numpy as np
import torch
from annotated_types import Ge, Interval

from genbench import (EvalContext, JobFeatures, Metric, SplitFeatures, layer_skip_reason,
                      preflight_features, reference_indices)

#: Test-split items below which a metric that compares samples with the test split (FID,
#: KID, precision/recall, density/coverage, FD-infinity, memorisation) warns before training:
#: it is computed, but its estimate's variance, and for FID its 1/N bias (Chong & Forsyth
#: 2020), dominate the differences between models at that count.
RECOMMENDED_REFERENCE = 100


# -- declared option types (checked from the signature; see genbench.api.parameters) --------
#: A count option (samples, points, bins, neighbours, a batch size): at least one.
Count = Annotated[int, Ge(1)]
#: A seed option for numpy or scikit-learn: a non-negative integer.
Seed = Annotated[int, Ge(0)]
#: A fraction or probability strictly between 0 and 1.
OpenUnit = Annotated[float, Interval(gt=0, lt=1)]


# -- samples ---------------------------------------------------------------------------------

def uses_shared_samples(ctx: EvalContext, n: int | None) -> bool:
    """Whether ``n`` samples (``None``: the job's count) can be the first ``n`` of the job's
    shared ``ctx.samples`` (independent draws, so any ``n`` of them are a sample of ``n``)."""
    return n is None or n <= ctx.num_samples


def sample_batches(ctx: EvalContext, n: int, stream: int) -> Iterator[torch.Tensor]:
    """``n`` new samples, float32 on the CPU, in batches of at most ``ctx.batch_size``, from
    seeded stream ``stream`` of the job under the row's sampling settings
    (:meth:`genbench.EvalContext.draw_samples`: per-sample noise, so the draws do not
    depend on the batch size).

    ``stream`` must differ from other metrics' streams, so the draws are independent of the
    shared samples and reproducible per seed.
    """
    yield from ctx.draw_samples(n, stream)


def metric_samples(ctx: EvalContext, n: int | None, stream: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """``n`` samples (``None``: the job's shared ones) and what to record about them:
    ``n_samples`` and ``samples`` (``"shared"``: the first ``n`` of the job's, or
    ``"drawn"``: drawn by the metric from seeded stream ``stream``)."""
    if uses_shared_samples(ctx, n):
        x = ctx.samples if n is None else ctx.sample_store.read(0, n)
        return x, {"n_samples": len(x), "samples": "shared"}
    x = torch.cat(list(sample_batches(ctx, n, stream)))
    return x, {"n_samples": n, "samples": "drawn", "sample_stream": stream}


# -- features --------------------------------------------------------------------------------

class FeatureMetric(Metric):
    """A metric on one layer of the job's features: ``layer_metric`` names it the way
    :func:`genbench.features.job_features.skip_reason` does (``"prc"`` for k-NN metrics, ``"fid"`` for
    embeddings). Skipped with the reason when no extractor serves that layer; the preflight
    fails before training when the extractor's weights are missing."""

    layer_metric: ClassVar[str] = "prc"

    def data_skip_reason(self, data_info, *, feature_extractor, registries) -> str | None:
        return (super().data_skip_reason(data_info, feature_extractor=feature_extractor,
                                         registries=registries)
                or layer_skip_reason(data_info, self.layer_metric,
                                     extractor=feature_extractor, registries=registries))

    def preflight(self, data_info, *, feature_extractor, feature_weights, registries) -> None:
        if data_info.kind in self.data_kinds:
            preflight_features(self.layer_metric, data_info, feature_extractor=feature_extractor,
                               feature_weights=feature_weights, registries=registries)

    def feature_details(self, feats: JobFeatures) -> dict[str, Any]:
        """The extractor's provenance and the layer read."""
        return {**feats.provenance(), "feature_layer": feats.layer(self.layer_metric)}


def equal_count_features(ctx: EvalContext, layer_metric: str, max_reference: int
                         ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """``(generated, reference, details)``: features of the first ``n`` generated samples and
    of ``n`` test-split items (the fixed seeded subset of
    :func:`genbench.features.job_features.reference_indices` when the split is larger), where ``n`` is the
    smallest of the job's sample count, the test split's size and ``max_reference``.

    Both are float64 CPU tensors ``(n, D)``; ``details`` records the extractor, the layer,
    ``n`` (``n_used``), both available counts and the reference's cache state.
    """
    feats = ctx.features()
    layer = feats.layer(layer_metric)
    n = min(ctx.num_samples, ctx.split_size("test"), max_reference)
    ref = feats.test(n)
    gen = feats.generated_rows()[layer][:n]  # n rows read, not all
    details = {**feats.provenance(), "feature_layer": layer, "n_used": n,
               "n_generated": ctx.num_samples, "n_reference_total": ref.n_total,
               "reference_cache": ref.cache, "reference_key": ref.key}
    return gen.double(), ref[layer].double(), details


def shared_equal_count_features(ctx: EvalContext, layer_metric: str, max_reference: int
                                ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """What :func:`equal_count_features` returns (the same ``n`` test items, the same
    details), cut from the test split's features for ``max_reference`` items (the set
    ``fid`` and ``kid`` read) instead of extracted again: the subset of ``n`` that
    :func:`genbench.features.job_features.reference_indices` picks lies inside its subset of any larger
    size (both are prefixes of one seeded permutation). ``details`` then names the cache
    state and key of that larger set."""
    feats = ctx.features()
    layer = feats.layer(layer_metric)
    ref = feats.test(max_reference)
    n = min(ctx.num_samples, ref.n)
    rows = reference_rows(ref, n)
    reference = ref[layer] if rows is None else ref[layer][rows]
    gen = feats.generated_rows()[layer][:n]  # n rows read, not all
    details = {**feats.provenance(), "feature_layer": layer, "n_used": n,
               "n_generated": ctx.num_samples, "n_reference_total": ref.n_total,
               "reference_cache": ref.cache, "reference_key": ref.key}
    return gen.double(), reference.double(), details


def reference_rows(split: SplitFeatures, n: int) -> torch.Tensor | None:
    """Rows of ``split`` (features of a fixed seeded subset of a split, or all of it) that
    hold the items :func:`genbench.features.job_features.reference_indices` picks for ``n`` items of that
    split (``None``: all rows)."""
    if n > split.n:
        raise ValueError(f"{n} items asked of features of {split.n}")
    wanted = reference_indices(split.n_total, n)
    if wanted is None:
        return None
    held = np.arange(split.n_total) if split.indices is None else split.indices.numpy()
    rows = np.searchsorted(held, wanted.numpy())
    if not np.array_equal(held[np.minimum(rows, len(held) - 1)], wanted.numpy()):
        raise ValueError("the requested items are not among the features' items")
    return torch.from_numpy(rows)
