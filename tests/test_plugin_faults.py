"""The rest of issue 28 ([reliability-2]): a weights file that is no checkpoint and a
features cache that cannot be written, refused before anything trains (and a cache write
that fails loses no features); plugins that call ``sys.exit``, print to stdout or raise
``KeyboardInterrupt``; and jobs that hang, ended by ``job_timeout``. Tiny budgets."""

from __future__ import annotations

import errno
import json
import os
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from genbench import Metric, hookimpl
from genbench.api.console import exit_status
from genbench.api.errors import AssetInvalidError, OutputNotWritableError, SpecError
from genbench.execution.local_executor import LocalExecutor
from genbench.execution.runner import SuiteRunner
from genbench.features import job_features
from genbench.features.assets import check_weights
from genbench.registry.manager import create_plugin_manager
from genbench.results.failures import collect_failures
from genbench.results.store import ResultStore
from genbench_plugins.models.vae import VAE
from helpers import invoke_cli, registries_with, run_inline, tiny_spec
from test_ray_executor import _running, _start_sleep_touch, _wait_for, ray_instance  # noqa: F401

#: Naming "train" and/or "sample", makes the hanging models below hang (read in the worker).
HANG = "GENBENCH_TEST_HANG"


def _spec_file(tmp_path: Path, metrics: str, extra: str = "") -> Path:
    spec = tmp_path / "spec.toml"
    spec.write_text(f'name = "t"\ndatasets = ["digits"]\nmodels = ["vae"]\nmetrics = {metrics}\n'
                    f'baselines = []\nnum_samples = 64\n{extra}'
                    '[budget]\nsteps = 2\nbatch_size = 32\n', encoding="utf-8")
    return spec


def _refused(tmp_path: Path, spec: Path, *needles: str, env: dict | None = None) -> str:
    """``genbench run spec --jobs 0``: exit 2, one line naming ``needles``, no output folder."""
    out = tmp_path / "out"
    result = invoke_cli("run", str(spec), "--out", str(out), "--jobs", "0", env=env)
    assert result.exit_code == 2, result.output
    (line,) = [s for s in result.output.splitlines() if s.strip()]
    assert line.startswith("Error: ") and all(n in line for n in needles), line
    assert not out.exists()
    return line


# -- 3. a weights file that is no checkpoint -------------------------------------------------

def test_a_weights_file_of_random_bytes_is_refused_before_anything_trains(tmp_path, registries):
    weights = tmp_path / "weights.pt"
    weights.write_bytes(os.urandom(5000))
    extra = f'feature_extractor = "digits-cnn"\nfeature_weights = "{weights}"\n'
    line = _refused(tmp_path, _spec_file(tmp_path, '["fid"]', extra), str(weights),
                    "'digits-cnn'", "not a PyTorch checkpoint", "digits_cnn.pt")
    cls = registries.extractors.get("digits-cnn")
    assert cls.weights_sha256 in line and "weights_only=False" not in line
    # a suite that reads no features never loads them: not refused
    spec = tiny_spec(metrics=["recon"], feature_extractor="digits-cnn",
                     feature_weights=str(weights))
    SuiteRunner(spec, tmp_path / "o", registries).prepare()
    # a checkpoint torch reads is the extractor's to judge; the shipped file is verified
    other = tmp_path / "other.pt"
    torch.save({"w": torch.zeros(2)}, other)
    assert check_weights("digits-cnn", cls, other)[2] is False
    assert check_weights("digits-cnn", cls, cls.default_weights_path())[2] is True


