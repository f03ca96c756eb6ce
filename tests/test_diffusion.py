"""The diffusion family: schedules, forward process, EMA, sampling through any sampler, and
latent diffusion on a shared trained autoencoder."""

import math

import pytest
import torch

from genbench import open_sample_store
from genbench.api.budget import Budget
from genbench.api.errors import ConfigError
from genbench.results.store import ResultStore
from genbench.execution.training import train
from genbench_plugins.metrics.modes import mode_statistics
from genbench_plugins.models.diffusion import DDPM, LatentDiffusion
from genbench_plugins.models.diffusion.networks import UNet
from genbench_plugins.models.diffusion.schedule import ForwardProcess, make_betas
from genbench_plugins.models.autoencoders import ConvAE
from helpers import (CountingAE, LinearDDIM, RunnerPlugin, SamplerPlugin, params_equal,
                     registries_with, run_inline, tiny_spec)

TINY_MLP = {"timesteps": 50, "hidden": 32, "depth": 1}


@pytest.fixture
def ring8(registries):
    return registries.datasets.get("ring8")()


# -- schedules and the forward process ------------------------------------------------------

def test_linear_alpha_bar_matches_its_formula():
    """alpha_bar_t = prod_{s <= t} (1 - beta_s), beta_s = 1e-4 + (0.02 - 1e-4) s / (T - 1)."""
    process = ForwardProcess(make_betas("linear", 1000, 1e-4, 0.02))
    for t in (0, 1, 499, 999):
        expected = math.prod(1 - (1e-4 + (0.02 - 1e-4) * s / 999) for s in range(t + 1))
        assert process.alphas_cumprod[t].item() == pytest.approx(expected, rel=1e-10)
    assert process.alphas_cumprod[-1].item() == pytest.approx(4.04e-5, rel=0.01)  # ~ N(0, I)
    # other T: betas scaled by 1000 / T, so T = 100 ends at the same noise level
    short = ForwardProcess(make_betas("linear", 100, 1e-4, 0.02))
    assert short.betas[0].item() == pytest.approx(1e-3) and short.betas[-1].item() == pytest.approx(0.2)
    assert short.alphas_cumprod[-1].item() < 1e-4


def test_cosine_alpha_bar_matches_its_formula():
    """Nichol & Dhariwal eq. 17: alpha_bar(t) = f(t) / f(0), f(t) = cos^2((t/T + s)/(1 + s) pi/2),
    s = 0.008; our index t is their t + 1; betas clipped at 0.999."""
    T, s = 1000, 0.008
    process = ForwardProcess(make_betas("cosine", T, 0, 0))

    def f(t):
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    for t in (0, 10, 499, 900, 990):
        assert process.alphas_cumprod[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-9)
    assert process.betas.max().item() == pytest.approx(0.999)  # the clip acts at the very end
    assert bool((process.alphas_cumprod.diff() < 0).all())


def test_forward_process_matches_q_xt_given_x0():
    """Monte Carlo: x_t has mean sqrt(alpha_bar_t) x0 and variance 1 - alpha_bar_t."""
    process = ForwardProcess(make_betas("linear", 1000, 1e-4, 0.02))
    torch.manual_seed(0)
    x0 = torch.tensor([1.0, -0.5, 0.25])
    n = 40_000
    for t in (0, 100, 500, 999):
        ts = torch.full((n,), t)
        x_t = process(x0.expand(n, 3), ts, torch.randn(n, 3))
        a = process.alphas_cumprod[t].item()
        se_mean = math.sqrt((1 - a) / n)
        assert (x_t.mean(0) - math.sqrt(a) * x0).abs().max() < 5 * se_mean + 1e-6
        torch.testing.assert_close(x_t.var(0), torch.full((3,), 1 - a), rtol=0.05, atol=1e-6)


