"""The results database: one SQLite file, one row per finished job, its metric values.

A job and its metric values are written in one transaction, so an interrupted suite never
leaves half a job behind; a fingerprint identifies a job, so a rerun skips what is stored.
A good row is never replaced by a worse attempt at the same job: the attempt is recorded
beside it (:meth:`ResultStore.failures`). A file that is not a sound SQLite database is
refused with :class:`~genbench.api.errors.StoreCorruptError`, never repaired or overwritten.

One process writes (a run holds the output folder's lock, :mod:`genbench.execution.locking`); readers
open the file read-only and never wait for it. The journal stays SQLite's default rollback
journal, not WAL: WAL needs shared memory between every process that opens the file, which
network filesystems (an output folder shared by cluster nodes) do not provide, and it keeps
committed rows in a ``-wal`` file beside ``results.db`` that a copy of the database alone
would miss. Writes are one job at a time and reads are short, so the busy timeout covers
the rare moment when a reader and the writer's commit meet.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from genbench.api.errors import GenbenchError, OutputNotWritableError, StoreCorruptError
from genbench.api.paths import ensure_writable_dir
from genbench.evaluation.records import PENDING
from genbench.results.records import JobRecord, MetricRecord, TimingRecord, TrainingRecord

SCHEMA_VERSION = 1

#: Job statuses: finished ones are never rerun without --force; "failed" ones are retried.
FINISHED = ("ok", "diverged")

#: Seconds a connection waits for another one's lock (a reader for the writer's commit).
_BUSY_TIMEOUT = 60

#: Every table's columns. A writer creates the tables that are missing; a read-only reader
#: stands an empty temporary table in for each (a store of an older genbench, or a file
#: created but never filled), so that reading never writes.
_TABLES = {
    "meta": "key TEXT PRIMARY KEY, value TEXT NOT NULL",
    "jobs": """
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
""",
    "metric_values": """
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
""",
    "trainings": """
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
""",
    # Attempts that did not replace the good record kept in their place (see write()).
    "failures": """
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    kept_fingerprint TEXT NOT NULL,
    kept_job_id INTEGER,
    job_key TEXT NOT NULL,
    suite TEXT,
    dataset TEXT NOT NULL,
    model TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    created_at TEXT NOT NULL,
    record TEXT NOT NULL
