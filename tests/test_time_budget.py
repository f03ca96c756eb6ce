"""The time budget (``budget.max_seconds``): training stops once this much training time is
spent, counted over every process that trained the model (an interrupted and resumed
training included), and says so (``stopped_by_time``).

Time is a fake clock: the training engine reads ``time.perf_counter`` of
genbench.execution.training, replaced here by a clock that moves only when a training step
runs (:data:`STEP_SECONDS` per step), so the step at which training stops is exact.
"""

import types

import pytest
import torch
from torch import nn

import genbench.execution.training as training
from genbench import Budget, GenerativeModel, hookimpl
from genbench.execution.training import Trainer
from helpers import Interrupted, interrupt_at, registries_with, run_inline, tiny_spec

#: Seconds one training step takes on the fake clock.
STEP_SECONDS = 10.0


@pytest.fixture
def clock(monkeypatch):
    """The engine's clock, moved by hand: ``clock.now`` seconds (any origin, as
    ``perf_counter``'s)."""
    fake = types.SimpleNamespace(now=1000.0)
    fake.perf_counter = lambda: fake.now
    monkeypatch.setattr(training, "time", fake)
    monkeypatch.setattr(Ticking, "clock", fake)
    return fake


class Ticking(GenerativeModel):
    """Fits the data's mean; each training step takes :data:`STEP_SECONDS` on the fake
    clock."""

    description = "test model: a mean fitted by SGD, each step timed by a fake clock"
    clock = None

    def __init__(self, data_info):
        super().__init__()
        self.shape = tuple(data_info.shape)
        self.mean = nn.Parameter(torch.zeros(self.shape))
        self.optimizer = torch.optim.SGD(self.parameters(), lr=0.1)

    def train_step(self, batch, step):
        type(self).clock.now += STEP_SECONDS
        loss = ((batch - self.mean) ** 2).mean()
        self.optimizer_step(loss, self.optimizer)
        return {"loss": loss.detach()}

    def sample(self, n, generator=None):
        return self.mean.detach().expand(n, *self.shape).clone()


class TickingPlugin:
    @hookimpl
    def register_models(self, register):
        register("ticking", Ticking)


def ring8(registries):
    return registries.datasets.get("ring8")()


def test_training_stops_once_max_seconds_of_training_are_spent(registries, clock, tmp_path):
    data = ring8(registries)
    trainer = Trainer("cpu", progress=False, checkpoint_path=tmp_path / "c.pt", fingerprint="f")
    result = trainer.fit(Ticking(data.info()), data.split("train"),
                         Budget(steps=1000, batch_size=32, max_seconds=45))
    # 4 steps are 40 s, within the budget; the 5th ends at 50 s, past it
    assert result.status == "ok" and result.stopped_by_time
    assert result.steps == 5 and result.seconds == 50.0
    saved = torch.load(tmp_path / "c.pt", weights_only=True)
    assert saved["done"] and saved["step"] == 5 and saved["seconds"] == 50.0

    # a budget that outlasts the steps stops nothing
    clock.now = 0.0
    enough = Trainer("cpu", progress=False).fit(
        Ticking(data.info()), data.split("train"), Budget(steps=8, batch_size=32, max_seconds=1000))
    assert enough.steps == 8 and not enough.stopped_by_time and enough.seconds == 80.0


def test_seconds_trained_before_an_interruption_count_after_the_resume(registries, clock,
                                                                        tmp_path):
    data = ring8(registries)
    budget = Budget(steps=1000, batch_size=32, checkpoint_every=2, max_seconds=75)
    trainer = Trainer("cpu", progress=False, checkpoint_path=tmp_path / "c.pt", fingerprint="f")
    first = Ticking(data.info())
    interrupt_at(first, 4)
    with pytest.raises(Interrupted):
        trainer.fit(first, data.split("train"), budget)
    saved = torch.load(tmp_path / "c.pt", weights_only=True)
    assert not saved["done"] and saved["step"] == 4 and saved["seconds"] == 40.0

    clock.now = 5.0  # a new process: its own clock origin
    resumed = trainer.fit(Ticking(data.info()), data.split("train"), budget)
    # 35 s were left: 3 more steps (30 s) fit, the 4th ends past the budget; counting only
    # this process's time, 8 more steps would run
    assert resumed.resumed_from == 4 and resumed.stopped_by_time
    assert resumed.steps == 8 and resumed.seconds == 40.0 + 40.0
    assert torch.load(tmp_path / "c.pt", weights_only=True)["seconds"] == 80.0


def test_a_suite_row_stopped_by_time_says_so_in_its_provenance(clock, tmp_path):
    registries = registries_with(TickingPlugin())
    spec = tiny_spec(datasets=["ring8"], models=["ticking"], metrics=[], num_samples=16,
                     budget={"steps": 1000, "batch_size": 32, "max_seconds": 25})
    report = run_inline(spec, tmp_path / "out", registries)
    (trained,) = report.trainings
    (row,) = report.ran
    assert trained.status == "ok" and row.status == "ok", (trained.error, row.error)
    assert trained.train_steps == 3 and trained.train_seconds == 30.0
    for record in (trained, row):
        assert record.provenance["train"]["stopped_by_time"] is True
        assert record.provenance["train"]["steps"] == 3
    assert trained.provenance["budget"]["max_seconds"] == 25
    # a later row of the same training (another sample count) loads it, and says so too
    spec = tiny_spec(datasets=["ring8"], models=["ticking"], metrics=[], num_samples=17,
                     budget={"steps": 1000, "batch_size": 32, "max_seconds": 25})
    later = run_inline(spec, tmp_path / "out", registries)
    (row,) = later.ran
    assert not later.trainings and row.status == "ok"
    assert row.provenance["train"]["stopped_by_time"] is True