@pytest.mark.parametrize("params, message", [
    ({"beta_schedule": "quadratic"},
     r"'beta_schedule' must be 'linear' \| 'cosine' \(default 'linear'\), got 'quadratic'"),
    ({"ema_decay": 1.0}, r"'ema_decay' must be float in \[0, 1\) \(default 0.999\), got 1.0"),
    ({"timesteps": 1}, r"'timesteps' must be int >= 2 \(default 1000\), got 1"),
    ({"timesteps": 10}, "linear schedule needs 0 < beta_start <= beta_end < T / 1000"),
    ({"lr": 0.0}, r"'lr' must be float > 0 \(default 0.0005\), got 0.0"),
    ({"dropout": 1}, r"'dropout' must be float in \[0, 1\) \(default 0.0\), got 1"),
    ({"depth": 0}, r"'depth' must be int >= 1 \(default 3\), got 0"),
])
def test_bad_hyperparameters_are_config_errors(ring8, params, message):
    with pytest.raises(ConfigError, match=message):
        DDPM(ring8.info(), **params)


# -- networks -----------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 64, 64), (1, 7, 9)])
def test_unet_keeps_the_image_shape(shape):
    net = UNet(shape, channels=8, max_channels=16)
    x = torch.randn(2, *shape)
    assert net(x, torch.tensor([0, 999])).shape == x.shape


# -- EMA ------------------------------------------------------------------------------------

def test_ema_weights_differ_from_the_raw_ones_and_are_the_ones_sampled(registries, ring8):
    model = DDPM(ring8.info(), **TINY_MLP, ema_decay=0.9)
    raw0 = {k: v.clone() for k, v in model.network.state_dict().items()}
    batch = ring8.tensors("train")[0][:64]
    model.train_step(batch, 0)
    # first update: d = min(0.9, 1 / 10) = 0.1, so ema = 0.1 * initial + 0.9 * trained
    for name, p in model.network.named_parameters():
        avg = dict(model.ema.averaged.named_parameters())[name]
        torch.testing.assert_close(avg, 0.1 * raw0[name] + 0.9 * p.detach())
    for step in range(1, 5):
        model.train_step(batch, step)
    assert not params_equal(model.network, model.ema.averaged)
    assert any(k.startswith("ema.averaged.") for k in model.state_dict())  # checkpointed
    assert model.num_parameters() == sum(p.numel() for p in model.network.parameters())

    def draw():
        return model.sample(16, torch.Generator().manual_seed(3), registries, sampler="ddim",
                            steps=10)

    before = draw()
    with torch.no_grad():
        for p in model.network.parameters():  # ruin the raw weights: samples do not change
            p.add_(torch.randn_like(p))
    assert torch.equal(draw(), before)
    with torch.no_grad():
        for p in model.ema.averaged.parameters():  # the averaged ones: they do
            p.mul_(0.5)
    assert not torch.equal(draw(), before)


# -- sampling --------------------------------------------------------------------------------

def test_samples_follow_the_seed_and_nfe_the_settings(registries, digits):
    model = DDPM(digits.info(), timesteps=100, channels=8, max_channels=16)
    a = model.sample(4, torch.Generator().manual_seed(1), registries, sampler="ddim", steps=5)
    b = model.sample(4, torch.Generator().manual_seed(1), registries, sampler="ddim", steps=5)
    assert torch.equal(a, b) and a.shape == (4, 1, 8, 8) and 0 <= a.min() and a.max() <= 1
    assert a.requires_grad is False and not a.is_inference()
    assert model.nfe(registries=registries) == 100
    assert model.nfe(sampler="ddim", steps=10, spacing="uniform", registries=registries) == 10
    # T = 100: floor(80 i^2 / 81) is 0 for i = 0 and 1, a step visited once
    assert model.nfe(sampler="ddim", steps=10, spacing="quadratic",
                     registries=registries) == 9
    assert model.nfe(sampler=registries.samplers.get("ddim"), steps=20) == 20
    with pytest.raises(ConfigError, match="sampler DDPMSampler takes no eta"):
        model.sample(2, sampler=registries.samplers.get("ddpm"), steps=5, eta=1.0)


