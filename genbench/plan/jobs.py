"""Jobs: plain, picklable descriptions of what a worker does, and how a spec expands into them.

A spec expands into *rows*: dataset x model entry x sampling setting x seed. A row is one
:class:`Evaluation` of one :class:`Training`. Trainings are keyed by what is trained alone —
data content and dataset parameters, model name and hyper-parameters, referenced models'
trainings, seed, budget outcome, device type and the model's code identity — never by a
label or an evaluation setting, so one checkpoint serves every row that evaluates it.

A :class:`Job` is what an executor runs: a training (``evaluation is None``), or the
evaluation of a finished training (a row), with the keys of the jobs that must finish
first (see :mod:`genbench.plan.scheduling`). Jobs hold names, parameters, fingerprints and
paths: no tensors, no runner, no open database.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from genbench.api.budget import Budget
from genbench.api.data import DataInfo
from genbench.registry.parameters import effective_params, validate_sampling
from genbench.features.job_features import choose_feature_extractor
from genbench.registry.identity import canonical_hash, code_identity
from genbench.api.paths import sha256_file
from genbench.plan.references import ModelConfig
from genbench.api.errors import SpecError
from genbench.plan.spec import SpecEntry, SuiteSpec, check_suite_name, merged_budget


def safe_dirname(text: str) -> str:
    """``text`` with every character but letters, digits and ``-_.+=`` replaced by ``_``."""
    return "".join(c if c.isalnum() or c in "-_.+=" else "_" for c in text)


def board_file(directory: str | Path, suite: str, dataset: str, suffix: str) -> Path:
    """Where a leaderboard's file goes: ``<directory>/<suite>/<dataset><suffix>`` (suffix
    ``".md"``, ``"-samples.png"``, ...), names made safe with :func:`safe_dirname`."""
    return Path(directory) / safe_dirname(suite) / f"{safe_dirname(dataset)}{suffix}"


def file_name_key(text: str) -> str:
    """What decides whether two names share a file: :func:`safe_dirname`'s name, case
    folded (the file systems of macOS and Windows ignore case)."""
    return safe_dirname(text).casefold()


def check_board_names(spec: SuiteSpec, stored_suites: Iterable[str] = ()) -> None:
    """Raise :class:`~genbench.api.errors.SpecError` before anything trains when the suite's
    leaderboard files would overwrite each other's or another suite's: two dataset labels
    that map to one file name (:func:`board_file`), or a suite name that maps to the folder
    of another suite of ``stored_suites`` (those already in the output folder's store)."""
    check_suite_name(spec.name, spec.source)
    seen: dict[str, str] = {}
    for entry in spec.datasets:
        other = seen.setdefault(file_name_key(entry.label), entry.label)
        if other != entry.label:
            raise SpecError(
                f"{spec.source}: datasets {other!r} and {entry.label!r} would write the same "
                f"leaderboard files ({safe_dirname(entry.label)}.md, ...); give them labels "
                "that differ in letters or digits, not only in case, spaces or punctuation")
    mine = file_name_key(spec.name)
    for suite in stored_suites:
        if suite != spec.name and file_name_key(suite) == mine:
            raise SpecError(
                f"{spec.source}: suite {spec.name!r} would write its leaderboards into the "
                f"folder of suite {suite!r}, stored in the same output folder "
                f"(leaderboards/{safe_dirname(suite)}); rename it, or use another --out")


def evaluation_dirname(fingerprint: str) -> str:
    """The folder, inside a training's folder, of one evaluation's samples."""
    return f"eval-{fingerprint[:8]}"


@dataclass(frozen=True)
class DatasetSource:
    """How a worker builds a dataset, and the content fingerprint it must have."""

    name: str
    params: dict[str, Any]
    label: str
    root: str | None
    download: bool
    fingerprint: str | None


@dataclass(frozen=True)
class Training:
    """One model configuration trained on one dataset with one seed: one checkpoint."""

    model: str
    params: dict[str, Any]
    #: Model-valued hyper-parameters: parameter name -> the referenced model's training.
    refs: tuple[tuple[str, "Training"], ...]
    dataset: DatasetSource
    seed: int
    budget: Budget
    fingerprint: str
    #: The fingerprint without the seed (the referenced models' likewise).
    config_fingerprint: str
    #: The checkpoint's folder, relative to the output directory.
    run_dir: str
    label: str

    @property
    def key(self) -> str:
        return f"{self.dataset.label}/{self.label}/seed{self.seed} (training {self.fingerprint[:8]})"


@dataclass(frozen=True)
class Evaluation:
    """How one row evaluates a training: metrics, sampling settings, samples, extractor."""

    suite: str
    dataset_label: str
    model_label: str
    metrics: tuple[SpecEntry, ...]
    #: The row's sampling settings, with the model's defaults filled in.
    sampling: dict[str, Any]
    num_samples: int
    batch_size: int
    feature_extractor: str | None
    feature_weights: str | None
    fingerprint: str
    #: The fingerprint without the seed: the seeds of one configuration share it.
    config_fingerprint: str
    spec_hash: str
    spec_source: str
    #: A reference statistics file standing for the test split's features, or ``None``.
    reference_file: str | None = None
    #: Jobs the samples are drawn in (``eval_shards``): not part of the fingerprint, since
    #: per-sample noise makes the samples the same however they are split.
    shards: int = 1
    #: The evaluation protocol the row follows (recorded in every value), or ``None``.
    protocol: str | None = None

    @property
    def dirname(self) -> str:
        """The folder, inside the training's folder, of this evaluation's samples."""
        return evaluation_dirname(self.fingerprint)

    def shard_ranges(self) -> list[tuple[int, int]]:
        """The ``(start, stop)`` sample ranges of the shards (one range when not sharded),
        cut at multiples of the batch size."""
        return shard_ranges(self.num_samples, self.shards, self.batch_size)


def shard_ranges(n: int, shards: int, align: int = 1) -> list[tuple[int, int]]:
    """``n`` items split into at most ``shards`` contiguous, non-empty ranges of nearly equal
    size, cut at multiples of ``align`` (the evaluation batch size: then every batch a shard
    draws and embeds is a batch one job would, so the numbers are the same to the bit)."""
    k = max(1, min(int(shards), int(n)))
    align = max(1, int(align))
    cuts = sorted({min(n, round(n * i / k / align) * align) for i in range(1, k)} - {0, n})
    bounds = [0, *cuts, n]
    return [(a, b) for a, b in zip(bounds, bounds[1:])]


def shard_dirname(start: int, stop: int) -> str:
    """The folder, inside an evaluation's ``samples/``, of the shard of items ``start..stop-1``."""
    return f"part-{start:09d}-{stop:09d}"


@dataclass(frozen=True)
class Job:
    """What a worker runs: train ``training`` (no ``evaluation``), or load the finished
    ``training`` and run ``evaluation`` (a row)."""

    key: str
    training: Training
    evaluation: Evaluation | None = None
    #: Keys of jobs that must finish before this one starts.
    needs: tuple[str, ...] = ()
    #: ``--force``: discard a saved checkpoint and train from scratch (a training job), or
    #: draw a shard again even if an earlier run finished it (a sample job).
    retrain: bool = False
    #: ``(start, stop)``: draw (and embed) only the row's samples ``start..stop-1``, one
    #: shard of an evaluation split across workers (``eval_shards``); ``None``: the row.
    shard: tuple[int, int] | None = None
    #: Torch CPU threads to run with (the runner's :func:`~genbench.plan.scheduling.thread_shares`
    #: for executors whose workers share this machine's cores); ``None``: the worker's own.
    threads: int | None = None
    #: Keys of jobs that must have ended, whatever their outcome, before this one starts.
    after: tuple[str, ...] = ()
    #: A timing job (``None``: any other job): it computes only the row's metrics that are
    #: :attr:`~genbench.Metric.timed_alone`, the row's other metrics being stored; this is
    #: the row's timings (``sample_seconds``) and how its samples' noise was drawn
    #: (``noise``), filled in when it is submitted.
    timing: dict[str, Any] | None = None


def _budget_for(spec: SuiteSpec, overrides: dict[str, Any] | None) -> Budget:
    return merged_budget(spec.budget, overrides, "referenced model budget")


def make_training(registries, config: ModelConfig, source: DatasetSource, seed: int,
                  budget: Budget, device_type: str, spec: SuiteSpec) -> Training:
    """The :class:`Training` of ``config``, its referenced models' trainings included."""
    refs = tuple(
        (key, make_training(registries, ref, source, seed, _budget_for(spec, ref.budget_overrides),
                            device_type, spec))
        for key, ref in config.refs)
    cls = registries.models.get(config.name)
    identity = {
        "dataset": source.name, "dataset_params": source.params, "data": source.fingerprint,
        "model": config.name, "params": effective_params(cls, config.params),
        "budget": budget.outcome_dict(), "device": device_type, "code": code_identity(cls),
    }
    fingerprint = canonical_hash({**identity, "seed": seed,
                                  "refs": {key: t.fingerprint for key, t in refs}})
    config_fingerprint = canonical_hash({**identity,
                                         "refs": {key: t.config_fingerprint for key, t in refs}})
    run_dir = "runs/" + safe_dirname(f"{source.name}__{config.name}__seed{seed}__{fingerprint[:12]}")
    return Training(config.name, dict(config.params), refs, source, seed, budget, fingerprint,
                    config_fingerprint, run_dir, config.label)


def _file_sha256(path: str | None) -> str | None:
    """sha256 of a file given by the user (``None`` when not given or not there yet: the
    metrics' preflight reports a missing weights file with what to do)."""
    if not path:
        return None
    p = Path(path).expanduser()
    return sha256_file(p) if p.is_file() else None


def evaluation_identity(spec: SuiteSpec, registries, info: DataInfo, dataset: SpecEntry,
                        extractor: str | None) -> dict[str, Any]:
    """What changes an evaluation besides the training, the sampling settings and labels."""
    ext_cls = registries.extractors.get(extractor) if extractor in registries.extractors else None
    return {
        "metrics": [{**m.to_dict(), "code": code_identity(registries.metrics.get(m.name))}
                    for m in spec.metrics],
        # per-sample noise: the batch size changes no sample, so it is not part of this
        "num_samples": spec.num_samples, "noise": "per-sample",
        "extractor": {"name": extractor,
                      "weights_sha256": getattr(ext_cls, "weights_sha256", None),
                      "weights_path": spec.feature_weights,
                      # the file itself: replacing it in place re-evaluates
                      "weights_file_sha256": _file_sha256(spec.feature_weights),
                      "code": None if ext_cls is None else code_identity(ext_cls)},
        "dataset_code": code_identity(registries.datasets.get(dataset.name)),
        # the file's content, not its path: a rebuilt file re-evaluates
        **({"reference_file": _file_sha256(dataset.reference)} if dataset.reference else {}),
        # the values record it (and a board's column names it), so it is part of the identity
        **({"protocol": {"name": spec.protocol,
                         "code": code_identity(registries.protocols.get(spec.protocol))}}
           if spec.protocol else {}),
    }


def expand_rows(spec: SuiteSpec, registries, datasets: list[tuple[DatasetSource, DataInfo]],
                device_type: str) -> tuple[list[Job], list[tuple[str, str, str]]]:
    """One job per dataset x model entry (one per sampling setting) x seed, without
    dependencies; and the (dataset, model, reason) pairs a model cannot train on."""
    rows: list[Job] = []
    impossible: list[tuple[str, str, str]] = []
    entries = list(spec.models) + spec.baseline_entries(registries)
    spec_hash = spec.hash()
    for source, info in datasets:
        extractor = choose_feature_extractor(info, spec.feature_extractor)
        dataset_entry = next(d for d in spec.datasets if d.label == source.label)
        shared = evaluation_identity(spec, registries, info, dataset_entry, extractor)
        for entry in entries:
            cls = registries.models.get(entry.name)
            reason = cls.supports(info)
            if reason is not None:
                impossible.append((source.label, entry.label, reason))
                continue
            config = spec.model_config(registries, entry)
            sampling = validate_sampling(cls, entry.sampling, f"model {entry.label!r}")
            samplers = {v: code_identity(registries.samplers.get(v)) for v in sampling.values()
                        if isinstance(v, str) and v in registries.samplers}
            budget = entry.budget or spec.budget
            for seed in spec.seeds:
                training = make_training(registries, config, source, seed, budget, device_type, spec)
                evaluation = {**shared, "sampling": sampling, "samplers": samplers,
                              "dataset_label": source.label, "model_label": entry.label}
                config_fp = canonical_hash({**evaluation, "train": training.config_fingerprint})
                rows.append(Job(
                    key=f"{source.label}/{entry.label}/seed{seed}", training=training,
                    evaluation=Evaluation(
                        spec.name, source.label, entry.label, spec.metrics, sampling,
                        spec.num_samples, spec.eval_batch_size, extractor, spec.feature_weights,
                        canonical_hash({"train": training.fingerprint, **evaluation}), config_fp,
                        spec_hash, spec.source, dataset_entry.reference, spec.eval_shards,
                        spec.protocol)))
    return rows, impossible
