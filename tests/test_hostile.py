"""Hostile cases of issue 28 ([reliability-2]) that once misbehaved, each now with its
documented outcome: truncated checkpoints, buffers shaped in ``fit``, labels and suite names
that share files, NaN metric values, and faults of the machine (a store that cannot be
written, a lock path that is a folder, leaked semaphores after Ctrl-C). Tiny budgets."""

from __future__ import annotations

import errno
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import torch

from genbench import Budget, GenerativeModel, Metric, hookimpl, split_tensors
from genbench.api.console import error_line, exit_status
from genbench.api.errors import CheckpointCorruptError, OutputNotWritableError, SpecError
from genbench.execution import checkpoints
from genbench.execution.checkpoints import (checkpoint_finished, load_checkpoint_file,
                                            load_model_state)
from genbench.execution.runner import SuiteRunner
from genbench.execution.training import Trainer
from genbench.results.failures import collect_failures
from genbench.results.store import ResultStore, StoreWriteError
from genbench_plugins.models.vae import VAE
from helpers import CountingVAE, RunnerPlugin, invoke_cli, registries_with, tiny_spec


def _run(spec, out, registries, lines=None):
    echo = (lines.append if lines is not None else lambda s: None)
    return SuiteRunner(spec, out, registries, progress=False, echo=echo, jobs=0).run()


def _raw_load_error(path) -> type | None:
    """What ``torch.load`` itself raises on ``path`` (``None``: it loads)."""
    try:
        torch.load(path, weights_only=True)
    except Exception as exc:
        return type(exc)
    return None


def _aside(run_dir):
    return sorted(run_dir.glob("checkpoint.pt.corrupt-*"))


# -- 1. truncated checkpoints ----------------------------------------------------------------

def test_a_checkpoint_truncated_anywhere_is_damage_never_an_error(tmp_path, digits):
    full = tmp_path / "checkpoint.pt"
    Trainer("cpu", checkpoint_path=full, fingerprint="f", progress=False).fit(
        VAE(digits.info()), digits.split("train"), Budget(steps=2, batch_size=16))
    data = full.read_bytes()
    assert len(data) > 80 * 1024
    cut_file = tmp_path / "cut.pt"
    raw = set()
    for cut in range(0, 80 * 1024, 2048):
        cut_file.write_bytes(data[:cut])
        raw.add(_raw_load_error(cut_file))
        for mmap in (False, True):
            with pytest.raises(CheckpointCorruptError) as info:
                load_checkpoint_file(cut_file, mmap=mmap)
            assert info.value.path == cut_file and f"{cut} bytes" in info.value.reason or cut == 0
        assert checkpoint_finished(cut_file, "f") is False
    assert OSError in raw  # torch's zip reader raises OSError (EINVAL) for some of the cuts
    assert load_checkpoint_file(full)["done"]


def test_a_truncated_finished_checkpoint_is_set_aside_and_retrained(tmp_path, registries):
    spec = tiny_spec(metrics=["recon"], budget={"steps": 20, "batch_size": 64})
    first = _run(spec, tmp_path, registries).ran[0]
    ckpt = tmp_path / first.run_dir / "checkpoint.pt"
    data = ckpt.read_bytes()
    for cut in range(5000, len(data), 1000):  # `truncate -s 5000`, or the next cut torch
        ckpt.write_bytes(data[:cut])           # answers with OSError
        if _raw_load_error(ckpt) is OSError:
            break
    assert _raw_load_error(ckpt) is OSError
    lines = []
    report = _run(tiny_spec(metrics=["recon", "speed"], budget={"steps": 20, "batch_size": 64}),
                  tmp_path, registries, lines)  # a re-evaluation with other metrics
    (row,) = report.ran
    assert row.status == "ok", row.error
    assert row.provenance["train"]["resumed_from"] == 0 and row.train_steps == 20
    (aside,) = _aside(ckpt.parent)
    assert aside.read_bytes() == data[:cut]
    (warning,) = [line for line in lines if line.startswith("warning: checkpoint")]
    assert str(ckpt) in warning and str(aside) in warning and f"{cut} bytes" in warning
    assert load_checkpoint_file(ckpt)["done"]