def test_a_sampler_name_is_looked_up_in_the_callers_registries_or_among_the_shipped_ones(
        registries, ring8, monkeypatch):
    """No process-wide fallback: called directly, ddpm takes a Sampler class, a name with the
    registries to find it in, or, without registries, the name of a sampler this plugin
    distribution ships (``ddpm``, ``ddim``: the default settings work in a notebook); any
    other name alone is a ConfigError saying what to pass, and the installed plugins are
    never loaded for it."""
    import genbench.registry.manager as manager
    from genbench_plugins.samplers.ddim import DDIMSampler

    def refuse(*args, **kwargs):
        raise AssertionError("a model must not fall back to the process-wide registries")

    monkeypatch.setattr(manager, "default_registries", refuse)
    model = DDPM(ring8.info(), **TINY_MLP)
    gen = torch.Generator().manual_seed(0)
    assert model.sample(4, gen).shape == (4, 2)  # the defaults: sampler "ddpm", all T steps
    assert model.nfe() == TINY_MLP["timesteps"]
    shipped = model.sample(4, torch.Generator().manual_seed(0), sampler="ddim", steps=5)
    by_name = model.sample(4, torch.Generator().manual_seed(0), registries, sampler="ddim", steps=5)
    by_class = model.sample(4, torch.Generator().manual_seed(0), sampler=DDIMSampler, steps=5)
    assert torch.equal(by_name, by_class) and torch.equal(shipped, by_class)
    assert model.nfe(sampler="ddim", steps=5, registries=registries) == 5
    with pytest.raises(ConfigError, match=r"sampler 'euler' is not one of the samplers shipped "
                                          r"with this model \(ddpm, ddim\), and no registries "
                                          r"were given to look it up in: pass the class \(sampler="
                                          r"registries.samplers.get\('euler'\)\) or the registries"):
        model.sample(4, gen, sampler="euler", steps=5)
    with pytest.raises(ConfigError, match="sampler must be a Sampler class or a registered "
                                          "sampler's name, got 3"):
        model.sample(4, gen, sampler=3)


def test_a_name_given_with_registries_is_looked_up_there_only(ring8):
    """With ``registries``, a name resolves there (a third-party sampler by its name), and a
    name they lack is their UnknownNameError, even a shipped sampler's."""
    from genbench.api.errors import UnknownNameError
    from genbench.registry.registries import Registry

    regs = registries_with(SamplerPlugin())
    model = DDPM(ring8.info(), **TINY_MLP)
    assert model.nfe(sampler="ddim-test", steps=5, spacing="leading", registries=regs) == 5

    class Only:
        samplers = Registry("sampler", object)

    with pytest.raises(UnknownNameError, match="unknown sampler 'ddim'"):
        model.nfe(sampler="ddim", registries=Only())


def test_a_third_party_sampler_works_with_ddpm(tmp_path, ring8):
    """LinearDDIM (tests/helpers.py), registered by a plugin of its own, samples a trained
    ddpm with no change to either; given the model's schedule, its deterministic DDIM on
    evenly spaced steps gives the samples the built-in ddim (eta = 0) gives."""
    regs = registries_with(SamplerPlugin())
    spec = tiny_spec(datasets=["ring8"], metrics=["speed"], budget={"steps": 20},
                     models=[{"name": "ddpm", "params": TINY_MLP, "sampling": [
                         {"sampler": "ddim-test", "steps": 10, "spacing": "leading"},
                         {"sampler": "ddim", "steps": 10}]}])
    report = run_inline(spec, tmp_path, regs)
    assert [r.status for r in report.ran] == ["ok", "ok"], [r.error for r in report.ran]
    assert len(report.trainings) == 1
    rows = {r.model: r for r in report.ran}
    nfe = {m: dict(r.metrics[0].values)["nfe"] for m, r in rows.items()}
    assert set(nfe.values()) == {10.0}
    samples = [open_sample_store(tmp_path / r.run_dir / f"eval-{r.fingerprint[:8]}" / "samples").read()
               for r in rows.values()]
    torch.testing.assert_close(samples[0], samples[1], rtol=1e-4, atol=1e-4)

    model = DDPM(ring8.info(), **TINY_MLP)  # and called directly with the class
    x = model.sample(8, torch.Generator().manual_seed(0), sampler=LinearDDIM, steps=5,
                     spacing="leading")
    assert x.shape == (8, 2) and bool(torch.isfinite(x).all())


def test_an_unknown_sampler_is_refused_when_the_spec_is_read(tmp_path, registries):
    from genbench.execution.runner import SuiteRunner

    spec = tiny_spec(datasets=["ring8"], models=[{"name": "ddpm", "sampling": {"sampler": "euler"}}])
    with pytest.raises(ConfigError, match="model 'ddpm\\[sampler=euler\\]': sampling setting "
                                          "'sampler': unknown sampler 'euler'; valid samplers: "
                                          "ddim, ddpm"):
        SuiteRunner(spec, tmp_path, registries)
    assert not (tmp_path / "runs").exists()