def test_a_default_weights_file_without_a_digest_is_checked_once(tmp_path, monkeypatch):
    """A file at the default place whose sha256 is not recorded is checked too (once per
    content); a declared file that is no torch checkpoint (``.bin``) is not."""
    from genbench import ExtractorMixin
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase

    place = tmp_path / "hub"
    cls = type("Unrecorded", (ExtractorMixin, FeatureExtractorBase), {
        "weights_filename": "net.pth",
        "default_weights_path": classmethod(lambda c: place / "net.pth")})
    place.mkdir()
    (place / "net.pth").write_bytes(b"\x80\x02garbage")
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    for _ in range(2):
        with pytest.raises(AssetInvalidError) as info:
            check_weights("unrecorded", cls)
        assert exit_status(info.value) == 2
        assert str(place / "net.pth") in str(info.value) and "`genbench assets add unrecorded" \
            in str(info.value)
    assert len(loads) == 1
    binary = type("Binary", (cls,), {"weights_filename": "net.bin"})
    assert check_weights("binary", binary, place / "net.pth")[0] == place / "net.pth"
    (place / "net.pth").unlink()
    torch.save({"w": torch.ones(1)}, place / "net.pth")
    assert check_weights("unrecorded", cls)[0] == place / "net.pth"


# -- 3. a features cache that cannot be written ----------------------------------------------

