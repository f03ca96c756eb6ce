"""The results database: one SQLite file, one row per finished job, its metric values.

A job and its metric values are written in one transaction, so an interrupted suite never
leaves half a job behind; a fingerprint identifies a job, so a rerun skips what is stored.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

SCHEMA_VERSION = 1

#: Job statuses: finished ones are never rerun without --force; "failed" ones are retried.
FINISHED = ("ok", "diverged")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL UNIQUE,
    config_fingerprint TEXT NOT NULL,
    job_key TEXT NOT NULL,
    suite TEXT NOT NULL,
    dataset TEXT NOT NULL,
    dataset_name TEXT NOT NULL,
    model TEXT NOT NULL,
    model_name TEXT NOT NULL,
    model_family TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    diverged_step INTEGER,
    train_steps INTEGER,
    train_seconds REAL,
    total_seconds REAL,
    device TEXT,
    num_samples INTEGER,
    run_dir TEXT,
    created_at TEXT NOT NULL,
    provenance TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS metric_values (
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    metric TEXT NOT NULL,
    key TEXT,
    value REAL,
    status TEXT NOT NULL,
    message TEXT,
    higher_is_better INTEGER,
    is_primary INTEGER NOT NULL DEFAULT 0,
    position INTEGER NOT NULL,
    details TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS metric_values_job ON metric_values(job_id);
CREATE TABLE IF NOT EXISTS trainings (
    fingerprint TEXT PRIMARY KEY,
    dataset_name TEXT NOT NULL,
    model_name TEXT NOT NULL,
    label TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    diverged_step INTEGER,
    train_steps INTEGER,
    train_seconds REAL,
    run_dir TEXT NOT NULL,
    created_at TEXT NOT NULL,
    provenance TEXT NOT NULL
);
"""


@dataclass
class MetricRecord:
    """One metric's outcome for a job: values on success, else a reason or an error."""

    metric: str
    status: str  # "ok", "skipped" or "failed"
    values: dict[str, float] = field(default_factory=dict)
    message: str | None = None
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    primary: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


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


def _json(obj: Any) -> str:
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v
    return json.dumps(clean(obj), sort_keys=True, default=str)