def test_a_trained_ddpm_on_ring8_puts_most_samples_near_the_modes(registries, ring8):
    """A short training (1,000 steps of a small MLP, T = 100, ~10 s) already gathers the
    samples at the eight modes: most of them lie within 0.25 of a mode (a third of the 0.77
    between neighbouring modes), several times the share of N(0, I) prior draws, and their
    mean distance to the nearest mode is a fraction of the prior's; by the modes protocol
    every mode is captured, in balance. (Most samples within the protocol's 3 std = 0.03
    needs far longer training; this test stays fast.)"""
    info = ring8.info()
    model = DDPM(info, timesteps=100, hidden=128, depth=2, lr=1e-3)
    train(model, ring8.split("train"), Budget(steps=1000, batch_size=256), device="cpu",
          seed=0, progress=False)
    modes = info.modes_tensor()
    x = model.sample(500, torch.Generator().manual_seed(0), registries)  # ddpm, all 100 steps
    prior = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    dist, prior_dist = (torch.cdist(p, modes).min(1).values for p in (x, prior))
    near, prior_near = (dist < 0.25).float().mean(), (prior_dist < 0.25).float().mean()
    assert near > 0.5 and near > 3 * prior_near
    assert dist.mean() < 0.4 * prior_dist.mean()
    # the modes metric's protocol: every mode has samples within 3 std (0.03), in balance
    # (measured: 8 modes, 9% high quality, reverse KL 0.10; the prior captures ~1 mode)
    stats = mode_statistics(x, modes, info.mode_std)["values"]
    assert stats["modes"] == 8 and stats["rkl"] < 0.5
    assert mode_statistics(prior, modes, info.mode_std)["values"]["hq"] < 1


# -- latent diffusion --------------------------------------------------------------------------

def test_latent_diffusion_trains_on_the_codes_and_decodes(registries, digits):
    ae = ConvAE(digits.info(), latent_dim=8, channels=8).eval()
    model = LatentDiffusion(digits.info(), autoencoder=ae, **TINY_MLP)
    model.train()
    assert not model.autoencoder.training
    before = {k: v.clone() for k, v in ae.state_dict().items()}
    model.train_step(digits.tensors("train")[0][:32], 0)
    assert all(torch.equal(v, ae.state_dict()[k]) for k, v in before.items())  # frozen
    assert model.space_shape == (8,) and float(model.space_scale) > 0
    x = model.sample(4, torch.Generator().manual_seed(0), sampler=registries.samplers.get("ddim"),
                     steps=5)
    assert x.shape == (4, 1, 8, 8) and 0 <= x.min() and x.max() <= 1
    with pytest.raises(ConfigError, match="autoencoder must be a trained model with encode"):
        LatentDiffusion(digits.info(), autoencoder=DDPM(digits.info(), channels=4, max_channels=4))


def test_latent_diffusion_runs_in_a_suite_with_its_autoencoder_trained_once(tmp_path):
    regs = registries_with(RunnerPlugin())
    CountingAE.calls = 0
    ae = {"name": "counting-ae", "params": {"latent_dim": 4}}
    models = [{"name": "latent-diffusion", "label": label, "sampling": {"sampler": "ddim", "steps": 10},
               "params": {"autoencoder": ae, **TINY_MLP, "ema_decay": decay}}
              for label, decay in (("ld-a", 0.9), ("ld-b", 0.99))]
    spec = tiny_spec(models=models, metrics=["fid", "speed"], budget={"steps": 20})
    report = run_inline(spec, tmp_path, regs)
    assert all(r.status == "ok" for r in report.ran), [r.error for r in report.ran]
    assert sorted(r.model for r in report.ran) == ["ld-a", "ld-b"]
    assert CountingAE.calls == 20  # the shared autoencoder: one training
    assert sorted(t.model_name for t in report.trainings) == \
        ["counting-ae", "latent-diffusion", "latent-diffusion"]
    results = ResultStore(tmp_path / "results.db").results()
    assert len(results) == 2
    for r in report.ran:
        values = {k: v for m in r.metrics for k, v in dict(m.values).items()}
        assert values["nfe"] == 10.0 and values["fid"] > 0
