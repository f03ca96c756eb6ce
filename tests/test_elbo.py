"""The elbo metric against closed forms on hand-built VAEs with known encoder and decoder."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from genbench import DataInfo
from genbench.api.errors import ConfigError
from genbench.evaluation.context import EvalContext

VECTOR = DataInfo("v", "vector", (3,))
IMAGE = DataInfo("i", "image", (1, 2, 2))
MU, VAR = torch.tensor([0.5, -1.0]), torch.tensor([0.25, 1.0])
W = torch.tensor([[1.0, 0.5], [0.0, -1.0], [2.0, 1.0]])
B = torch.tensor([0.1, 0.2, -0.3])
SIGMA = torch.tensor([0.5, 1.0, 2.0])


def ctx_for(model, info, x, tmp_path, seed=0, name="vae"):
    return EvalContext(model=model, model_name=name, data_info=info, train=(x, None),
                       test=(x, None), device=torch.device("cpu"), seed=seed, num_samples=16,
                       cache_dir=Path(tmp_path), registries=None)


def linear_gaussian_vae(registries):
    """q(z|x) = N(MU, diag VAR) for every x; p(x|z) = N(W z + B, diag SIGMA^2)."""
    model = registries.models.get("vae")(VECTOR, latent_dim=2, hidden=(), likelihood="gaussian")
    enc, dec = model.encoder[1][0], model.decoder[0]
    with torch.no_grad():
        enc.weight.zero_()
        enc.bias.copy_(torch.cat([MU, VAR.log()]))
        dec.weight.copy_(W)
        dec.bias.copy_(B)
        model.log_scale.copy_(SIGMA.log())
    return model.eval()


def test_gaussian_neg_elbo_matches_the_closed_form(registries, tmp_path):
    model = linear_gaussian_vae(registries)
    x = torch.randn(400, 3, generator=torch.Generator().manual_seed(0))
    # E_q[-log p(x|z)] with z ~ N(MU, VAR): W z + B has mean W MU + B, variance (W^2) VAR.
    mean, var = W @ MU + B, (W**2) @ VAR
    recon = (0.5 * ((x - mean) ** 2 + var) / SIGMA**2 + SIGMA.log() + 0.5 * math.log(2 * math.pi)).sum(1)
    kl = kl_divergence(Normal(MU, VAR.sqrt()), Normal(0.0, 1.0)).sum()
    expected_recon, expected_kl = recon.mean().item() / 3, kl.item() / 3

    metric = registries.metrics.get("elbo")(draws=100)
    result = metric.compute(ctx_for(model, VECTOR, x, tmp_path))
    v = result.values
    assert v["kl_nats_per_dim"] == pytest.approx(expected_kl, rel=1e-5)
    assert v["recon_nats_per_dim"] == pytest.approx(expected_recon, rel=0.01)
    assert v["neg_elbo_nats_per_dim"] == pytest.approx(v["recon_nats_per_dim"] + v["kl_nats_per_dim"])
    assert result.details == {"draws": 100, "n_test": 400, "dim": 3, "likelihood": "gaussian"}
    # One draw is a noisier estimate of the same expectation.
    one = metric.__class__(draws=1).compute(ctx_for(model, VECTOR, x, tmp_path)).values
    assert one["recon_nats_per_dim"] == pytest.approx(expected_recon, rel=0.05)


def test_closed_form_kl_agrees_with_monte_carlo(registries, tmp_path):
    model = linear_gaussian_vae(registries)
    x = torch.zeros(8, 3)
    kl = registries.metrics.get("elbo")().compute(ctx_for(model, VECTOR, x, tmp_path)).values["kl_nats_per_dim"]
    q, p = Normal(MU, VAR.sqrt()), Normal(0.0, 1.0)
    z = q.sample((400_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).sum(1).mean().item()
    assert kl * 3 == pytest.approx(mc, rel=0.01)


def test_bernoulli_recon_is_the_binary_cross_entropy(registries, tmp_path):
    model = registries.models.get("vae")(IMAGE, latent_dim=2, hidden=())
    logits = torch.tensor([-2.0, 0.0, 1.0, 3.0])
    with torch.no_grad():
        model.decoder[0].weight.zero_()  # the decoder ignores z: no Monte Carlo error at all
        model.decoder[0].bias.copy_(logits)
    x = torch.rand(50, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    p = torch.sigmoid(logits)
    bce = -(x.flatten(1) * p.log() + (1 - x.flatten(1)) * (1 - p).log()).sum(1).mean() / 4
    values = registries.metrics.get("elbo")().compute(ctx_for(model.eval(), IMAGE, x, tmp_path)).values
    assert values["recon_nats_per_dim"] == pytest.approx(bce.item(), rel=1e-5)


def test_elbo_is_deterministic_for_a_seed(registries, digits, tmp_path):
    torch.manual_seed(0)
    model = registries.models.get("vae")(digits.info()).eval()
    x = digits.split("test").x
    metric = registries.metrics.get("elbo")(draws=2)
    a = metric.compute(ctx_for(model, digits.info(), x, tmp_path, seed=0)).values
    b = metric.compute(ctx_for(model, digits.info(), x, tmp_path, seed=0)).values
    c = metric.compute(ctx_for(model, digits.info(), x, tmp_path, seed=1)).values
    assert a == b and a["recon_nats_per_dim"] != c["recon_nats_per_dim"]
    assert a["kl_nats_per_dim"] == pytest.approx(c["kl_nats_per_dim"], rel=1e-6)


def test_models_whose_elbo_takes_no_generator_are_seeded_through_the_global_rng(
        registries, digits, tmp_path):
    vae_cls = registries.models.get("vae")

    class PlainElbo(vae_cls):
        def elbo(self, x):
            return super().elbo(x)

    torch.manual_seed(0)
    model = PlainElbo(digits.info()).eval()
    x = digits.split("test").x
    metric = registries.metrics.get("elbo")()
    before = torch.get_rng_state()
    a = metric.compute(ctx_for(model, digits.info(), x, tmp_path)).values
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG stream is untouched
    torch.rand(3)
    assert metric.compute(ctx_for(model, digits.info(), x, tmp_path)).values == a


def test_elbo_applies_only_to_models_with_an_elbo(registries, digits, tmp_path):
    metric = registries.metrics.get("elbo")()
    ae = registries.models.get("ae")(digits.info())
    assert "no elbo" in metric.skip_reason(ctx_for(ae, digits.info(), digits.split("test").x,
                                                   tmp_path, name="ae"))
    vae = registries.models.get("vae")(digits.info())
    assert metric.skip_reason(ctx_for(vae, digits.info(), digits.split("test").x, tmp_path)) is None
    with pytest.raises(ConfigError, match=r"elbo: hyper-parameter 'draws' must be int >= 1 "
                                          r"\(default 1\), got 0"):
        registries.metrics.get("elbo")(draws=0)
