"""The results store keeps what it holds: a damaged file is refused and left as it is, an
unwritable output folder fails before anything trains, reading never writes, and a good row
is never replaced by a worse attempt."""

import io
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from genbench.api.errors import OutputNotWritableError, StoreCorruptError, USER_ERRORS
from genbench.results.boards import build_leaderboards
from genbench.execution.runner import SuiteRunner
from genbench.results.records import JobRecord, MetricRecord, TrainingRecord
from genbench.results.store import ResultStore
from genbench_plugins.metrics.reconstruction import Reconstruction
from genbench import hookimpl
from helpers import DivergingVAE, invoke_cli, registries_with, tiny_spec, tiny_spec_toml

SPEC = tiny_spec_toml(dataset="ring8", models=["ae"], num_samples=100, steps=20)


def invoke(*args):
    return invoke_cli(*args, catch_exceptions=True)


def job(seed=0, mse=0.1, *, fingerprint=None, training="t0", status="ok", metrics=None):
    """A row of model "vae" on "digits" evaluating training ``training``."""
    if metrics is None:
        metrics = [] if status != "ok" else [
            MetricRecord("recon", "ok", {"mse": mse}, higher_is_better={"mse": False},
                         primary="mse")]
    return JobRecord(fingerprint=fingerprint or f"e-{training}-{seed}", job_key=f"digits/vae/seed{seed}",
                     suite="s", dataset="digits", dataset_name="digits", model="vae",
                     model_name="vae", model_family="vae", seed=seed, status=status,
                     provenance={"train_fingerprint": training, "padding": "x" * 2000},
                     metrics=metrics, error=None if status == "ok" else "RuntimeError: boom",
                     run_dir=f"runs/{training}")


def filled_store(path, n=60) -> ResultStore:
    store = ResultStore(path)
    for seed in range(n):
        store.write(job(seed, 0.1 + seed / 1000))
    return store


# -- a damaged results.db ----------------------------------------------------------------------

def garbage(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(0).randbytes(20_000))


