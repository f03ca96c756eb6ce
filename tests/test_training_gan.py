"""What the training engine offers adversarial models: several fresh batches per step, the
gradient scaler's call sequence with two optimizers and a gradient penalty (run on the CPU),
fp16 overflow steps that are not divergence, and the last finite sample grid of a diverged
run."""

import pytest
import torch
from torch import nn

from genbench import Budget, GenerativeModel, hookimpl
from genbench.execution.batches import total_train_steps
from genbench.execution.training import Trainer, train
from genbench_plugins.models.gans.gan import GAN
from genbench_plugins.models.gans.wgan_gp import WGANGP
from helpers import params_equal, registries_with, run_inline, tiny_spec

TINY_GAN = dict(g_hidden=(16, 16), d_hidden=(16, 16))
TINY_WGAN = dict(hidden=(16, 16))


@pytest.fixture
def grid25(registries):
    return registries.datasets.get("grid25")(n_train=2000, n_test=500)


class Recorder(GenerativeModel):
    """Records the batches it is given; ``batches_per_step`` of them per call."""

    def __init__(self, data_info, batches_per_step=1):
        super().__init__()
        self.batches_per_step = batches_per_step
        self.w = nn.Parameter(torch.zeros(1))
        self.seen = []

    def train_step(self, batch, step):
        self.seen.append(batch)
        return {"loss": torch.tensor(0.0)}

    def sample(self, n, generator=None):
        return self.randn(n, 2, generator=generator)


def test_batches_per_step_passes_fresh_consecutive_batches(grid25):
    data = grid25.split("train")
    one = Recorder(None)
    train(one, data, Budget(steps=12, batch_size=50), device="cpu", progress=False)
    three = Recorder(None, batches_per_step=3)
    train(three, data, Budget(steps=4, batch_size=50), device="cpu", progress=False)
    assert all(isinstance(b, tuple) and len(b) == 3 for b in three.seen)
    flat = [x for b in three.seen for x in b]
    assert all(torch.equal(a, b) for a, b in zip(flat, one.seen))  # the same stream, in order
    assert not torch.equal(flat[0], flat[1])
    # the budget counts train_step calls; an epoch budget still passes over the data
    budget = Budget(epochs=3, batch_size=100)
    assert total_train_steps(budget, 2000, 1) == 60
    assert total_train_steps(budget, 2000, 3) == 20
    assert total_train_steps(Budget(steps=7), 2000, 3) == 7
    r = train(Recorder(None, batches_per_step=3), data, budget, device="cpu", progress=False)
    assert r.steps == 20


class BadBatches(Recorder):
    batches_per_step = 0


def test_batches_per_step_is_validated(grid25):
    with pytest.raises(Exception, match="batches_per_step must be a positive integer"):
        train(BadBatches(None, batches_per_step=0), grid25.split("train"), Budget(steps=1),
              device="cpu", progress=False)


# -- the scaler's call sequence --------------------------------------------------------------

def _trained(model_fn, data, scaler=None, steps=8):
    torch.manual_seed(0)
    model = model_fn()
    Trainer("cpu", seed=0, progress=False, grad_scaler=scaler).fit(
        model, data, Budget(steps=steps, batch_size=32))
    return model


@pytest.mark.parametrize("make", [
    lambda info: WGANGP(info, d_steps=2, **TINY_WGAN),
    lambda info: GAN(info, d_steps=2, **TINY_GAN),
], ids=["wgan-gp", "gan"])
def test_gan_call_sequence_through_a_grad_scaler_matches_plain_training(grid25, make):
    """Scaling by a power of two is exact in float32, so a correct scaler path (every loss
    scaled, every gradient unscaled, the penalty's input gradient included) trains the same
    weights as no scaler at all; each optimizer steps through the scaler, several times."""
    data, info = grid25.split("train"), grid25.info()
    plain = _trained(lambda: make(info), data)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    scaled = _trained(lambda: make(info), data, scaler)
    assert scaler.get_scale() == 2.0**10  # no overflow: nothing was skipped
    # every update went through the scaler: 2 D steps and 1 G step per train_step, 8 steps
    assert scaler.state_dict()["_growth_tracker"] == 8 * 3
    sd_p, sd_s = plain.state_dict(), scaled.state_dict()
    assert all(torch.allclose(sd_p[k], sd_s[k], rtol=1e-5, atol=1e-7) for k in sd_p)
    assert scaled._grad_scaler is None  # the engine detaches its scaler afterwards


def test_a_penalty_left_scaled_is_caught(grid25):
    """The check above has teeth: a gradient penalty computed on the scaled critic output
    and not unscaled trains different weights."""
    data, info = grid25.split("train"), grid25.info()

    class ForgetsToUnscale(WGANGP):
        def gradients(self, outputs, inputs, create_graph=True):
            s = self._grad_scaler
            return torch.autograd.grad(s.scale(outputs.float().sum()), [inputs],
                                       create_graph=create_graph)

    plain = _trained(lambda: WGANGP(info, d_steps=2, **TINY_WGAN), data)
    wrong = _trained(lambda: ForgetsToUnscale(info, d_steps=2, **TINY_WGAN), data,
                     torch.amp.GradScaler("cpu", init_scale=2.0**10))
    assert not params_equal(plain, wrong)


class Overflowing(GenerativeModel):
    """A gradient penalty-like loss whose scaled input gradient overflows float32 while the
    scale is above ~2**28, as fp16 gradients overflow at a too large scale."""

    def __init__(self, data_info=None, factor=1e30):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.opt = torch.optim.SGD(self.parameters(), lr=1e-3)
        self.factor = factor

    def train_step(self, batch, step):
        x = torch.ones(1, requires_grad=True)
        (g,) = self.gradients(self.w * x * self.factor, x)
        loss = (g / self.factor - 1).pow(2).sum() + self.w.pow(2).sum()
        self.optimizer_step(loss, self.opt)
        return {"loss": loss.detach()}

    def sample(self, n, generator=None):
        return self.randn(n, 2, generator=generator)


