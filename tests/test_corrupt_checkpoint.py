"""A checkpoint that does not load is set aside (``checkpoint.pt.corrupt-<UTC time>``, never
deleted), reported in one line naming it, and its training runs again from scratch: found
by the driver before scheduling, by a worker resuming a training, by a worker loading a
finished model to evaluate it, and by a worker loading a model another is built on. torch's
advice to retry with ``weights_only=False`` is never shown."""

import json
import os

import pytest
import torch

from genbench import Budget, hookimpl
from genbench.execution.checkpoints import load_checkpoint_file, set_aside
from genbench.api.errors import CheckpointCorruptError
from genbench.execution.runner import SuiteRunner
from genbench.execution.training import Trainer
from genbench.execution.worker import WorkerContext, run_job, setup_worker
from genbench_plugins.models.vae import VAE
from helpers import RunnerPlugin, registries_with, tiny_spec

STEPS = 20
ADVICE = "weights_only=False"


def _run(spec, out, registries, lines):
    return SuiteRunner(spec, out, registries, progress=False, echo=lines.append, jobs=0).run()


def _spec(**kw):
    return tiny_spec(**{"metrics": ["recon"], "budget": {"steps": STEPS, "batch_size": 64},
                        "num_samples": 100, **kw})


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _garbage(path):
    path.write_bytes(os.urandom(4096))


def _misfit(path):
    """A checkpoint that loads, of the right training, whose model state is damaged."""
    state = torch.load(path, weights_only=True)
    state["model"] = {"encoder.0.weight": torch.zeros(3)}
    torch.save(state, path)


def _aside(run_dir):
    return sorted(run_dir.glob("checkpoint.pt.corrupt-*"))


def _no_advice(lines, capsys, *records):
    out = capsys.readouterr()
    text = "\n".join(lines) + out.out + out.err + "".join(
        json.dumps(r.provenance, default=str) + str(r.error) for r in records)
    assert ADVICE not in text and "weights_only" not in text


@pytest.mark.parametrize("corrupt", [_truncate, _garbage, _misfit])
def test_a_corrupt_finished_checkpoint_is_set_aside_and_retrained(tmp_path, registries, capsys, corrupt):
    first = _run(_spec(), tmp_path, registries, []).ran[0]
    run_dir = tmp_path / first.run_dir
    ckpt = run_dir / "checkpoint.pt"
    corrupt(ckpt)
    damaged = ckpt.read_bytes()
    lines = []
    report = _run(_spec(metrics=["recon", "speed"]), tmp_path, registries, lines)  # re-evaluation
    (row,) = report.ran
    assert row.status == "ok", row.error
    assert row.provenance["train"]["resumed_from"] == 0 and row.train_steps == STEPS  # from scratch
    (aside,) = _aside(run_dir)
    assert aside.read_bytes() == damaged  # moved, byte for byte, never deleted
    warnings = [line for line in lines if line.startswith("warning: checkpoint")]
    assert len(warnings) == 1 and str(ckpt) in warnings[0] and str(aside) in warnings[0]
    assert "training digits/vae/seed0" in warnings[0] and "again from scratch" in warnings[0]
    # a file that does not load is found by the driver before scheduling; a damaged state
    # only by the worker that loads it into the model, which reports it in the row
    assert row.provenance.get("warnings", []) == (warnings if corrupt is _misfit else [])
    state = load_checkpoint_file(ckpt)  # a new, finished checkpoint
    assert state["done"] and state["step"] == STEPS
    store = SuiteRunner(_spec(), tmp_path, registries).store
    assert [r["status"] for r in store.results()] == ["ok"]
    _no_advice(lines, capsys, row)


class StopsAtStep15(VAE):
    """A VAE whose process fails at its 15th step while ``fail`` is set: after the
    checkpoint of step 10, so a mid-training checkpoint stays behind."""

    description = "test model: fails mid-training"
    fail = True

    def train_step(self, batch, step):
        if step == 15 and StopsAtStep15.fail:
            raise RuntimeError("power cut")
        return super().train_step(batch, step)


class StopsPlugin:
    @hookimpl
    def register_models(self, register):
        register("stops-vae", StopsAtStep15)