class ResultStore:
    """The SQLite results database at ``path`` (created on first use)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as con, con:
            con.executescript(_SCHEMA)
            con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=60)
        con.execute("PRAGMA foreign_keys = ON")
        return con

    def status_of(self, fingerprint: str) -> str | None:
        with closing(self._connect()) as con:
            row = con.execute("SELECT status FROM jobs WHERE fingerprint = ?", (fingerprint,)).fetchone()
        return None if row is None else row[0]

    def is_finished(self, fingerprint: str) -> bool:
        return self.status_of(fingerprint) in FINISHED

    def training_status(self, fingerprint: str) -> str | None:
        """The stored status of a training (``None``: never stored)."""
        with closing(self._connect()) as con:
            row = con.execute("SELECT status FROM trainings WHERE fingerprint = ?",
                              (fingerprint,)).fetchone()
        return None if row is None else row[0]

    def trainings(self) -> pd.DataFrame:
        """Every stored training, one row each."""
        with closing(self._connect()) as con:
            df = pd.read_sql_query("SELECT * FROM trainings ORDER BY created_at", con)
        df["provenance"] = df["provenance"].map(json.loads)
        return df

    def diverged_step(self, fingerprint: str) -> int | None:
        """The step at which a stored training diverged (``None`` if it did not)."""
        with closing(self._connect()) as con:
            row = con.execute("SELECT diverged_step FROM trainings WHERE fingerprint = ?",
                              (fingerprint,)).fetchone()
        return None if row is None else row[0]

    def training_provenance(self, fingerprint: str) -> dict[str, Any]:
        """The provenance a stored training recorded (empty if it is not stored)."""
        with closing(self._connect()) as con:
            row = con.execute("SELECT provenance FROM trainings WHERE fingerprint = ?",
                              (fingerprint,)).fetchone()
        return {} if row is None else json.loads(row[0])

    def write_training(self, t: TrainingRecord) -> None:
        """Store a training job's outcome (replacing an earlier one of the same training).
        Whether a checkpoint is finished is read from the checkpoint itself, never from here."""
        created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        with closing(self._connect()) as con, con:
            con.execute(
                """INSERT OR REPLACE INTO trainings (fingerprint, dataset_name, model_name,
                   label, seed, status, error, diverged_step, train_steps, train_seconds,
                   run_dir, created_at, provenance) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                (t.fingerprint, t.dataset_name, t.model_name, t.label, t.seed, t.status,
                 t.error, t.diverged_step, t.train_steps, t.train_seconds, t.run_dir, created,
                 _json(t.provenance)))

    def write(self, job: JobRecord) -> None:
        """Store ``job`` and its metrics atomically. It replaces a row with
        the same fingerprint, and the suite's earlier result for the same dataset, model and
        seed (a changed configuration), so a leaderboard never counts one seed twice."""
        created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        with closing(self._connect()) as con, con:
            con.execute("DELETE FROM jobs WHERE fingerprint = ? OR (suite = ? AND job_key = ?)",
                        (job.fingerprint, job.suite, job.job_key))
            cur = con.execute(
                """INSERT INTO jobs (fingerprint, config_fingerprint, job_key, suite, dataset,
                   dataset_name, model, model_name, model_family, seed, status, error,
                   diverged_step, train_steps, train_seconds, total_seconds, device, num_samples,
                   run_dir, created_at, provenance)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                (job.fingerprint, job.config_fingerprint or job.fingerprint, job.job_key, job.suite, job.dataset, job.dataset_name, job.model,
                 job.model_name, job.model_family, job.seed, job.status, job.error,
                 job.diverged_step, job.train_steps, job.train_seconds, job.total_seconds,
                 job.device, job.num_samples, job.run_dir, created, _json(job.provenance)),
            )
            job_id = cur.lastrowid
            rows = []
            for pos, m in enumerate(job.metrics):
                details = _json(m.details)
                if m.status != "ok" or not m.values:
                    rows.append((job_id, m.metric, None, None, m.status, m.message, None, 0, pos, details))
                for key, value in m.values.items():
                    hib = m.higher_is_better.get(key)
                    value = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
                    rows.append((job_id, m.metric, key, value, m.status, m.message,
                                 None if hib is None else int(hib), int(key == m.primary), pos, details))
            con.executemany("INSERT INTO metric_values VALUES (?,?,?,?,?,?,?,?,?,?)", rows)

    # -- reading ------------------------------------------------------------------------
    def jobs(self) -> pd.DataFrame:
        """Every stored job, one row each, provenance parsed into a dict column."""
        with closing(self._connect()) as con:
            df = pd.read_sql_query("SELECT * FROM jobs ORDER BY id", con)
        df["provenance"] = df["provenance"].map(json.loads)
        return df

    def metric_values(self) -> pd.DataFrame:
        """Every metric row joined with its job's identity."""
        with closing(self._connect()) as con:
            df = pd.read_sql_query(
                """SELECT j.id AS job_id, j.fingerprint, j.suite, j.dataset, j.model,
                          j.model_family, j.seed, j.status AS job_status, m.metric, m.key,
                          m.value, m.status, m.message, m.higher_is_better, m.is_primary,
                          m.position, m.details
                   FROM metric_values m JOIN jobs j ON j.id = m.job_id ORDER BY j.id, m.position, m.rowid""",
                con)
        df["details"] = df["details"].map(json.loads)
        return df

    def results(self) -> list[dict[str, Any]]:
        """Every job with its metric values and provenance, as plain dicts (for export)."""
        jobs = self.jobs()
        metrics = self.metric_values()
        out = []
        jobs = jobs.astype(object).where(jobs.notna(), None)  # NaN -> None (JSON null)
        for job in jobs.to_dict("records"):
            rows = metrics[metrics["job_id"] == job["id"]]
            job["metrics"] = {}
            job["metric_status"] = {}
            for r in rows.to_dict("records"):
                if pd.notna(r["key"]):
                    value = r["value"]
                    job["metrics"][f"{r['metric']}.{r['key']}"] = None if pd.isna(value) else float(value)
                job["metric_status"][r["metric"]] = (
                    r["status"] if pd.isna(r["message"]) else f"{r['status']}: {r['message']}")
            out.append(job)
        return out

    def count(self) -> int:
        with closing(self._connect()) as con:
            return con.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
