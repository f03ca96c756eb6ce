"""The metric contract: :class:`Metric` and :class:`MetricResult`."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from genbench.api.parameters import validate_on_init

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


#: The kind of every board that no measured key claims for another kind (see
#: :attr:`KeyPresentation.board_kind`); :class:`Headline` places keys per kind.
DEFAULT_BOARD_KIND = "image"

#: What a key can stand for in plots and figures (:attr:`KeyPresentation.role`).
ROLES = {
    "sampling_speed": "samples per second: the x axis of the quality-against-speed plot",
    "nfe": "network evaluations per sample: the x axis of the quality-against-NFE plot",
    "mode_count": "modes of a 2-D mixture covered; the metric's details record "
                  "mode_centres, mode_std and within_std, which the sample figures draw",
}


@dataclass(frozen=True)
class Headline:
    """A key's place in the main table of a board (the headline columns).

    The main table has one place per ``order``, left to right by ascending ``order``; of the
    keys declaring one ``order`` that a board measured, those with the lowest ``choice`` fill
    it (every metric that ties, so a relabelled copy of a metric shows beside it). ``board``
    limits the place to boards of that kind (see :attr:`KeyPresentation.board_kind`);
    ``None``: boards of every kind.
    """

    order: int
    choice: int = 0
    board: str | None = None


@dataclass(frozen=True)
class KeyPresentation:
    """How one key of a metric is presented on leaderboards, plots and figures.

    ``header``: the main table's short header (empty: ``<metric label>.<key>``).
    ``headlines``: its places in main tables (:class:`Headline`); a key without one is in the
    full tables and files only. ``board_kind``: a board that measured this key is of this
    kind (a 2-D mixture board, say), which picks the :class:`Headline` places that apply.
    ``role``: what it stands for in plots and figures, one of :data:`ROLES`. ``quality``:
    plots read the lowest-ranked such key as their quality axis when the board's sort
    column is not measured. ``mean_only``: the terminal table shows its mean without an
    interval (a timing that varies with the machine's load).

    The direction of a key is :attr:`Metric.higher_is_better`, stored with every value.
    """

    header: str = ""
    headlines: tuple[Headline, ...] = ()
    board_kind: str | None = None
    role: str | None = None
    quality: int | None = None
    mean_only: bool = False

    def __post_init__(self):
        if self.role is not None and self.role not in ROLES:
            raise ValueError(f"KeyPresentation.role must be one of {', '.join(ROLES)} or None, "
                             f"got {self.role!r}")

    def headline(self, board_kind: str) -> Headline | None:
        """The place on a board of ``board_kind``, if any (the first that applies)."""
        return next((h for h in self.headlines if h.board in (None, board_kind)), None)


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
    #: How keys are presented (:class:`KeyPresentation`), read when boards are published,
    #: whatever label a spec gives the metric. A key not listed: full tables and files only.
    presentation: ClassVar[dict[str, KeyPresentation]] = {}
    #: Keys whose value may be NaN or infinite and still mean something (a statistic that
    #: is undefined for some samples, PSNR of a perfect reconstruction): stored as they are
    #: (NaN as a missing value). A NaN or infinite value of any other key makes the metric
    #: fail, naming the key and the value.
    nonfinite_ok: ClassVar[frozenset[str]] = frozenset()
    #: A timing, which other work on the machine would distort: a suite run computes it in
    #: a final phase, one row at a time with nothing else running and every core of the
    #: executor, after the row's other metrics are stored (its record says ``pending``
    #: until then). Computed with the rest where one evaluation runs by itself.
    timed_alone: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        validate_on_init(cls)  # a direct call checks its options as a spec's are checked

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