def test_a_checkpoint_that_cannot_be_read_is_an_error_naming_it(tmp_path, monkeypatch):
    """Not damage: the run stops with the file system's error, naming the file."""
    ckpt = tmp_path / "checkpoint.pt"
    torch.save({"format": 1}, ckpt)

    def einval(*args, **kwargs):  # what torch's zip reader raises on a short read
        raise OSError(errno.EINVAL, "Invalid argument")

    def eio(*args, **kwargs):  # a disk that fails under the reader
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(torch, "load", einval)
    monkeypatch.setattr(checkpoints, "open", eio, raising=False)
    with pytest.raises(OSError) as info:
        load_checkpoint_file(ckpt)
    assert info.value.errno == errno.EIO and str(ckpt) in str(info.value)
    assert not isinstance(info.value, CheckpointCorruptError) and ckpt.exists()
    monkeypatch.undo()
    folder = tmp_path / "folder" / "checkpoint.pt"
    folder.mkdir(parents=True)
    with pytest.raises(IsADirectoryError, match=str(folder)):
        load_checkpoint_file(folder)
    assert folder.is_dir()


# -- 2. buffers shaped in fit ----------------------------------------------------------------

class FittedGaussian(GenerativeModel):
    """A diagonal Gaussian whose buffers are registered unshaped in ``__init__`` and take
    their shape in ``fit`` (a common third-party pattern); ``scale`` multiplies samples."""

    description = "test model: buffers shaped in fit"
    fits = 0

    def __init__(self, data_info, uninitialized: bool = False, scale: float = 1.0):
        super().__init__()
        self.scale = scale
        for name in ("mean", "std"):
            self.register_buffer(name, torch.nn.parameter.UninitializedBuffer()
                                 if uninitialized else torch.zeros(0))

    @torch.no_grad()
    def fit(self, data, budget):
        FittedGaussian.fits += 1
        x, _ = split_tensors(data)
        self.mean, self.std = x.mean(0), x.std(0)

    @torch.no_grad()
    def sample(self, n, generator=None):
        noise = self.randn(n, self.mean.numel(), generator=generator)
        return (self.mean + self.std * noise) * self.scale


class NaNMetric(Metric):
    description = "test metric: a NaN and a finite value"
    higher_is_better = {"score": True}

    def compute(self, ctx):
        return {"score": math.nan, "fine": 1.0}


class InfMetric(Metric):
    description = "test metric: an infinite value"

    def compute(self, ctx):
        return {"score": -math.inf}


class DeclaredNaNMetric(Metric):
    description = "test metric: a NaN it declares meaningful"
    nonfinite_ok = frozenset({"maybe"})

    def compute(self, ctx):
        return {"maybe": math.nan, "score": 2.0}


class HostilePlugin:
    @hookimpl
    def register_models(self, register):
        register("fitted-gaussian", FittedGaussian)

    @hookimpl
    def register_metrics(self, register):
        register("nan-metric", NaNMetric)
        register("inf-metric", InfMetric)
        register("declared-nan", DeclaredNaNMetric)


def _ring_spec(models, metrics, **kw):
    return tiny_spec(**{"datasets": ["ring8"], "models": models, "metrics": metrics,
                        "num_samples": 1000, "budget": {"steps": 1, "batch_size": 64}, **kw})


@pytest.mark.parametrize("uninitialized", [False, True])
def test_buffers_shaped_in_fit_load_from_their_checkpoint(tmp_path, uninitialized):
    regs = registries_with(HostilePlugin())
    models = [{"name": "fitted-gaussian", "params": {"uninitialized": uninitialized}}]
    FittedGaussian.fits = 0
    first = _run(_ring_spec(models, ["modes"]), tmp_path, regs).ran[0]
    assert first.status == "ok", first.error
    lines = []
    second = _run(_ring_spec(models, ["modes", "speed"]), tmp_path, regs, lines).ran[0]
    assert second.status == "ok", second.error
    assert FittedGaussian.fits == 1  # loaded, not fitted again
    assert not _aside(tmp_path / first.run_dir) and not [s for s in lines if "warning" in s]
    # the same samples from the loaded buffers: the same mode statistics
    assert second.metrics[0].values == first.metrics[0].values
    state = load_checkpoint_file(tmp_path / first.run_dir / "checkpoint.pt")["model"]
    assert state["mean"].shape == (2,)
    # a mismatch of a buffer that has its shape is still damage
    fresh = FittedGaussian(None)
    fresh.register_buffer("std", torch.zeros(3))
    with pytest.raises(RuntimeError, match="std"):
        load_model_state(fresh, state)


# -- 4. labels and suite names that share files ----------------------------------------------

