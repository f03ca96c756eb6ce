"""The importance-weighted NLL bound: K = 1 is the ELBO, it tightens with K, and on a linear
Gaussian VAE (probabilistic PCA) it reaches the exact marginal likelihood."""

import math

import pytest
import torch
from torch import nn

from genbench import DataInfo
from genbench.evaluation.context import EvalContext
from genbench.registry.manager import default_registries
from genbench_plugins.metrics.iwae import IWAE
from genbench_plugins.models.vae import VAE, VAEBase

INFO = DataInfo("toy", "vector", (4,))


class LinearVAE(VAEBase):
    """A Gaussian VAE with linear encoder and decoder: p(x) = N(b, W W^T + diag(s^2))."""

    def __init__(self, data_info, latent_dim: int = 2):
        super().__init__()
        self._setup(data_info, latent_dim, "gaussian", 1.0)
        self.encoder = nn.Linear(self.dim, 2 * latent_dim)
        self.decoder = nn.Linear(latent_dim, self.dim)
        self._finish(1e-3)


def linear_vae(seed=0):
    torch.manual_seed(seed)
    model = LinearVAE(INFO).double().eval()
    with torch.no_grad():
        model.log_scale.fill_(math.log(0.5))
        model.encoder.weight.mul_(0.5)
    return model


def exact_nll(model, x):
    w, b = model.decoder.weight.double(), model.decoder.bias.double()
    cov = w @ w.T + torch.diag(torch.exp(2 * model.log_scale.double()))
    return -torch.distributions.MultivariateNormal(b, cov).log_prob(x.double())


def bound(model, x, k, seed=0):
    log_w = model.log_importance_weights(x, k, generator=torch.Generator().manual_seed(seed))
    return -(torch.logsumexp(log_w, 1) - math.log(k))


def test_k_1_is_the_elbo_in_expectation():
    model = VAE(INFO, likelihood="gaussian").eval()
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    draws = 20_000
    with torch.no_grad():
        # K = 1: the mean of single-draw log weights (a Monte Carlo KL) ...
        single = -model.log_importance_weights(x, draws, torch.Generator().manual_seed(1)).mean(1)
        # ... against the model's ELBO (one draw each, analytic KL), averaged as often
        parts = model.elbo(x.repeat(draws, 1), generator=torch.Generator().manual_seed(2))
        neg_elbo = (parts["recon"] + parts["kl"]).double().reshape(draws, 8).mean(0)
        tighter = bound(model, x, 1000).mean().item()
    assert single == pytest.approx(neg_elbo, rel=0.01)
    assert tighter < single.mean().item() - 0.1  # more draws: a tighter bound


def exact_posterior(model):
    """Make the decoder's columns orthogonal (so the true posterior is diagonal) and the
    encoder that posterior: q(z|x) = p(z|x) exactly."""
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(5),
                                       dtype=torch.float64))
    w = q[:, :2] * torch.tensor([2.0, 1.0], dtype=torch.float64)
    s2 = math.exp(2 * model.log_scale[0].item())
    m_inv = 1.0 / (1.0 + (w * w).sum(0) / s2)  # diagonal of (I + W^T W / s^2)^-1
    a = m_inv[:, None] * w.T / s2
    with torch.no_grad():
        model.decoder.weight.copy_(w)
        model.encoder.weight.zero_()
        model.encoder.weight[:2] = a
        model.encoder.bias[:2] = -a @ model.decoder.bias
        model.encoder.bias[2:] = torch.log(m_inv)
    return model


def test_with_the_true_posterior_every_weight_is_the_exact_likelihood():
    """An independent closed form: with q = p(z|x), log w = log p(x) for every draw."""
    model = exact_posterior(linear_vae())
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        log_w = model.log_importance_weights(x, 7, torch.Generator().manual_seed(0))
    assert torch.allclose(-log_w, exact_nll(model, x)[:, None].expand(16, 7), atol=1e-9)


def test_the_bound_tightens_with_k_towards_the_exact_likelihood():
    model = linear_vae()  # its random encoder: a poor proposal, a real gap at K = 1
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        exact = exact_nll(model, x).mean().item()
        b1, b10, b100, b5000 = (bound(model, x, k).mean().item() for k in (1, 10, 100, 5000))
        # a proposal near the posterior: the bound reaches the exact value
        near = exact_posterior(linear_vae())
        with torch.no_grad():
            near.encoder.bias[2:] += 0.3  # wider than the posterior
        near_exact = exact_nll(near, x).mean().item()
        near1, near2000 = (bound(near, x, k).mean().item() for k in (1, 2000))
    assert b1 > b10 > b100 > b5000  # an upper bound on -log p(x) (in expectation), tightening
    assert b1 - exact > 0.3 and b5000 == pytest.approx(exact, abs=0.01)  # ... to -log p(x)
    assert near1 - near_exact > 0.005 and near2000 == pytest.approx(near_exact, abs=1e-3)


def test_the_metric_reports_nats_and_bits_per_dimension(tmp_path):
    model = exact_posterior(linear_vae()).float()
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(4))
    ctx = EvalContext(model=model, model_name="linear", data_info=INFO, train=(x, None),
                      test=(x, None), device=torch.device("cpu"), seed=0, num_samples=10,
                      cache_dir=tmp_path, registries=default_registries())
    out = IWAE(k=500, batch_size=16).compute(ctx)
    exact = exact_nll(model, x).mean().item()
    assert out.values["nll_nats"] == pytest.approx(exact, abs=1e-4)  # q is the posterior
    assert out.values["nll_nats_per_dim"] == pytest.approx(out.values["nll_nats"] / 4)
    assert out.values["nll_bits_per_dim"] == pytest.approx(out.values["nll_nats"] / 4 / math.log(2))
    assert out.details == {"k": 500, "n_test": 50, "dim": 4, "likelihood": "gaussian"}
    again = IWAE(k=500, batch_size=50).compute(ctx)  # seeded: reproducible
    assert again.values["nll_nats"] == pytest.approx(out.values["nll_nats"], abs=1e-4)
