"""The worker side of a run: build the dataset and the model, train (or load), evaluate.

:func:`setup_worker` runs once per worker process and :func:`run_job` once per
:class:`~genbench.plan.jobs.Job`; both take only picklable arguments, so any executor can call
them. A worker never touches the results database: it returns a
:class:`~genbench.results.store.JobRecord` (a row) or a :class:`~genbench.results.store.TrainingRecord` (a
referenced model's training) and the driver stores it.
"""

from __future__ import annotations

import csv
import functools
import platform
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from genbench.execution.checkpoints import recover
from genbench.registry.parameters import group_params
from genbench.api.data import BenchmarkDataset, DataInfo, LazySplit
from genbench.api.errors import CheckpointCorruptError, GenbenchError
from genbench.evaluation.context import EvalContext
from genbench.evaluation.scoring import failed_on_samples, make_dataset, score_metrics
from genbench.evaluation.records import PENDING
from genbench.results.figures import save_sample_grid
from genbench.results.sample_figures import shown_samples
from genbench.registry.identity import canonical_hash, code_identity, environment_versions
from genbench.evaluation.sample_shards import draw_part, finished_part
from genbench.plan.jobs import DatasetSource, Job, Training, shard_dirname
from genbench.results.records import (JobRecord, MetricRecord, SampleShardRecord, TimingRecord,
                                      TrainingRecord)
from genbench.execution.devices import device_description, resolve_device, seed_everything
from genbench.execution.training import Trainer


class TrainingUnavailableError(GenbenchError):
    """A finished checkpoint a job needs is not there (deleted, or its training failed)."""


@dataclass
class PreparedDataset:
    """A built dataset, its info, and its splits as tensors (materialised once per process)."""

    dataset: BenchmarkDataset
    info: DataInfo
    _tensors: dict = field(default_factory=dict, repr=False)

    def tensors(self, split: str):
        return self.lazy(split).load()

    def lazy(self, split: str) -> LazySplit:
        """The split, read whole on first use (once per process), else batch by batch by
        the feature extractors."""
        if split not in self._tensors:
            self._tensors[split] = LazySplit(self.dataset, split)
        return self._tensors[split]


def build_dataset(registries, source: DatasetSource) -> BenchmarkDataset:
    """Instantiate a dataset, passing ``root``/``download`` to classes that take them."""
    return make_dataset(registries, source.name, source.params, label=source.label,
                        root=source.root, download=source.download)


@dataclass
class WorkerContext:
    """What every worker of a run shares; sent once per worker."""

    registries: Any
    out_dir: str
    cache_dir: str
    device: str = "auto"
    progress: bool | None = None
    #: Processes that train each model data-parallel (see :mod:`genbench.execution.distributed`).
    nproc: int = 1
    #: Datasets the driver already built, by source (only for in-process executors).
    datasets: dict = field(default_factory=dict)


@dataclass
class WorkerState:
    """One worker's process-wide state: its device and the datasets it has built."""

    context: WorkerContext
    device: torch.device
    datasets: dict = field(default_factory=dict)

    @property
    def registries(self):
        return self.context.registries

    def dataset(self, source: DatasetSource) -> PreparedDataset:
        key = dataset_key(source)
        if key not in self.datasets:
            prepared = self.context.datasets.get(key)
            if prepared is None:
                ds = build_dataset(self.registries, source)
                prepared = PreparedDataset(ds, ds.info())
            if prepared.info.fingerprint != source.fingerprint:
                raise GenbenchError(
                    f"dataset {source.label!r} changed on disk since the run was planned "
                    f"(fingerprint {prepared.info.fingerprint} != {source.fingerprint}); run again")
            self.datasets[key] = prepared
        return self.datasets[key]


def dataset_key(source: DatasetSource) -> str:
    """The key under which :class:`WorkerState` caches a dataset built from ``source``."""
    return canonical_hash([source.name, source.params, source.root, source.download])


def setup_worker(context: WorkerContext, index: int) -> WorkerState:
    """Resolve the worker's device (on CUDA, worker ``index`` takes GPU ``index % count``)."""
    device = resolve_device(context.device)
    if device.type == "cuda" and device.index is None and torch.cuda.device_count() > 1:
        device = torch.device("cuda", index % torch.cuda.device_count())
    return WorkerState(context, device)


