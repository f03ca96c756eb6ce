"""The runner (the driver): suite spec -> plan -> executor -> results store.

Planning expands the spec into rows (dataset x model entry x sampling setting x seed, see
:mod:`genbench.plan.jobs`) and schedules them with the trainings they need. An executor runs
the jobs (worker processes by default, see :mod:`genbench.api.executor`); the driver alone
writes the store, each finished job in one transaction, in completion order. A row whose
fingerprint is stored is skipped, so an interrupted suite resumes where it stopped; a job
that fails, or whose worker dies, is recorded as failed and the suite goes on.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from genbench.execution.checkpoints import recover
from genbench.api.errors import CheckpointCorruptError, ConfigError, OutputNotWritableError
from genbench.api.executor import Executor, ExecutorRequest
from genbench.plan.jobs import DatasetSource, Job, Training, check_board_names, expand_rows
from genbench.execution.locking import OutputLock, check_lock_files
from genbench.api.paths import cache_dir as default_cache_dir
from genbench.api.paths import check_writable_dir
from genbench.api.paths import data_root as default_data_root
from genbench.execution.preflight import check_evaluation_sizes, check_suite
from genbench.plan.scheduling import schedule, thread_shares
from genbench.plan.spec import SuiteSpec
from genbench.evaluation.records import PENDING
from genbench.results.records import (JobRecord, MetricRecord, SampleShardRecord, TimingRecord,
                                      TrainingRecord)
from genbench.results.store import ResultStore
from genbench.execution.checkpoints import checkpoint_finished, finished_state
from genbench.execution.devices import resolve_device
from genbench.execution.training import overrides_fit
from genbench.execution.worker import (PreparedDataset, WorkerContext, build_dataset, dataset_key, failed_record,
                     run_job, setup_worker)


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
    #: Fingerprints of every row of the suite, run now or found stored: its leaderboard.
    fingerprints: list[str] = field(default_factory=list)
    #: Trainings run now (each once, whatever number of rows evaluates it).
    trainings: list[TrainingRecord] = field(default_factory=list)
    #: What the run's ``publish`` step returned (see :meth:`SuiteRunner.run`).
    published: Any = None

    @property
    def failed(self) -> list[JobRecord]:
        return [j for j in self.ran if j.status == "failed"]

    @property
    def metric_failures(self) -> list[tuple[str, MetricRecord]]:
        return [(j.job_key, m) for j in self.ran for m in j.metrics if m.status == "failed"]


class SuiteRunner:
    """Runs a validated :class:`SuiteSpec` into ``out_dir`` (results.db, runs/, leaderboards/).

    ``jobs``: worker processes (``None``: one per available core on the CPU, one per GPU on
    CUDA; ``0``: run in this process). ``threads``: torch threads for every job (``None``: each
    job's share of the cores by the plan, :func:`~genbench.plan.scheduling.thread_shares`,
    for executors that declare their :attr:`~genbench.Executor.cores`). ``wait``: when
    another process holds the output folder's lock, wait for it (else raise
    OutputInUseError; see :meth:`run`). The spec's ``executor`` picks where jobs run
    (``registries.executors``, filled by the ``register_executors`` hook: ``local`` worker
    processes, or ``ray`` tasks, for which ``jobs`` caps the jobs in flight) and its
    ``nproc`` how many processes train each model (:mod:`genbench.execution.distributed`).
    """

    def __init__(self, spec: SuiteSpec, out_dir: str | Path, registries, *, force: bool = False,
                 progress: bool | None = None, data_root: str | None = None,
                 download: bool | None = None, cache_dir: str | None = None,
                 jobs: int | None = None, threads: int | None = None, wait: bool = True,
                 echo: Callable[[str], None] = lambda s: print(s, file=sys.stderr)):
        spec = spec.with_protocol(registries)
        spec.validate(registries)
        for name, value in (("jobs", jobs), ("threads", threads)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < (0 if name == "jobs" else 1)):
                raise ConfigError(f"{name} must be an integer >= {0 if name == 'jobs' else 1}, got {value!r}")
        self.spec, self.registries, self.force, self.progress = spec, registries, force, progress
        self.out_dir = Path(out_dir)
        # An existing store is opened (and checked) now; a new one is created only when the
        # suite passed its checks, so a rejected suite leaves nothing in a new --out.
        path = self.out_dir / "results.db"
        self._results = ResultStore(path) if path.exists() else None
        if self._results is None:
            check_writable_dir(self.out_dir, "output folder")
        # leaderboard files that would overwrite each other's, or another stored suite's
        check_board_names(spec, self._results.suite_names() if self._results is not None else ())
        check_lock_files(self.out_dir)
        self.device = resolve_device(spec.device)
        self.data_root, self.download = data_root, download
        self.cache_dir = default_cache_dir(cache_dir)
        _check_cache_dir(self.cache_dir)
        self.jobs, self.threads = jobs, threads
        # the executor's options and packages are checked here, before anything trains
        self.executor_class = registries.executors.get(spec.executor)
        self.executor_options = self.executor_class.make_options(spec.executor,
                                                                 spec.executor_options)
        self.executor_class.check_installed(spec.executor)
        self.echo = echo
        self.wait = wait

    @property
    def store(self) -> ResultStore:
        """The output folder's results database (created on first use)."""
        if self._results is None:
            self._results = ResultStore(self.out_dir / "results.db")
        return self._results

    # -- planning ---------------------------------------------------------------------
    def prepare(self) -> tuple[list[Job], list[SkippedPair], dict[str, PreparedDataset]]:
        """Load every dataset and expand the rows; then check, before anything trains,
        everything known without a trained model (see :mod:`genbench.execution.preflight`: models
        build, metrics apply somewhere and their weights are there, sample and split sizes
        suffice, batches fit) and print the metrics' skips and count warnings once."""
        root = str(default_data_root(self.data_root or self.spec.data_root))
        download = self.spec.download if self.download is None else self.download
        sources, prepared = [], {}
        for entry in self.spec.datasets:
            source = DatasetSource(entry.name, dict(entry.params), entry.label, root, download, None)
            ds = build_dataset(self.registries, source)
            info = ds.info()
            source = replace(source, fingerprint=info.fingerprint)
            sources.append((source, info))
            prepared[dataset_key(source)] = PreparedDataset(ds, info)
        rows, impossible = expand_rows(self.spec, self.registries, sources, self.device.type)
        for line in check_suite(self.spec, self.registries, rows, prepared).lines():
            self.echo(line)
        check_evaluation_sizes(rows, prepared, self.out_dir, is_stored=(
            self._results.is_finished if self._results is not None else lambda fp: False))
        return rows, [SkippedPair(*p) for p in impossible], prepared

    def _training_status(self, training: Training) -> str | None:
        """``"ok"`` when ``training``'s checkpoint is finished (models that refit instead of
        checkpointing always are), ``"diverged"`` when it diverged before, else ``None``.
        A finished checkpoint whose training is not stored ``ok`` (the run that trained it
        stopped before storing it: a full disk, a crash) is stored now, from the checkpoint."""
        cls = self.registries.models.get(training.model)
        if cls.refit_instead_of_checkpoint and overrides_fit(cls):
            return "ok"
        try:
            state = finished_state(self.out_dir / training.run_dir / "checkpoint.pt",
                                   training.fingerprint, raise_corrupt=True)
        except CheckpointCorruptError as exc:  # set aside; the training starts again
            self.echo(recover(exc, training.key))
            state = None
        status = self.store.training_status(training.fingerprint)
        if state is not None:
            if status != "ok":
                self._store_unrecorded(training, state)
            return "ok"
        return "diverged" if status == "diverged" else None

    def _store_unrecorded(self, training: Training, state: dict[str, Any]) -> None:
        """Store ``training`` as the finished checkpoint ``state`` says it went."""
        seconds = float(state.get("seconds", 0.0))
        record = TrainingRecord(
            training.fingerprint, training.dataset.name, training.model, training.label,
            training.seed, "ok", training.run_dir, train_steps=int(state.get("step", 0)),
            train_seconds=seconds)
        record.provenance.update({
            "train_fingerprint": training.fingerprint, "budget": training.budget.to_dict(),
            "model_params": training.params, "seed": training.seed,
            "data_fingerprint": training.dataset.fingerprint, "recorded_from": "checkpoint",
            "train": {"steps": record.train_steps, "seconds": seconds,
                      "stopped_by_time": bool(state.get("stopped_by_time", False)),
                      "final_losses": dict(state.get("losses") or {})}})
        self.store.write_training(record)
        self.echo(f"stored training {training.key} from its finished checkpoint (the run that "
                  "trained it stopped before storing it)")

    def default_executor(self, n_jobs: int) -> Executor:
        """The spec's executor (``local``: worker processes as ``jobs``/``threads`` say, in
        this process for ``jobs=0``; ``ray``: tasks on a Ray cluster) for ``n_jobs`` jobs."""
        return self.executor_class.from_request(ExecutorRequest(
            self.device.type, n_jobs, self.jobs, self.threads, self.executor_options,
            str(self.out_dir.absolute()), self.spec.nproc, self.spec.job_timeout))

    # -- running ----------------------------------------------------------------------
    def run(self, executor: Executor | None = None, *,
            publish: Callable[[SuiteReport], Any] | None = None) -> SuiteReport:
        """Prepare, then, holding the output folder's lock (waiting for another run that
        holds it, or with ``wait=False`` raising OutputInUseError), plan from the store as
        it is then, run and store; ``publish(report)`` (writing the leaderboard files, its
        return value kept as ``report.published``) runs under the same lock, so two runs
        never write those files at once."""
        rows, impossible, prepared = self.prepare()
        with OutputLock(self.out_dir, wait=self.wait, echo=self.echo):
            report = self._run(rows, impossible, prepared, executor)
            if publish is not None:
                report.published = publish(report)
            return report

    def _run(self, rows: list[Job], impossible: list[SkippedPair],
             prepared: dict[str, PreparedDataset], executor: Executor | None) -> SuiteReport:
        report = SuiteReport(impossible=impossible,
                             fingerprints=[r.evaluation.fingerprint for r in rows])
        for pair in impossible:
            self.echo(f"skip {pair.dataset} x {pair.model}: {pair.reason}")
        plan = schedule(rows, is_stored=self.store.is_finished,
                        training_status=self._training_status, force=self.force,
                        timed=self._timed, timing_pending=self.store.pending_timing)
        report.already_stored = plan.already_stored
        if plan.already_stored:
            self.echo(f"{len(plan.already_stored)} job(s) already in {self.store.path}; "
                      "not run again (--force reruns them)")
        rows_total = len(plan.blocked) + sum(j.evaluation is not None and j.shard is None
                                             and j.timing is None for j in plan.jobs)
        for b in plan.blocked:
            step = self.store.diverged_step(b.job.training.fingerprint) if b.status == "diverged" else None
            self._store(failed_record(b.job, b.reason, status=b.status, diverged_step=step),
                        report, rows_total)
        if not plan.jobs:
            return report
        executor = executor or self.default_executor(len(plan.jobs))
        jobs = plan.jobs
        if executor.cores:
            shares = thread_shares(jobs, executor.cores, executor.slots)
            jobs = [replace(j, threads=shares[j.key]) for j in jobs]
        if self.spec.job_timeout is not None and not executor.job_timeouts:
            why = ("jobs run in the genbench process (--jobs 0), which cannot stop them"
                   if executor.in_process else
                   f"executor {self.spec.executor!r} cannot stop a running job")
            self.echo(f"warning: job_timeout = {self.spec.job_timeout:g} s does not apply: {why}")
        # Progress bars of several workers would overwrite each other on one terminal:
        # with more than one, the driver's line per finished job is the progress report.
        progress = self.progress if executor.slots == 1 else False
        context = WorkerContext(self.registries, str(self.out_dir), str(self.cache_dir),
                                self.spec.device, progress, nproc=self.spec.nproc,
                                datasets=prepared if executor.in_process else {})
        with executor:
            executor.start(setup_worker, context)
            self._drive(executor, jobs, report, rows_total)
        return report

    def _drive(self, executor: Executor, jobs: list[Job], report: SuiteReport,
               rows_total: int) -> None:
        """Submit jobs whose needs are met; store each result as it comes."""
        pending = {j.key: j for j in jobs}
        running: dict[str, Job] = {}
        done: dict[str, TrainingRecord] = {}     # training job key -> its finished training
        broken: dict[str, TrainingRecord] = {}   # training job key -> failed or diverged
        every = {j.key for j in jobs}
        while pending or running:
            self._cascade(pending, broken, report, rows_total)
            ended = every - pending.keys() - running.keys()  # whatever their outcome
            ready = [j for j in pending.values()
                     if all(n in done for n in j.needs) and all(a in ended for a in j.after)]
            untimed = False
            for job in ready[:max(0, executor.slots - len(running))]:
                del pending[job.key]
                if job.timing is not None:  # its row's timings, stored by now
                    timings = self.store.pending_timing(job.evaluation.fingerprint)
                    if timings is None:  # the row failed: nothing to time
                        untimed = True
                        continue
                    job = replace(job, timing=timings)
                executor.submit(job.key, run_job, job)
                running[job.key] = job
            if untimed and not running:  # the next timing job may be ready now
                continue
            if not running:
                for job in pending.values():  # unreachable: a need that no job provides
                    self._store(failed_record(job, f"not run: it needs {', '.join(job.needs)}, "
                                                   "which did not finish"), report, rows_total)
                return
            for completion in executor.wait():
                job = running.pop(completion.key)
                if completion.failure is None:
                    record = completion.result
                elif job.timing is not None:
                    record = TimingRecord(job.key, job.evaluation.fingerprint, [], "failed",
                                          error=completion.failure)
                else:
                    record = failed_record(job, completion.failure)
                    if completion.traceback:
                        record.provenance["traceback"] = completion.traceback
                if completion.retried:  # earlier attempts whose workers died
                    record.provenance["retried_after"] = list(completion.retried)
                if isinstance(record, (TrainingRecord, SampleShardRecord)):
                    (done if record.status == "ok" else broken)[job.key] = record
                elif isinstance(record, JobRecord):
                    self._add_training_provenance(record, job, done)
                self._store(record, report, rows_total)

    def _add_training_provenance(self, record: JobRecord, job: Job,
                                 done: dict[str, TrainingRecord]) -> None:
        """What the row's training recorded: how it went when it ran in this run, and the
        torch threads it trained with (they change the last bits of convolutions)."""
        now = [done[n] for n in job.needs if done[n].fingerprint == job.training.fingerprint]
        prov = now[0].provenance if now else self.store.training_provenance(job.training.fingerprint)
        if now and "train" in prov:
            record.provenance["train"] = prov["train"]
        if prov and "threads" in prov:
            record.provenance["train_threads"] = prov["threads"]

    def _cascade(self, pending: dict[str, Job], broken: dict[str, TrainingRecord],
                 report: SuiteReport, rows_total: int) -> None:
        """Jobs that need a failed or diverged training end without running: rows of that
        training share its outcome; models built on it fail, naming it."""
        changed = True
        while changed:
            changed = False
            for key, job in list(pending.items()):
                lost = [n for n in job.needs if n in broken]
                if not lost:
                    continue
                cause = broken[lost[0]]
                del pending[key]
                changed = True
                if job.timing is not None:  # its row failed with the training: nothing to time
                    continue
                if isinstance(cause, SampleShardRecord):
                    record = failed_record(job, f"its samples {cause.start}..{cause.stop - 1} "
                                                f"({cause.label}) failed: {cause.error}")
                elif cause.fingerprint == job.training.fingerprint:
                    record = failed_record(job, cause.error or cause.status, status=cause.status,
                                           diverged_step=cause.diverged_step)
                else:
                    record = failed_record(job, f"referenced model {cause.label!r} (training "
                                                f"{cause.fingerprint[:8]}) {cause.status}: {cause.error}")
                if isinstance(record, (TrainingRecord, SampleShardRecord)):
                    broken[key] = record  # never ran: not stored, its dependents fail too
                else:
                    self._store(record, report, rows_total)

    def _store(self, record: JobRecord | TrainingRecord | SampleShardRecord | TimingRecord,
               report: SuiteReport, rows_total: int | None = None) -> None:
        for warning in record.provenance.get("warnings", ()):  # checkpoints a worker set aside
            self.echo(warning)
        if isinstance(record, TimingRecord):
            self._store_timing(record, report)
            return
        if isinstance(record, SampleShardRecord):  # the row that merges the shards is stored
            how = ("kept from an earlier run" if record.reused else
                   f"drawn in {record.seconds:.1f}s" if record.status == "ok" else
                   f"failed: {record.error}")
            self.echo(f"{record.label}: {how}")
            return
        if isinstance(record, TrainingRecord):
            self.store.write_training(record, finished_checkpoint=record.status != "ok" and
                                      checkpoint_finished(self.out_dir / record.run_dir /
                                                          "checkpoint.pt", record.fingerprint))
            report.trainings.append(record)
            self.echo(f"trained {record.dataset_name}/{record.label}/seed{record.seed} "
                      f"(training {record.fingerprint[:8]}): {_training_summary(record)}")
            return
        kept = "" if self.store.write(record) else \
            " (the earlier ok result is kept; this attempt is in `genbench results`)"
        report.ran.append(record)
        counter = f"[{len(report.ran)}/{rows_total}] " if rows_total else ""
        self.echo(f"{counter}{record.job_key}: {_summary(record)}{kept}")

    def _store_timing(self, timing: TimingRecord, report: SuiteReport) -> None:
        """Write a timing job's metrics into its stored row (and the report's copy)."""
        if not self.store.write_timing(timing):
            return
        for row in report.ran:
            if row.fingerprint == timing.fingerprint:
                timed = {m.metric: m for m in timing.metrics}
                row.metrics = [timed.get(m.metric, m) if m.status == PENDING else m
                               for m in row.metrics]
                row.provenance["timing"] = timing.provenance
        if timing.status != "ok":
            self.echo(f"{timing.label}: failed: {timing.error}")
            return
        shown = "; ".join(_metric_summary(m) for m in timing.metrics)
        self.echo(f"{timing.label}: {shown} (alone, {timing.provenance.get('threads')} threads)")

    def _timed(self, row: Job) -> bool:
        """Whether the row has metrics timed alone (:attr:`genbench.Metric.timed_alone`)."""
        return any(self.registries.metrics.get(m.name).timed_alone for m in row.evaluation.metrics)


