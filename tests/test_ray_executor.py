"""The ray executor (genbench.execution.ray_executor) on a local Ray instance started once for the
module: the numbers of the local executor, retried dead workers, Ctrl-C and resume."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from genbench import hookimpl
from genbench.cli.commands import cli
from genbench.api.errors import ConfigError, MissingDependencyError, UnknownNameError
from genbench.execution.runner import SuiteRunner
from genbench.results.store import ResultStore
from genbench_plugins.models.autoencoders import AE
from helpers import RunnerPlugin, registries_with, tiny_spec

TESTS = str(Path(__file__).parent)


class DyingAE(AE):
    """An autoencoder whose worker process exits in its second training step: every time
    (``always``), or only while ``marker`` (a file it creates) does not exist yet."""

    description = "test model: its process exits while training"

    def __init__(self, data_info, marker: str = "", always: bool = False, **kwargs):
        super().__init__(data_info, **kwargs)
        self.marker, self.always = marker, always

    def train_step(self, batch, step):
        if step == 1 and (self.always or not os.path.exists(self.marker)):
            if self.marker:
                Path(self.marker).touch()
            os._exit(3)
        return super().train_step(batch, step)


class RayTestPlugin(RunnerPlugin):
    @hookimpl
    def register_models(self, register):
        super().register_models(register)
        register("dying-ae", DyingAE)


@pytest.fixture(scope="module")
def ray_instance():
    """A local Ray instance with 2 CPUs whose workers import the test modules."""
    ray = pytest.importorskip("ray")
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([TESTS, *sys.path])
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = saved
    yield ray
    ray.shutdown()


def run(spec, out, regs, **kwargs):
    return SuiteRunner(spec, out, regs, progress=False, echo=kwargs.pop("echo", lambda s: None),
                       threads=1, **kwargs).run()


def values(out):
    """Every stored metric value but timings, by row."""
    rows = ResultStore(out / "results.db").results()
    return {r["job_key"]: {k: v for k, v in r["metrics"].items() if not k.startswith("speed.")}
            for r in rows}


def suite(**overrides):
    return tiny_spec(models=["ae", "code-gaussian"], metrics=["recon", "fid", "speed"],
                     budget={"steps": 20}, **overrides)


@pytest.mark.slow
def test_a_suite_on_ray_stores_what_the_local_executor_stores(tmp_path, ray_instance):
    regs = registries_with(RayTestPlugin())
    local = run(suite(), tmp_path / "local", regs, jobs=2)
    shared = run(suite(executor="ray"), tmp_path / "shared", regs)
    # ...and with each row's samples drawn by two sample jobs, merged by the row
    driver = run(suite(executor="ray", executor_options={"artifacts": "driver"}, eval_shards=2,
                       eval_batch_size=32), tmp_path / "driver", regs)
    for report in (local, shared, driver):
        assert sorted((r.job_key, r.status) for r in report.ran) == [
            ("digits/ae/seed0", "ok"), ("digits/code-gaussian/seed0", "ok")]
        # the referenced autoencoder (counting-ae) trained before the model built on it
        assert len(report.trainings) == 3
    expected = values(tmp_path / "local")
    assert expected["digits/ae/seed0"]["fid.fid"] > 0
    assert values(tmp_path / "shared") == expected
    sharded = values(tmp_path / "driver")
    assert sharded.keys() == expected.keys()
    for row, vals in expected.items():  # another batch size: features equal to float rounding
        assert sharded[row] == pytest.approx(vals, rel=1e-5), row
    assert len(list((tmp_path / "driver").glob("runs/*/eval-*/samples/part-*/part.json"))) == 4
    for name in ("shared", "driver"):  # checkpoints and samples landed in the out folder
        out = tmp_path / name
        assert len(list(out.glob("runs/*/checkpoint.pt"))) == 3
        assert len(list(out.glob("runs/*/eval-*/samples/manifest.json"))) == 2
        row = ResultStore(out / "results.db").results()[0]
        assert row["provenance"]["threads"] == 1


def test_a_dead_worker_is_retried_then_its_job_fails_naming_the_cause(tmp_path, ray_instance):
    regs = registries_with(RayTestPlugin())
    marker = tmp_path / "died-once"
    spec = tiny_spec(
        models=[{"name": "dying-ae", "label": "dies-once", "params": {"marker": str(marker)}},
                {"name": "dying-ae", "label": "dies-always", "params": {"always": True}}],
        metrics=["recon"], budget={"steps": 4}, executor="ray",
        executor_options={"max_retries": 1})
    report = run(spec, tmp_path / "out", regs)
    assert marker.exists()  # the first attempt did die
    trainings = {"dies-always" if "always=True" in t.label else "dies-once": t
                 for t in report.trainings}
    once = trainings["dies-once"]
    assert once.status == "ok" and once.train_steps == 4
    (cause,) = once.provenance["retried_after"]
    assert "WorkerCrashedError" in cause
    always = trainings["dies-always"]
    assert always.status == "failed"
    assert always.error.startswith("worker process died: WorkerCrashedError")
    assert "after 1 retry" in always.error and len(always.provenance["retried_after"]) == 1
    rows = {r["job_key"]: r for r in ResultStore(tmp_path / "out" / "results.db").results()}
    assert rows["digits/dies-once/seed0"]["status"] == "ok"
    assert rows["digits/dies-always/seed0"]["status"] == "failed"
    assert "worker process died" in rows["digits/dies-always/seed0"]["error"]


def test_ctrl_c_keeps_finished_jobs_and_the_next_run_resumes(tmp_path, ray_instance):
    regs = registries_with(RayTestPlugin())
    spec = suite(executor="ray", executor_options={"max_retries": 0})
    lines = []

    def interrupt_after_first_row(line):
        lines.append(line)
        if "digits/" in line and ": " in line and line.startswith("["):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(spec, tmp_path / "out", regs, echo=interrupt_after_first_row)
    (first,) = ResultStore(tmp_path / "out" / "results.db").results()
    assert first["status"] == "ok"
    again = run(spec, tmp_path / "out", regs)
    assert again.already_stored == [first["job_key"]]  # its fingerprint is stored: not rerun
    (other,) = {"digits/ae/seed0", "digits/code-gaussian/seed0"} - {first["job_key"]}
    assert [(r.job_key, r.status) for r in again.ran] == [(other, "ok")]
    assert len(ResultStore(tmp_path / "out" / "results.db").results()) == 2


def test_cancel_stops_running_tasks_at_once(tmp_path, ray_instance):
    """``close(cancel=True)`` kills the process of a task that has started, instead of
    letting it run on: the task says when it started, and its process must end long
    before the task would."""
    from genbench.execution.ray_executor import RayExecutor

    started, finished = tmp_path / "started", tmp_path / "finished"
    executor = RayExecutor(jobs=2)
    executor.start(_setup, None)
    executor.submit("quick", _start_sleep_touch, (str(tmp_path / "q"), 0.0, str(tmp_path / "x")))
    executor.submit("slow", _start_sleep_touch, (str(started), 600.0, str(finished)))
    (completion,) = executor.wait()
    assert completion.key == "quick" and completion.result == "slept"
    _wait_for(lambda: started.exists() and started.read_text(), "started slow task")
    pid = int(started.read_text())
    executor.close(cancel=True)
    _wait_for(lambda: not _running(pid), "end of the slow task's process")  # 120 s << 600 s
    assert not finished.exists()


def _setup(context, index):
    return None


def _start_sleep_touch(state, job):
    """Write this process's id to ``started``, sleep, then touch ``finished``."""
    started, seconds, finished = job
    tmp = Path(started + ".tmp")
    tmp.write_text(str(os.getpid()))
    tmp.replace(started)  # the marker appears with its contents
    time.sleep(seconds)
    Path(finished).touch()
    return "slept"


