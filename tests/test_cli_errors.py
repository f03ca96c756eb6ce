"""How the command line fails: exit status 2 for what the user can fix before running, 1 for
anything else, one ``Error:`` line and never a traceback unless ``--debug`` asks; warnings as
one line each; ``genbench results --failed``."""

import json
import os
import subprocess
import sys
import warnings

import pytest

from genbench import hookimpl
from genbench.api.console import DEBUG_HINT
from genbench.execution.local_executor import LocalExecutor
from genbench.results.store import ResultStore
from genbench_plugins.models.vae import VAE
from helpers import (BrokenMetric, ExplodingVAE, invoke_cli, registries_with, run_inline, tiny_spec,
                     tiny_spec_toml)


def invoke(*args, **env):
    return invoke_cli(*args, env=env or None)


def genbench_process(args, env_extra=None, code=None):
    """``genbench ARGS`` as its own process; ``code`` (Python) runs first in that process."""
    env = {**os.environ, **(env_extra or {})}
    script = (code or "") + "\nimport sys\nfrom genbench.cli.commands import main\nmain(sys.argv[1:])\n"
    return subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True,
                          text=True, timeout=300)


def spec_file(tmp_path, dataset="digits", metric="recon"):
    path = tmp_path / "s.toml"
    path.write_text(tiny_spec_toml(dataset=dataset, metrics=[metric], steps=5))
    return path


# -- exit status 2: errors to fix before running ----------------------------------------

def test_missing_data_exits_2_with_the_message_and_no_traceback(tmp_path):
    """A real process: what reaches the terminal is the message, not a traceback."""
    r = genbench_process(["run", str(spec_file(tmp_path, "mnist")), "--out", str(tmp_path / "o")],
                         {"GENBENCH_DATA": str(tmp_path / "data")})
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("Error: mnist: files not found in ")
    assert "genbench run --download" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert not (tmp_path / "o" / "runs").exists()  # nothing trained


def test_missing_weights_exit_2(tmp_path):
    r = invoke("run", str(spec_file(tmp_path, metric="fid")), "--out", str(tmp_path / "o"),
               "--extractor", "inception-v3-compat")
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("Error: feature extractor 'inception-v3-compat' needs its "
                               "weights file weights-inception-2015-12-05-6726825d.pth")
    assert "Traceback" not in r.output and DEBUG_HINT not in r.output


