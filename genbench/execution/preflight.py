"""Checks before anything trains: everything about a suite that is known without a
trained model.

:func:`check_suite` runs once the datasets are loaded and the rows expanded. A problem
stops the suite in seconds, not after its trainings, with one
:class:`~genbench.api.errors.ConfigError` that names every problem found:

* every model builds untrained with its hyper-parameters (referenced models included), and
  one that can give at most ``max_samples`` samples (a sample set read from files) is not
  asked for more;
* every metric applies to some (model, dataset) pair of the suite: to the data
  (:meth:`~genbench.Metric.data_skip_reason`: its kind, declared modes or classes, the
  extractor's layers) and to the model (the capabilities in ``Metric.requires``). A metric
  that some pairs skip is fine: those skips are summarised, one line per metric. When the
  command line narrowed the suite's models or datasets (``SuiteSpec.narrowed``), a metric
  that applies nowhere is summarised too, not an error;
* every metric's :meth:`~genbench.Metric.preflight` passes on the data it applies to (its
  extractor's weights are there, say); it raises its own error type;
* the suite's ``num_samples`` and the datasets' splits hold at least the items each metric
  needs (:meth:`~genbench.Metric.count_needs`); fewer than it recommends is a warning;
* the training batch fits in the training split (models the engine's loop trains; a model
  that overrides ``fit`` uses the budget its own way).

:func:`check_evaluation_sizes` then estimates the disk the rows' sample stores take and the
disk and memory one evaluation's features take, and refuses a sample count that cannot fit.
"""

from __future__ import annotations

import os
import tempfile
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from genbench.api.errors import ConfigError
from genbench.plan.jobs import Job, Training
from genbench.registry.parameters import group_params
from genbench.api.metric import CountNeed, Metric
from genbench.execution.training import overrides_fit
from genbench.features.reference_files import reference_file_items
from genbench.execution.worker import PreparedDataset, dataset_key


@dataclass
class PreflightReport:
    """What the checks found that is not an error, to print once per suite."""

    #: One line per metric that some pairs skip: ``"elbo: skipped for ae (no elbo)"``.
    skipped: list[str] = field(default_factory=list)
    #: Counts below a metric's recommendation, one line each.
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return self.skipped + self.warnings


@dataclass
class _Dataset:
    """One dataset of the suite as the checks see it: its rows' models and its split sizes."""

    label: str
    prepared: PreparedDataset
    extractor: str | None
    num_samples: int
    #: Model label -> model name, in row order.
    models: dict[str, str] = field(default_factory=dict)
    #: A reference statistics file standing for the test split, or ``None``.
    reference_file: str | None = None
    _sizes: dict[str, int] = field(default_factory=dict)

    def size(self, split: str) -> int:
        """Items of ``split``; for ``test`` with a reference file, the items the file holds."""
        if split not in self._sizes:
            self._sizes[split] = (reference_file_items(self.reference_file)
                                  if split == "test" and self.reference_file is not None
                                  else len(self.prepared.dataset.split(split)))
        return self._sizes[split]

    def split_name(self, split: str) -> str:
        """How a message names ``split``."""
        if split == "test" and self.reference_file is not None:
            return f"reference file {self.reference_file}"
        return f"{split} split"


def check_suite(spec, registries, rows: list[Job],
                datasets: dict[str, PreparedDataset]) -> PreflightReport:
    """Check ``rows`` (the suite's expanded rows; ``datasets`` by
    :func:`~genbench.execution.worker.dataset_key`) before training; raise on problems, return the
    skips and warnings to print."""
    report = PreflightReport()
    if not rows:
        return report
    _build_models(rows, registries, datasets)
    suite: dict[str, _Dataset] = {}
    for job in rows:
        ev = job.evaluation
        ds = suite.setdefault(ev.dataset_label, _Dataset(
            ev.dataset_label, datasets[dataset_key(job.training.dataset)], ev.feature_extractor,
            ev.num_samples, reference_file=ev.reference_file))
        ds.models.setdefault(ev.model_label, job.training.model)
    problems: list[str] = []
    applying = []  # labels of the metrics that apply to some pair
    for entry in spec.metrics:
        metric = spec.build_metric(registries.metrics.get(entry.name), entry.label, entry.params)
        applies = _applicability(entry.label, metric, suite.values(), registries, spec.narrowed,
                                 report, problems)
        if applies:
            applying.append(entry.label)
        for ds in applies:
            metric.preflight(ds.prepared.info, feature_extractor=ds.extractor,
                             feature_weights=spec.feature_weights, registries=registries)
        for ds in applies:
            for need in metric.count_needs():
                _check_count(entry.label, need, ds, problems, report.warnings)
    if spec.metrics and not applying and spec.narrowed:  # a selection would measure nothing
        problems.append(f"no metric of the suite ({', '.join(e.label for e in spec.metrics)}) "
                        "applies to any (model, dataset) pair of this selection: "
                        + "; ".join(report.skipped) + "; choose other --models/--datasets, or "
                        "give --metrics")
    problems += _batch_problems(rows, registries, suite)
    problems = list(dict.fromkeys(problems))  # a samples count is reported once, not per dataset
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(f"{len(problems)} problems found before training:\n"
                          + "\n".join(f"  - {p}" for p in problems))
    return report


