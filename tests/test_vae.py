"""The VAEs' likelihoods and KL against torch.distributions, and what beta does."""

from __future__ import annotations

import torch
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from genbench import Budget, DataInfo
from genbench.execution.training import train

VECTOR = DataInfo("v", "vector", (3,))
IMAGE = DataInfo("i", "image", (1, 2, 2))


def test_likelihoods_match_torch_distributions(registries):
    torch.manual_seed(0)
    gauss = registries.models.get("vae")(VECTOR, likelihood="gaussian")
    gauss.log_scale.data = torch.tensor([-1.0, 0.0, 0.5])
    out, x = torch.randn(5, 3), torch.randn(5, 3)
    expected = -Independent(Normal(out, gauss.log_scale.exp()), 1).log_prob(x)
    assert torch.allclose(gauss._nll(out, x), expected, atol=1e-5)

    # Images: the Gaussian mean goes through a sigmoid; Bernoulli takes logits.
    img = registries.models.get("vae")(IMAGE, likelihood="gaussian")
    logits, x = torch.randn(5, 4), torch.rand(5, 1, 2, 2)
    expected = -Independent(Normal(torch.sigmoid(logits), img.log_scale.exp()), 1).log_prob(x.flatten(1))
    assert torch.allclose(img._nll(logits, x), expected, atol=1e-5)
    bern = registries.models.get("vae")(IMAGE)
    assert bern.likelihood == "bernoulli"
    binary = (x > 0.5).float()
    expected = -Independent(Bernoulli(logits=logits), 1).log_prob(binary.flatten(1))
    assert torch.allclose(bern._nll(logits, binary), expected, atol=1e-5)


def test_kl_matches_torch_distributions(registries):
    mu, logvar = torch.randn(6, 4), torch.randn(6, 4)
    q = Normal(mu, torch.exp(0.5 * logvar))
    expected = kl_divergence(q, Normal(torch.zeros(4), torch.ones(4))).sum(1)
    model = registries.models.get("vae")(VECTOR)
    assert torch.allclose(model._kl(mu, logvar), expected, atol=1e-5)


def test_elbo_draws_are_seeded_by_the_generator(registries, digits):
    torch.manual_seed(0)
    model = registries.models.get("vae")(digits.info()).eval()
    x = digits.split("test").x[:32]
    with torch.no_grad():
        a = model.elbo(x, generator=torch.Generator().manual_seed(1))
        b = model.elbo(x, generator=torch.Generator().manual_seed(1))
        c = model.elbo(x, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a["recon"], b["recon"]) and not torch.equal(a["recon"], c["recon"])
    assert torch.equal(a["kl"], c["kl"])  # the KL is analytic
    assert a["recon"].shape == a["kl"].shape == (32,)


def test_higher_beta_trades_reconstruction_for_a_smaller_kl(registries, digits):
    # Gaussian likelihood: neither beta collapses the posterior on digits in this budget, so
    # the comparison is between two working models, not against a collapsed one.
    info, data = digits.info(), digits.split("train")
    x = digits.split("test").x
    results = {}
    for beta in (1.0, 4.0):
        torch.manual_seed(0)
        model = registries.models.get("beta-vae")(info, beta=beta, likelihood="gaussian")
        assert model.beta == beta
        train(model, data, Budget(steps=500, batch_size=64), device="cpu", progress=False)
        with torch.no_grad():
            kl = model.elbo(x, generator=torch.Generator().manual_seed(0))["kl"].mean().item()
            err = torch.mean((model.reconstruct(x) - x) ** 2).item()
        results[beta] = (kl, err)
    (kl1, err1), (kl4, err4) = results[1.0], results[4.0]
    assert kl4 < 0.8 * kl1, results
    assert err4 > 1.1 * err1, results


def test_beta_vae_defaults_to_beta_4(registries, digits):
    cls = registries.models.get("beta-vae")
    assert cls(digits.info()).beta == 4.0 and registries.models.get("vae")(digits.info()).beta == 1.0
