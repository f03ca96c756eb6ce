"""``modes``: mode collapse on Gaussian mixtures, the VEEGAN / PacGAN protocol.

On a vector dataset that declares its mixture centres and their common standard deviation in
:class:`~genbench.DataInfo` (``modes``, ``mode_std``: ring8, grid25, or any plugin's set),
with 2,500 samples by default (Srivastava et al. 2017, Sec. 5.1; Lin et al. 2018, Sec. 5.1):

* a sample is *high quality* when it lies within ``within`` (3) standard deviations of its
  nearest mode (Euclidean distance <= 3 * mode_std);
* a mode is *captured* when it is the nearest mode of at least one high-quality sample.

Keys: ``modes`` (modes captured), ``modes_frac`` (captured / K), ``hq`` (% of samples of high
quality) and ``rkl``, KL(p_gen || uniform) over the K modes where p_gen is the histogram of
the high-quality samples' nearest modes (in nats; 0 for a perfectly balanced generator,
log K when every high-quality sample sits on one mode, NaN when there is none).

Sample count: ``num_samples`` (2,500) are the first ``num_samples`` of the job's shared
samples when the suite makes at least that many, else the metric draws its own from a
seeded stream of the job; ``None`` uses the job's samples whatever their number. The count
and the source are recorded.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
import torch
from annotated_types import Gt

from genbench import (ConfigError, EvalContext, Headline, KeyPresentation, Metric, MetricResult,
                      hookimpl)

from .inputs import Count, metric_samples

#: ``ctx.generator`` stream of the samples this metric draws itself (job samples use 1).
SAMPLE_STREAM = 11


def mode_statistics(x: torch.Tensor, centres: torch.Tensor, std: float,
                    within: float = 3.0) -> dict[str, Any]:
    """The protocol on samples ``x`` ``(n, D)`` and centres ``(K, D)``: values and the
    per-mode counts of high-quality samples. Non-finite samples are never high quality."""
    from scipy.stats import entropy  # here, not at import: `genbench list` stays fast

    x = x.reshape(len(x), -1).double()
    centres = centres.double()
    # Exact differences, not the |a|^2 + |b|^2 - 2ab shortcut: thresholds are 0.03 on ring8.
    d = torch.cdist(x, centres, compute_mode="donot_use_mm_for_euclid_dist")
    dist, nearest = d.min(dim=1)
    hq = dist <= within * std  # NaN compares False
    k = len(centres)
    counts = torch.bincount(nearest[hq], minlength=k).numpy()
    n_hq = int(counts.sum())
    rkl = float(entropy(counts / n_hq, np.full(k, 1.0 / k))) if n_hq else math.nan
    captured = int((counts > 0).sum())
    return {"values": {"modes": float(captured), "modes_frac": captured / k,
                       "hq": 100.0 * n_hq / len(x), "rkl": rkl},
            "counts": counts.tolist(), "n_high_quality": n_hq,
            "n_nonfinite": int((~torch.isfinite(x).all(dim=1)).sum())}


class Modes(Metric):
    """Modes captured, % high-quality samples and reverse KL to the uniform mode weights."""

    description = ("mode collapse on declared mixtures (VEEGAN/PacGAN): modes captured, % "
                   "high-quality samples (within 3 std of a mode), KL(p_gen || uniform) over modes")
    data_kinds = ("vector",)
    higher_is_better = {"modes": True, "modes_frac": True, "hq": True, "rkl": False}
    primary = "modes"
    nonfinite_ok = frozenset({"rkl"})  # NaN when no sample is of high quality
    # A board that measured "hq" is a 2-D mixture board, led by these keys; on an image
    # board "modes" is the last choice of the coverage place (see coverage).
    presentation = {
        "modes": KeyPresentation("modes", (Headline(10, board="mixture"),
                                           Headline(50, 3, board="image")),
                                 role="mode_count", quality=0),
        "hq": KeyPresentation("% HQ", (Headline(20, board="mixture"),), board_kind="mixture"),
        "rkl": KeyPresentation("rev. KL", (Headline(30, board="mixture"),)),
    }

    def __init__(self, num_samples: Count | None = 2500,
                 within: Annotated[float, Gt(0)] = 3.0):
        """``within``: how many standard deviations from its mode a sample may lie."""
        self.num_samples, self.within = num_samples, float(within)

    def data_skip_reason(self, data_info, *, feature_extractor, registries) -> str | None:
        reason = super().data_skip_reason(data_info, feature_extractor=feature_extractor,
                                          registries=registries)
        if reason is None and (data_info.modes is None or data_info.mode_std is None):
            reason = (f"dataset {data_info.name!r} declares no mixture modes "
                      "(DataInfo.modes and mode_std)")
        return reason

    def preflight(self, data_info, *, feature_extractor, feature_weights, registries) -> None:
        """A dataset that declares modes must declare usable ones: ``(K, D)`` centres in the
        data's dimension and a positive standard deviation."""
        if data_info.kind not in self.data_kinds or data_info.modes is None:
            return
        centres = data_info.modes_tensor()
        if centres.dim() != 2 or len(centres) == 0 or centres.shape[1] != data_info.dim:
            raise ConfigError(f"dataset {data_info.name!r} declares modes of shape "
                              f"{tuple(centres.shape)}; expected (K, {data_info.dim})")
        if data_info.mode_std is not None and not data_info.mode_std > 0:
            raise ConfigError(f"dataset {data_info.name!r} declares mode_std={data_info.mode_std}; "
                              "it must be positive")

    def compute(self, ctx: EvalContext) -> MetricResult:
        info = ctx.data_info
        self.preflight(info, feature_extractor=None, feature_weights=None, registries=None)
        x, drawn = metric_samples(ctx, self.num_samples, SAMPLE_STREAM)
        stats = mode_statistics(x, info.modes_tensor(), info.mode_std, self.within)
        details = {**drawn, "num_modes": len(info.modes), "mode_std": info.mode_std,
                   "within_std": self.within, "mode_counts": stats["counts"],
                   "n_high_quality": stats["n_high_quality"], "n_nonfinite": stats["n_nonfinite"],
                   # what the leaderboard's sample figure draws under each model's samples
                   "mode_centres": [list(c) for c in info.modes]}
        return MetricResult(stats["values"], details)


@hookimpl
def register_metrics(register):
    register("modes", Modes)
