"""Scoring a trained model: every metric on one :class:`EvalContext`, each outcome recorded.

:func:`score_metrics` is the evaluation loop a suite's worker runs for each row;
:func:`evaluate` runs the same loop on a model in memory (a notebook's), so the two give the
same numbers for the same model, data, seed, sample count and settings.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import torch

from genbench.api.data import BenchmarkDataset, LazySplit
from genbench.api.errors import ConfigError, WorkerTerminated
from genbench.api.metric import MetricResult
from genbench.api.model import GenerativeModel
from genbench.api.paths import cache_dir as default_cache_dir
from genbench.api.paths import data_root as default_data_root
from genbench.evaluation.context import EvalContext
from genbench.evaluation.records import MetricRecord  # noqa: F401 -- re-exported
from genbench.evaluation.sample_store import SampleStore
from genbench.features.job_features import NonFiniteSamplesError
from genbench.registry.parameters import hyperparameters, validate_config, validate_run_sampling

if TYPE_CHECKING:
    from genbench.registry.manager import Registries


def score_metrics(ctx: EvalContext, metrics: Iterable[tuple[str, type, Mapping[str, Any]]]
                  ) -> tuple[list[MetricRecord], dict[str, float]]:
    """Each ``(label, metric class, options)`` of ``metrics`` on ``ctx``, in order: its
    record and the seconds it took, by label.

    A metric that does not apply is recorded as skipped with its reason; one that raises
    (or calls ``sys.exit``) is recorded as failed with its error and traceback, and the
    others still run; so is one that returns a NaN or infinite value for a key not in its
    :attr:`~genbench.api.metric.Metric.nonfinite_ok` (its values then go to its details,
    ``measured_values``, not to the store's values). When the
    samples hold NaN or infinity (:attr:`EvalContext.sample_failure`), every metric that
    needs samples is recorded as failed with that reason. The samples are drawn for the first
    metric that reads them: a metric timed alone (``speed``) times sampling of its own and
    never waits for the row's samples."""
    records, seconds = [], {}
    for label, cls, params in metrics:
        record = MetricRecord(label, "skipped", higher_is_better=dict(cls.higher_is_better),
                              primary=cls.primary)
        # outside the try: a sampler that raises fails the job, not one metric
        sample_failure = (ctx.sample_failure if "sample" in cls.requires and not cls.timed_alone
                          else None)
        t0 = time.perf_counter()
        try:
            metric = cls(**params)
            reason = metric.skip_reason(ctx)
            if reason is not None:
                record.message = reason
            elif sample_failure is not None:
                record = failed_on_samples(label, cls, sample_failure)
            else:
                out = metric.compute(ctx)
                if not isinstance(out, MetricResult):
                    out = MetricResult(dict(out))
                values = {k: float(v) for k, v in out.values.items()}
                allowed_keys = getattr(cls, "nonfinite_ok", frozenset())
                bad = {k: v for k, v in values.items()
                       if not math.isfinite(v) and k not in allowed_keys}
                if bad:  # a number that is no result: recorded as a failure, never stored
                    record.status = "failed"
                    shown = ", ".join(f"{label}.{k} = {v}" for k, v in bad.items())
                    allowed = ", ".join(sorted(allowed_keys)) or "none"
                    record.message = (f"not a finite number: {shown} (keys that may be NaN or "
                                      f"infinite, the metric's nonfinite_ok: {allowed})")
                    record.details = {**out.details, "measured_values": values}
                else:
                    record.values = values
                    record.details, record.status = out.details, "ok"
                    if ctx.protocol is not None:
                        record.details = {**record.details, "protocol": ctx.protocol}
        except WorkerTerminated:  # the worker is told to stop: not the metric's failure
            raise
        except (Exception, SystemExit) as exc:  # recorded; the others still run
            record.status, record.message = "failed", f"{type(exc).__name__}: {exc}"
            record.details = {"traceback": traceback.format_exc(limit=20)}
        seconds[label] = time.perf_counter() - t0
        records.append(record)
    return records, seconds


def failed_on_samples(label: str, cls: type, sample_failure: str) -> MetricRecord:
    """The record of a metric that needs samples when they hold NaN or infinity."""
    return MetricRecord(label, "failed", higher_is_better=dict(cls.higher_is_better),
                        primary=cls.primary,
                        message=f"{NonFiniteSamplesError.__name__}: {sample_failure}")


def make_dataset(registries: "Registries", name: str, params: Mapping[str, Any] | None = None,
                 *, label: str | None = None, root: str | None = None,
                 download: bool = False) -> BenchmarkDataset:
    """The dataset registered as ``name`` with ``params`` (validated), passing ``root`` and
    ``download`` to a class that takes them and was not given them."""
    cls = registries.datasets.get(name)
    params = validate_config(cls, params or {}, f"dataset {label or name!r}")
    accepted = hyperparameters(cls)
    if "root" in accepted and "root" not in params and root is not None:
        params["root"] = root
    if "download" in accepted and "download" not in params:
        params["download"] = download
    return cls(**params)


@dataclass
class Evaluation:
    """What :func:`evaluate` measured."""

    #: One record per metric, in the order asked for.
    metrics: list[MetricRecord]
    #: Seconds spent sampling (``sample_seconds``), reconstructing, and per metric (``metrics``).
    timings: dict[str, Any]
    #: Why the samples could not be used (NaN or infinity), else ``None``.
    sample_failure: str | None = None
    #: The shared samples every metric saw, on disk (``None`` when unusable): read them in
    #: batches (``sample_store.batches(n)``) or whole (:attr:`samples`).
    sample_store: SampleStore | None = field(default=None, repr=False)
    #: The temporary folder of :attr:`sample_store`, kept as long as this is.
    _folder: Any = field(default=None, repr=False)

    @property
    def samples(self) -> torch.Tensor | None:
        """The shared samples, read whole from :attr:`sample_store` as float32 (images in
        [0, 1], quantised to 1/255); ``None`` when unusable."""
        return None if self.sample_store is None else self.sample_store.read()

    @property
    def values(self) -> dict[str, float]:
        """Every value measured, as ``{"metric.key": value}``."""
        return {f"{r.metric}.{k}": v for r in self.metrics for k, v in r.values.items()}

    def __getitem__(self, metric: str) -> MetricRecord:
        """The record of ``metric`` (its label)."""
        for r in self.metrics:
            if r.metric == metric:
                return r
        raise KeyError(f"no metric {metric!r}; measured: {', '.join(r.metric for r in self.metrics)}")


def _metric_list(metrics: Sequence[str] | Mapping[str, Mapping[str, Any]]
                 ) -> list[tuple[str, Mapping[str, Any]]]:
    if isinstance(metrics, str):
        raise ConfigError(f"metrics must be a list of names or a mapping of name to options, "
                          f"got the string {metrics!r}; write [{metrics!r}]")
    if isinstance(metrics, Mapping):
        return [(name, dict(options or {})) for name, options in metrics.items()]
    return [(name, {}) for name in metrics]


def evaluate(model: GenerativeModel, dataset: BenchmarkDataset | str, *,
             metrics: Sequence[str] | Mapping[str, Mapping[str, Any]],
             num_samples: int = 1000, seed: int = 0, batch_size: int = 256,
             sampling: Mapping[str, Any] | None = None, feature_extractor: str | None = None,
             feature_weights: str | None = None, device: str | torch.device | None = None,
             cache_dir: str | Path | None = None, dataset_params: Mapping[str, Any] | None = None,
             data_root: str | Path | None = None, download: bool = False,
             model_name: str = "model", registries: "Registries | None" = None,
             reference_file: str | Path | None = None) -> Evaluation:
    """Score a trained ``model`` in memory on ``dataset`` with ``metrics``, as a suite's row
    would be scored: ``num_samples`` samples drawn once from a generator seeded by ``seed``
    (under the sampling settings ``sampling``) and shared by every metric, compared with
    the dataset's test split.

    ``dataset`` is a dataset instance or a registered name (built with ``dataset_params``,
    ``data_root`` and ``download``); ``metrics`` are registered names, or a mapping of name
    to options. ``sampling`` is checked against the model's declared sampling settings and
    its defaults filled in, as a suite's are (a misspelt setting is a
    :class:`~genbench.api.errors.ConfigError` listing the valid ones). ``device``: where the model runs (default: where its parameters are).
    ``registries``: where names are looked up (default: every installed plugin's).
    ``reference_file``: a reference statistics file (``genbench reference build``) whose
    features stand for the test split's (:attr:`EvalContext.reference_file`).
    """
    if registries is None:
        from genbench.registry.manager import default_registries

        registries = default_registries()
    if isinstance(dataset, str):
        dataset = make_dataset(registries, dataset, dataset_params,
                               root=str(default_data_root(data_root)), download=download)
    chosen = [(name, registries.metrics.get(name), options)
              for name, options in _metric_list(metrics)]
    chosen = [(name, cls, validate_config(cls, options, f"metric {name!r}"))
              for name, cls, options in chosen]
    # checked and filled in as a suite's spec does, so a row and this give the same numbers
    settings = validate_run_sampling(registries, type(model), sampling or {},
                                     f"model {model_name!r}")
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    ctx = EvalContext(
        model=model, model_name=model_name, data_info=dataset.info(),
        train=LazySplit(dataset, "train"), test=LazySplit(dataset, "test"), device=torch.device(device),
        seed=seed, num_samples=num_samples, cache_dir=Path(default_cache_dir(cache_dir)),
        feature_extractor=feature_extractor, feature_weights=feature_weights,
        batch_size=batch_size, registries=registries, sampling=settings,
        reference_file=None if reference_file is None else str(reference_file))
    records, seconds = score_metrics(ctx, chosen)
    failure = ctx.sample_failure
    return Evaluation(records, {**ctx.timings, "metrics": seconds}, failure,
                      None if failure is not None else ctx.sample_store, ctx._tmp)
