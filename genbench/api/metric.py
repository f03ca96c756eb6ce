"""The metric contract: :class:`Metric` and :class:`MetricResult`."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from genbench.api.data import DataInfo
    from genbench.evaluation.context import EvalContext


#: The sets whose sizes a metric may need (see :class:`CountNeed`): the job's generated
#: samples (the suite's ``num_samples``) and the real splits.
COUNTED_SETS = ("samples", "test", "train")


@dataclass(frozen=True)
class CountNeed:
    """How many items of one set a metric needs, checked before anything trains.

    ``of``: ``"samples"`` (the suite's ``num_samples``, for a metric that reads the job's
    shared samples), ``"test"`` or ``"train"`` (a real split). ``floor``: with fewer items
    the metric cannot be computed, and the suite stops with an error before training.
    ``recommended``: with fewer it is computed, but noisy or biased, and a warning says so
    (0: no recommendation). ``cap``: the metric reads at most this many items (its
    ``max_reference``, say), so the count compared is the smaller of the set's size and the
    cap. ``why``: the reason for the floor, shown in the error.
    """

    of: str
    floor: int = 1
    recommended: int = 0
    cap: int | None = None
    why: str = ""

    def __post_init__(self):
        if self.of not in COUNTED_SETS:
            raise ValueError(f"CountNeed.of must be one of {', '.join(COUNTED_SETS)}, got {self.of!r}")


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

    Before anything trains the runner checks what it can without a trained model: that the
    metric applies to some (model, dataset) pair of the suite (:meth:`data_skip_reason` and
    ``requires``), :meth:`preflight`, and the set sizes of :meth:`count_needs`.
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
        """``None`` if the metric applies to this model and data, else why it does not.
        Default: :meth:`data_skip_reason`, then the ``requires`` capabilities."""
        reason = self.data_skip_reason(ctx.data_info, feature_extractor=ctx.extractor_name,
                                       registries=ctx.registries)
        if reason is not None:
            return reason
        caps = ctx.model.capabilities()
        missing = [c for c in self.requires if c not in caps]
        if missing:
            return f"model {ctx.model_name!r} has no {', '.join(missing)}"
        return None

    def data_skip_reason(self, data_info: "DataInfo", *, feature_extractor: str | None,
                         registries) -> str | None:
        """Why the metric applies to no model on this data, or ``None``; known without a
        trained model (the data's kind, declared modes or classes, the extractor's layers).
        Called before training to summarise skips and to reject a metric that applies to
        no pair of a suite, and by the default :meth:`skip_reason`. ``feature_extractor``
        is the run's extractor for this data. Default: ``data_kinds``."""
        if data_info.kind not in self.data_kinds:
            return f"needs {' or '.join(self.data_kinds)} data, got {data_info.kind}"
        return None

    def count_needs(self) -> tuple[CountNeed, ...]:
        """The sample and split sizes the metric needs (see :class:`CountNeed`), checked
        before training on every dataset it applies to. Default: none."""
        return ()

    def preflight(self, data_info: "DataInfo", *, feature_extractor: str | None,
                  feature_weights: str | None, registries) -> None:
        """Called once per dataset before anything trains: raise a
        :class:`~genbench.api.errors.GenbenchError` if this metric can never run on this data
        (its weights file is missing, say), so a suite fails in seconds, not after training.
        ``feature_extractor`` is the extractor chosen for the run (the spec's override or the
        dataset's default). Default: nothing to check."""

    @abc.abstractmethod
    def compute(self, ctx: "EvalContext") -> dict[str, float] | MetricResult:
        """Compute the metric on a trained model; see :class:`genbench.EvalContext`."""