def test_dataset_labels_that_map_to_one_file_are_refused_before_anything(tmp_path):
    out = tmp_path / "out"
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text('name = "t"\nmodels = ["ae"]\nmetrics = ["modes"]\nbaselines = []\n'
                         '[[datasets]]\nname = "ring8"\nlabel = "ring 8"\n'
                         '[[datasets]]\nname = "ring8"\nlabel = "ring_8"\n')
    result = invoke_cli("run", str(spec_file), "--out", str(out), "--jobs", "0")
    assert result.exit_code == 2, result.output
    (line,) = [s for s in result.output.splitlines() if s.strip()]
    assert line.startswith("Error: ") and "'ring 8'" in line and "'ring_8'" in line
    assert not out.exists()


@pytest.mark.parametrize("name", ["", "  ", ".", ".."])
def test_a_suite_name_that_is_no_folder_is_refused(name):
    with pytest.raises(SpecError, match="cannot name the suite's leaderboards folder"):
        tiny_spec(name=name)


def test_suite_names_that_share_a_leaderboard_folder_are_refused(tmp_path):
    regs = registries_with(HostilePlugin())
    models = ["fitted-gaussian"]
    _run(_ring_spec(models, ["modes"], name="exp 1"), tmp_path, regs)  # spaces are fine
    before = sorted(tmp_path.rglob("*"))
    for other in ("exp_1", "EXP 1"):
        with pytest.raises(SpecError) as info:
            _run(_ring_spec(models, ["modes"], name=other), tmp_path, regs)
        assert "'exp 1'" in str(info.value) and repr(other) in str(info.value)
        assert exit_status(info.value) == 2
    assert sorted(tmp_path.rglob("*")) == before
    report = _run(_ring_spec(models, ["modes"], name="exp 1"), tmp_path, regs)
    assert report.already_stored  # its own name still runs, and finds its rows


# -- 6. values that are not numbers ----------------------------------------------------------

@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_a_nan_or_infinite_metric_value_fails_the_metric(tmp_path):
    regs = registries_with(HostilePlugin())
    models = ["fitted-gaussian", {"name": "fitted-gaussian", "label": "huge",
                                  "params": {"scale": 1e30}}]
    metrics = ["nan-metric", "inf-metric", "declared-nan",
               {"name": "modes", "label": "modes", "params": {"num_samples": 200}},
               {"name": "kid", "label": "kid",
                "params": {"subsets": 5, "subset_size": 100, "max_reference": 200}}]
    report = _run(_ring_spec(models, metrics, num_samples=200), tmp_path, regs)
    rows = {r.model: {m.metric: m for m in r.metrics} for r in report.ran}
    for label in ("fitted-gaussian", "huge"):
        m = rows[label]
        assert m["nan-metric"].status == "failed" and m["nan-metric"].values == {}
        assert "nan-metric.score = nan" in m["nan-metric"].message
        assert "fine" not in m["nan-metric"].message
        assert m["nan-metric"].details["measured_values"]["fine"] == 1.0
        assert m["inf-metric"].status == "failed" and "inf-metric.score = -inf" in m["inf-metric"].message
        assert m["declared-nan"].status == "ok" and math.isnan(m["declared-nan"].values["maybe"])
    assert rows["fitted-gaussian"]["kid"].status == "ok"
    kid = rows["huge"]["kid"]  # KID overflows on samples of 1e30
    assert kid.status == "failed" and "kid.mean = " in kid.message, kid
    # a statistic undefined for these samples, declared by the built-in metric: a result
    modes = rows["huge"]["modes"]
    assert modes.status == "ok" and modes.values["hq"] == 0 and math.isnan(modes.values["rkl"])
    assert len(report.metric_failures) == 5  # the run exits 1
    failures = {f.key: f for f in collect_failures(ResultStore(tmp_path / "results.db"))}
    assert set(failures) == {f"ring8/{model}/seed0 {metric}" for model in ("fitted-gaussian", "huge")
                             for metric in ("nan-metric", "inf-metric")} | {"ring8/huge/seed0 kid"}
    values = ResultStore(tmp_path / "results.db").metric_values()
    nan_rows = values[values["metric"] == "nan-metric"]
    assert set(nan_rows["status"]) == {"failed"} and nan_rows["value"].isna().all()


# -- 7. faults of the machine ----------------------------------------------------------------

