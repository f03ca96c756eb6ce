"""The runner: suite spec -> jobs -> executor -> results store.

Every job (dataset x model x seed) is trained, sampled once, measured by every metric and
written to the store in one transaction. A job whose fingerprint is stored is skipped, so
an interrupted suite resumes where it stopped; a job that fails is recorded and the suite
goes on.
"""

from __future__ import annotations

import csv
import importlib.metadata
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from . import __version__
from .config import validate_config
from .data import BenchmarkDataset, DataInfo
from .errors import ConfigError, GenbenchError
from .evaluation import EvalContext, choose_feature_extractor
from .figures import save_sample_grid
from .metric import MetricResult
from .paths import cache_dir as default_cache_dir
from .paths import data_root as default_data_root
from .spec import Entry, SuiteSpec, canonical_hash
from .store import JobRecord, MetricRecord, ResultStore
from .training import Budget, Trainer, device_description, resolve_device, seed_everything


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment_versions() -> dict[str, str | None]:
    return {"genbench": __version__, "torch": torch.__version__,
            "torch-fidelity": _version("torch-fidelity"), "numpy": _version("numpy"),
            "python": platform.python_version()}


def evaluation_dirname(fingerprint: str) -> str:
    """The folder, inside a job's run directory, of one evaluation's samples."""
    return f"eval-{fingerprint[:8]}"


