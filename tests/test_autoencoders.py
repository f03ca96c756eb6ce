"""The autoencoder family: registry entries, reconstruction quality, the denoising and
sparsity effects, sampling (ex-post Gaussian mixture, checkpoints) and size-adapting convs."""

from __future__ import annotations

import pytest
import torch

from genbench import Budget, DataInfo, TensorSplit
from genbench.api.errors import ConfigError
from genbench.registry.manager import build_registries, create_plugin_manager
from genbench.registry.parameters import construct
from genbench.execution.training import Trainer, train

DETERMINISTIC = ("ae", "deep-ae", "conv-ae", "denoising-ae", "sparse-ae")
VAES = ("vae", "conv-vae", "beta-vae")
ALL = (*DETERMINISTIC, *VAES, "aae")
MLP = ("ae", "deep-ae", "denoising-ae", "sparse-ae", "vae", "beta-vae", "aae")

# Small networks and short budgets keep the file fast; the defaults are what the registry
# builds, these override only widths (and beta for the MSE test, as the task fixes beta=1).
TEST_CONFIG = {
    "conv-ae": {"channels": 16},
    "conv-vae": {"channels": 16},
    "beta-vae": {"beta": 1.0},
    "aae": {"hidden": (128,), "disc_hidden": (64, 64)},
}
STEPS = {"conv-ae": 300, "conv-vae": 500, "aae": 300}
DEFAULT_STEPS = 600


@pytest.fixture(scope="module")
def regs():
    return build_registries(create_plugin_manager(load_entrypoints=False))


@pytest.fixture(scope="module")
def datasets(regs):
    return {"digits": regs.datasets.get("digits")(),
            "ring8": regs.datasets.get("ring8")(n_train=2000, n_test=500)}


def build(regs, name, info, **overrides):
    torch.manual_seed(0)
    return regs.models.get(name)(info, **{**TEST_CONFIG.get(name, {}), **overrides})


@pytest.fixture(scope="module")
def trained(regs, datasets):
    """``trained(name, dataset, **overrides)``: a model trained once per module and reused."""
    cache = {}

    def get(name, dataset, steps=None, **overrides):
        key = (name, dataset, steps, tuple(sorted(overrides.items())))
        if key not in cache:
            ds = datasets[dataset]
            model = build(regs, name, ds.info(), **overrides)
            result = train(model, ds.split("train"),
                           Budget(steps=steps or STEPS.get(name, DEFAULT_STEPS), batch_size=64),
                           device="cpu", seed=0, progress=False)
            assert result.status == "ok", (name, result.losses)
            cache[key] = model
        return cache[key]

    return get


def mse(a, b) -> float:
    return torch.mean((a.double() - b.double()) ** 2).item()


def mean_image_mse(ds) -> float:
    """The test MSE of predicting the mean training item everywhere."""
    return mse(ds.split("train").x.mean(0, keepdim=True).expand_as(ds.split("test").x),
               ds.split("test").x)


# -- registry ------------------------------------------------------------------------------

def test_registry_lists_the_family_with_capabilities(registries):
    assert set(ALL) <= set(registries.models.names())
    for name in ALL:
        cls = registries.models.get(name)
        caps = cls.capabilities()
        assert {"sample", "train_step", "reconstruct", "encode"} <= set(caps), name
        assert ("elbo" in caps) == (name in VAES), name
        assert cls.description and cls.family, name
        expected_kinds = ("image",) if name.startswith("conv-") else ("image", "vector")
        assert cls.data_kinds == expected_kinds, name
    for name in DETERMINISTIC:
        assert registries.models.get(name).family == "autoencoder"
        assert "Gaussian mixture" in registries.models.get(name).description
    assert {registries.models.get(n).family for n in VAES} == {"vae"}
    assert registries.models.get("aae").family == "aae"


@pytest.mark.parametrize("name, config, match", [
    ("ae", {"latent_dim": 64}, "undercomplete"),
    ("ae", {"latent_dim": 0}, "latent_dim"),
    ("deep-ae", {"hidden": (32,)}, "of length >= 2"),
    ("denoising-ae", {"noise": "salt"}, "'gaussian' | 'masking'"),
    ("denoising-ae", {"noise": "masking", "noise_level": 1.0}, "noise_level"),
    ("sparse-ae", {"sparsity": "l2"}, "'kl' | 'l1'"),
    ("sparse-ae", {"target": 1.5}, "target"),
    ("sparse-ae", {"sparsity_weight": -1.0}, "sparsity_weight"),
    ("ae", {"gmm_components": 0}, "gmm_components"),
    ("vae", {"likelihood": "poisson"}, "likelihood"),
    ("beta-vae", {"beta": -1.0}, "beta"),
    ("aae", {"lr_adv": 0.0}, "lr_adv"),
])
def test_invalid_hyperparameters_are_config_errors(registries, digits, name, config, match):
    with pytest.raises(ConfigError) as error:
        construct(registries.models.get(name), digits.info(), **config)
    assert match in str(error.value)