class _FullDisk(sqlite3.Connection):
    """A connection on a disk with no space left: every row written fails as SQLite fails."""

    def execute(self, sql, *args):
        if sql.lstrip().upper().startswith(("INSERT", "DELETE")):
            exc = sqlite3.OperationalError("database or disk is full")
            exc.sqlite_errorname = "SQLITE_FULL"
            raise exc
        return super().execute(sql, *args)


@pytest.mark.parametrize("fault", ["read-only", "disk full"])
def test_a_store_that_cannot_be_written_mid_run_is_one_line_and_resumes(tmp_path, monkeypatch,
                                                                         fault):
    regs = registries_with(RunnerPlugin())
    spec = tiny_spec(models=["counting-vae"], metrics=["recon"],
                     budget={"steps": 20, "batch_size": 64})
    db = tmp_path / "results.db"
    connect = ResultStore._connect
    broken = [False]

    def faulty(self):
        if not broken[0] or self.readonly:
            return connect(self)
        if fault == "disk full":
            con = sqlite3.connect(self.path, timeout=60, factory=_FullDisk)
        else:
            con = connect(self)
            con.execute("PRAGMA query_only = ON")  # SQLite: attempt to write a readonly database
        return con

    monkeypatch.setattr(ResultStore, "_connect", faulty)
    CountingVAE.calls = 0
    runner = SuiteRunner(spec, tmp_path, regs, progress=False, echo=lambda s: None, jobs=0)
    runner.store.count()  # the store is there and written; then the fault comes
    broken[0] = True
    with pytest.raises(StoreWriteError) as info:
        runner.run()
    message = error_line(info.value)
    assert len(message.splitlines()) == 1 and str(db) in message and exit_status(info.value) == 1
    assert ("read-only" if fault == "read-only" else "disk is full") in message
    assert "run the same command again" in message
    (ckpt,) = (tmp_path / "runs").glob("*/checkpoint.pt")
    assert load_checkpoint_file(ckpt)["done"]  # trained; its record was never written
    assert ResultStore(db, readonly=True).trainings().empty
    broken[0] = False
    lines = []
    report = _run(spec, tmp_path, regs, lines)
    assert CountingVAE.calls == 20  # not trained again
    (row,) = report.ran
    assert row.status == "ok" and row.train_steps == 20
    (training,) = ResultStore(db, readonly=True).trainings().to_dict("records")
    assert training["status"] == "ok" and training["train_steps"] == 20
    assert training["provenance"]["recorded_from"] == "checkpoint"
    assert any(s.startswith("stored training digits/counting-vae/seed0") for s in lines)


def test_a_lock_path_that_is_a_folder_is_refused_before_anything_trains(tmp_path, registries):
    (tmp_path / ".genbench.lock").mkdir()
    with pytest.raises(OutputNotWritableError) as info:
        _run(tiny_spec(metrics=["recon"]), tmp_path, registries)
    assert str(tmp_path / ".genbench.lock") in str(info.value) and "folder" in str(info.value)
    assert exit_status(info.value) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".genbench.lock"]


def test_an_interrupted_run_prints_one_line(tmp_path):
    """Ctrl-C while a worker trains with a progress bar (whose lock is a named semaphore):
    the one ``interrupted: ...`` line, no resource_tracker warning about a leaked one."""
    spec = tmp_path / "spec.toml"
    spec.write_text('name = "t"\ndatasets = ["digits"]\nmodels = ["vae"]\nmetrics = ["recon"]\n'
                    'baselines = []\nnum_samples = 64\n'
                    '[budget]\nsteps = 100000\nbatch_size = 64\ncheckpoint_every = 10\n')
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "genbench", "run", str(spec), "--out", str(out),
                             "--jobs", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("runs/*/checkpoint.pt")):  # the worker trains
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    (line,) = err.strip().splitlines()
    assert line.startswith("interrupted: ") and "run the same command again" in line, err
    assert not os.path.exists(out / ".genbench.lock.json")


# -- 3. checks that come after training ------------------------------------------------------

def _spec_file(tmp_path, models: str, metrics: str, extra: str = "", name: str = "t"):
    spec = tmp_path / "spec.toml"
    spec.write_text(f'name = "{name}"\ndatasets = ["digits"]\nmodels = {models}\n'
                    f'metrics = {metrics}\nbaselines = []\nnum_samples = 64\n{extra}'
                    '[budget]\nsteps = 2\nbatch_size = 32\n', encoding="utf-8")
    return spec