def test_fp16_style_overflow_steps_are_skipped_not_divergence(grid25):
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)
    model = Overflowing()
    r = Trainer("cpu", progress=False, grad_scaler=scaler).fit(
        model, grid25.split("train"), Budget(steps=20, batch_size=8))
    assert r.status == "ok" and r.steps == 20
    assert r.amp_skipped_steps == 12  # 2**40 halved down to 2**28, where it no longer overflows
    assert scaler.get_scale() == 2.0**28 and torch.isfinite(model.w).all()
    assert float(model.w.detach()) != 1.0  # the later steps trained


def test_a_loss_the_scaler_cannot_explain_is_divergence(grid25):
    model = Overflowing(factor=float("inf"))  # never finite, whatever the scale
    scaler = torch.amp.GradScaler("cpu", init_scale=16.0)
    r = Trainer("cpu", progress=False, grad_scaler=scaler).fit(
        model, grid25.split("train"), Budget(steps=50, batch_size=8))
    # 16 -> 8 -> 4 -> 2 -> 1 are overflow steps; below a scale of 1 it is a divergence, and
    # it is reported at the first of the non-finite steps
    assert r.status == "diverged" and r.diverged_step == 1 and r.amp_skipped_steps == 4


class GrowsThenOverflows(Overflowing):
    """Two updates per step: the first always grows the scale (growth_interval=1), the second
    overflows once, so the scale ends the step where it began."""

    def __init__(self):
        super().__init__(factor=1e30)
        self.other = nn.Parameter(torch.ones(1))
        self.opt2 = torch.optim.SGD([self.other], lr=1e-3)

    def train_step(self, batch, step):
        self.optimizer_step(self.other.pow(2).sum(), self.opt2)
        return super().train_step(batch, step)


def test_an_overflow_is_seen_when_a_growth_in_the_same_step_hides_it(grid25):
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**28, growth_interval=1)
    r = Trainer("cpu", progress=False, grad_scaler=scaler).fit(
        GrowsThenOverflows(), grid25.split("train"), Budget(steps=6, batch_size=8))
    # each step: 2**28 -> 2**29 (growth) -> 2**28 (backoff): same scale, but skipped
    assert r.status == "ok" and r.amp_skipped_steps == 6


# -- the last finite sample grid ---------------------------------------------------------------

class DivergingGAN(GAN):
    """A GAN whose generator weights turn NaN at step 29 (after the preview of step 25)."""

    description = "test model: a GAN that diverges at step 30"

    def train_step(self, batch, step):
        if step == 29:
            last = [m for m in self.generator if isinstance(m, nn.Linear)][-1]
            with torch.no_grad():
                last.weight.fill_(float("nan"))
        return super().train_step(batch, step)


class NoPreviewGAN(GAN):
    preview_samples = 0


@pytest.mark.parametrize("dataset", ["grid25", "digits"])
def test_a_diverged_gan_keeps_its_last_finite_sample_grid(dataset, request, tmp_path):
    data = request.getfixturevalue(dataset)
    torch.manual_seed(0)
    model = DivergingGAN(data.info(), **TINY_GAN)
    result = Trainer("cpu", progress=False, checkpoint_path=tmp_path / "run" / "checkpoint.pt",
                     fingerprint="f").fit(model, data.split("train"), Budget(steps=60, batch_size=32))
    assert result.status == "diverged" and result.diverged_step == 30
    assert result.preview_path == str(tmp_path / "run" / "preview.png")
    assert (tmp_path / "run" / "preview.png").stat().st_size > 500
    assert not model.generator.training  # the model is left in eval mode, as after any run
    # without a run folder there is nowhere to write it
    torch.manual_seed(0)
    r = train(DivergingGAN(data.info(), **TINY_GAN), data.split("train"),
              Budget(steps=60, batch_size=32), device="cpu", progress=False)
    assert r.status == "diverged" and r.preview_path is None


def test_previews_do_not_change_training(grid25):
    """Previews are drawn in eval mode from their own generator: the trained weights (batch
    norm statistics included) are those of a run without previews."""
    data = grid25.split("train")
    torch.manual_seed(0)
    a = GAN(grid25.info(), **TINY_GAN)
    train(a, data, Budget(steps=12, batch_size=32), device="cpu", progress=False, log_every=2)
    torch.manual_seed(0)
    b = NoPreviewGAN(grid25.info(), **TINY_GAN)
    train(b, data, Budget(steps=12, batch_size=32), device="cpu", progress=False, log_every=2)
    assert params_equal(a, b)


class DivergingGANPlugin:
    @hookimpl
    def register_models(self, register):
        register("diverging-gan", DivergingGAN)


def test_the_runner_records_the_preview_of_a_diverged_gan(tmp_path):
    regs = registries_with(DivergingGANPlugin())
    spec = tiny_spec(datasets=["grid25"], models=[{"name": "diverging-gan",
                                                   "params": TINY_GAN}],
                     metrics=["speed"])
    report = run_inline(spec, tmp_path, regs)
    assert report.ran[0].status == "diverged" and report.ran[0].diverged_step == 30
    from genbench.results.store import ResultStore

    store = ResultStore(tmp_path / "results.db")
    (fingerprint,) = store.trainings()["fingerprint"]
    preview = store.training_provenance(fingerprint)["preview"]
    assert preview.endswith("preview.png") and (tmp_path / report.ran[0].run_dir / "preview.png").exists()