@pytest.mark.parametrize("name", ["conv-ae", "conv-vae"])
def test_conv_models_refuse_vector_data(registries, name):
    with pytest.raises(ConfigError, match="image data"):
        registries.models.get(name)(DataInfo("v", "vector", (2,)))


def test_vae_refuses_bernoulli_on_vectors(registries):
    with pytest.raises(ConfigError, match="gaussian"):
        registries.models.get("vae")(DataInfo("v", "vector", (2,)), likelihood="bernoulli")


# -- reconstruction ------------------------------------------------------------------------

def _threshold(name: str) -> float:
    return 0.5 if name in DETERMINISTIC else 0.75


@pytest.mark.parametrize("name", ALL)
def test_reconstructs_digits_better_than_the_mean_image(trained, datasets, name):
    ds = datasets["digits"]
    model = trained(name, "digits")
    x = ds.split("test").x
    with torch.no_grad():
        ratio = mse(model.reconstruct(x), x) / mean_image_mse(ds)
    assert ratio <= _threshold(name), f"{name}: test MSE is {ratio:.3f} x the mean image's"


@pytest.mark.parametrize("name", MLP)
def test_reconstructs_ring8_better_than_the_mean(trained, datasets, name):
    ds = datasets["ring8"]
    model = trained(name, "ring8")
    x = ds.split("test").x
    with torch.no_grad():
        ratio = mse(model.reconstruct(x), x) / mean_image_mse(ds)
    assert ratio <= _threshold(name), f"{name}: test MSE is {ratio:.3f} x the mean's"


def test_denoising_ae_removes_noise_better_than_plain_ae(trained, datasets):
    plain, dae = trained("ae", "digits"), trained("denoising-ae", "digits")
    # Same budget, code size and widths: only the training corruption differs.
    assert plain.latent_dim == dae.latent_dim and dae.noise == "gaussian"
    x = datasets["digits"].split("test").x
    noisy = dae.corrupt(x, generator=torch.Generator().manual_seed(1))
    assert 0.05 < mse(noisy, x) < 0.15  # N(0, 0.3^2) noise: 0.09 per element
    with torch.no_grad():
        err_plain, err_dae = mse(plain.reconstruct(noisy), x), mse(dae.reconstruct(noisy), x)
    assert err_dae < 0.9 * err_plain, (err_dae, err_plain)


def test_masking_noise_zeroes_the_expected_fraction(registries, digits):
    dae = registries.models.get("denoising-ae")(digits.info(), noise="masking", noise_level=0.25)
    x = torch.ones(400, 1, 8, 8)
    out = dae.corrupt(x, generator=torch.Generator().manual_seed(0))
    assert set(out.unique().tolist()) == {0.0, 1.0}
    assert (out == 0).float().mean().item() == pytest.approx(0.25, abs=0.01)


@pytest.mark.parametrize("sparsity", ["kl", "l1"])
def test_sparsity_penalty_lowers_the_mean_code_activation(trained, datasets, sparsity):
    # The reference is the same sigmoid-code network without the penalty (a plain AE's
    # linear code has no activation rate to compare with).
    x = datasets["digits"].split("test").x
    sparse = trained("sparse-ae", "digits", **({} if sparsity == "kl" else {"sparsity": sparsity}))
    plain = trained("sparse-ae", "digits", sparsity_weight=0.0)
    with torch.no_grad():
        rate, plain_rate = sparse.encode(x).mean().item(), plain.encode(x).mean().item()
    assert rate < 0.5 * plain_rate, (rate, plain_rate)
    if sparsity == "kl":
        assert rate == pytest.approx(sparse.target, abs=0.05)


def test_kl_sparsity_penalty_matches_its_definition(registries, digits):
    model = registries.models.get("sparse-ae")(digits.info(), latent_dim=2, target=0.2)
    code = torch.tensor([[0.1, 0.5], [0.3, 0.7]])  # mean activations 0.2 and 0.6
    kl = lambda r, q: r * torch.log(torch.tensor(r / q)) + (1 - r) * torch.log(torch.tensor((1 - r) / (1 - q)))
    assert model.penalty(code).item() == pytest.approx((kl(0.2, 0.2) + kl(0.2, 0.6)).item(), rel=1e-5)
    l1 = registries.models.get("sparse-ae")(digits.info(), latent_dim=2, sparsity="l1")
    assert l1.penalty(code).item() == pytest.approx((0.6 + 1.0) / 2)