def safe_dirname(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.+=" else "_" for c in text)


@dataclass
class PreparedDataset:
    """A built dataset, its info, and its splits as tensors (materialised once per run)."""

    entry: Entry
    dataset: BenchmarkDataset
    info: DataInfo
    _tensors: dict = field(default_factory=dict, repr=False)

    def tensors(self, split: str):
        if split not in self._tensors:
            self._tensors[split] = self.dataset.tensors(split)
        return self._tensors[split]


@dataclass
class Job:
    """One dataset x model x seed, with everything needed to run and identify it."""

    data: PreparedDataset
    model: Entry
    seed: int
    budget: Budget
    metrics: tuple[Entry, ...]
    train_fingerprint: str
    fingerprint: str
    #: The fingerprint without the seed: seeds of one configuration share it.
    config_fingerprint: str = ""

    @property
    def key(self) -> str:
        return f"{self.data.entry.label}/{self.model.label}/seed{self.seed}"

    @property
    def dirname(self) -> str:
        # The training fingerprint keeps two configurations under one label (another suite,
        # another budget) from overwriting each other's checkpoints and samples.
        return safe_dirname(f"{self.data.entry.label}__{self.model.label}__seed{self.seed}"
                            f"__{self.train_fingerprint[:8]}")


@dataclass
class SkippedPair:
    dataset: str
    model: str
    reason: str


@dataclass
class SuiteReport:
    """What a run did: stored job records, jobs skipped as already stored, impossible pairs."""

    ran: list[JobRecord] = field(default_factory=list)
    already_stored: list[str] = field(default_factory=list)
    impossible: list[SkippedPair] = field(default_factory=list)
    #: Fingerprints of every job of the suite, run now or found stored: its leaderboard.
    fingerprints: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[JobRecord]:
        return [j for j in self.ran if j.status == "failed"]

    @property
    def metric_failures(self) -> list[tuple[str, MetricRecord]]:
        return [(j.job_key, m) for j in self.ran for m in j.metrics if m.status == "failed"]


class LocalExecutor:
    """Runs jobs one after another in this process."""

    def map(self, fn: Callable[[Job], Any], jobs: Iterable[Job]):
        for job in jobs:
            yield fn(job)


def build_dataset(registries, entry: Entry, spec: SuiteSpec,
                  data_root: str | None = None, download: bool | None = None) -> BenchmarkDataset:
    """Instantiate a dataset entry, passing ``root``/``download`` to classes that take them."""
    from .config import hyperparameters

    cls = registries.datasets.get(entry.name)
    params = validate_config(cls, entry.params, f"dataset {entry.label!r}")
    accepted = hyperparameters(cls)
    if "root" in accepted and "root" not in params:
        params["root"] = str(default_data_root(data_root or spec.data_root))
    if "download" in accepted and "download" not in params:
        params["download"] = spec.download if download is None else download
    return cls(**params)


def chosen_extractor(spec: SuiteSpec, info: DataInfo) -> str | None:
    """The feature extractor of a run on this data (see :func:`choose_feature_extractor`)."""
    return choose_feature_extractor(info, spec.feature_extractor)


def _extractor_identity(spec: SuiteSpec, registries, info: DataInfo) -> dict[str, Any]:
    name = chosen_extractor(spec, info)
    cls = registries.extractors.get(name) if name in registries.extractors else None
    return {"name": name, "weights_sha256": getattr(cls, "weights_sha256", None),
            "weights_path": spec.feature_weights}


def expand_jobs(spec: SuiteSpec, registries, datasets: list[PreparedDataset],
                device: torch.device) -> tuple[list[Job], list[SkippedPair]]:
    """model x dataset x seed; pairs a model cannot train on are returned with the reason.

    Two fingerprints identify a job: the training one (data content, model and
    hyper-parameters, seed, budget, device type) names its checkpoint; the job one adds
    everything that changes the evaluation (metrics and their options, sample count and
    batch, the feature extractor and its recorded weights hash).
    """
    jobs, impossible = [], []
    spec_models = list(spec.models) + spec.baseline_entries(registries)
    metrics_part = [m.to_dict() for m in spec.metrics]
    for pd_ in datasets:
        extractor = _extractor_identity(spec, registries, pd_.info)
        for entry in spec_models:
            cls = registries.models.get(entry.name)
            reason = cls.supports(pd_.info)
            if reason is not None:
                impossible.append(SkippedPair(pd_.entry.label, entry.label, reason))
                continue
            budget = entry.budget or spec.budget
            for seed in spec.seeds:
                train_fp = canonical_hash({
                    "dataset": pd_.entry.name, "dataset_params": pd_.entry.params,
                    "data": pd_.info.fingerprint, "model": entry.name, "params": entry.params,
                    "seed": seed, "budget": budget.outcome_dict(), "device": device.type,
                })
                evaluation = {
                    "metrics": metrics_part, "num_samples": spec.num_samples,
                    "eval_batch_size": spec.eval_batch_size, "extractor": extractor,
                    "dataset_label": pd_.entry.label, "model_label": entry.label,
                }
                fp = canonical_hash({"train": train_fp, **evaluation})
                config_fp = canonical_hash({
                    "dataset": pd_.entry.name, "dataset_params": pd_.entry.params,
                    "data": pd_.info.fingerprint, "model": entry.name, "params": entry.params,
                    "budget": budget.outcome_dict(), "device": device.type, **evaluation})
                jobs.append(Job(pd_, entry, seed, budget, spec.metrics, train_fp, fp, config_fp))
    return jobs, impossible


class SuiteRunner:
    """Runs a validated :class:`SuiteSpec` into ``out_dir`` (results.db, runs/, leaderboards/)."""

    def __init__(self, spec: SuiteSpec, out_dir: str | Path, registries, *, force: bool = False,
                 progress: bool | None = None, data_root: str | None = None,
                 download: bool | None = None, cache_dir: str | None = None,
                 echo: Callable[[str], None] = lambda s: print(s, file=sys.stderr)):
        spec.validate(registries)
        self.spec, self.registries, self.force, self.progress = spec, registries, force, progress
        self.out_dir = Path(out_dir)
        self.store = ResultStore(self.out_dir / "results.db")
        self.device = resolve_device(spec.device)
        self.data_root, self.download = data_root, download
        self.cache_dir = default_cache_dir(cache_dir)
        self.echo = echo

    def prepare(self) -> tuple[list[Job], list[SkippedPair]]:
        """Load every dataset, build every model once and run every metric's preflight, so
        that missing data or weights and rejected hyper-parameter values fail here, before
        anything trains; then expand the jobs."""
        datasets = []
        for entry in self.spec.datasets:
            ds = build_dataset(self.registries, entry, self.spec, self.data_root, self.download)
            datasets.append(PreparedDataset(entry, ds, ds.info()))
        jobs, impossible = expand_jobs(self.spec, self.registries, datasets, self.device)
        metrics = [self.spec.build_metric(self.registries.metrics.get(m.name), m.label, m.params)
                   for m in self.spec.metrics]
        checked = set()
        for job in jobs:
            info = job.data.info
            if (job.data.entry.label, job.model.label) not in checked:
                checked.add((job.data.entry.label, job.model.label))
                try:
                    self.registries.models.get(job.model.name)(info, **job.model.params)
                except ConfigError as exc:
                    msg = str(exc)
                    raise ConfigError(msg if job.model.label in msg
                                      else f"model {job.model.label!r}: {msg}") from None
            if job.data.entry.label not in checked:
                checked.add(job.data.entry.label)
                for metric in metrics:
                    if info.kind in metric.data_kinds:
                        metric.preflight(info, feature_extractor=chosen_extractor(self.spec, info),
                                         feature_weights=self.spec.feature_weights,
                                         registries=self.registries)
        return jobs, impossible

    def run(self, executor: LocalExecutor | None = None) -> SuiteReport:
        jobs, impossible = self.prepare()
        report = SuiteReport(impossible=impossible, fingerprints=[j.fingerprint for j in jobs])
        for pair in impossible:
            self.echo(f"skip {pair.dataset} x {pair.model}: {pair.reason}")
        todo = []
        for job in jobs:
            if not self.force and self.store.is_finished(job.fingerprint):
                report.already_stored.append(job.key)
            else:
                todo.append(job)
        if report.already_stored:
            self.echo(f"{len(report.already_stored)} job(s) already in {self.store.path}; "
                      "not run again (--force reruns them)")
        executor = executor or LocalExecutor()
        for i, record in enumerate(executor.map(self.run_job, todo), 1):
            self.store.write(record)
            report.ran.append(record)
            self.echo(f"[{i}/{len(todo)}] {record.job_key}: {_summary(record)}")
        return report

    # -- one job ------------------------------------------------------------------------
    def run_job(self, job: Job) -> JobRecord:
        t0 = time.perf_counter()
        run_dir = self.out_dir / "runs" / job.dirname
        run_dir.mkdir(parents=True, exist_ok=True)
        model_cls = self.registries.models.get(job.model.name)
        info = job.data.info
        record = JobRecord(
            fingerprint=job.fingerprint, config_fingerprint=job.config_fingerprint,
            job_key=job.key, suite=self.spec.name,
            dataset=job.data.entry.label, dataset_name=job.data.entry.name,
            model=job.model.label, model_name=job.model.name,
            model_family=model_cls.family or "", seed=job.seed, status="failed",
            provenance={}, device=device_description(self.device),
            num_samples=self.spec.num_samples, run_dir=run_dir.relative_to(self.out_dir).as_posix(),
        )
        prov = record.provenance
        prov.update({
            "spec_hash": self.spec.hash(), "spec_source": self.spec.source,
            "config_hash": canonical_hash({"model": job.model.name, "params": job.model.params}),
            "train_fingerprint": job.train_fingerprint, "seed": job.seed,
            "model_params": job.model.params, "dataset_params": job.data.entry.params,
            "data_fingerprint": info.fingerprint, "budget": job.budget.to_dict(),
            "versions": environment_versions(), "device": record.device,
            "num_samples": self.spec.num_samples, "platform": platform.platform(),
        })
        try:
            seed_everything(job.seed)
            model = model_cls(info, **job.model.params)
            prov["parameters"] = model.num_parameters()
            trainer = Trainer(self.device, seed=job.seed, checkpoint_path=run_dir / "checkpoint.pt",
                              fingerprint=job.train_fingerprint, progress=self.progress,
                              description=job.key)
            if self.force:
                trainer.discard_checkpoint()
            result = trainer.fit(model, job.data.dataset.split("train"), job.budget)
            record.train_steps, record.train_seconds = result.steps, result.seconds
            prov["train"] = {"steps": result.steps, "seconds": result.seconds,
                             "resumed_from": result.resumed_from,
                             "stopped_by_time": result.stopped_by_time,
                             "final_losses": result.losses}
            _write_history(run_dir / "losses.csv", result.history)
            if result.status == "diverged":
                record.status, record.diverged_step = "diverged", result.diverged_step
                record.error = f"loss not finite at step {result.diverged_step}: {result.losses}"
                record.metrics = [MetricRecord(m.label, "skipped", message="model diverged")
                                  for m in job.metrics]
            else:
                record.metrics, timings = self._evaluate(job, model, run_dir)
                prov["timings"] = timings
                extractors = {m.details.get("feature_extractor"): m.details.get("weights_sha256")
                              for m in record.metrics if m.details.get("feature_extractor")}
                if extractors:
                    prov["feature_extractors"] = extractors
                record.status = "ok"
        except (Exception, GenbenchError) as exc:  # the suite goes on; the error is kept
            record.status = "failed"
            record.error = f"{type(exc).__name__}: {exc}"
            prov["traceback"] = traceback.format_exc(limit=20)
        record.total_seconds = time.perf_counter() - t0
        prov["total_seconds"] = record.total_seconds
        return record

    def _evaluate(self, job: Job, model, run_dir: Path) -> tuple[list[MetricRecord], dict]:
        ctx = EvalContext(
            model=model, model_name=job.model.label, data_info=job.data.info,
            train=job.data.tensors("train"), test=job.data.tensors("test"), device=self.device,
            seed=job.seed, num_samples=self.spec.num_samples, cache_dir=self.cache_dir,
            feature_extractor=chosen_extractor(self.spec, job.data.info),
            feature_weights=self.spec.feature_weights, batch_size=self.spec.eval_batch_size,
            registries=self.registries,
        )
        samples = ctx.samples  # generated once, shared by every metric
        # Evaluations of one training (another sample count, another suite) keep their own.
        eval_dir = run_dir / evaluation_dirname(job.fingerprint)
        eval_dir.mkdir(exist_ok=True)
        torch.save(samples, eval_dir / "samples.pt")
        save_sample_grid(samples, job.data.info, eval_dir / "samples.png", reference=ctx.test[0])
        records, metric_seconds = [], {}
        for entry in job.metrics:
            cls = self.registries.metrics.get(entry.name)
            base = MetricRecord(entry.label, "skipped", higher_is_better=dict(cls.higher_is_better),
                                primary=cls.primary)
            t0 = time.perf_counter()
            try:
                metric = cls(**entry.params)
                reason = metric.skip_reason(ctx)
                if reason is not None:
                    base.message = reason
                else:
                    out = metric.compute(ctx)
                    if not isinstance(out, MetricResult):
                        out = MetricResult(dict(out))
                    base.values = {k: float(v) for k, v in out.values.items()}
                    base.details, base.status = out.details, "ok"
            except Exception as exc:  # a failing metric is recorded; the others still run
                base.status, base.message = "failed", f"{type(exc).__name__}: {exc}"
                base.details = {"traceback": traceback.format_exc(limit=20)}
            metric_seconds[entry.label] = time.perf_counter() - t0
            records.append(base)
        timings = dict(ctx.timings)
        timings["metrics"] = metric_seconds
        return records, timings


def _summary(record: JobRecord) -> str:
    if record.status == "failed":
        return f"FAILED: {record.error}"
    if record.status == "diverged":
        return f"diverged at step {record.diverged_step}"
    parts = [f"trained {record.train_steps} steps in {record.train_seconds:.1f}s"
             if record.train_steps else f"fitted in {record.train_seconds:.1f}s"]
    for m in record.metrics:
        if m.status == "ok" and m.primary in m.values:
            parts.append(f"{m.metric}.{m.primary}={m.values[m.primary]:.4g}")
        elif m.status == "failed":
            parts.append(f"{m.metric} FAILED ({m.message})")
    return "; ".join(parts)


def _write_history(path: Path, history: list[dict[str, float]]) -> None:
    if not history:
        return
    keys = list(dict.fromkeys(k for row in history for k in row))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)


def run_suite(spec: SuiteSpec, out_dir: str | Path, registries=None, **kwargs) -> SuiteReport:
    """Validate and run ``spec`` into ``out_dir``; see :class:`SuiteRunner` for options."""
    if registries is None:
        from .plugin_manager import default_registries

        registries = default_registries()
    return SuiteRunner(spec, out_dir, registries, **kwargs).run()