def test_a_features_cache_that_cannot_be_written_is_refused_before_anything(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cache = blocker / "cache"
    line = _refused(tmp_path, _spec_file(tmp_path, '["fid"]'), str(cache), "GENBENCH_CACHE",
                    env={"GENBENCH_CACHE": str(cache)})
    assert "features cache folder" in line
    with pytest.raises(OutputNotWritableError):
        SuiteRunner(tiny_spec(), tmp_path / "o", registries_with(), cache_dir=str(cache))
    assert not (tmp_path / "o").exists()


def test_a_cache_write_that_fails_keeps_the_features_computed(tmp_path, registries, monkeypatch):
    spec = tiny_spec(metrics=["fid", "kid", "prc"], budget={"steps": 2, "batch_size": 32})
    good = run_inline(spec, tmp_path / "good", registries)
    assert (Path(os.environ["GENBENCH_CACHE"]) / "features").is_dir()
    writes = []

    def read_only(path, write):
        writes.append(path)
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(job_features, "atomic_write", read_only)
    monkeypatch.setattr(job_features, "_UNWRITABLE_CACHES", set(), raising=False)
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "empty-cache"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = run_inline(spec, tmp_path / "ro", registries)
    (row,) = report.ran
    assert [(m.metric, m.status) for m in row.metrics] == [
        ("fid", "ok"), ("kid", "ok"), ("prc", "ok")]
    assert writes  # the features were extracted and the write failed
    (warning,) = [str(w.message) for w in caught if "features cache" in str(w.message)]
    assert "cannot write the features cache" in warning and "Read-only file system" in warning
    assert "GENBENCH_CACHE" in warning and len(warning.splitlines()) == 1
    assert [m.values for m in row.metrics] == [m.values for m in good.ran[0].metrics]


# -- 5. plugins that exit or print -----------------------------------------------------------

class ExitingVAE(VAE):
    description = "test model: calls sys.exit(3) in its second training step"

    def train_step(self, batch, step):
        if step == 1:
            sys.exit(3)
        return super().train_step(batch, step)


class InterruptingVAE(VAE):
    description = "test model: raises KeyboardInterrupt when it samples"

    @torch.no_grad()
    def sample(self, n, generator=None, *, temperature: float = 1.0):
        raise KeyboardInterrupt


class HangingTrainVAE(VAE):
    description = f"test model: its training sleeps for an hour while {HANG} says train"

    def train_step(self, batch, step):
        if "train" in os.environ.get(HANG, ""):
            time.sleep(3600)
        return super().train_step(batch, step)


class HangingSampleVAE(VAE):
    description = f"test model: its sampling sleeps for an hour while {HANG} says sample"

    @torch.no_grad()
    def sample(self, n, generator=None, *, temperature: float = 1.0):
        if "sample" in os.environ.get(HANG, ""):
            time.sleep(3600)
        return super().sample(n, generator, temperature=temperature)


class ExitingMetric(Metric):
    description = "test metric: calls sys.exit(0)"

    def compute(self, ctx):
        sys.exit(0)


class FaultyPlugin:
    @hookimpl
    def register_models(self, register):
        register("exiting-vae", ExitingVAE)
        register("interrupting-vae", InterruptingVAE)
        register("hanging-train-vae", HangingTrainVAE)
        register("hanging-sample-vae", HangingSampleVAE)

    @hookimpl
    def register_metrics(self, register):
        register("exiting-metric", ExitingMetric)


class ExitInRegister:
    @hookimpl
    def register_metrics(self, register):
        register("never-kept", ExitingMetric)

    @hookimpl
    def register_models(self, register):
        sys.exit(7)


class PrintInHooks:
    @hookimpl
    def register_models(self, register):
        print("hello from register_models")
        register("printed-vae", ExitingVAE)

    @hookimpl
    def register_commands(self, cli):
        print("hello from register_commands")


def test_sys_exit_in_a_register_hook_leaves_that_plugin_out(cli_plugins):
    regs = registries_with(ExitInRegister(), FaultyPlugin())
    (broken,) = regs.broken.values()
    assert "failed in register_models: SystemExit: 7" in broken.error
    assert "never-kept" not in regs.metrics.names() and "exiting-vae" in regs.models.names()
    cli_plugins().register(ExitInRegister(), name="exits")
    listed = invoke_cli("list", "models")
    assert listed.exit_code == 0 and "vae" in listed.stdout, listed.output
    result = invoke_cli("plugins")
    assert result.exit_code == 0, result.output
    (info,) = json.loads(result.stdout)
    assert info["name"] == "exits" and info["status"] == "broken"
    assert "SystemExit: 7" in info["error"]


def test_what_a_plugin_prints_while_loading_goes_to_stderr(cli_plugins):
    cli_plugins().register(PrintInHooks(), name="printer")
    result = invoke_cli("plugins")
    assert result.exit_code == 0, result.output
    (info,) = json.loads(result.stdout)  # the JSON alone
    assert info["name"] == "printer" and info["status"] == "ok"
    assert "hello from register_models" in result.stderr
    assert "hello from register_commands" in result.stderr


def test_a_plugin_module_that_prints_or_exits_on_import(tmp_path, monkeypatch, capsys):
    (tmp_path / "loud_plugin.py").write_text("print('imported')\n")
    (tmp_path / "quitting_plugin.py").write_text("import sys\nsys.exit(5)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = create_plugin_manager(load_entrypoints=False,
                               default_plugins=["loud_plugin", "quitting_plugin"])
    assert pm.get_plugin("loud_plugin") is not None
    assert "SystemExit: 5" in pm.broken["quitting_plugin"].error
    captured = capsys.readouterr()
    assert captured.out == "" and "imported" in captured.err


def test_sys_exit_in_a_job_or_a_metric_in_process(tmp_path):
    """``--jobs 0``: a ``sys.exit`` in ``train_step`` fails that job, one in a metric that
    metric; genbench goes on and stores the rest."""
    regs = registries_with(FaultyPlugin())
    spec = tiny_spec(models=["exiting-vae", "vae"], metrics=["recon", "exiting-metric"],
                     budget={"steps": 4, "batch_size": 32})
    report = run_inline(spec, tmp_path, regs)
    rows = {r.model: r for r in report.ran}
    assert rows["exiting-vae"].status == "failed" and rows["exiting-vae"].error == "SystemExit: 3"
    assert rows["vae"].status == "ok"
    recon, exiting = rows["vae"].metrics
    assert recon.status == "ok" and recon.values["mse"] > 0
    assert exiting.status == "failed" and exiting.message == "SystemExit: 0"
    assert "sys.exit(0)" in exiting.details["traceback"]
    stored = {r["model"]: r for r in ResultStore(tmp_path / "results.db").results()}
    assert stored["exiting-vae"]["status"] == "failed" and stored["vae"]["status"] == "ok"
    assert [f.error for f in report.trainings if f.status != "ok"] == ["SystemExit: 3"]


def test_faults_of_plugin_code_in_worker_processes(tmp_path, capfd):
    """Worker processes: a ``sys.exit`` fails its job (the worker keeps serving), a
    ``KeyboardInterrupt`` raised by the model fails its job with one line and no worker
    traceback, and a ``sys.exit`` in a metric fails that metric only."""
    regs = registries_with(FaultyPlugin())
    spec = tiny_spec(models=["exiting-vae", "interrupting-vae", "vae"],
                     metrics=["recon", "exiting-metric"], budget={"steps": 4, "batch_size": 32})
    report = SuiteRunner(spec, tmp_path, regs, progress=False, echo=lambda s: None, jobs=1,
                         threads=1).run()
    rows = {r.model: r for r in report.ran}
    assert rows["exiting-vae"].status == "failed" and rows["exiting-vae"].error == "SystemExit: 3"
    interrupted = rows["interrupting-vae"]
    assert interrupted.status == "failed" and interrupted.error.startswith("KeyboardInterrupt")
    assert "not Ctrl-C" in interrupted.error
    assert "raise KeyboardInterrupt" in interrupted.provenance["traceback"]
    assert rows["vae"].status == "ok"
    assert [(m.metric, m.status, m.message) for m in rows["vae"].metrics][1:] == \
        [("exiting-metric", "failed", "SystemExit: 0")]
    assert rows["vae"].metrics[0].status == "ok"
    assert not any("worker process died" in (r.error or "") for r in report.ran)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


# -- 8. jobs that hang --------------------------------------------------------------------------

def _sleep(state, seconds):
    time.sleep(seconds)
    return os.getpid()


def _no_setup(context, index):
    return None


def test_the_local_executor_stops_a_job_past_its_timeout():
    with LocalExecutor(2, threads_per_worker=1, job_timeout=1.0) as executor:
        executor.start(_no_setup, None)
        executor.submit("hung", _sleep, 3600)
        executor.submit("quick", _sleep, 0)
        ended = {}
        while len(ended) < 2:
            ended.update((c.key, c) for c in executor.wait())
        assert ended["quick"].failure is None and isinstance(ended["quick"].result, int)
        hung = ended["hung"]
        assert hung.result is None
        assert hung.failure == "job hung ran longer than job_timeout = 1 s; its worker was stopped"
        # its place is taken by a fresh worker, whose start-up is not counted
        executor.submit("next", _sleep, 0)
        executor.submit("again", _sleep, 0)
        ended = {}
        while len(ended) < 2:
            ended.update((c.key, c) for c in executor.wait())
        assert [c.failure for c in ended.values()] == [None, None]
    with pytest.raises(ValueError, match="job_timeout"):
        LocalExecutor(1, job_timeout=0)


def test_a_hung_job_fails_naming_its_timeout_and_the_next_run_retries_it(tmp_path, monkeypatch):
    """A training and an evaluation that hang are stopped after ``job_timeout`` and recorded
    as failed, naming the job and the timeout; the next run runs them again."""
    regs = registries_with(FaultyPlugin())

    def run(models, metrics, jobs=0, **timeout):
        spec = tiny_spec(models=models, metrics=metrics, budget={"steps": 4, "batch_size": 32},
                         **timeout)
        return SuiteRunner(spec, tmp_path, regs, progress=False, echo=lambda s: None, jobs=jobs,
                           threads=1).run()

    assert run(["hanging-sample-vae"], ["recon"]).ran[0].status == "ok"  # trained, not hanging
    monkeypatch.setenv(HANG, "train sample")
    models = ["hanging-train-vae", "hanging-sample-vae"]
    report = run(models, ["recon", "speed"], jobs=2, job_timeout=2)
    rows = {r.model: r for r in report.ran}
    for model in models:
        assert rows[model].status == "failed", rows[model]
        assert "ran longer than job_timeout = 2 s; its worker was stopped" in rows[model].error
        assert f"job digits/{model}/seed0" in rows[model].error  # the job, by its key
    (training,) = report.trainings  # the other model's training was stored before
    assert training.status == "failed" and "job_timeout" in training.error
    listed = {f.key: f for f in collect_failures(ResultStore(tmp_path / "results.db"))}
    assert {key.split(" ")[0] for key in listed} >= {f"digits/{m}/seed0" for m in models}, listed
    monkeypatch.delenv(HANG)
    report = run(models, ["recon", "speed"])  # the failed jobs run again, and finish
    assert sorted((r.model, r.status) for r in report.ran) == [
        ("hanging-sample-vae", "ok"), ("hanging-train-vae", "ok")]


def test_job_timeout_in_the_spec_and_on_the_command_line(tmp_path, monkeypatch):
    assert tiny_spec(job_timeout=90).job_timeout == 90.0
    assert tiny_spec().job_timeout is None
    assert "job_timeout" not in tiny_spec(job_timeout=5).to_dict()  # not the spec's identity
    for bad in (0, -1, "10", True, float("inf")):
        with pytest.raises(SpecError, match="'job_timeout'"):
            tiny_spec(job_timeout=bad)
    bad = invoke_cli("run", str(_spec_file(tmp_path, '["recon"]')), "--job-timeout", "0",
                     "--out", str(tmp_path / "out"))
    assert bad.exit_code == 2 and "--job-timeout" in bad.output
    # --jobs 0 cannot stop a job: the timeout does not apply, and one line says so
    lines = []
    spec = tiny_spec(metrics=["recon"], budget={"steps": 2, "batch_size": 32}, job_timeout=30)
    report = SuiteRunner(spec, tmp_path / "inline", registries_with(), progress=False,
                         echo=lines.append, jobs=0).run()
    assert [r.status for r in report.ran] == ["ok"]
    (warning,) = [s for s in lines if s.startswith("warning: job_timeout")]
    assert warning == ("warning: job_timeout = 30 s does not apply: jobs run in the genbench "
                       "process (--jobs 0), which cannot stop them")
    # the command line's value replaces the spec's and reaches the executor
    import genbench.execution.runner as runner_module

    seen = []
    original = runner_module.SuiteRunner.default_executor

    def spy(self, n_jobs):
        seen.append(self.spec.job_timeout)
        return original(self, n_jobs)

    monkeypatch.setattr(runner_module.SuiteRunner, "default_executor", spy)
    result = invoke_cli("run", str(_spec_file(tmp_path, '["recon"]', "job_timeout = 600\n")),
                        "--job-timeout", "45", "--jobs", "0", "--out", str(tmp_path / "cli"))
    assert result.exit_code == 0, result.output
    assert seen == [45.0] and "job_timeout = 45 s does not apply" in result.stderr


def test_the_ray_executor_cancels_a_task_past_its_timeout(tmp_path, ray_instance):
    """On Ray the clock counts from the submission: the task is cancelled and its process
    killed, and the job fails naming the timeout."""
    from genbench.execution.ray_executor import RayExecutor

    started, finished = tmp_path / "started", tmp_path / "finished"
    executor = RayExecutor(jobs=1, job_timeout=5.0)
    try:
        executor.start(_no_setup, None)
        executor.submit("hung", _start_sleep_touch, (str(started), 3600.0, str(finished)))
        (ended,) = executor.wait()
        assert ended.key == "hung" and ended.result is None
        assert ended.failure == "job hung ran longer than job_timeout = 5 s; its task was cancelled"
    finally:
        executor.close()
    if started.exists():  # it had started: its process ends long before the task would
        _wait_for(lambda: not _running(int(started.read_text())), "end of the hung task's process")
    assert not finished.exists()