# -- sampling ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_samples_have_the_data_shape_and_are_seeded(trained, datasets, name):
    model = trained(name, "digits")
    shape = datasets["digits"].info().shape
    a = model.sample(50, generator=torch.Generator().manual_seed(3))
    b = model.sample(50, generator=torch.Generator().manual_seed(3))
    c = model.sample(50, generator=torch.Generator().manual_seed(4))
    assert a.shape == (50, *shape) and torch.isfinite(a).all()
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.std(0).mean() > 0.02  # not one image repeated


@pytest.mark.parametrize("name", MLP)
def test_vector_samples_are_finite_and_seeded(trained, name):
    model = trained(name, "ring8")
    a = model.sample(100, generator=torch.Generator().manual_seed(0))
    b = model.sample(100, generator=torch.Generator().manual_seed(0))
    assert a.shape == (100, 2) and torch.isfinite(a).all() and torch.equal(a, b)


def test_gaussian_mixture_samples_follow_the_fitted_mixture():
    from genbench_plugins.models.autoencoders import GaussianMixtureCodes

    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-4.0, 0.0], [4.0, 1.0]])
    cov = torch.tensor([[0.5, 0.2], [0.2, 0.3]])
    chol = torch.linalg.cholesky(cov)
    k = (torch.rand(6000, generator=g) < 0.25).long()  # weights 0.75 / 0.25
    codes = centres[k] + (chol @ torch.randn(6000, 2, 1, generator=g)).squeeze(-1)
    density = GaussianMixtureCodes(2, 2, 1e-6)
    with pytest.raises(RuntimeError, match="not fitted"):
        density.sample(1)
    density.fit(codes, seed=0)
    z = density.sample(20000, torch.Generator().manual_seed(1))
    right = z[:, 0] > 0
    assert right.float().mean().item() == pytest.approx(0.25, abs=0.015)
    assert z[right].mean(0).tolist() == pytest.approx([4.0, 1.0], abs=0.03)
    assert torch.cov(z[~right].T).flatten().tolist() == pytest.approx(cov.flatten().tolist(), abs=0.03)


@pytest.mark.parametrize("name", ["ae", "sparse-ae"])
def test_mixture_sampling_survives_a_checkpoint_round_trip(registries, digits, tmp_path, name):
    info, data = digits.info(), digits.split("train")
    torch.manual_seed(0)
    model = registries.models.get(name)(info)
    ckpt = tmp_path / "model.pt"
    Trainer("cpu", seed=0, progress=False, checkpoint_path=ckpt).fit(model, data, Budget(steps=30))
    expected = model.sample(20, generator=torch.Generator().manual_seed(5))

    fresh = registries.models.get(name)(info)
    with pytest.raises(RuntimeError, match="not fitted"):
        fresh.sample(2)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert {"code_density.weights", "code_density.means", "code_density.scale_tril"} <= set(state["model"])
    fresh.load_state_dict(state["model"])
    fresh.eval()
    assert torch.equal(fresh.sample(20, generator=torch.Generator().manual_seed(5)), expected)


# -- convolutional models at every dataset size -------------------------------------------

@pytest.mark.parametrize("name", ["conv-ae", "conv-vae"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 64, 64)])
def test_conv_models_adapt_to_the_image_size(registries, name, shape):
    info = DataInfo("t", "image", shape)
    torch.manual_seed(0)
    model = registries.models.get(name)(info, channels=8, gmm_components=2) if name == "conv-ae" \
        else registries.models.get(name)(info, channels=8)
    x = torch.rand(4, *shape)
    losses = model.train_step(x, 0)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in losses.values())
    model.on_train_end(TensorSplit(x))
    with torch.no_grad():
        r = model.reconstruct(x)
        s = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert r.shape == x.shape and s.shape == (3, *shape)
    assert 0 <= r.min() and r.max() <= 1 and 0 <= s.min() and s.max() <= 1


# -- mixed precision -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL)
def test_train_step_runs_under_autocast(registries, digits, name):
    # The engine wraps train_step in autocast on CUDA; bfloat16 autocast on the CPU runs the
    # same mixed-dtype code paths here.
    torch.manual_seed(0)
    model = registries.models.get(name)(digits.info(), **TEST_CONFIG.get(name, {}))
    x = digits.split("train").x[:64]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = [model.train_step(x, step) for step in range(3)]
    assert all(torch.isfinite(torch.as_tensor(v)).all() for out in losses for v in out.values())
    model.on_train_end(TensorSplit(digits.split("train").x[:200]))
    with torch.no_grad():
        s = model.sample(8, generator=torch.Generator().manual_seed(0))
    assert s.dtype == torch.float32 and torch.isfinite(s).all()
