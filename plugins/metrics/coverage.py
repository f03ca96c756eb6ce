"""``coverage``: class coverage and mode coverage on labelled sets, through a classifier.

A classifier extractor (one whose class logits are the dataset's classes: ``digits-cnn`` on
``digits`` and ``stacked-digits``) labels every sample with its most likely class:

* on a labelled set: ``classes_covered`` (classes predicted for at least one sample) and
  ``class_kl`` = KL(p_gen || p_ref) of the predicted classes, p_ref uniform as in VEEGAN and
  PacGAN unless the dataset declares ``DataInfo.class_frequencies``;
* on a stacked set (three digits as three channels, 1,000 classes ``100*d1 + 10*d2 + d3``,
  :mod:`genbench_plugins.datasets.stacking`): the same over the 1,000 digit triples, as
  ``modes`` and ``mode_kl`` (VEEGAN Table 2, PacGAN Table 2). ``digits-cnn`` classifies each
  channel and its 1,000 logits are the triple's log-probabilities, so the arg-max is the
  triple of per-channel arg-maxes.

KL is in nats. The published tables use 26,000 samples: set ``num_samples = 26000`` to
compare with them. ``num_samples`` samples are the first ones of the job's shared samples
when the suite makes at least that many, else the metric draws its own from a seeded stream
(classified in batches, never held as 26,000 x 1,000 logits); ``None`` (the default) uses the
job's samples. The count, the source and the per-class counts are recorded.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import torch
from annotated_types import MinLen

from genbench import (DataInfo, EvalContext, Headline, JobFeatures, KeyPresentation, Metric,
                      MetricResult, extractor_skip_reason, feature_layer, hookimpl,
                      preflight_features)
from genbench_plugins.datasets.stacking import STACKED_CLASSES

from .inputs import Count, sample_batches, uses_shared_samples

#: ``ctx.generator`` stream of the samples this metric draws itself.
SAMPLE_STREAM = 12


def is_stacked(info: DataInfo) -> bool:
    """Whether the dataset is a stacked-digit set: 3-channel images with 1,000 triple labels."""
    return info.kind == "image" and info.shape[0] == 3 and info.num_classes == STACKED_CLASSES


def class_statistics(predicted: torch.Tensor, num_classes: int,
                     reference: tuple[float, ...] | None = None) -> tuple[int, float, list[int]]:
    """``(classes covered, KL(p_gen || p_ref) in nats, per-class counts)`` of predicted labels;
    p_ref is ``reference`` (normalised weights) or uniform."""
    from scipy.stats import entropy  # here, not at import: `genbench list` stays fast

    counts = torch.bincount(predicted.reshape(-1).long(), minlength=num_classes).numpy()
    p_ref = np.full(num_classes, 1.0 / num_classes) if reference is None else np.asarray(reference)
    kl = float(entropy(counts / counts.sum(), p_ref))
    return int((counts > 0).sum()), kl, counts.tolist()


class ClassCoverage(Metric):
    """Classes (or stacked-digit modes) covered and KL to the reference class weights."""

    description = ("class coverage through a classifier extractor: classes covered and "
                   "KL(p_gen || p_ref); on stacked digits the 1,000 digit triples (modes, mode_kl)")
    data_kinds = ("image", "vector")
    higher_is_better = {"classes_covered": True, "class_kl": False, "modes": True, "mode_kl": False}
    primary = "classes_covered"
    # One coverage place in an image board's main table: modes, else prdc's coverage,
    # else classes (see prdc and modes).
    presentation = {
        "modes": KeyPresentation("modes", (Headline(50, 0, board="image"),)),
        "classes_covered": KeyPresentation("classes", (Headline(50, 2, board="image"),)),
        "mode_kl": KeyPresentation("KL", (Headline(60, board="image"),)),
    }

    def __init__(self, num_samples: Count | None = None,
                 extractor: Annotated[str, MinLen(1)] | None = None):
        self.num_samples, self.extractor = num_samples, extractor

    def data_skip_reason(self, data_info, *, feature_extractor, registries) -> str | None:
        """Skipped without class labels, or without an extractor that has class logits."""
        reason = super().data_skip_reason(data_info, feature_extractor=feature_extractor,
                                          registries=registries)
        if reason is not None:
            return reason
        if not data_info.num_classes:
            return f"dataset {data_info.name!r} declares no classes (DataInfo.num_classes)"
        name = self.extractor or feature_extractor
        if name is None:
            return (f"needs a classifier extractor and dataset {data_info.name!r} declares none; "
                    "choose one with --extractor or the metric's extractor option")
        cls = registries.extractors.get(name)
        reason = extractor_skip_reason(name, cls, data_info)
        if reason is not None:
            return reason
        if feature_layer(cls, "isc") is None:
            return f"needs a classifier extractor: {name!r} has no class logits"
        return None

    def skip_reason(self, ctx: EvalContext) -> str | None:
        """Also skipped when the extractor's logits are not the dataset's classes
        (Inception's 1,008 ImageNet classes on CIFAR-10, say): that takes one forward pass
        of one test item."""
        reason = super().skip_reason(ctx)
        if reason is not None:
            return reason
        info = ctx.data_info
        feats = ctx.features(self.extractor or ctx.extractor_name)
        first = next(iter(ctx.split_batches("test", 1)))
        width = feats.extractor.features(first, 1)[feats.layer("isc")].shape[1]
        if width != info.num_classes:
            return (f"feature extractor {feats.name!r} has {width} class logits, not the "
                    f"{info.num_classes} classes of {info.name!r}: it does not classify this data")
        return None

    def preflight(self, data_info, *, feature_extractor, feature_weights, registries) -> None:
        """Before training: the classifier's weights must be present and intact."""
        if data_info.kind in self.data_kinds and data_info.num_classes:
            preflight_features("isc", data_info, feature_extractor=self.extractor or feature_extractor,
                               feature_weights=None if self.extractor else feature_weights,
                               registries=registries)

    def _predictions(self, ctx: EvalContext, feats: JobFeatures) -> tuple[torch.Tensor, dict]:
        layer = feats.layer("isc")
        if uses_shared_samples(ctx, self.num_samples):
            logits = feats.generated()[layer]
            if self.num_samples is not None:
                logits = logits[:self.num_samples]
            return logits.argmax(dim=1), {"n_samples": len(logits), "samples": "shared"}
        preds = [feats.extractor.features(x, ctx.batch_size)[layer].argmax(dim=1)
                 for x in sample_batches(ctx, self.num_samples, SAMPLE_STREAM)]
        return torch.cat(preds), {"n_samples": self.num_samples, "samples": "drawn",
                                  "sample_stream": SAMPLE_STREAM}

    def compute(self, ctx: EvalContext) -> MetricResult:
        info = ctx.data_info
        feats = ctx.features(self.extractor)
        predicted, drawn = self._predictions(ctx, feats)
        covered, kl, counts = class_statistics(predicted, info.num_classes, info.class_frequencies)
        stacked = is_stacked(info)
        values = {"modes": float(covered), "mode_kl": kl} if stacked else \
            {"classes_covered": float(covered), "class_kl": kl}
        details: dict[str, Any] = {
            **feats.provenance(), "feature_layer": feats.layer("isc"), **drawn,
            "num_classes": info.num_classes, "stacked": stacked,
            "reference": "declared class frequencies" if info.class_frequencies else "uniform",
            "class_counts": counts}
        return MetricResult(values, details)


@hookimpl
def register_metrics(register):
    register("coverage", ClassCoverage)