def _wait_for(condition, what: str, timeout: float = 120.0) -> None:
    """Poll ``condition`` until it holds; the deadline bounds a hang, never a speed."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {timeout:.0f} s"
        time.sleep(0.05)


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie waiting for its parent."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): os.kill said it exists
    return state != "Z"


def test_without_ray_the_executor_says_how_to_install_it(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    regs = registries_with(RayTestPlugin())
    with pytest.raises(MissingDependencyError, match=r'pip install "genbench\[ray\]"'):
        SuiteRunner(suite(executor="ray"), tmp_path / "out", regs)
    spec = tmp_path / "s.toml"
    spec.write_text('datasets = ["ring8"]\nmodels = ["ae"]\n[budget]\nsteps = 1\n')
    result = CliRunner().invoke(cli, ["run", str(spec), "--out", str(tmp_path / "cli"),
                                      "--executor", "ray"])
    assert result.exit_code == 2, result.output
    assert 'pip install "genbench[ray]"' in result.output
    assert not (tmp_path / "cli" / "runs").exists()  # nothing trained


def test_executor_settings_are_checked_against_the_registered_executors():
    """A spec's executor is a name in ``registries.executors`` and its options that
    executor's declared ones, checked when the spec is validated, before anything trains."""
    regs = registries_with(RayTestPlugin())

    def checked(**overrides):
        spec = suite(**overrides)
        spec.validate(regs)
        return spec

    with pytest.raises(UnknownNameError, match="valid executors: local, ray"):
        checked(executor="slurm")
    with pytest.raises(ConfigError, match="unknown option.*adress.*valid options: address"):
        checked(executor="ray", executor_options={"adress": "auto"})
    with pytest.raises(ConfigError, match="address must be auto"):
        checked(executor="ray", executor_options={"address": "http://head"})
    with pytest.raises(ConfigError, match="executor 'ray': option 'artifacts' must be 'shared' "
                                          r"\| 'driver' \(default 'shared'\), got 's3'"):
        checked(executor="ray", executor_options={"artifacts": "s3"})
    with pytest.raises(ConfigError, match=r"option 'max_retries' must be int >= 0 \(default 1\), "
                                          "got -1"):
        checked(executor="ray", executor_options={"max_retries": -1})
    with pytest.raises(ConfigError, match="unknown option.*address.*valid options: \\(none\\)"):
        checked(executor_options={"address": "auto"})
    ok = checked(executor="ray", executor_options={"address": "ray://head:10001", "num_cpus": 2})
    assert ok.executor == "ray" and ok.executor_options["num_cpus"] == 2


