"""Executors are plugins: a third-party package adds one through ``register_executors``
(registered directly, or installed with an entry point) and a suite runs on it; an
executor plugin that is broken is left out and named, and the others keep working."""

import re
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from genbench import Completion, Executor, hookimpl
from genbench.api.errors import ConfigError, UnknownNameError
from genbench.registry.manager import build_registries, create_plugin_manager
from genbench.results.store import ResultStore
from genbench.execution.runner import SuiteRunner
from helpers import invoke_cli, registries_with, run_inline, tiny_spec, tiny_spec_toml


@dataclass(frozen=True)
class RecorderOptions:
    """``[executor_options]`` of the recorder: a tag written beside each recorded key."""

    tag: str = "default"

    def __post_init__(self):
        if not isinstance(self.tag, str) or not self.tag:
            raise ConfigError(f"executor 'recorder': tag must be a non-empty string, "
                              f"got {self.tag!r}")


class RecordingExecutor(Executor):
    """Runs each job in this process when it is submitted, recording ``(tag, key)``."""

    description = "test executor: every job inline, recorded"
    Options = RecorderOptions
    in_process = True
    log: list[tuple[str, str]] = []

    def __init__(self, options: RecorderOptions):
        self.options = options
        self._state = None
        self._ended: list[Completion] = []

    @classmethod
    def from_request(cls, request):
        return cls(request.options)

    def start(self, setup, context):
        self._state = setup(context, 0)

    def submit(self, key, work, job):
        self.log.append((self.options.tag, key))
        try:
            self._ended.append(Completion(key, result=work(self._state, job)))
        except Exception as exc:
            self._ended.append(Completion(key, failure=f"{type(exc).__name__}: {exc}"))

    def wait(self):
        ended, self._ended = self._ended, []
        return ended

    def close(self, cancel=False):
        self._ended = []


class RecorderPlugin:
    @hookimpl
    def register_executors(self, register):
        register("recorder", RecordingExecutor)


def small_suite(**overrides):
    return tiny_spec(models=["ae"], metrics=["recon"], budget={"steps": 5, "batch_size": 64},
                     **overrides)


def quiet_run(spec, out, regs):
    return SuiteRunner(spec, out, regs, progress=False, echo=lambda s: None).run()


def recon(out: Path) -> dict:
    return {r["job_key"]: r["metrics"] for r in ResultStore(out / "results.db").results()}


def test_a_suite_runs_on_an_executor_a_plugin_registers(tmp_path):
    regs = registries_with(RecorderPlugin())
    assert regs.executors.names() == ["local", "ray", "recorder"]
    RecordingExecutor.log.clear()
    report = quiet_run(small_suite(executor="recorder", executor_options={"tag": "x"}),
                       tmp_path / "rec", regs)
    (row,) = report.ran
    assert row.status == "ok"
    training = f"digits/ae/seed0 (training {report.trainings[0].fingerprint[:8]})"
    assert RecordingExecutor.log == [("x", training), ("x", row.job_key)]  # needs first
    inline = run_inline(small_suite(), tmp_path / "inline", regs)
    assert [r.status for r in inline.ran] == ["ok"]
    assert recon(tmp_path / "rec") == recon(tmp_path / "inline")  # same numbers as --jobs 0


def test_a_plugin_executors_options_are_checked_before_anything_trains(tmp_path):
    regs = registries_with(RecorderPlugin())
    RecordingExecutor.log.clear()
    with pytest.raises(ConfigError, match="executor 'recorder': unknown option.*colour; "
                                          "valid options: tag"):
        quiet_run(small_suite(executor="recorder", executor_options={"colour": "red"}),
                  tmp_path / "a", regs)
    # the declared type is checked before the plugin's own __post_init__ runs
    with pytest.raises(ConfigError, match=r"executor 'recorder': option 'tag' must be str "
                                          r"\(default 'default'\), got 3"):
        quiet_run(small_suite(executor="recorder", executor_options={"tag": 3}),
                  tmp_path / "b", regs)
    # without the plugin the name is unknown, and the error lists what is registered
    with pytest.raises(UnknownNameError, match="unknown executor 'recorder'; valid executors: "
                                               "local, ray"):
        small_suite(executor="recorder").validate(registries_with())
    assert RecordingExecutor.log == []
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


PLUGIN_SOURCE = '''
from genbench import Completion, Executor, hookimpl

RECORD = []


class InstalledRecorder(Executor):
    description = "records and runs each job in this process"
    in_process = True

    def start(self, setup, context):
        self.state, self.ended = setup(context, 0), []

    def submit(self, key, work, job):
        RECORD.append(key)
        self.ended.append(Completion(key, result=work(self.state, job)))

    def wait(self):
        ended, self.ended = self.ended, []
        return ended

    def close(self, cancel=False):
        self.ended = []


@hookimpl
def register_executors(register):
    register("installed-recorder", InstalledRecorder)
'''