def run_job(state: WorkerState, job: Job) -> JobRecord | TrainingRecord | SampleShardRecord | TimingRecord:
    """Train the job's model (a training job), or load it and evaluate it (a row), or draw
    one shard of a row's samples (a sample job), with the job's threads when it has its own."""
    if job.threads is None or job.threads == torch.get_num_threads():
        return _run_job(state, job)
    before = torch.get_num_threads()
    torch.set_num_threads(job.threads)
    try:
        return _run_job(state, job)
    finally:
        torch.set_num_threads(before)


def _run_job(state: WorkerState, job: Job) -> JobRecord | TrainingRecord | SampleShardRecord | TimingRecord:
    if job.evaluation is None:
        return _train(state, job.training, job.retrain, job.key)
    if job.shard is not None:
        return _sample_shard(state, job)
    if job.timing is not None:
        return _time_row(state, job)
    t0 = time.perf_counter()
    record = _row_record(state, job)
    notes: list[str] = []  # checkpoints set aside while loading: the driver prints them
    try:
        model, loaded = _load_trained(state, job.training, notes)
        record.train_steps, record.train_seconds = loaded.steps, loaded.seconds
        record.provenance.update(parameters=model.num_parameters(), train=_train_provenance(loaded))
        source = getattr(model, "provenance", None)
        if callable(source):  # where a model made elsewhere came from (files, their hash)
            record.provenance["model_source"] = source()
        record.metrics, timings, sample_failure, noise = _evaluate(state, job, model)
        record.provenance["timings"] = timings
        # "per sample", or "one generator": the samples then depend on eval_batch_size
        record.provenance["noise"] = noise
        if sample_failure is not None:
            record.provenance["sample_failure"] = sample_failure
        extractors = {m.details.get("feature_extractor"): m.details.get("weights_sha256")
                      for m in record.metrics if m.details.get("feature_extractor")}
        if extractors:
            record.provenance["feature_extractors"] = extractors
        record.status = "ok"
    except Exception as exc:  # the suite goes on; the error is kept
        record.error = f"{type(exc).__name__}: {exc}"
        record.provenance["traceback"] = traceback.format_exc(limit=20)
    if notes:
        record.provenance["warnings"] = notes
    record.total_seconds = time.perf_counter() - t0
    record.provenance["total_seconds"] = record.total_seconds
    return record


def failed_record(job: Job, error: str, *, status: str = "failed",
                  diverged_step: int | None = None) -> JobRecord | TrainingRecord:
    """The record of a job that produced none itself (its worker died, or a training it
    needed failed or diverged): its identity, ``status`` and ``error``."""
    t = job.training
    if job.evaluation is None:
        return TrainingRecord(t.fingerprint, t.dataset.name, t.model, t.label, t.seed, status,
                              t.run_dir, error=error, diverged_step=diverged_step)
    if job.shard is not None:
        return SampleShardRecord(job.key, job.evaluation.fingerprint, *job.shard, status, error)
    record = _row_record(None, job)
    record.status, record.error, record.diverged_step = status, error, diverged_step
    if status == "diverged":
        record.metrics = [MetricRecord(m.label, "skipped", message="model diverged")
                          for m in job.evaluation.metrics]
    return record


# -- training -------------------------------------------------------------------------

def _train_provenance(result) -> dict[str, Any]:
    return {"steps": result.steps, "seconds": result.seconds, "resumed_from": result.resumed_from,
            "stopped_by_time": result.stopped_by_time, "final_losses": result.losses}


