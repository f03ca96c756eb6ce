"""What a worker sends the driver and the store keeps: a training's outcome and a job's
outcome with its metric values (:class:`MetricRecord`, from the evaluation layer)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from genbench.evaluation.records import MetricRecord

__all__ = ["JobRecord", "MetricRecord", "SampleShardRecord", "TimingRecord", "TrainingRecord"]


@dataclass
class TrainingRecord:
    """One training's outcome: its checkpoint folder, steps, time and status."""

    fingerprint: str
    dataset_name: str
    model_name: str
    label: str
    seed: int
    status: str  # "ok", "diverged" or "failed"
    run_dir: str
    error: str | None = None
    diverged_step: int | None = None
    train_steps: int | None = None
    train_seconds: float | None = None
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class TimingRecord:
    """The metrics of a stored row that were timed alone (:attr:`genbench.Metric.timed_alone`),
    computed by a timing job in the run's final phase; the driver writes them into the row."""

    #: The timing job's key (``<row key> [timing]``).
    label: str
    #: The row's evaluation fingerprint.
    fingerprint: str
    metrics: list[MetricRecord]
    status: str = "ok"  # "ok", or "failed" when the model could not be loaded
    error: str | None = None
    #: Threads, seconds (and a traceback on failure): merged into the row's provenance as
    #: ``timing``.
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class SampleShardRecord:
    """One shard of a row's samples drawn (and embedded) by a worker: items
    ``start..stop-1``, written beside the row's other shards. Not stored: the row that
    merges the shards is."""

    #: The shard job's key (``<row key> [samples a..b]``).
    label: str
    #: The row's evaluation fingerprint.
    fingerprint: str
    start: int
    stop: int
    status: str  # "ok" or "failed"
    error: str | None = None
    seconds: float | None = None
    #: True when the shard was found finished on disk (an interrupted run resumed).
    reused: bool = False
    diverged_step: int | None = None
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobRecord:
    """A finished job as stored: identity, outcome, timings and provenance."""

    fingerprint: str
    job_key: str
    suite: str
    dataset: str
    dataset_name: str
    model: str
    model_name: str
    model_family: str
    seed: int
    status: str  # "ok", "diverged" or "failed"
    provenance: dict[str, Any]
    metrics: list[MetricRecord] = field(default_factory=list)
    error: str | None = None
    diverged_step: int | None = None
    train_steps: int | None = None
    train_seconds: float | None = None
    total_seconds: float | None = None
    device: str | None = None
    num_samples: int | None = None
    #: The job's folder, relative to the output directory that holds results.db.
    run_dir: str | None = None
    #: The fingerprint without the seed: the seeds of one configuration share it.
    config_fingerprint: str = ""