def test_an_installed_plugin_adds_an_executor_through_its_entry_point(tmp_path, monkeypatch):
    site = tmp_path / "site"
    info = site / "genbench_recorder-1.0.dist-info"
    info.mkdir(parents=True)
    (site / "genbench_recorder.py").write_text(PLUGIN_SOURCE)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: genbench-recorder\n"
                                   "Version: 1.0\n")
    (info / "entry_points.txt").write_text("[genbench]\nrecorder = genbench_recorder\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("GENBENCH_LOAD_PLUGINS", "recorder")  # no other installed plugin
    pm = create_plugin_manager(load_entrypoints=True)
    regs = build_registries(pm)
    assert "recorder" not in pm.broken
    entry = regs.executors.entry("installed-recorder")
    assert entry.plugin == "recorder" and pm.origin("recorder") == ("genbench-recorder", "1.0")
    report = quiet_run(small_suite(executor="installed-recorder"), tmp_path / "out", regs)
    assert [r.status for r in report.ran] == ["ok"]
    import genbench_recorder

    assert genbench_recorder.RECORD == [
        f"digits/ae/seed0 (training {report.trainings[0].fingerprint[:8]})", "digits/ae/seed0"]


class Unfinished(Executor):
    """Leaves ``wait`` out."""

    def start(self, setup, context): ...
    def submit(self, key, work, job): ...
    def close(self, cancel=False): ...


class NotAnExecutor:
    def submit(self, key, work, job): ...


class UndeclaredOptions(RecordingExecutor):
    Options = dict


def _plugin(*registrations, error=None):
    class Plugin:
        @hookimpl
        def register_executors(self, register):
            for name, cls in registrations:
                register(name, cls)
            if error is not None:
                raise error
    return Plugin()


def test_a_broken_executor_plugin_is_left_out_and_named():
    pm = create_plugin_manager(load_entrypoints=False)
    plugins = {
        "half": _plugin(("half", Unfinished)),
        "wrong": _plugin(("wrong", NotAnExecutor)),
        "loose": _plugin(("loose", UndeclaredOptions)),
        "raises": _plugin(("early", RecordingExecutor), error=RuntimeError("no cluster here")),
        "again": _plugin(("local", RecordingExecutor)),
        "good": RecorderPlugin(),
    }
    for name, plugin in plugins.items():
        pm.register(plugin, name=name)
    regs = build_registries(pm)
    assert regs.executors.names() == ["local", "ray", "recorder"]
    assert regs.executors.entry("local").plugin == "genbench_plugins.executors.builtin"
    errors = {name: b.error for name, b in pm.broken.items()}
    assert set(errors) == {"half", "wrong", "loose", "raises", "again"}
    assert "it does not define wait" in errors["half"]
    assert "not a subclass of genbench.api.executor.Executor" in errors["wrong"]
    assert "its Options (<class 'dict'>) is not a dataclass" in errors["loose"]
    assert 'failed in register_executors: RuntimeError: no cluster here' in errors["raises"]
    assert ("executor 'local' is registered twice: by plugin "
            "'genbench_plugins.executors.builtin' and by plugin 'again'") in errors["again"]
    with pytest.raises(UnknownNameError) as info:
        small_suite(executor="early").validate(regs)  # none of the raising plugin's names
    assert "valid executors: local, ray, recorder" in str(info.value)
    assert "failed to load" in str(info.value)


def test_an_unknown_executor_on_the_command_line_lists_the_valid_ones(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(tiny_spec_toml(dataset="ring8", models=("ae",), steps=1))
    result = invoke_cli("run", str(spec), "--out", str(tmp_path / "out"),
                        "--executor", "slurm", catch_exceptions=True)
    assert result.exit_code == 2, result.output
    assert "unknown executor 'slurm'; valid executors: local, ray" in result.output
    assert not (tmp_path / "out" / "runs").exists()


def test_the_executor_example_of_the_docs_runs_a_suite(tmp_path):
    text = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    text = text[text.index("### Executors"):]
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    plugin = types.ModuleType("docs_executor_plugin")
    exec(compile(code, "docs/plugins.md", "exec"), plugin.__dict__)
    regs = registries_with(plugin)
    assert regs.executors.get("serial") is plugin.SerialExecutor
    with pytest.raises(ConfigError, match="tag must not be empty"):
        small_suite(executor="serial", executor_options={"tag": ""}).validate(regs)
    report = quiet_run(small_suite(executor="serial", executor_options={"tag": "x"}),
                       tmp_path / "out", regs)
    assert [r.status for r in report.ran] == ["ok"]