""",
}
_INDEXES = ("CREATE INDEX IF NOT EXISTS metric_values_job ON metric_values(job_id)",)


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


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class StoreWriteError(GenbenchError):
    """``results.db`` could not be written during a run: it became read-only, its disk is
    full or failing. What was stored before stays; the message names the file and what to
    do."""


def _fault_of_the_machine(path: Path, exc: sqlite3.Error, write: bool) -> StoreWriteError | None:
    """SQLite's report of a read-only file, a full disk or an I/O error (while writing, or
    not) as a :class:`StoreWriteError` naming ``path`` and what to do; ``None`` for anything
    else."""
    name = getattr(exc, "sqlite_errorname", "")
    resume = ("then run the same command again: what is stored is kept, and finished "
              "trainings are reused from their checkpoints")
    if write and name.startswith("SQLITE_READONLY"):
        return StoreWriteError(f"cannot write {path}: it is read-only (SQLite: {exc}); make it "
                               f"and its folder writable (chmod u+w), {resume}")
    if write and name == "SQLITE_FULL":
        return StoreWriteError(f"cannot write {path}: the disk is full (SQLite: {exc}); free "
                               f"space on it, {resume}")
    if name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN")):
        verb = "write" if write else "read"
        return StoreWriteError(f"cannot {verb} {path}: the file system failed (SQLite {name}: "
                               f"{exc}); check the disk and that the file is still there, "
                               f"{resume}")
    return None


def _is_corruption(exc: sqlite3.Error) -> bool:
    """Whether SQLite says the file is damaged or not a database at all."""
    return getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))


def _training_of(fingerprint: str, run_dir: str | None, provenance: dict[str, Any]) -> str:
    """Which training a row evaluates (rows stored without that say: the row itself)."""
    return provenance.get("train_fingerprint") or run_dir or fingerprint


def _metric_rows(job_id: int, position: int, m: MetricRecord) -> list[tuple]:
    """The ``metric_values`` rows of one metric record: one per value, or one without a
    value (skipped, failed, pending)."""
    details = _json(m.details)
    rows = []
    if m.status != "ok" or not m.values:
        rows.append((job_id, m.metric, None, None, m.status, m.message, None, 0, position, details))
    for key, value in m.values.items():
        hib = m.higher_is_better.get(key)
        value = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
        rows.append((job_id, m.metric, key, value, m.status, m.message,
                     None if hib is None else int(hib), int(key == m.primary), position, details))
    return rows


def _failed_metrics(job: JobRecord) -> dict[str, str]:
    return {m.metric: m.message or "" for m in job.metrics if m.status == "failed"}


class ResultStore:
    """The SQLite results database at ``path``.

    Opened to write (the default), its folder and file are created as needed, and a folder
    that cannot be written raises :class:`~genbench.api.errors.OutputNotWritableError` at once;
    ``readonly=True`` opens an existing file without ever writing to it (the reading
    commands, which work while a run writes). Either way an existing file that is not a
    SQLite database, or fails SQLite's ``quick_check``, raises
    :class:`~genbench.api.errors.StoreCorruptError` and is left untouched. (``quick_check``
    finds damaged pages, records and structure, which truncation and overwritten bytes
    cause; the full ``integrity_check`` also cross-checks every index against its table,
    which costs far more on a large store and guards against no failure genbench can cause.)
    """

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            if not self.path.exists():
                raise FileNotFoundError(f"no results database at {self.path}")
        else:
            ensure_writable_dir(self.path.parent, "output folder")
        if self.path.exists():
            self._verify()
        if not readonly:
            if self.path.exists() and not os.access(self.path, os.W_OK):
                raise OutputNotWritableError(f"{self.path} is read-only; genbench needs to write "
                                             "results there (chmod u+w, or choose another --out)")
            self._create_missing_tables()

    # -- opening and checking ---------------------------------------------------------------
    def _unusable(self, reason: str) -> StoreCorruptError:
        p = self.path
        return StoreCorruptError(
            f"{p} is not a usable genbench results database ({reason}). genbench never "
            f"overwrites or deletes it: move it aside (e.g. mv {p} {p}.broken) and run again "
            f"to start a new one (finished trainings are reused from their checkpoints under "
            f"{p.parent / 'runs'}, so only the evaluations run again), or restore it from a "
            "backup.")

    def _read_only_connection(self) -> sqlite3.Connection:
        uri = self.path.resolve().as_uri() + "?mode=ro"
        return sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT)

    def _verify(self) -> None:
        """Raise :class:`StoreCorruptError` unless the file is a SQLite database that passes
        ``quick_check`` and holds genbench's tables (or no tables yet)."""
        if not self.path.is_file():
            raise self._unusable("it is not a file")
        try:
            problems, tables = self._check()
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorname", "") != "SQLITE_READONLY_ROLLBACK":
                raise
            # A writer was killed in the middle of a commit: its journal must be rolled back
            # (what any read-write open does) before the file can be read.
            try:
                con = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT)
                try:
                    con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                finally:
                    con.close()
            except sqlite3.Error as rollback:
                raise StoreCorruptError(
                    f"{self.path} cannot be read as it is: a process stopped in the middle of "
                    f"writing it and left {self.path.name}-journal beside it, which SQLite must "
                    f"roll back first, and it cannot here ({rollback}). Run any genbench "
                    "command on it where its folder is writable, and keep the -journal file "
                    "with it when you move or copy it.") from None
            problems, tables = self._check()
        if problems != ["ok"]:
            raise self._unusable("SQLite quick_check: " + "; ".join(problems))
        if tables and not {"meta", "jobs", "metric_values"} <= tables:
            raise self._unusable("it is a SQLite database of something else; its tables: "
                                 + ", ".join(sorted(tables)))

    def _check(self) -> tuple[list[str], set[str]]:
        try:
            con = self._read_only_connection()
            try:
                problems = [row[0] for row in con.execute("PRAGMA quick_check(5)")]
                tables = {row[0] for row in con.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
            finally:
                con.close()
        except sqlite3.DatabaseError as exc:
            if _is_corruption(exc):
                raise self._unusable(str(exc)) from None
            raise
        return problems, tables

    def _create_missing_tables(self) -> None:
        try:
            with self._connection(write=True) as con:  # all at once: a reader sees all or none
                present = {row[0] for row in con.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
                if set(_TABLES) <= present:
                    return  # nothing to write: opening an existing store leaves it as it is
                for name, columns in _TABLES.items():
                    con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({columns})")
                for statement in _INDEXES:
                    con.execute(statement)
                con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                            (str(SCHEMA_VERSION),))
        except StoreWriteError as exc:  # before anything runs: a folder that cannot be written
            raise OutputNotWritableError(str(exc)) from None

    def _connect(self) -> sqlite3.Connection:
        if not self.readonly:
            con = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT)
            con.execute("PRAGMA foreign_keys = ON")
            return con
        con = self._read_only_connection()
        present = {row[0] for row in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        for name, columns in _TABLES.items():
            if name not in present:  # the temporary database is this connection's own
                con.execute(f"CREATE TEMP TABLE {name} ({columns})")
        return con

    @contextmanager
    def _connection(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection, closed after use; with ``write``, one transaction holding the write
        lock from its first read (committed, or rolled back on an error), so that what it
        reads to decide is what it changes. SQLite's reports of a damaged file become
        :class:`StoreCorruptError`; of a read-only file, a full disk or an I/O error,
        :class:`StoreWriteError`."""
        try:
            con = self._connect()
        except sqlite3.DatabaseError as exc:
            if _is_corruption(exc):
                raise self._unusable(str(exc)) from None
            fault = _fault_of_the_machine(self.path, exc, write and not self.readonly)
            if fault is not None:
                raise fault from None
            raise
        try:
            if write:
                with con:
                    con.execute("BEGIN IMMEDIATE")
                    yield con
            else:
                yield con
        except sqlite3.DatabaseError as exc:
            if _is_corruption(exc):
                raise self._unusable(str(exc)) from exc
            fault = _fault_of_the_machine(self.path, exc, write and not self.readonly)
            if fault is not None:
                raise fault from None
            raise
        finally:
            con.close()

    # -- one record --------------------------------------------------------------------------
    def status_of(self, fingerprint: str) -> str | None:
        with self._connection() as con:
            row = con.execute("SELECT status FROM jobs WHERE fingerprint = ?", (fingerprint,)).fetchone()
        return None if row is None else row[0]

    def is_finished(self, fingerprint: str) -> bool:
        return self.status_of(fingerprint) in FINISHED

    def pending_timing(self, fingerprint: str) -> dict[str, Any] | None:
        """For a stored ``ok`` row with metrics still to be timed alone (status ``pending``),
        the row's timings (its timing job's budget), how its noise was drawn (``noise``) and
        why its samples were unusable (``sample_failure``, when they were); otherwise
        ``None``."""
        with self._connection() as con:
            row = con.execute(
                """SELECT j.provenance FROM jobs j WHERE j.fingerprint = ? AND j.status = 'ok'
                   AND EXISTS (SELECT 1 FROM metric_values m WHERE m.job_id = j.id
                               AND m.status = ?)""", (fingerprint, PENDING)).fetchone()
        if row is None:
            return None
        provenance = json.loads(row[0])
        timings = {k: v for k, v in provenance.get("timings", {}).items()
                   if isinstance(v, (int, float))}
        return {**timings, "noise": provenance.get("noise", "per sample"),
                **({"sample_failure": provenance["sample_failure"]}
                   if provenance.get("sample_failure") else {})}

    def suite_names(self) -> list[str]:
        """The names of the suites with rows stored, in the order first stored."""
        with self._connection() as con:
            return [row[0] for row in con.execute(
                "SELECT suite FROM jobs GROUP BY suite ORDER BY MIN(id)")]

    def training_status(self, fingerprint: str) -> str | None:
        """The stored status of a training (``None``: never stored)."""
        with self._connection() as con:
            row = con.execute("SELECT status FROM trainings WHERE fingerprint = ?",
                              (fingerprint,)).fetchone()
        return None if row is None else row[0]

    def trainings(self) -> pd.DataFrame:
        """Every stored training, one row each."""
        with self._connection() as con:
            df = pd.read_sql_query("SELECT * FROM trainings ORDER BY created_at", con)
        df["provenance"] = df["provenance"].map(json.loads)
        return df

    def diverged_step(self, fingerprint: str) -> int | None:
        """The step at which a stored training diverged (``None`` if it did not)."""
        with self._connection() as con:
            row = con.execute("SELECT diverged_step FROM trainings WHERE fingerprint = ?",
                              (fingerprint,)).fetchone()
        return None if row is None else row[0]

    def training_provenance(self, fingerprint: str) -> dict[str, Any]:
        """The provenance a stored training recorded (empty if it is not stored)."""
        with self._connection() as con:
            row = con.execute("SELECT provenance FROM trainings WHERE fingerprint = ?",
                              (fingerprint,)).fetchone()
        return {} if row is None else json.loads(row[0])

    # -- writing -----------------------------------------------------------------------------
    def write_training(self, t: TrainingRecord, *, finished_checkpoint: bool = False) -> bool:
        """Store a training job's outcome, replacing an earlier one of the same training,
        and return ``True``; except that a failed or diverged ``t`` does not replace a
        stored ``ok`` training while that training's finished checkpoint is still on disk
        (``finished_checkpoint``, which the caller reads from the checkpoint itself): the
        rows evaluate that checkpoint, so its record stays and ``t`` goes to
        :meth:`failures` (return ``False``)."""
        with self._connection(write=True) as con:
            row = con.execute("SELECT status FROM trainings WHERE fingerprint = ?",
                              (t.fingerprint,)).fetchone()
            if t.status != "ok" and finished_checkpoint and row is not None and row[0] == "ok":
                self._insert_failure(
                    con, kind="training", fingerprint=t.fingerprint,
                    kept_fingerprint=t.fingerprint, kept_job_id=None,
                    job_key=f"{t.dataset_name}/{t.label}/seed{t.seed} (training {t.fingerprint[:8]})",
                    suite=None, dataset=t.dataset_name, model=t.label, seed=t.seed,
                    status=t.status, error=t.error, record=asdict(t))
                return False
            con.execute(
                """INSERT OR REPLACE INTO trainings (fingerprint, dataset_name, model_name,
                   label, seed, status, error, diverged_step, train_steps, train_seconds,
                   run_dir, created_at, provenance) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                (t.fingerprint, t.dataset_name, t.model_name, t.label, t.seed, t.status,
                 t.error, t.diverged_step, t.train_steps, t.train_seconds, t.run_dir, _now(),
                 _json(t.provenance)))
        return True

    def write(self, job: JobRecord) -> bool:
        """Store ``job`` and its metrics atomically and return ``True``. It replaces a row
        with the same fingerprint, and the suite's earlier result for the same dataset, model
        and seed (a changed configuration), so a leaderboard never counts one seed twice.

        A worse attempt never replaces a good row of the same training (a re-evaluation,
        say after a metric was added, or a ``--force`` rerun): when such a row is stored
        ``ok`` and ``job`` failed, diverged, or failed a metric that row has, the row stays
        and ``job`` is recorded in :meth:`failures` (return ``False``). A changed training
        (hyper-parameters, budget, data) is a changed configuration: it replaces the row
        whatever its outcome, so that one leaderboard row never mixes configurations."""
        with self._connection(write=True) as con:
            stored = con.execute(
                """SELECT id, fingerprint, suite, job_key, status, run_dir, provenance FROM jobs
                   WHERE fingerprint = ? OR (suite = ? AND job_key = ?)""",
                (job.fingerprint, job.suite, job.job_key)).fetchall()
            kept = self._good_row_to_keep(con, job, stored)
            if kept is not None:
                failed_metrics = _failed_metrics(job)
                error = job.error or "; ".join(f"metric {name!r} failed: {message}"
                                               for name, message in failed_metrics.items())
                self._insert_failure(
                    con, kind="job", fingerprint=job.fingerprint, kept_fingerprint=kept[1],
                    kept_job_id=kept[0], job_key=job.job_key, suite=job.suite,
                    dataset=job.dataset, model=job.model, seed=job.seed, status=job.status,
                    error=error, record=asdict(job))
                return False
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
                 job.device, job.num_samples, job.run_dir, _now(), _json(job.provenance)),
            )
            job_id = cur.lastrowid
            con.executemany("INSERT INTO metric_values VALUES (?,?,?,?,?,?,?,?,?,?)",
                            [r for pos, m in enumerate(job.metrics)
                             for r in _metric_rows(job_id, pos, m)])
        return True

    def write_timing(self, timing: TimingRecord) -> bool:
        """Put the metrics of a timing job in place of the row's ``pending`` ones (and its
        provenance under ``timing``); ``False`` when no such row is stored (a later run
        replaced it), and nothing is written."""
        with self._connection(write=True) as con:
            row = con.execute("SELECT id, provenance FROM jobs WHERE fingerprint = ?",
                              (timing.fingerprint,)).fetchone()
            if row is None:
                return False
            job_id, provenance = row
            positions = dict(con.execute(
                "SELECT metric, MIN(position) FROM metric_values WHERE job_id = ? AND status = ? "
                "GROUP BY metric", (job_id, PENDING)).fetchall())
            metrics = timing.metrics if timing.status == "ok" else [
                MetricRecord(label, "failed", message=timing.error) for label in positions]
            metrics = [m for m in metrics if m.metric in positions]
            if not metrics:
                return False
            con.executemany("DELETE FROM metric_values WHERE job_id = ? AND metric = ?",
                            [(job_id, m.metric) for m in metrics])
            con.executemany("INSERT INTO metric_values VALUES (?,?,?,?,?,?,?,?,?,?)",
                            [r for m in metrics for r in _metric_rows(job_id, positions[m.metric], m)])
            provenance = json.loads(provenance)
            provenance["timing"] = timing.provenance
            con.execute("UPDATE jobs SET provenance = ? WHERE id = ?", (_json(provenance), job_id))
        return True

    @staticmethod
    def _good_row_to_keep(con: sqlite3.Connection, job: JobRecord, stored: list[tuple]) -> tuple | None:
        """Of the ``stored`` rows ``job`` would replace, the ``ok`` row of the same training
        that ``job`` is worse than (the suite's own row first), if any."""
        if not stored:
            return None
        failed = set(_failed_metrics(job))
        training = _training_of(job.fingerprint, job.run_dir, job.provenance)
        stored = sorted(stored, key=lambda r: (r[2], r[3]) != (job.suite, job.job_key))
        for row in stored:
            job_id, fingerprint, _, _, status, run_dir, provenance = row
            if status != "ok" or _training_of(fingerprint, run_dir, json.loads(provenance)) != training:
                continue
            if job.status != "ok":
                return row
            good = {m for (m,) in con.execute(
                "SELECT DISTINCT metric FROM metric_values WHERE job_id = ? AND status = 'ok'",
                (job_id,))}
            if failed & good:
                return row
        return None

    @staticmethod
    def _insert_failure(con: sqlite3.Connection, *, kind: str, fingerprint: str,
                        kept_fingerprint: str, kept_job_id: int | None, job_key: str,
                        suite: str | None, dataset: str, model: str, seed: int, status: str,
                        error: str | None, record: dict[str, Any]) -> None:
        con.execute(
            """INSERT INTO failures (kind, fingerprint, kept_fingerprint, kept_job_id, job_key,
               suite, dataset, model, seed, status, error, created_at, record)
               VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)""",
            (kind, fingerprint, kept_fingerprint, kept_job_id, job_key, suite, dataset, model,
             seed, status, error, _now(), _json(record)))

    # -- reading -----------------------------------------------------------------------------
    def jobs(self) -> pd.DataFrame:
        """Every stored job, one row each, provenance parsed into a dict column."""
        with self._connection() as con:
            df = pd.read_sql_query("SELECT * FROM jobs ORDER BY id", con)
        df["provenance"] = df["provenance"].map(json.loads)
        return df

    def metric_values(self) -> pd.DataFrame:
        """Every metric row joined with its job's identity."""
        with self._connection() as con:
            df = pd.read_sql_query(
                """SELECT j.id AS job_id, j.fingerprint, j.suite, j.dataset, j.model,
                          j.model_family, j.seed, j.status AS job_status, m.metric, m.key,
                          m.value, m.status, m.message, m.higher_is_better, m.is_primary,
                          m.position, m.details
                   FROM metric_values m JOIN jobs j ON j.id = m.job_id ORDER BY j.id, m.position, m.rowid""",
                con)
        df["details"] = df["details"].map(json.loads)
        return df

    def failures(self) -> list[dict[str, Any]]:
        """Attempts that did not replace the good record kept in their place, oldest first:
        a job rerun (a re-evaluation, ``--force``) that failed, diverged or failed a metric
        its stored ``ok`` row has, and a training rerun that failed or diverged while its
        stored ``ok`` training's finished checkpoint stayed. (A failed job with no good row
        before it is stored as its row instead: :meth:`results`, status ``"failed"``.)

        Each is a dict:

        - ``id``: the failure's number; ``kind``: ``"job"`` or ``"training"``;
        - ``fingerprint``: the attempt's (a job's evaluation or a training's fingerprint);
        - ``kept_fingerprint``: the record kept in its place; ``kept_job_id``: for a job,
          that row's ``id`` in :meth:`results` (while the row stands), else ``None``;
        - ``job_key`` (``dataset/model/seedN``; a training's adds ``(training xxxxxxxx)``),
          ``suite`` (``None`` for a training), ``dataset``, ``model``, ``seed``;
        - ``status``: the attempt's: ``"failed"``, ``"diverged"``, or ``"ok"`` when only
          metrics failed;
        - ``error``: what went wrong (failed metrics: ``metric 'x' failed: <message>``);
        - ``failed_metrics``: ``{metric: message}`` of the metrics that failed;
        - ``diverged_step``: the step a diverged attempt stopped at, else ``None``;
        - ``created_at``: when it was recorded (``%Y-%m-%dT%H:%M:%S%z``);
        - ``provenance``: the attempt's provenance (its traceback, when it raised).
        """
        with self._connection() as con:
            con.row_factory = sqlite3.Row
            rows = con.execute("SELECT * FROM failures ORDER BY id").fetchall()
        out = []
        for row in rows:
            entry = dict(row)
            record = json.loads(entry.pop("record"))
            entry["failed_metrics"] = {m["metric"]: m.get("message") or ""
                                       for m in record.get("metrics", [])
                                       if m.get("status") == "failed"}
            entry["diverged_step"] = record.get("diverged_step")
            entry["provenance"] = record.get("provenance", {})
            out.append(entry)
        return out

    def results(self) -> list[dict[str, Any]]:
        """Every job with its metric values and provenance, as plain dicts (for export).
        ``failed_reruns`` counts the later attempts at a row that failed and left it in
        place, ``last_failed_rerun`` says how the latest went (details: :meth:`failures`)."""
        jobs = self.jobs()
        metrics = self.metric_values()
        reruns: dict[int, list[dict[str, Any]]] = {}
        for f in self.failures():
            if f["kept_job_id"] is not None:
                reruns.setdefault(f["kept_job_id"], []).append(f)
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
            failed = reruns.get(job["id"], [])
            job["failed_reruns"] = len(failed)
            job["last_failed_rerun"] = (f"{failed[-1]['created_at']} {failed[-1]['status']}: "
                                        f"{failed[-1]['error']}" if failed else None)
            out.append(job)
        return out

    def count(self) -> int:
        with self._connection() as con:
            return con.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
