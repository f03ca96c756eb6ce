"""The training engine: budgets, seeding, checkpoints with resume, the NaN guard."""

import pytest
import torch

from genbench import Budget
from genbench.api.errors import ConfigError
from genbench.execution.devices import resolve_device
from genbench.execution.training import Trainer, train
from helpers import DivergingVAE, Interrupted, interrupt_at, params_equal


def _vae(registries, digits):
    torch.manual_seed(0)  # the same initial weights every time (the runner seeds likewise)
    return registries.models.get("vae")(digits.info())


def test_budget_validation():
    with pytest.raises(ConfigError, match="exactly one"):
        Budget()
    with pytest.raises(ConfigError, match="exactly one"):
        Budget(steps=1, epochs=1)
    with pytest.raises(ConfigError, match="batch_size"):
        Budget(steps=1, batch_size=0)
    b = Budget(epochs=2, batch_size=100)
    assert b.total_steps(1437) == 2 * 14  # the partial last batch is dropped


def test_device_resolution():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")
    else:
        with pytest.raises(ConfigError, match="CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    for unusable in ("meta", "xla", "meta:0"):
        # torch accepts these names, but nothing trains on them: refused before training
        with pytest.raises(ConfigError, match="not one genbench runs on"):
            resolve_device(unusable)


def test_training_reduces_loss_and_is_seeded(registries, digits):
    data = digits.split("train")
    a, b = _vae(registries, digits), _vae(registries, digits)
    torch.manual_seed(123)  # the engine must reseed, whatever the global state
    ra = train(a, data, Budget(steps=60), device="cpu", seed=3, progress=False, log_every=10)
    torch.rand(7)
    rb = train(b, data, Budget(steps=60), device="cpu", seed=3, progress=False, log_every=10)
    assert ra.status == "ok" and ra.steps == 60
    assert params_equal(a, b) and ra.history == rb.history
    assert ra.history[-1]["loss"] < ra.history[0]["loss"]
    assert [h["step"] for h in ra.history] == [10, 20, 30, 40, 50, 60]


def test_resume_from_checkpoint_matches_uninterrupted(registries, digits, tmp_path):
    data = digits.split("train")
    full = _vae(registries, digits)
    Trainer("cpu", seed=1, progress=False).fit(full, data, Budget(steps=80))

    ckpt = tmp_path / "ckpt.pt"
    first = _vae(registries, digits)
    # Interrupt after 40 steps: a time budget cannot be made exact, so train a 40-step budget
    # with the same checkpoint cadence and then continue the same checkpoint to 80.
    t = Trainer("cpu", seed=1, progress=False, checkpoint_path=ckpt, fingerprint="f")
    t.fit(first, data, Budget(steps=80, checkpoint_every=40, max_seconds=None))
    state = torch.load(ckpt, weights_only=True)
    assert state["done"] and state["step"] == 80

    # Now a real interruption: run to 40 with checkpoint_every=40, kill, resume.
    ckpt2 = tmp_path / "ckpt2.pt"
    part = _vae(registries, digits)
    t2 = Trainer("cpu", seed=1, progress=False, checkpoint_path=ckpt2, fingerprint="f")

    interrupt_at(part, 40)
    with pytest.raises(Interrupted):
        t2.fit(part, data, Budget(steps=80, checkpoint_every=40))
    assert torch.load(ckpt2, weights_only=True)["step"] == 40
    resumed = _vae(registries, digits)
    result = t2.fit(resumed, data, Budget(steps=80, checkpoint_every=40))
    assert result.resumed_from == 40 and result.steps == 80
    assert [h["step"] for h in result.history] == [25, 50, 75, 80]  # the whole curve
    assert params_equal(resumed, full)
    assert params_equal(first, full)

    # A finished checkpoint trains nothing; a different fingerprint starts afresh.
    again = _vae(registries, digits)
    r = t2.fit(again, data, Budget(steps=80, checkpoint_every=40))
    assert r.resumed_from == 80 and params_equal(again, full)
    other = Trainer("cpu", seed=1, progress=False, checkpoint_path=ckpt2, fingerprint="g")
    assert other.fit(_vae(registries, digits), data, Budget(steps=5)).resumed_from == 0


def test_nan_guard_records_step(registries, digits):
    model = DivergingVAE(digits.info())
    result = train(model, digits.split("train"), Budget(steps=50), device="cpu", progress=False)
    assert result.status == "diverged"
    assert result.diverged_step == 5
    assert any(v != v for v in result.losses.values())  # NaN kept for the record


def test_epoch_budget_counts_steps(registries, digits):
    data = digits.split("train")
    r = train(_vae(registries, digits), data, Budget(epochs=2, batch_size=256), device="cpu",
              progress=False)
    assert r.steps == 2 * (len(data) // 256)


def test_optimizer_step_through_a_grad_scaler_can_repeat_an_optimizer(registries, digits):
    """The fp16 path (CUDA) steps through a GradScaler; its CPU twin runs the same calls."""
    model = _vae(registries, digits)
    model._grad_scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    x = digits.tensors("train")[0][:32]
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(2):  # the same optimizer twice in one training step (n_critic style)
        parts = model.elbo(x)
        model.optimizer_step((parts["recon"] + parts["kl"]).mean(), model.optimizer)
    changed = [not torch.equal(a, b) for a, b in zip(before, model.parameters()) if b.requires_grad]
    assert any(changed)
    assert model._grad_scaler.get_scale() == 2.0**10  # finite grads: the scale is kept


def test_a_fitted_model_resumed_from_its_checkpoint_is_in_eval_mode(registries, digits, tmp_path):
    from genbench_plugins.models.reference import UniformNoise

    class Noise(UniformNoise):  # checkpointed, unlike train-data
        pass

    for _ in range(2):
        model = Noise(digits.info())
        result = Trainer("cpu", checkpoint_path=tmp_path / "c.pt", progress=False).fit(
            model, digits.split("train"), Budget(steps=1))
        assert not model.training
    assert result.resumed_from == 0 and (tmp_path / "c.pt").exists()


def test_time_budget_and_seconds_accumulate_across_a_resume(registries, digits, tmp_path):
    ckpt = tmp_path / "c.pt"
    t = Trainer("cpu", seed=0, progress=False, checkpoint_path=ckpt, fingerprint="f")
    model = _vae(registries, digits)
    original = model.train_step

    class Stop(Exception):
        pass

    def slow_then_stop(batch, step):
        if step == 20:
            raise Stop
        return original(batch, step)

    model.train_step = slow_then_stop
    with pytest.raises(Stop):
        t.fit(model, digits.split("train"), Budget(steps=10_000, checkpoint_every=20, max_seconds=3600))
    first = torch.load(ckpt, weights_only=True)["seconds"]
    assert first > 0
    resumed = t.fit(_vae(registries, digits), digits.split("train"),
                    Budget(steps=40, checkpoint_every=20, max_seconds=3600))
    assert resumed.resumed_from == 20 and resumed.seconds > first


def test_loader_workers_stay_within_the_jobs_threads():
    """A streamed dataset gets DataLoader workers only from its job's torch threads (the
    executor's share of the cores), so parallel jobs never oversubscribe the CPU."""
    from genbench.execution.batches import LoaderBatches

    data = torch.utils.data.TensorDataset(torch.zeros(1000, 2))
    before = torch.get_num_threads()
    try:
        counts = {}
        for threads in (1, 3, 8):
            torch.set_num_threads(threads)
            counts[threads] = LoaderBatches(data, 10, torch.device("cpu"), seed=0).num_workers
    finally:
        torch.set_num_threads(before)
    assert counts == {1: 0, 3: 2, 8: 4}
    small = LoaderBatches(torch.utils.data.TensorDataset(torch.zeros(30, 2)), 10, torch.device("cpu"), 0)
    assert small.num_workers == 0  # a few batches: processes cost more than they save
    assert LoaderBatches(data, 10, torch.device("cpu"), 0, num_workers=3).num_workers == 3
