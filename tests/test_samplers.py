"""The built-in samplers against the papers: DDPM (Ho et al. 2020) and DDIM (Song et al. 2021)."""

import math

import pytest
import torch

from genbench.api.errors import ConfigError
from genbench_plugins.models.diffusion.schedule import ForwardProcess, make_betas
from genbench_plugins.samplers.ddim import DDIMSampler
from genbench_plugins.samplers.ddpm import DDPMSampler

T = 1000


def alphas_cumprod(schedule="linear", timesteps=T):
    return ForwardProcess(make_betas(schedule, timesteps, 1e-4, 0.02)).alphas_cumprod


def test_both_samplers_are_registered(registries):
    assert registries.samplers.get("ddpm") is DDPMSampler
    assert registries.samplers.get("ddim") is DDIMSampler


def test_quadratic_spacing_gives_the_ddim_papers_timesteps():
    """DDIM appendix D.2 / official code: tau_i = floor(c i^2), c (S - 1)^2 = 0.8 T."""
    sampler = DDIMSampler(alphas_cumprod=alphas_cumprod())
    sampler.set_timesteps(10, "quadratic")
    assert sampler.timesteps.tolist() == [800, 632, 483, 355, 246, 158, 88, 39, 9, 0]
    sampler.set_timesteps(20, "quadratic")
    assert sampler.timesteps.tolist()[:3] == [800, 718, 640]
    assert sampler.timesteps.tolist()[-5:] == [35, 19, 8, 2, 0]
    # S = 50 floors the first two to 0: that no-op step is visited once (49 evaluations)
    sampler.set_timesteps(50, "quadratic")
    assert len(sampler.timesteps) == 49 and sampler.timesteps.tolist()[-4:] == [5, 2, 1, 0]


def test_uniform_spacing_is_every_kth_timestep():
    sampler = DDPMSampler(alphas_cumprod=alphas_cumprod())
    sampler.set_timesteps(50, "uniform")
    assert sampler.timesteps.tolist() == list(range(980, -1, -20))
    sampler.set_timesteps(T, "uniform")
    assert sampler.timesteps.tolist() == list(range(T - 1, -1, -1))
    # S not dividing T: exactly S steps, floor(i T / S), still starting within T / S of the
    # noisiest timestep (every k-th with k = T // S would start at t = 500 for S = 501)
    for steps in (30, 501, 600):
        sampler.set_timesteps(steps, "uniform")
        ts = sampler.timesteps.tolist()
        assert ts == [i * T // steps for i in range(steps - 1, -1, -1)]
        assert ts[0] > T - T / steps - 1


@pytest.mark.parametrize("args, message", [
    ((10, "cosine"), "unknown spacing 'cosine'; valid spacings: uniform, quadratic"),
    ((0, "uniform"), "steps must be an integer from 1 to the 1000 training timesteps"),
    ((1001, "uniform"), "steps must be an integer from 1 to the 1000"),
])
def test_bad_spacing_or_step_count_is_a_config_error(args, message):
    with pytest.raises(ConfigError, match=message):
        DDIMSampler(alphas_cumprod=alphas_cumprod()).set_timesteps(*args)


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match=r"'eta' must be float >= 0 \(default 0.0\), got -1.0"):
        DDIMSampler(alphas_cumprod=alphas_cumprod(), eta=-1.0)
    with pytest.raises(ConfigError, match="alphas_cumprod must be a 1-D tensor of values in"):
        DDPMSampler(alphas_cumprod=torch.tensor([0.5, 0.9]))  # increasing
    with pytest.raises(ConfigError, match=r"'clip_sample' must be float > 0 \| None "
                                          r"\(default None\), got 0"):
        DDPMSampler(alphas_cumprod=alphas_cumprod(), clip_sample=0)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("steps, spacing", [(10, "uniform"), (50, "quadratic"), (T, "uniform")])