def _build_models(rows: list[Job], registries, datasets: dict[str, PreparedDataset]) -> None:
    """Build every model of the suite once, untrained, so that a rejected hyper-parameter
    value fails here (a ConfigError naming the row's model)."""
    checked = set()
    for job in rows:
        if job.training.config_fingerprint in checked:  # rows of one model: once
            continue
        checked.add(job.training.config_fingerprint)
        info = datasets[dataset_key(job.training.dataset)].info
        label = job.evaluation.model_label
        try:
            model = _build_untrained(registries, job.training, info)
        except ConfigError as exc:
            msg = str(exc)
            raise ConfigError(msg if label in msg else f"model {label!r}: {msg}") from None
        most = getattr(model, "max_samples", None)  # a sample set read from files, say
        if most is not None and job.evaluation.num_samples > most:
            raise ConfigError(f"model {label!r} can give at most {most} samples, but the suite "
                              f"asks for num_samples = {job.evaluation.num_samples}; lower "
                              f"num_samples to {most} or give more samples")


def _build_untrained(registries, training: Training, info):
    refs = {key: _build_untrained(registries, ref, info) for key, ref in training.refs}
    cls = registries.models.get(training.model)
    return cls(info, **group_params(cls, training.params), **refs)


def _applicability(label: str, metric: Metric, suite, registries, narrowed: bool,
                   report: PreflightReport, problems: list[str]) -> list[_Dataset]:
    """The datasets on which ``metric`` applies to some model; the pairs it skips go to
    ``report`` as one line, and a metric that applies to none to ``problems``."""
    on_data: dict[str, list[str]] = {}    # reason -> datasets
    for_model: dict[str, list[str]] = {}  # reason -> model labels
    applies = []
    for ds in suite:
        reason = metric.data_skip_reason(ds.prepared.info, feature_extractor=ds.extractor,
                                         registries=registries)
        if reason is not None:
            on_data.setdefault(reason, []).append(ds.label)
            continue
        fits = False
        for model_label, model_name in ds.models.items():
            caps = registries.models.get(model_name).capabilities()
            missing = [c for c in metric.requires if c not in caps]
            if missing:
                models = for_model.setdefault(f"no {', '.join(missing)}", [])
                if model_label not in models:
                    models.append(model_label)
            else:
                fits = True
        if fits:
            applies.append(ds)
    parts = [f"on {', '.join(d)} ({r})" for r, d in on_data.items()]
    parts += [f"for {', '.join(m)} ({r})" for r, m in for_model.items()]
    if applies and parts:
        report.skipped.append(f"{label}: skipped {'; '.join(parts)}")
    elif not applies and narrowed:
        report.skipped.append(f"{label}: skipped on every pair of this selection: {'; '.join(parts)}")
    elif not applies:
        problems.append(f"metric {label!r} applies to no (model, dataset) pair of the suite: "
                        f"skipped {'; '.join(parts)}; remove it from the metrics, or add a model "
                        "or dataset it applies to")
    return applies


def _check_count(label: str, need: CountNeed, ds: _Dataset, problems: list[str],
                 warnings: list[str]) -> None:
    if need.of == "samples":
        n = ds.num_samples if need.cap is None else min(ds.num_samples, need.cap)
        if n < need.floor:
            problems.append(f"metric {label!r}: num_samples = {ds.num_samples} is too few, it "
                            f"needs at least {need.floor} samples ({need.why}); raise num_samples")
        return
    size = ds.size(need.of)
    n = size if need.cap is None else min(size, need.cap)
    where = ds.split_name(need.of)
    have = (f"the {where} has {size} item{'s' if size != 1 else ''}" if n == size
            else f"it reads {n} of the {size} {need.of}-split items (its cap)" if where.endswith("split")
            else f"it reads {n} of the {size} items of the {where} (its cap)")
    if n < need.floor:
        why = f" ({need.why})" if need.why else ""
        if n < size:
            fix = "raise the metric's cap"
        elif ds.split_name(need.of) != f"{need.of} split":
            fix = "rebuild the reference file with more items (--max-items)"
        else:
            fix = f"use a larger dataset or {need.of} split"
        problems.append(f"metric {label!r} on dataset {ds.label!r}: {have}, fewer than the "
                        f"{need.floor} it needs{why}; {fix}")
    elif n < need.recommended:
        warnings.append(f"warning: metric {label!r} on dataset {ds.label!r}: {have}, fewer than "
                        f"the {need.recommended} recommended; its value is noisy and biased at "
                        "this count")


