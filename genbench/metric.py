"""The metric contract: :class:`Metric` and :class:`MetricResult`."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from .data import DataInfo
    from .evaluation import EvalContext


@dataclass
class MetricResult:
    """Values plus details recorded beside them (extractor, weights hash, sample counts...)."""

    values: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)


class Metric(abc.ABC):
    """Base class of metric plugins.

    Built as ``cls(**options)`` (keyword arguments with defaults). Declares what it needs:
    ``data_kinds`` and the model ``requires`` capabilities (see
    :meth:`genbench.GenerativeModel.capabilities`); :meth:`skip_reason` turns an unmet need
    into a recorded reason. :meth:`compute` returns ``{key: value}`` or a
    :class:`MetricResult`; values are stored as ``"<metric>.<key>"``.
    """

    description: ClassVar[str] = ""
    data_kinds: ClassVar[tuple[str, ...]] = ("image", "vector")
    #: Model capabilities the metric needs ("sample" is always available).
    requires: ClassVar[tuple[str, ...]] = ("sample",)
    #: Direction of each key that is a score: True = higher is better. Others are informative.
    higher_is_better: ClassVar[dict[str, bool]] = {}
    #: The key leaderboards sort by when this is the suite's first metric, if any.
    primary: ClassVar[str | None] = None

    def skip_reason(self, ctx: "EvalContext") -> str | None:
        """``None`` if the metric applies to this model and data, else why it does not."""
        if ctx.data_info.kind not in self.data_kinds:
            return f"needs {' or '.join(self.data_kinds)} data, got {ctx.data_info.kind}"
        caps = ctx.model.capabilities()
        missing = [c for c in self.requires if c not in caps]
        if missing:
            return f"model {ctx.model_name!r} has no {', '.join(missing)}"
        return None

    def preflight(self, data_info: "DataInfo", *, feature_extractor: str | None,
                  feature_weights: str | None, registries) -> None:
        """Called once per dataset before anything trains: raise a
        :class:`~genbench.errors.GenbenchError` if this metric can never run on this data
        (its weights file is missing, say), so a suite fails in seconds, not after training.
        ``feature_extractor`` is the extractor chosen for the run (the spec's override or the
        dataset's default). Default: nothing to check."""

    @abc.abstractmethod
    def compute(self, ctx: "EvalContext") -> dict[str, float] | MetricResult:
        """Compute the metric on a trained model; see :class:`genbench.EvalContext`."""