def _train(state: WorkerState, training: Training, retrain: bool, description: str) -> TrainingRecord:
    """Train ``training`` to its finished checkpoint (a saved one is resumed)."""
    record = TrainingRecord(training.fingerprint, training.dataset.name, training.model,
                            training.label, training.seed, "failed", training.run_dir)
    prov = record.provenance
    prov.update({"train_fingerprint": training.fingerprint, "budget": training.budget.to_dict(),
                 "model_params": training.params, "seed": training.seed,
                 "data_fingerprint": training.dataset.fingerprint,
                 "code": {"model": code_identity(state.registries.models.get(training.model))},
                 "references": _references(training), "versions": environment_versions(),
                 "device": device_description(state.device), "threads": torch.get_num_threads()})
    if state.context.nproc > 1:  # data-parallel: threads are per rank process
        prov.update(nproc=state.context.nproc,
                    threads=max(1, torch.get_num_threads() // state.context.nproc))
    notes: list[str] = []  # checkpoints set aside: the driver prints them
    try:
        model, trainer, data = _build(state, training, description, notes)
        if retrain:
            trainer.discard_checkpoint()
        try:
            result = _fit(state, training, description, model, trainer, data)
        except CheckpointCorruptError as exc:  # a damaged checkpoint to resume from
            notes.append(recover(exc, training.key))
            model, trainer, data = _build(state, training, description, notes)
            result = _fit(state, training, description, model, trainer, data)
    except Exception as exc:
        record.error = f"{type(exc).__name__}: {exc}"
        prov["traceback"] = traceback.format_exc(limit=20)
        return record
    finally:
        if notes:
            prov["warnings"] = notes
    _write_history(Path(state.context.out_dir) / training.run_dir / "losses.csv", result.history)
    record.train_steps, record.train_seconds = result.steps, result.seconds
    prov.update(parameters=model.num_parameters(), train=_train_provenance(result))
    if result.status == "diverged":
        record.status, record.diverged_step = "diverged", result.diverged_step
        record.error = f"loss not finite at step {result.diverged_step}: {result.losses}"
        if result.preview_path:  # the last finite samples of a model that keeps a preview
            prov["preview"] = result.preview_path
    else:
        record.status = "ok"
    return record


def _fit(state: WorkerState, training: Training, description: str, model, trainer, data):
    """``trainer.fit`` in this process, or on ``nproc`` data-parallel processes."""
    split = data.dataset.split("train")
    if state.context.nproc == 1:
        return trainer.fit(model, split, training.budget)
    from genbench.execution.distributed import fit_data_parallel

    # each rank builds its own copy; the driver's prepared datasets stay here
    build = functools.partial(_rank_build, replace(state.context, datasets={}), training,
                              description)
    return fit_data_parallel(build, trainer, model, split, training.budget, state.context.nproc)


def _rank_build(context: WorkerContext, training: Training, description: str,
                device: torch.device):
    """A data-parallel rank's model, trainer and training split, built as :func:`_build`
    builds them, on ``device``."""
    model, trainer, data = _build(WorkerState(context, device), training, description, [])
    return model, trainer, data.dataset.split("train")


def _build(state: WorkerState, training: Training, description: str, notes: list[str]):
    """``training``'s model (its referenced models loaded, trained), its trainer and data;
    warnings about checkpoints set aside on the way are appended to ``notes``."""
    data = state.dataset(training.dataset)
    refs = {key: _load_trained(state, ref, notes)[0].eval() for key, ref in training.refs}
    cls = state.registries.models.get(training.model)
    seed_everything(training.seed)
    model = cls(data.info, **group_params(cls, training.params), **refs)
    run_dir = Path(state.context.out_dir) / training.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(state.device, seed=training.seed, checkpoint_path=run_dir / "checkpoint.pt",
                      fingerprint=training.fingerprint, progress=state.context.progress,
                      description=description)
    return model, trainer, data


def _load_trained(state: WorkerState, training: Training, notes: list[str]):
    """``training``'s model as trained, from its finished checkpoint, never trained here,
    unless that checkpoint does not load: then it is set aside (a warning in ``notes``) and
    the model trained again from scratch, so that the job can still run."""
    model, trainer, data = _build(state, training, training.key, notes)
    try:
        result = trainer.load_finished(model, data.dataset.split("train"), training.budget)
    except CheckpointCorruptError as exc:
        notes.append(recover(exc, training.key))
        model, trainer, data = _build(state, training, training.key, notes)
        result = trainer.fit(model, data.dataset.split("train"), training.budget)
        _write_history(Path(state.context.out_dir) / training.run_dir / "losses.csv", result.history)
        if result.status != "ok":
            raise TrainingUnavailableError(
                f"{training.label!r} (training {training.fingerprint[:8]}) was trained again "
                f"after its checkpoint was set aside, and diverged at step {result.diverged_step}")
    if result is None:
        raise TrainingUnavailableError(
            f"{training.label!r} (training {training.fingerprint[:8]}) has no finished checkpoint "
            f"at {trainer.checkpoint_path}; run the suite again to train it")
    return model, result


def _references(training: Training) -> dict[str, Any]:
    return {k: {"model": r.model, "params": r.params, "train_fingerprint": r.fingerprint,
                "references": _references(r)} for k, r in training.refs}


def _write_history(path: Path, history: list[dict[str, float]]) -> None:
    if not history:
        return
    keys = list(dict.fromkeys(k for row in history for k in row))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)


# -- evaluation -----------------------------------------------------------------------

def _row_record(state: WorkerState | None, job: Job) -> JobRecord:
    ev, t = job.evaluation, job.training
    family, device = "", None
    prov: dict[str, Any] = {}
    if state is not None:
        model_cls = state.registries.models.get(t.model)
        family = model_cls.family or ""
        device = device_description(state.device)
        prov.update({
            "versions": environment_versions(), "device": device, "platform": platform.platform(),
            "threads": torch.get_num_threads(),
            "code": {"model": code_identity(model_cls),
                     "dataset": code_identity(state.registries.datasets.get(t.dataset.name)),
                     "metrics": {m.label: code_identity(state.registries.metrics.get(m.name))
                                 for m in ev.metrics}},
        })
    prov.update({
        "spec_hash": ev.spec_hash, "spec_source": ev.spec_source,
        "config_hash": canonical_hash({"model": t.model, "params": t.params}),
        "train_fingerprint": t.fingerprint, "seed": t.seed, "model_params": t.params,
        "references": _references(t), "dataset_params": t.dataset.params,
        "data_fingerprint": t.dataset.fingerprint, "budget": t.budget.to_dict(),
        "num_samples": ev.num_samples, "sampling": ev.sampling,
    })
    if ev.reference_file is not None:
        prov["reference_file"] = ev.reference_file
    return JobRecord(
        fingerprint=ev.fingerprint, config_fingerprint=ev.config_fingerprint, job_key=job.key,
        suite=ev.suite, dataset=ev.dataset_label, dataset_name=t.dataset.name,
        model=ev.model_label, model_name=t.model, model_family=family, seed=t.seed,
        status="failed", provenance=prov, device=device, num_samples=ev.num_samples,
        run_dir=t.run_dir)


def _eval_context(state: WorkerState, job: Job, model, **kwargs) -> EvalContext:
    """The evaluation context of ``job``'s row for ``model``; ``kwargs`` say which samples."""
    ev, t = job.evaluation, job.training
    data = state.dataset(t.dataset)
    return EvalContext(
        model=model, model_name=ev.model_label, data_info=data.info,
        train=data.lazy("train"), test=data.lazy("test"), device=state.device, seed=t.seed,
        cache_dir=Path(state.context.cache_dir), feature_extractor=ev.feature_extractor,
        feature_weights=ev.feature_weights, batch_size=ev.batch_size,
        registries=state.registries, sampling=dict(ev.sampling),
        reference_file=ev.reference_file, protocol=ev.protocol, **kwargs)


def _time_row(state: WorkerState, job: Job) -> TimingRecord:
    """The row's metrics that are timed alone (:attr:`genbench.Metric.timed_alone`), on the
    model loaded again, with the row's own timings as their budget."""
    ev, t = job.evaluation, job.training
    record = TimingRecord(job.key, ev.fingerprint, [], "failed")
    notes: list[str] = []
    t0 = time.perf_counter()
    try:
        model, _ = _load_trained(state, t, notes)
        timings = dict(job.timing or {})
        noise = timings.pop("noise", "per sample")
        sample_failure = timings.pop("sample_failure", None)
        ctx = _eval_context(state, job, model, num_samples=ev.num_samples, timings=timings)
        ctx.noise = noise  # the row's samples found how the model takes its noise
        metrics = [(m.label, cls, m.params) for m in ev.metrics
                   if (cls := state.registries.metrics.get(m.name)).timed_alone]
        if sample_failure is not None:  # as for every metric of the row that needs samples
            record.metrics = [failed_on_samples(label, cls, sample_failure)
                              for label, cls, _ in metrics]
        else:
            record.metrics, _ = score_metrics(ctx, metrics)
        record.status = "ok"
    except Exception as exc:  # the row keeps its other metrics; the timing is recorded failed
        record.error = f"{type(exc).__name__}: {exc}"
        record.provenance["traceback"] = traceback.format_exc(limit=20)
    if notes:
        record.provenance["warnings"] = notes
    record.provenance.update(threads=torch.get_num_threads(), phase="final",
                             seconds=time.perf_counter() - t0)
    return record


def _sample_shard(state: WorkerState, job: Job) -> SampleShardRecord:
    """Draw and embed the shard ``job.shard`` of the row's samples into the row's
    ``samples/`` folder (:mod:`genbench.evaluation.sample_shards`); one finished by an
    earlier, interrupted run is kept."""
    ev, t = job.evaluation, job.training
    start, stop = job.shard
    record = SampleShardRecord(job.key, ev.fingerprint, start, stop, "failed")
    folder = Path(state.context.out_dir) / t.run_dir / ev.dirname / "samples" / shard_dirname(start, stop)
    done = None if job.retrain else finished_part(folder, ev.fingerprint, start, stop)
    if done is not None:
        record.status, record.reused, record.seconds = "ok", True, done.get("seconds")
        return record
    notes: list[str] = []
    try:
        model, _ = _load_trained(state, t, notes)
        ctx = _eval_context(state, job, model, num_samples=stop - start, sample_dir=folder,
                            first_sample=start, shard_of=ev.num_samples)
        part = draw_part(ctx, ev.fingerprint)
        record.status, record.seconds = "ok", part["seconds"]
    except Exception as exc:  # the row that needs it fails, naming it
        record.error = f"{type(exc).__name__}: {exc}"
        record.provenance["traceback"] = traceback.format_exc(limit=20)
    if notes:
        record.provenance["warnings"] = notes
    return record


def _evaluate(state: WorkerState, job: Job, model) -> tuple[list[MetricRecord], dict, str | None, str]:
    """Every metric of ``job`` on ``model``: ``(records, timings, why the samples are unusable
    or None, how the noise was drawn)``."""
    ev, t = job.evaluation, job.training
    data = state.dataset(t.dataset)
    # Evaluations of one training (another sampling setting, sample count or suite) keep
    # their own samples beside its checkpoint, in a sample store (uint8 images).
    eval_dir = Path(state.context.out_dir) / t.run_dir / ev.dirname
    ctx = _eval_context(
        state, job, model, num_samples=ev.num_samples, sample_dir=eval_dir / "samples",
        # drawn by sample jobs (eval_shards): merged, not drawn again
        sample_parts=None if ev.shards <= 1 else tuple(
            eval_dir / "samples" / shard_dirname(a, b) for a, b in ev.shard_ranges()))
    # Generated once, shared by every metric. A model whose samples hold NaN or infinity gets
    # each sample-based metric recorded as failed with that reason; the others still run.
    sample_failure = ctx.sample_failure
    if sample_failure is None:
        (eval_dir / "samples.pt").unlink(missing_ok=True)  # an older genbench's copy
        save_sample_grid(shown_samples(ctx.sample_store), data.info, eval_dir / "samples.png",
                         reference=ctx.test[0] if data.info.kind == "vector" else None)
    metrics = [(m.label, state.registries.metrics.get(m.name), m.params) for m in ev.metrics]
    scored, metric_seconds = score_metrics(ctx, [m for m in metrics if not m[1].timed_alone])
    # a timing waits for the run's final phase (a timing job), where nothing else runs
    by_label = {r.metric: r for r in scored}
    records = [by_label.get(label) or MetricRecord(
        label, PENDING, message="timed in the run's final phase, when nothing else runs",
        higher_is_better=dict(cls.higher_is_better), primary=cls.primary)
        for label, cls, _ in metrics]
    timings = dict(ctx.timings)
    timings["metrics"] = metric_seconds
    return records, timings, sample_failure, ctx.noise