def _refused(tmp_path, spec, *needles):
    """``genbench run spec``: exit 2, one line naming ``needles``, no output folder."""
    out = tmp_path / "out"
    result = invoke_cli("run", str(spec), "--out", str(out), "--jobs", "0")
    assert result.exit_code == 2, result.output
    (line,) = [s for s in result.output.splitlines() if s.strip()]
    assert line.startswith("Error: ") and all(n in line for n in needles), line
    assert not out.exists()
    return line


@pytest.mark.parametrize("model, setting, allowed", [
    ("ddpm", 'steps = "ten"', "int >= 1 | None"),  # a setting whose default is None
    ("vae", "temperature = nan", "float > 0"),
    ("vae", "temperature = -1.0", "float > 0"),
])
def test_a_sampling_setting_the_model_rejects_is_refused_before_anything(tmp_path, model,
                                                                         setting, allowed):
    key = setting.split(" = ")[0]
    spec = _spec_file(tmp_path, f'[{{ name = "{model}", sampling = {{ {setting} }} }}]',
                      '["recon"]')
    _refused(tmp_path, spec, f"sampling setting {key!r}", f"must be {allowed}")


@pytest.mark.parametrize("metrics, extra", [
    ('["speed"]', ""),
    ('["recon", "speed"]', 'primary_metric = "speed.samples_per_s"\n'),
])
def test_a_speed_as_the_quality_axis_publishes_without_a_quality_plot(tmp_path, metrics, extra):
    out = tmp_path / "out"
    result = invoke_cli("run", str(_spec_file(tmp_path, '["vae"]', metrics, extra)),
                        "--out", str(out), "--jobs", "0")
    assert result.exit_code == 0, result.output
    board = out / "leaderboards" / "t"
    assert (board / "index.html").is_file() and (board / "digits.md").is_file()
    assert not (board / "digits-quality-speed.png").exists()  # speed against itself: no plot


def test_a_quality_that_is_its_own_axis_draws_nothing():
    import pandas as pd

    from genbench.results.plots import nfe_curves, quality_speed_figure

    table = pd.DataFrame({"model": ["a", "b"], "model_name": ["a", "b"],
                          "speed.samples_per_s": [10.0, 20.0], "speed.nfe": [5.0, 10.0]})
    assert quality_speed_figure(table, quality="speed.samples_per_s", higher_is_better=True,
                                speed="speed.samples_per_s") is None
    assert nfe_curves(table, "speed.nfe", "speed.nfe") == {}
    assert quality_speed_figure(table, quality="speed.nfe", higher_is_better=False,
                                speed="speed.samples_per_s") is not None


class KeylessMetric(Metric):
    description = "test metric: declares no keys"

    def compute(self, ctx):
        return {"anything": 1.0}


class KeylessPlugin:
    @hookimpl
    def register_metrics(self, register):
        register("keyless", KeylessMetric)


def test_a_primary_metric_key_the_metric_does_not_declare_is_refused_before_anything(tmp_path):
    spec = _spec_file(tmp_path, '["vae"]', '["recon"]', 'primary_metric = "recon.nonexistent"\n')
    _refused(tmp_path, spec, "'recon.nonexistent'", "recon.mse, recon.psnr, recon.ssim")
    regs = registries_with(KeylessPlugin())
    for primary in ("recon.mse", "recon.psnr"):  # declared: a direction, a presentation
        tiny_spec(metrics=["recon"], primary_metric=primary).validate(regs)
    # a metric that declares no keys may give any
    tiny_spec(metrics=["keyless"], primary_metric="keyless.anything").validate(regs)


def test_names_too_long_for_a_file_name_are_refused_before_anything(tmp_path):
    line = _refused(tmp_path, _spec_file(tmp_path, '["vae"]', '["recon"]', name="x" * 300),
                    "300 bytes", "at most 255")
    assert len(line) < 300
    tiny_spec(name="x" * 255)
    tiny_spec(name="é" * 127)  # 254 bytes
    with pytest.raises(SpecError, match="256 bytes"):
        tiny_spec(name="é" * 128)
    # a dataset label: its longest file is <label>-quality-speed.png (18 bytes added)
    tiny_spec(datasets=[{"name": "digits", "label": "字" * 79}])  # 237 + 18 = 255 bytes
    with pytest.raises(SpecError, match="240 bytes.*quality-speed.png.*at most 237"):
        tiny_spec(datasets=[{"name": "digits", "label": "字" * 80}])