def test_command_line_executor_overrides_and_unreachable_addresses_exit_2(tmp_path):
    """--executor local replaces a ray spec's options; --address without ray and an address
    where nothing answers are errors to fix (exit 2), found without waiting on Ray."""
    pytest.importorskip("ray")
    spec = tmp_path / "s.toml"
    spec.write_text('datasets = ["ring8"]\nmodels = ["ae"]\nmetrics = ["recon"]\nseeds = [0]\n'
                    'num_samples = 64\nbaselines = []\nexecutor = "ray"\n'
                    '[executor_options]\naddress = "auto"\nnum_cpus = 1\n[budget]\nsteps = 5\n')
    local = CliRunner().invoke(cli, ["run", str(spec), "--out", str(tmp_path / "a"), "-q",
                                     "--executor", "local", "--jobs", "0"])
    assert local.exit_code == 0, local.output
    plain = spec.read_text().replace('executor = "ray"\n', "").split("[executor_options]")[0] \
        + "[budget]\nsteps = 5\n"
    spec.write_text(plain)
    wrong = CliRunner().invoke(cli, ["run", str(spec), "--out", str(tmp_path / "b"),
                                     "--address", "127.0.0.1:1"])
    assert wrong.exit_code == 2 and "add --executor ray" in wrong.output, wrong.output
    # a fresh process: this one may already hold the module's Ray instance, which a run reuses
    nobody = subprocess.run([sys.executable, "-m", "genbench", "run", str(spec), "--out",
                             str(tmp_path / "c"), "--executor", "ray", "--address", "127.0.0.1:1"],
                            capture_output=True, text=True, timeout=300)
    # genbench's own check answered, not Ray's minutes of retries
    assert nobody.returncode == 2 and "nothing answers at 127.0.0.1:1" in nobody.stderr, \
        nobody.stderr
    assert not (tmp_path / "c" / "runs").exists()