def _check_cache_dir(path: Path) -> None:
    """Refuse, before anything trains, a features cache folder that cannot be written
    (created later, when a job first writes it)."""
    try:
        check_writable_dir(path, "features cache folder")
    except OutputNotWritableError as exc:
        raise OutputNotWritableError(f"{exc}; point GENBENCH_CACHE at a folder genbench can "
                                     "write") from None


def _training_summary(record: TrainingRecord) -> str:
    if record.status == "failed":
        return f"FAILED: {record.error}"
    if record.status == "diverged":
        return f"diverged at step {record.diverged_step}"
    return (f"trained {record.train_steps} steps in {record.train_seconds:.1f}s"
            if record.train_steps else f"fitted in {record.train_seconds or 0:.1f}s")


def _summary(record: JobRecord) -> str:
    if record.status != "ok":
        return f"FAILED: {record.error}" if record.status == "failed" else \
            f"diverged at step {record.diverged_step}"
    train = record.provenance.get("train", {})
    parts = [f"trained {train['steps']} steps in {train['seconds']:.1f}s"
             if train.get("steps") and not train.get("resumed_from")
             else f"checkpoint of {record.train_steps} steps" if record.train_steps else "fitted"]
    parts += [_metric_summary(m) for m in record.metrics
              if m.status == "failed" or (m.status == "ok" and m.primary in m.values)]
    return "; ".join(parts)


def _metric_summary(m: MetricRecord) -> str:
    """``metric.key=value`` of its primary key (else its first), or its status."""
    if m.status == "ok" and m.values:
        key = m.primary if m.primary in m.values else next(iter(m.values))
        return f"{m.metric}.{key}={m.values[key]:.4g}"
    return f"{m.metric} FAILED ({m.message})" if m.status == "failed" else f"{m.metric} {m.status}"


def run_suite(spec: SuiteSpec, out_dir: str | Path, registries, **kwargs) -> SuiteReport:
    """Validate and run ``spec`` into ``out_dir`` with the run's ``registries``; see
    :class:`SuiteRunner` for options."""
    return SuiteRunner(spec, out_dir, registries, **kwargs).run()