@pytest.mark.parametrize("corrupt", [_truncate, _garbage, _misfit])
def test_a_corrupt_unfinished_checkpoint_is_set_aside_and_retrained(tmp_path, capsys, corrupt):
    regs = registries_with(StopsPlugin())
    spec = _spec(models=["stops-vae"], budget={"steps": STEPS, "batch_size": 64,
                                               "checkpoint_every": 10})
    StopsAtStep15.fail = True
    failed = _run(spec, tmp_path, regs, []).trainings[0]
    assert failed.status == "failed" and "power cut" in failed.error
    ckpt = tmp_path / failed.run_dir / "checkpoint.pt"
    assert load_checkpoint_file(ckpt)["step"] == 10  # what a rerun would resume from
    corrupt(ckpt)
    damaged = ckpt.read_bytes()
    StopsAtStep15.fail = False
    lines = []
    report = _run(spec, tmp_path, regs, lines)
    (row,) = report.ran
    assert row.status == "ok", row.error
    (training,) = report.trainings
    assert training.status == "ok" and training.provenance["train"]["resumed_from"] == 0
    assert training.train_steps == STEPS
    (aside,) = _aside(tmp_path / failed.run_dir)
    assert aside.read_bytes() == damaged
    warnings = [line for line in lines if line.startswith("warning: checkpoint")]
    assert len(warnings) == 1 and str(ckpt) in warnings[0] and str(aside) in warnings[0]
    # the driver, or for a damaged state the worker resuming the training, found it
    assert training.provenance.get("warnings", []) == (warnings if corrupt is _misfit else [])
    _no_advice(lines, capsys, row, training)


def test_a_corrupt_checkpoint_of_a_referenced_model_is_retrained(tmp_path, capsys):
    regs = registries_with(RunnerPlugin())
    spec = _spec(models=["code-gaussian"], metrics=["speed"])
    first = _run(spec, tmp_path, regs, [])
    ae = next(t for t in first.trainings if t.model_name == "counting-ae")
    ckpt = tmp_path / ae.run_dir / "checkpoint.pt"
    _misfit(ckpt)  # loads as a finished checkpoint: only loading the model finds it damaged
    lines = []
    report = _run(_spec(models=["code-gaussian"], metrics=["speed"], num_samples=50),  # re-evaluation
                  tmp_path, regs, lines)
    (row,) = report.ran
    assert row.status == "ok", row.error
    assert row.provenance["warnings"] == [w for w in lines if w.startswith("warning: checkpoint")]
    assert len(row.provenance["warnings"]) == 1 and str(ckpt) in row.provenance["warnings"][0]
    assert len(_aside(tmp_path / ae.run_dir)) == 1
    assert load_checkpoint_file(ckpt)["done"]  # trained again, in the row's job
    _no_advice(lines, capsys, row)


def test_a_worker_retrains_when_the_checkpoint_it_evaluates_is_garbage(tmp_path, registries, capsys):
    """The path torch's advice came from: a full (not memory-mapped) load of garbage."""
    runner = SuiteRunner(_spec(), tmp_path, registries, progress=False, echo=lambda s: None, jobs=0)
    runner.run()
    rows, _, prepared = runner.prepare()
    ckpt = tmp_path / rows[0].training.run_dir / "checkpoint.pt"
    _garbage(ckpt)
    state = setup_worker(WorkerContext(registries, str(tmp_path), str(tmp_path / "cache"),
                                       progress=False, datasets=prepared), 0)
    record = run_job(state, rows[0])
    assert record.status == "ok", record.error
    (warning,) = record.provenance["warnings"]
    assert warning.startswith(f"warning: checkpoint {ckpt} cannot be loaded (not a torch checkpoint")
    assert len(_aside(ckpt.parent)) == 1 and load_checkpoint_file(ckpt)["done"]
    _no_advice([], capsys, record)


@pytest.mark.parametrize("corrupt, reason", [
    (_truncate, "PytorchStreamReader failed reading zip archive: failed finding central directory"),
    (_garbage, "not a torch checkpoint: 4096 bytes"),
    (lambda p: p.write_bytes(b""), "the file is empty"),
])
def test_the_trainer_names_the_file_and_never_advises_weights_only_false(tmp_path, digits,
                                                                          corrupt, reason):
    ckpt = tmp_path / "checkpoint.pt"
    model = VAE(digits.info())
    trainer = Trainer("cpu", checkpoint_path=ckpt, fingerprint="f", progress=False)
    trainer.fit(model, digits.split("train"), Budget(steps=2, batch_size=16))
    corrupt(ckpt)
    with pytest.raises(CheckpointCorruptError) as info:
        trainer.fit(VAE(digits.info()), digits.split("train"), Budget(steps=2, batch_size=16))
    assert info.value.path == ckpt and reason in info.value.reason
    assert str(info.value).startswith(f"checkpoint {ckpt} cannot be loaded: ")
    assert "weights_only" not in str(info.value) and info.value.__cause__ is None
    assert ckpt.exists()  # the Trainer reports; the run decides to set it aside


def test_set_aside_never_overwrites(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    names = []
    for content in (b"one", b"two"):
        ckpt.write_bytes(content)
        names.append(set_aside(ckpt))
    assert names[0] != names[1] and [n.read_bytes() for n in names] == [b"one", b"two"]
    assert all(n.name.startswith("checkpoint.pt.corrupt-") and n.name[22:].startswith("20")
               for n in names)
    assert not ckpt.exists() and set_aside(ckpt) is None  # gone: another process moved it