def test_missing_and_corrupt_results_exit_2(tmp_path):
    missing = invoke("results", "--out", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2
    assert missing.stderr.startswith(f"Error: no results in {tmp_path / 'nowhere'}")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.db").write_bytes(b"not a database, " * 64)
    corrupt = genbench_process(["results", "--failed", "--out", str(tmp_path / "bad")])
    assert corrupt.returncode == 2, corrupt.stderr
    assert corrupt.stderr.startswith("Error: ") and "results.db" in corrupt.stderr
    assert "Traceback" not in corrupt.stderr


def test_a_leaderboard_of_an_unknown_suite_or_an_empty_store_exits_2(tmp_path):
    from genbench.results.store import ResultStore

    ResultStore(tmp_path / "results.db")  # a store with no jobs
    empty = invoke("leaderboard", "--out", str(tmp_path))
    assert empty.exit_code == 2 and "no jobs stored yet" in empty.stderr, empty.output
    assert "Traceback" not in empty.output


# -- exit status 1: anything else, one line; --debug shows the traceback -------------------

EXPLODE = '''
import genbench.results.failures

def explode(store):
    raise RuntimeError("the disk caught fire\\nand a second line")

genbench.results.failures.collect_failures = explode
'''


@pytest.fixture
def empty_out(tmp_path):
    ResultStore(tmp_path / "results.db")
    return tmp_path


def test_unexpected_error_is_one_line_and_exits_1(empty_out):
    r = genbench_process(["results", "--failed", "--out", str(empty_out)], code=EXPLODE)
    assert r.returncode == 1
    assert r.stderr.splitlines() == ["Error: RuntimeError: the disk caught fire", DEBUG_HINT]
    assert r.stdout == ""


@pytest.mark.parametrize("how", ["--debug", "GENBENCH_DEBUG=1"])
def test_debug_shows_the_traceback(empty_out, how):
    flag, env = (["--debug"], None) if how == "--debug" else ([], {"GENBENCH_DEBUG": "1"})
    r = genbench_process([*flag, "results", "--failed", "--out", str(empty_out)], env, EXPLODE)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert "in explode" in r.stderr
    assert lines[-1] == "Error: RuntimeError: the disk caught fire"
    assert DEBUG_HINT not in r.stderr


class CommandPlugin:
    """Adds ``genbench warn-and-fail``: one warning, then a bug (a KeyError)."""

    @hookimpl
    def register_commands(self, cli):
        @cli.command(name="warn-and-fail")
        def warn_and_fail():
            warnings.warn("the data looks odd:\n  check it", UserWarning)
            {}["missing"]


def test_warning_prints_as_one_line_and_a_bug_exits_1(cli_plugins):
    cli_plugins().register(CommandPlugin(), name="command-plugin")
    shown = warnings.showwarning
    r = invoke("warn-and-fail")
    assert r.exit_code == 1
    assert r.stderr.splitlines() == ["warning: the data looks odd: check it",
                                     "Error: KeyError: 'missing'", DEBUG_HINT]
    assert warnings.showwarning is shown  # the CLI's display does not outlive the command


def test_ctrl_c_in_any_command_exits_130(monkeypatch, empty_out):
    import genbench.results.failures

    def interrupt(store):
        raise KeyboardInterrupt

    monkeypatch.setattr(genbench.results.failures, "collect_failures", interrupt)
    r = invoke("results", "--failed", "--out", str(empty_out))
    assert r.exit_code == 130 and "interrupted" in r.stderr and "Traceback" not in r.output


def warn_in_worker(state, message):
    warnings.warn(message, UserWarning)
    return os.getpid()


def no_setup(context, index):
    return None


def test_a_worker_prints_warnings_as_one_line(capfd):
    executor = LocalExecutor(workers=1, threads_per_worker=1)
    executor.start(no_setup, None)
    try:
        executor.submit("w", warn_in_worker, "from a worker:\n  careful")
        (completion,) = executor.wait()
    finally:
        executor.close()
    assert completion.failure is None and completion.result != os.getpid()
    err = capfd.readouterr().err
    assert "warning: from a worker: careful\n" in err
    assert "UserWarning" not in err and "warnings.warn" not in err


# -- genbench results --failed -------------------------------------------------------------



class FailingPlugin:
    @hookimpl
    def register_models(self, register):
        register("exploding-vae", ExplodingVAE)

    @hookimpl
    def register_metrics(self, register):
        register("broken", BrokenMetric)


def test_results_failed_prints_each_failure_with_its_stored_traceback(tmp_path):
    spec = tiny_spec(models=["vae", "exploding-vae"], metrics=["recon", "broken"],
                     budget={"steps": 5, "batch_size": 64})
    report = run_inline(spec, tmp_path, registries_with(FailingPlugin()))
    assert [r.model for r in report.failed] == ["exploding-vae"]

    r = invoke("results", "--failed", "--out", str(tmp_path))
    assert r.exit_code == 1  # something failed
    blocks = r.stdout.split("\n\n")
    assert len(blocks) == 2, r.stdout  # the failed row, the broken metric of vae's good row
    job = next(b for b in blocks if b.startswith("failed job digits/exploding-vae/seed0"))
    assert "  error: RuntimeError: exploded on purpose at step 2" in job
    # the row never ran: the traceback is its training's, as the worker stored it
    assert "  Traceback (most recent call last):" in job and "in train_step" in job
    metric = next(b for b in blocks if b.startswith("failed metric digits/vae/seed0 broken"))
    assert "this metric is broken on purpose" in metric and "in compute" in metric

    rows = json.loads(invoke("results", "--failed", "--format", "json", "--out",
                             str(tmp_path)).stdout)
    assert [(f["kind"], f["key"], f["status"]) for f in rows] == [
        ("job", "digits/exploding-vae/seed0", "failed"),
        ("metric", "digits/vae/seed0 broken", "failed")]
    assert all(f["traceback"].startswith("Traceback") and f["suite"] == "t" for f in rows)


def test_results_failed_says_so_when_nothing_failed(tmp_path):
    run_inline(tiny_spec(budget={"steps": 5, "batch_size": 64}), tmp_path, registries_with())
    r = invoke("results", "--failed", "--out", str(tmp_path))
    assert r.exit_code == 0
    assert r.stdout == f"no failed or diverged jobs in {tmp_path / 'results.db'}\n"
    as_json = invoke("results", "--failed", "--format", "json", "--out", str(tmp_path))
    assert as_json.exit_code == 0 and json.loads(as_json.stdout) == []
    assert invoke("results", "--format", "text", "--out", str(tmp_path)).exit_code == 2


def test_ctrl_c_while_preparing_stores_nothing(monkeypatch, tmp_path):
    import genbench.execution.runner

    def interrupt(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(genbench.execution.runner.SuiteRunner, "prepare", interrupt)
    out = tmp_path / "o"
    r = invoke("run", str(spec_file(tmp_path)), "--out", str(out))
    assert r.exit_code == 130 and "Traceback" not in r.output
    assert f"interrupted before anything finished: nothing is stored in {out}" in r.stderr
    assert not (out / "results.db").exists()

    (out / "runs" / "digits__vae__seed0__0123").mkdir(parents=True)  # an unfinished training
    r = invoke("run", str(spec_file(tmp_path)), "--out", str(out))
    assert r.exit_code == 130 and "results.db" not in r.stderr
    assert f"interrupted: checkpoints in {out / 'runs'} are reused; run the same command" in r.stderr
    assert not (out / "results.db").exists()


def test_ctrl_c_after_stored_jobs_counts_them(monkeypatch, tmp_path):
    import genbench.execution.runner

    out = tmp_path / "o"
    assert invoke("run", str(spec_file(tmp_path)), "--out", str(out)).exit_code == 0

    def interrupt(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(genbench.execution.runner.SuiteRunner, "prepare", interrupt)
    r = invoke("run", str(spec_file(tmp_path)), "--out", str(out), "--force")
    assert r.exit_code == 130
    assert (f"interrupted: 1 finished job(s) are stored in {out / 'results.db'}; checkpoints in "
            f"{out / 'runs'} are reused; run the same command again to resume") in r.stderr