def truncated(path):
    filled_store(path)
    size = path.stat().st_size
    assert size > 50_000
    with open(path, "r+b") as f:
        f.truncate(size * 6 // 10)


@pytest.mark.parametrize("damage", [garbage, truncated])
def test_a_damaged_results_db_exits_2_naming_it_and_is_left_untouched(tmp_path, damage):
    out = tmp_path / "o"
    db = out / "results.db"
    damage(db)
    before = db.read_bytes()
    spec = tmp_path / "s.toml"
    spec.write_text(textwrap.dedent(SPEC))
    for args in (["run", str(spec), "--jobs", "0"], ["leaderboard"], ["results"],
                 ["results", "--format", "json"]):
        result = invoke(*args, "--out", str(out))
        assert result.exit_code == 2, (args, result.output)
        assert isinstance(result.exception, SystemExit), result.exception  # not a crash
        assert "Traceback" not in result.output
        assert f"{db} is not a usable genbench results database" in result.output, result.output
        assert "move it aside" in result.output and "restore it from a backup" in result.output
    assert db.read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["results.db"]  # nothing trained or added
    for readonly in (False, True):
        with pytest.raises(StoreCorruptError, match="not a usable genbench results database"):
            ResultStore(db, readonly=readonly)
    assert db.read_bytes() == before
    assert StoreCorruptError in USER_ERRORS


def test_a_sqlite_database_of_something_else_is_refused(tmp_path):
    db = tmp_path / "results.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE photos (id INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(StoreCorruptError, match="of something else; its tables: photos"):
        ResultStore(db)


def test_damage_found_by_quick_check_is_refused(tmp_path):
    """Bytes overwritten inside a page (not a truncation): SQLite's structural check finds it."""
    db = tmp_path / "results.db"
    filled_store(db)
    page = sqlite3.connect(db).execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(db.read_bytes())
    for p in range(2, len(data) // page):  # every b-tree page header but the first: garbage
        data[p * page:p * page + 12] = b"\xff" * 12
    db.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError, match="not a usable genbench results database"):
        ResultStore(db, readonly=True)


# -- an output folder that cannot be written ----------------------------------------------------

def test_an_unwritable_out_exits_2_before_anything_trains(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(textwrap.dedent(SPEC))
    a_file = tmp_path / "taken"
    a_file.write_text("not a folder")
    result = invoke("run", str(spec), "--out", str(a_file), "--jobs", "0")
    assert result.exit_code == 2 and f"'{a_file}' is a file" in result.output  # click's check
    out = a_file / "o"
    result = invoke("run", str(spec), "--out", str(out), "--jobs", "0")
    assert result.exit_code == 2, result.output
    assert f"cannot use {out} as the output folder: {a_file} is a file, not a folder" \
        in result.output, result.output
    for path in (a_file, out):
        with pytest.raises(OutputNotWritableError, match=f"{a_file} is a file, not a folder"):
            ResultStore(path / "results.db")
    assert a_file.read_text() == "not a folder"
    assert OutputNotWritableError in USER_ERRORS or any(
        issubclass(OutputNotWritableError, e) for e in USER_ERRORS)


def _permission_bits_bind(tmp: Path) -> bool:
    """Whether this process is stopped by a folder's permission bits (root is not, unless
    it runs without CAP_DAC_OVERRIDE, as .ci/run runs this test)."""
    probe = tmp / "probe"
    probe.mkdir()
    probe.chmod(0o500)
    try:
        (probe / "x").touch()
    except PermissionError:
        return True
    finally:
        probe.chmod(0o700)
    return False


def test_a_read_only_out_exits_2_before_anything_trains(tmp_path):
    if not _permission_bits_bind(tmp_path):
        pytest.skip("permission bits do not stop root")
    spec = tmp_path / "s.toml"
    spec.write_text(textwrap.dedent(SPEC))
    out = tmp_path / "o"
    out.mkdir()
    out.chmod(0o500)
    try:
        result = invoke("run", str(spec), "--out", str(out), "--jobs", "0")
    finally:
        out.chmod(0o700)
    assert result.exit_code == 2, result.output
    assert f"cannot write to the output folder {out}" in result.output
    assert list(out.iterdir()) == []


# -- reading never writes ------------------------------------------------------------------------

def test_reading_an_older_store_never_writes_it(tmp_path):
    """A store of an older genbench (no failures table) reads as it is, read-only."""
    db = tmp_path / "results.db"
    store = filled_store(db, n=2)
    con = sqlite3.connect(db)
    con.execute("DROP TABLE failures")
    con.commit()
    con.close()
    before, mtime = db.read_bytes(), db.stat().st_mtime_ns
    reader = ResultStore(db, readonly=True)
    assert reader.failures() == [] and reader.count() == 2
    assert [r["failed_reruns"] for r in reader.results()] == [0, 0]
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.write(job(5))
    assert db.read_bytes() == before and db.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.db"]
    ResultStore(db).write(job(0, 0.5, fingerprint="later"))  # a writer adds the table
    assert store.failures() == []


def test_an_empty_file_reads_as_an_empty_store(tmp_path):
    db = tmp_path / "results.db"
    db.write_bytes(b"")
    reader = ResultStore(db, readonly=True)
    assert reader.count() == 0 and reader.results() == [] and reader.jobs().empty
    assert db.read_bytes() == b""


def test_a_reader_recovers_from_a_writer_killed_in_the_middle_of_a_commit(tmp_path):
    db = tmp_path / "results.db"
    filled_store(db, n=3)
    # A writer whose transaction spills into the database file, killed before it commits:
    # the file is left inconsistent, with the journal that restores it beside it.
    code = textwrap.dedent(f"""
        import os, signal, sqlite3
        con = sqlite3.connect({str(db)!r})
        con.execute("PRAGMA cache_size = 5")
        con.execute("BEGIN")
        for i in range(3000):
            con.execute("INSERT INTO meta VALUES (?, ?)", (str(i), "y" * 500))
        assert os.path.exists({str(db) + "-journal"!r})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert subprocess.run([sys.executable, "-c", code]).returncode == -signal.SIGKILL
    assert (tmp_path / "results.db-journal").exists()
    reader = ResultStore(db, readonly=True)
    assert reader.count() == 3
    assert not (tmp_path / "results.db-journal").exists()  # rolled back, as SQLite does
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM meta").fetchone()[0] == 1
    con.close()


# -- a good row is never replaced by a worse attempt --------------------------------------------

def test_a_worse_attempt_at_a_good_row_is_recorded_beside_it(tmp_path):
    store = ResultStore(tmp_path / "results.db")
    assert store.write(job(0, 0.1))
    good_id = store.results()[0]["id"]
    # a --force rerun (same fingerprint) that fails
    assert store.write(job(0, status="failed")) is False
    # a re-evaluation of the same training (new fingerprint) where a metric that was ok fails
    worse = job(0, fingerprint="e-new", metrics=[
        MetricRecord("recon", "failed", message="RuntimeError: nan"),
        MetricRecord("speed", "ok", {"samples_per_s": 5.0})])
    assert store.write(worse) is False
    assert not store.is_finished("e-new")  # so the next run tries it again
    (row,) = store.results()
    assert row["id"] == good_id and row["status"] == "ok" and row["metrics"] == {"recon.mse": 0.1}
    assert row["failed_reruns"] == 2 and "metric 'recon' failed: RuntimeError: nan" in row["last_failed_rerun"]
    first, second = store.failures()
    assert (first["kind"], first["status"], first["error"]) == ("job", "failed", "RuntimeError: boom")
    assert first["fingerprint"] == first["kept_fingerprint"] == "e-t0-0"
    assert first["kept_job_id"] == good_id and first["job_key"] == "digits/vae/seed0"
    assert (second["status"], second["fingerprint"], second["kept_fingerprint"]) == ("ok", "e-new", "e-t0-0")
    assert second["failed_metrics"] == {"recon": "RuntimeError: nan"}
    assert second["provenance"]["train_fingerprint"] == "t0"
    json.dumps(store.failures(), allow_nan=False)
    board = build_leaderboards(store)[("s", "digits")]
    assert board.value("vae", "recon.mse") == 0.1


def test_what_does_replace_a_row(tmp_path):
    store = ResultStore(tmp_path / "results.db")
    store.write(job(0, 0.1))
    # a re-evaluation that adds a metric which fails, the old ones still ok: more, not worse
    added = job(0, 0.2, fingerprint="e-added", metrics=[
        MetricRecord("recon", "ok", {"mse": 0.2}), MetricRecord("fid", "failed", message="no")])
    assert store.write(added)
    assert store.results()[0]["fingerprint"] == "e-added"
    # a changed configuration (another training) replaces the row whatever its outcome
    assert store.write(job(0, status="failed", training="t1"))
    (row,) = store.results()
    assert (row["status"], row["fingerprint"]) == ("failed", "e-t1-0")
    # and a failed row is replaced by anything
    assert store.write(job(0, 0.3, training="t1"))
    assert store.results()[0]["metrics"] == {"recon.mse": 0.3}
    assert store.failures() == []


def training(status, fingerprint="t0"):
    return TrainingRecord(fingerprint, "digits", "vae", "vae", 0, status, f"runs/{fingerprint}",
                          error=None if status == "ok" else "boom",
                          diverged_step=7 if status == "diverged" else None)


def test_a_failed_retrain_keeps_the_good_training_while_its_checkpoint_is_there(tmp_path):
    store = ResultStore(tmp_path / "results.db")
    assert store.write_training(training("ok"))
    assert store.write_training(training("failed"), finished_checkpoint=True) is False
    assert store.training_status("t0") == "ok"
    (failure,) = store.failures()
    assert (failure["kind"], failure["status"], failure["kept_fingerprint"]) == ("training", "failed", "t0")
    assert failure["job_key"] == "digits/vae/seed0 (training t0)" and failure["suite"] is None
    # the checkpoint is gone (a --force retrain discards it first): the record follows it
    assert store.write_training(training("diverged"))
    assert store.training_status("t0") == "diverged" and store.diverged_step("t0") == 7


# -- through the runner and the command line -------------------------------------------------

class FlakyRecon(Reconstruction):
    """Reconstruction error that raises while ``FlakyRecon.fail`` is set."""

    description = "test metric: reconstruction error that fails on demand"
    fail = False

    def compute(self, ctx):
        if FlakyRecon.fail:
            raise RuntimeError("flaky metric failed on purpose")
        return super().compute(ctx)


class SometimesDivergingVAE(DivergingVAE):
    """A VAE that diverges at step 5 while ``SometimesDivergingVAE.diverge`` is set."""

    description = "test model: diverges on demand"
    diverge = False

    def train_step(self, batch, step):
        if SometimesDivergingVAE.diverge:
            return super().train_step(batch, step)
        return super(DivergingVAE, self).train_step(batch, step)


class SafetyPlugin:
    @hookimpl
    def register_metrics(self, register):
        register("flaky-recon", FlakyRecon)

    @hookimpl
    def register_models(self, register):
        register("sometimes-diverging-vae", SometimesDivergingVAE)


@pytest.fixture
def regs(monkeypatch):
    import genbench.registry.manager

    regs = registries_with(SafetyPlugin())
    monkeypatch.setattr(genbench.registry.manager, "default_registries", lambda: regs)
    monkeypatch.setattr(FlakyRecon, "fail", False)
    monkeypatch.setattr(SometimesDivergingVAE, "diverge", False)
    return regs


def test_a_failed_rerun_keeps_the_good_row_on_the_leaderboard(tmp_path, regs):
    spec = tmp_path / "s.toml"
    spec.write_text(textwrap.dedent(SPEC).replace('"recon"', '"flaky-recon"'))
    out = tmp_path / "o"
    first = invoke("run", str(spec), "--out", str(out), "--jobs", "0", "-q")
    assert first.exit_code == 0, first.output
    (good,) = json.loads(invoke("results", "--out", str(out), "--format", "json").output)
    mse = good["metrics"]["flaky-recon.mse"]

    FlakyRecon.fail = True
    rerun = invoke("run", str(spec), "--out", str(out), "--jobs", "0", "--force")
    assert rerun.exit_code == 1, rerun.output  # the run reports its failure...
    assert "flaky-recon FAILED" in rerun.output and "the earlier ok result is kept" in rerun.output
    (row,) = json.loads(invoke("results", "--out", str(out), "--format", "json").output)
    assert row["id"] == good["id"] and row["metrics"]["flaky-recon.mse"] == mse  # ...the row stays
    assert row["failed_reruns"] == 1 and "flaky metric failed on purpose" in row["last_failed_rerun"]
    (failure,) = ResultStore(out / "results.db", readonly=True).failures()
    assert failure["failed_metrics"] == {"flaky-recon": "RuntimeError: flaky metric failed on purpose"}
    board = invoke("leaderboard", "--out", str(out), "--format", "csv")
    assert board.exit_code == 0, board.output
    tidy = pd.read_csv(io.StringIO(board.output)).set_index("column")
    assert tidy.loc["flaky-recon.mse", "mean"] == pytest.approx(mse)
    assert tidy.loc["flaky-recon.mse", "n"] == 1


def test_a_diverged_retrain_keeps_the_rows_but_not_the_lost_training(tmp_path, regs):
    spec = tiny_spec(models=["sometimes-diverging-vae"], metrics=["recon"], budget={"steps": 20})

    def run(**kw):
        return SuiteRunner(spec, tmp_path, regs, progress=False, echo=lambda s: None, jobs=0,
                           **kw).run()

    first = run()
    assert [r.status for r in first.ran] == ["ok"]
    fingerprint = first.trainings[0].fingerprint
    SometimesDivergingVAE.diverge = True
    forced = run(force=True)  # discards the finished checkpoint, then diverges
    assert [t.status for t in forced.trainings] == ["diverged"]
    assert [r.status for r in forced.ran] == ["diverged"]
    store = ResultStore(tmp_path / "results.db", readonly=True)
    assert store.training_status(fingerprint) == "diverged"  # its checkpoint is gone
    (row,) = store.results()
    assert row["status"] == "ok" and row["fingerprint"] == first.ran[0].fingerprint
    (failure,) = store.failures()
    assert (failure["kind"], failure["status"], failure["diverged_step"]) == ("job", "diverged", 5)
    board = build_leaderboards(store)[("t", "digits")]
    assert board.value("sometimes-diverging-vae", "recon.mse") == first.ran[0].metrics[0].values["mse"]
