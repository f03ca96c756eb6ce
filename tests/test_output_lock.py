"""One writer per output folder: concurrent runs share the work, --no-wait names the
holder, a killed holder leaves no stale lock, and readers never take the lock."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from genbench.cli.commands import cli
from genbench.api.errors import OutputInUseError
from genbench.results.boards import build_leaderboards
from genbench.execution.locking import HOLDER_NAME, OutputLock, lock_holder
from genbench.results.store import ResultStore

SPEC = """
name = "lock"
datasets = ["ring8"]
models = ["ae"]
metrics = ["recon"]
seeds = [0, 1]
num_samples = 100
baselines = []
[budget]
steps = 20
"""


def write_spec(tmp_path: Path) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(SPEC))
    return path


def start_run(spec: Path, out: Path, log: Path, *extra: str) -> subprocess.Popen:
    """A real ``genbench run`` process, its stderr going to ``log`` (read while it runs)."""
    return subprocess.Popen(
        [sys.executable, "-m", "genbench", "run", str(spec), "--out", str(out), "--jobs", "0",
         *extra], stdout=subprocess.PIPE, stderr=open(log, "w"), text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})


def wait_for(predicate, what: str, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def board_lines(stdout: str) -> list[str]:
    """The printed leaderboard's model rows (the runs' own timings are not in them)."""
    return [line for line in stdout.splitlines() if line.startswith("ae ")]


def test_concurrent_runs_on_one_folder_train_each_job_once(tmp_path):
    spec, out = write_spec(tmp_path), tmp_path / "o"
    # Both runs start while this test holds the folder, so both must wait, then they race.
    with OutputLock(out):
        logs = [tmp_path / "a.log", tmp_path / "b.log"]
        procs = [start_run(spec, out, log) for log in logs]
        wait_for(lambda: all("in use by" in log.read_text() for log in logs),
                 "both runs to report that they wait")
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    errs = [log.read_text() for log in logs]
    for p, err in zip(procs, errs):
        assert p.returncode == 0, err
        # the one line, once, naming this process
        waiting = [line for line in err.splitlines() if "in use by" in line]
        assert len(waiting) == 1, err
        assert f"genbench process {os.getpid()} on host {socket.gethostname()}" in waiting[0]
    trained = [line for err in errs for line in err.splitlines() if line.startswith("trained ")]
    assert len(trained) == 2, errs  # two seeds, each trained by one of the runs only
    rows = [line for err in errs for line in err.splitlines() if line.startswith("[")]
    assert len(rows) == 2, errs
    assert sum("2 job(s) already in" in err for err in errs) == 1, errs  # the later run
    con = sqlite3.connect(out / "results.db")
    assert con.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 2
    assert con.execute("SELECT COUNT(*) FROM trainings").fetchone()[0] == 2
    con.close()
    # both summaries are the stored rows: both seeds, the same means
    stored = build_leaderboards(ResultStore(out / "results.db", readonly=True))[("lock", "ring8")]
    assert stored.value("ae", "recon.mse", "n") == 2
    for printed in outputs:
        assert board_lines(printed) == board_lines(stored.to_text()), printed
    assert not (out / HOLDER_NAME).exists()  # released


def test_no_wait_exits_2_naming_the_holder_and_runs_nothing(tmp_path):
    spec, out = write_spec(tmp_path), tmp_path / "o"
    with OutputLock(out):
        result = CliRunner().invoke(cli, ["run", str(spec), "--out", str(out), "--jobs", "0",
                                          "--no-wait"])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert f"{out} is in use by genbench process {os.getpid()} on host " \
               f"{socket.gethostname()}" in result.output
        assert "choose another --out" in result.output
    assert not (out / "runs").exists()
    assert ResultStore(out / "results.db").count() == 0


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "o"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom genbench.execution.locking import OutputLock\n"
         f"lock = OutputLock({str(out)!r})\nlock.acquire()\nprint('held', flush=True)\n"
         "time.sleep(120)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert lock_holder(out)["pid"] == holder.pid
        with pytest.raises(OutputInUseError, match=f"genbench process {holder.pid} on host"):
            OutputLock(out, wait=False).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert lock_holder(out)["pid"] == holder.pid  # its record stays behind, its lock does not
    lock = OutputLock(out, wait=False)
    lock.acquire()
    assert lock_holder(out)["pid"] == os.getpid()
    lock.release()
    assert lock_holder(out) is None


def test_readers_never_take_the_lock_and_read_while_a_run_writes(tmp_path):
    from genbench.results.records import JobRecord, MetricRecord

    out = tmp_path / "o"
    store = ResultStore(out / "results.db")
    store.write(JobRecord(
        fingerprint="f0", job_key="ring8/ae/seed0", suite="lock", dataset="ring8",
        dataset_name="ring8", model="ae", model_name="ae", model_family="autoencoder", seed=0,
        status="ok", provenance={}, metrics=[MetricRecord(
            "recon", "ok", {"mse": 0.25}, higher_is_better={"mse": False}, primary="mse")]))
    before = (out / "results.db").read_bytes()
    with OutputLock(out):
        writer = sqlite3.connect(out / "results.db")
        writer.execute("BEGIN IMMEDIATE")  # a run in the middle of storing a job
        writer.execute("INSERT INTO meta VALUES ('pending', 'x')")
        try:
            board = CliRunner().invoke(cli, ["leaderboard", "--out", str(out)])
            assert board.exit_code == 0, board.output
            assert "| ae " in board.output and "0.25" in board.output
            rows = CliRunner().invoke(cli, ["results", "--out", str(out), "--format", "json"])
            assert rows.exit_code == 0 and '"recon.mse": 0.25' in rows.output
        finally:
            writer.rollback()
            writer.close()
    assert (out / "results.db").read_bytes() == before