def test_ddim_eta0_with_the_true_noise_inverts_the_forward_process(schedule, steps, spacing):
    """x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps. An oracle network that returns that eps makes
    every deterministic DDIM step land on the same expression at the next timestep, and the
    last one on x0 itself."""
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    eps = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    ac = alphas_cumprod(schedule)
    sampler = DDIMSampler(alphas_cumprod=ac, eta=0.0)
    sampler.set_timesteps(steps, spacing)
    first = int(sampler.timesteps[0])
    x = ac[first].sqrt() * x0 + (1 - ac[first]).sqrt() * eps

    def oracle(x_t, t):
        return (x_t - ac[t].sqrt() * x0) / (1 - ac[t]).sqrt()

    for t in sampler.timesteps.tolist():
        x = sampler.step(oracle(x, t), t, x, gen)
    torch.testing.assert_close(x, x0, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("clip", [None, 1.0])
def test_ddim_eta1_over_all_steps_takes_the_ddpm_update(schedule, clip):
    """eta = 1 over all T timesteps is ancestral DDPM: the same update at every step, the same
    noise drawn, the same samples (a fixed stand-in network, same seeds)."""
    ac = alphas_cumprod(schedule)
    ddpm, ddim = DDPMSampler(alphas_cumprod=ac, clip_sample=clip), \
        DDIMSampler(alphas_cumprod=ac, eta=1.0, clip_sample=clip)
    ddpm.set_timesteps(T, "uniform")
    ddim.set_timesteps(T, "uniform")
    assert torch.equal(ddpm.timesteps, ddim.timesteps)

    def network(x, t):
        return torch.tanh(x) * 0.8 + math.sin(t / 50)

    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 1.5
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    a = b = x
    for t in ddpm.timesteps.tolist():
        a, b = ddpm.step(network(a, t), t, a, g1), ddim.step(network(b, t), t, b, g2)
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    assert not torch.equal(a, x)


def test_ddpm_step_draws_from_the_forward_process_posterior():
    """Ho et al. eq. 6-7: x_{t-1} ~ N(mu_tilde(x_t, x0), beta_tilde_t I) with x0 from eps."""
    ac = alphas_cumprod()
    betas = make_betas("linear", T, 1e-4, 0.02)
    sampler = DDPMSampler(alphas_cumprod=ac)
    gen = torch.Generator().manual_seed(0)
    x_t = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    eps = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    t = 500
    x0 = (x_t - (1 - ac[t]).sqrt() * eps) / ac[t].sqrt()
    mu = (ac[t - 1].sqrt() * betas[t] / (1 - ac[t]) * x0
          + (1 - betas[t]).sqrt() * (1 - ac[t - 1]) / (1 - ac[t]) * x_t)
    var = (1 - ac[t - 1]) / (1 - ac[t]) * betas[t]
    z = torch.randn(3, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    got = sampler.step(eps, t, x_t, torch.Generator().manual_seed(5))
    torch.testing.assert_close(got, mu + var.sqrt() * z)
    # the last step (t = 0 -> clean) adds no noise: it is the predicted x0
    last = sampler.step(eps, 0, x_t, torch.Generator().manual_seed(5))
    torch.testing.assert_close(last, (x_t - (1 - ac[0]).sqrt() * eps) / ac[0].sqrt())


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_ddim_eta_half_step_is_equation_12(schedule):
    """Song et al. 2021, eq. 12 and 16 with eta = 0.5, from t = 500 to the next of 10 uniform
    timesteps (t' = 400): x_t' = sqrt(a') x0 + sqrt(1 - a' - sigma^2) eps + sigma z,
    sigma = eta sqrt((1 - a') / (1 - a)) sqrt(1 - a / a'), x0 = (x_t - sqrt(1 - a) eps) / sqrt(a),
    with a fixed noise estimate eps and the noise z the sampler draws from the generator
    (float32 standard normal, as ``randn_like``)."""
    ac = alphas_cumprod(schedule)
    sampler = DDIMSampler(alphas_cumprod=ac, eta=0.5)
    sampler.set_timesteps(10, "uniform")
    gen = torch.Generator().manual_seed(0)
    x_t = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    eps = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    a, a_prev = float(ac[500]), float(ac[400])
    x0 = (x_t - math.sqrt(1 - a) * eps) / math.sqrt(a)
    sigma = 0.5 * math.sqrt((1 - a_prev) / (1 - a)) * math.sqrt(1 - a / a_prev)
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(5)).double()
    expected = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev - sigma ** 2) * eps + sigma * z
    got = sampler.step(eps, 500, x_t, torch.Generator().manual_seed(5))
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    assert 0 < sigma < math.sqrt(1 - a_prev)  # a stochastic step with a deterministic part
    # the last step lands on alpha-bar = 1, where sigma = 0: the predicted x0, no noise
    a0 = float(ac[0])
    last = sampler.step(eps, 0, x_t, torch.Generator().manual_seed(5))
    torch.testing.assert_close(last, (x_t - math.sqrt(1 - a0) * eps) / math.sqrt(a0),
                               rtol=1e-12, atol=1e-12)


def test_a_timestep_the_sampler_does_not_visit_is_refused():
    sampler = DDIMSampler(alphas_cumprod=alphas_cumprod())
    sampler.set_timesteps(10, "uniform")
    with pytest.raises(ValueError, match="timestep 5 is not one of this sampler's timesteps"):
        sampler.step(torch.zeros(1, 2), 5, torch.zeros(1, 2))