def _batch_problems(rows: list[Job], registries, suite: dict[str, _Dataset]) -> list[str]:
    """A batch larger than the training split, for every training the engine's loop runs
    (the rows' and those of the models they are built on)."""
    problems, seen = [], set()
    queue: list[tuple[str, Training]] = [(j.evaluation.dataset_label, j.training) for j in rows]
    while queue:
        label, training = queue.pop(0)
        queue += [(label, ref) for _, ref in training.refs]
        if training.config_fingerprint in seen:  # the seeds of one model: once
            continue
        seen.add(training.config_fingerprint)
        if overrides_fit(registries.models.get(training.model)):
            continue
        n, batch = suite[label].size("train"), training.budget.batch_size
        if batch > n:
            problems.append(f"model {training.label!r} on dataset {label!r}: batch_size = {batch} "
                            f"is larger than the training split ({n} items); set the budget's "
                            f"batch_size to at most {n}")
    return problems


#: Floats per sample the features of an image evaluation are estimated at: more than the
#: layers any shipped extractor gives together (Inception's 2,048 + 1,008 + 2,023 spatial).
IMAGE_FEATURE_FLOATS = 6144


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB"


def evaluation_sizes(info, num_samples: int) -> tuple[int, int]:
    """``(disk, memory)`` in bytes one evaluation of ``num_samples`` samples of ``info``'s
    data is estimated at: its sample store (uint8 images, float32 vectors), and the features
    the metrics hold (for vectors: the samples themselves, as the ``raw`` extractor's
    features and as the metrics that read samples whole)."""
    values = 1
    for s in info.shape:
        values *= int(s)
    disk = num_samples * values * (1 if info.kind == "image" else 4)
    floats = IMAGE_FEATURE_FLOATS if info.kind == "image" else 2 * values
    return disk, num_samples * 4 * floats


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system
        return None


def check_evaluation_sizes(rows: list[Job], datasets: dict[str, PreparedDataset], out_dir,
                           is_stored: Callable[[str], bool] = lambda fp: False) -> None:
    """Refuse, before anything trains, evaluations whose samples cannot fit on the output
    folder's disk (every row not stored yet, together), or whose features cannot fit in the
    temporary folder or in this machine's memory (one evaluation at a time), naming the
    numbers and what to lower."""
    todo = [j for j in rows if not is_stored(j.evaluation.fingerprint)]
    if not todo:
        return
    disk, largest = 0, (0, None)
    for job in todo:
        info = datasets[dataset_key(job.training.dataset)].info
        d, m = evaluation_sizes(info, job.evaluation.num_samples)
        disk += d
        if m > largest[0]:
            largest = (m, job)
    where = Path(out_dir)
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    problems = []
    if disk > free:
        problems.append(f"the samples of the {len(todo)} evaluation(s) to run take about "
                        f"{_gb(disk)} on disk (uint8 images, float32 vectors), but {where} has "
                        f"{_gb(free)} free; lower num_samples or free space")
    # Every evaluation writes its generated features to a temporary folder (the metrics read
    # them from there a block at a time); those that read them whole also hold them in memory.
    scratch = Path(tempfile.gettempdir())
    scratch_free = shutil.disk_usage(scratch).free
    if largest[0] > scratch_free:
        job = largest[1]
        problems.append(f"row {job.key}: the features of {job.evaluation.num_samples:,} samples "
                        f"take about {_gb(largest[0])} on disk in {scratch} (the temporary "
                        f"folder: set TMPDIR to move it), which has {_gb(scratch_free)} free; "
                        f"lower num_samples or free space")
    memory = _physical_memory()
    if memory is not None and largest[0] > memory:
        job = largest[1]
        problems.append(f"row {job.key}: {job.evaluation.num_samples:,} samples need about "
                        f"{_gb(largest[0])} of memory for their features (this machine has "
                        f"{_gb(memory)}); lower num_samples")
    if problems:
        raise ConfigError("; ".join(problems))
