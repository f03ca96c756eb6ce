"""The exact NLL of flows and autoregressive models (`nll`), as the papers report it: a density
uniform on the unit cube scores log2(L) bits/dim on L-level data, a Gaussian's NLL is
scipy's, the dequantised bound is the closed-form expectation of log p over each bin (above
the exact discrete NLL, by Jensen), and a flow written as a third-party plugin is scored
through a suite."""

import dataclasses
import math
import types

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from genbench import DataInfo, GenerativeModel, SampleNoise
from genbench.api.errors import ConfigError
from genbench.evaluation.context import EvalContext
from genbench_plugins.datasets.image_folder import ImageFolder
from genbench_plugins.metrics.likelihood import DEQUANTISATION_STREAM, NLL
from helpers import registries_with, run_inline, tiny_spec
from test_torchvision_sets import write_mnist


class UniformCube(GenerativeModel):
    """The uniform density on [0, 1]^D: log p = 0 inside, -inf outside."""

    def __init__(self, data_info):
        super().__init__()

    def log_likelihood(self, x):
        inside = ((x >= 0) & (x <= 1)).flatten(1).all(1)
        return torch.where(inside, 0.0, -math.inf)

    def sample(self, n, generator=None):
        return self.rand(n, 2, generator=generator)


class DiagonalGaussian(GenerativeModel):
    """N(mean, diag(std^2)) in float64, with a generator argument it must not need."""

    def __init__(self, data_info, mean=(0.0,), std=(1.0,)):
        super().__init__()
        self.mean = torch.tensor(mean, dtype=torch.float64)
        self.std = torch.tensor(std, dtype=torch.float64)
        self.generators = []

    def log_likelihood(self, x, generator=None):
        self.generators.append(generator)
        return torch.distributions.Normal(self.mean, self.std).log_prob(x.double()).sum(1)

    def sample(self, n, generator=None):
        return self.mean + self.std * self.randn(n, len(self.mean), generator=generator).double()


def context(model, info, x, seed=0):
    return EvalContext(model=model, model_name="m", data_info=info, train=(x, None),
                       test=(x, None), device=torch.device("cpu"), seed=seed, num_samples=8,
                       cache_dir=None, registries=registries_with())


def grid_data(levels, n, shape, seed=0):
    """``n`` items of ``shape`` with coordinates k / (levels - 1), as float32, and k."""
    k = torch.randint(0, levels, (n, *shape), generator=torch.Generator().manual_seed(seed))
    return (k.double() / (levels - 1)).float(), k.double()


# -- DataInfo.levels ----------------------------------------------------------------------

@pytest.mark.parametrize("bad", [1, 0, -256, 2.5, 256.0, True, "256"])
def test_levels_must_be_an_integer_of_at_least_two(bad):
    with pytest.raises(ConfigError, match=r"toy: DataInfo.levels must be an integer >= 2"):
        DataInfo("toy", "image", (1, 2, 2), levels=bad)


def test_levels_default_to_continuous_and_accept_numpy_integers():
    assert DataInfo("toy", "vector", (2,)).levels is None
    info = DataInfo("toy", "image", (1, 2, 2), levels=np.int64(256))
    assert info.levels == 256 and type(info.levels) is int
    assert info != DataInfo("toy", "image", (1, 2, 2), levels=17)


def test_built_in_image_sets_declare_256_levels_and_hold_them(registries, tmp_path):
    """Declared where known (torchvision sets, image folders); their pixels lie on k / 255."""
    write_mnist(tmp_path)
    mnist = registries.datasets.get("mnist")(root=str(tmp_path))
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, size=(10, 12, 3), dtype=np.uint8)).save(
            tmp_path / f"img{i}.png")
    folder = ImageFolder(str(tmp_path), size=8)
    for ds in (mnist, folder):
        assert ds.info().levels == 256
        scaled = ds.tensors("test")[0].double() * 255
        assert (scaled - scaled.round()).abs().max() < 1e-4
    for name in ("ring8", "grid25", "swissroll"):
        assert registries.datasets.get(name)(n_train=10, n_test=10).info().levels is None


# -- closed forms ---------------------------------------------------------------------------

@pytest.mark.parametrize("levels, shape", [(256, (3, 4, 4)), (17, (1, 8, 8)), (2, (5,))])
def test_a_uniform_density_scores_log2_levels_bits_per_dim(levels, shape):
    x, _ = grid_data(levels, 37, shape)
    info = DataInfo("toy", "vector" if len(shape) == 1 else "image", shape, levels=levels)
    out = NLL(draws=3, batch_size=10).compute(context(UniformCube(info), info, x))
    dim = math.prod(shape)
    assert out.values["nll_bits_per_dim"] == pytest.approx(math.log2(levels), abs=1e-12)
    assert out.values["nll_nats"] == pytest.approx(dim * math.log(levels), abs=1e-9)
    assert out.values["nll_nats_per_dim"] == pytest.approx(math.log(levels), abs=1e-12)
    assert out.details == {"likelihood": f"exact, dequantised to {levels} levels",
                           "levels": levels, "draws": 3, "n_test": 37, "dim": dim}


def test_the_digits_are_on_17_levels(registries):
    """scikit-learn's digits (intensities 0..16 / 16) as 17-level data: the uniform density
    scores log2(17) bits/dim; 16 levels is refused, its grid k / 15 misses the pixels."""
    digits = registries.datasets.get("digits")()
    x = digits.tensors("test")[0]
    for levels in (17, 16):
        info = dataclasses.replace(digits.info(), levels=levels)
        metric = NLL(batch_size=100)
        if levels == 16:
            with pytest.raises(ValueError, match=r"declares levels = 16, but its test split holds "
                                                 r"values off the grid k / 15"):
                metric.compute(context(UniformCube(info), info, x))
            continue
        out = metric.compute(context(UniformCube(info), info, x))
        assert out.values["nll_bits_per_dim"] == pytest.approx(math.log2(17), abs=1e-12)
        assert out.details["n_test"] == len(x) == 360


def test_a_gaussian_on_continuous_data_is_scipys_nll():
    mean, cov = np.array([0.3, -1.0, 2.0]), np.diag([0.5, 2.0, 1.5]) ** 2
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(1)) * 2
    info = DataInfo("toy", "vector", (3,))
    model = DiagonalGaussian(info, mean=tuple(mean), std=tuple(np.sqrt(np.diag(cov))))
    out = NLL(batch_size=16).compute(context(model, info, x))
    expected = -stats.multivariate_normal(mean, cov).logpdf(x.double().numpy()).mean()
    assert out.values["nll_nats"] == pytest.approx(expected, rel=1e-12)
    assert out.values["nll_nats_per_dim"] == pytest.approx(expected / 3, rel=1e-12)
    assert out.values["nll_bits_per_dim"] == pytest.approx(expected / 3 / math.log(2), rel=1e-12)
    assert out.details == {"likelihood": "exact, continuous", "levels": None, "n_test": 50,
                           "dim": 3}


LEVELS, MEAN, STD = 5, np.array([0.45, 0.6]), np.array([0.15, 0.25])


def coarse_setup(n=40):
    """A smooth Gaussian on 5-level 2-d data: bins 0.2 wide, so dequantising costs a lot."""
    x, k = grid_data(LEVELS, n, (2,), seed=3)
    info = DataInfo("coarse", "vector", (2,), levels=LEVELS)
    return x, k, info, DiagonalGaussian(info, mean=tuple(MEAN), std=tuple(STD))


def test_the_bound_is_the_monte_carlo_average_at_the_jobs_offsets_and_is_seeded():
    x, k, info, model = coarse_setup()
    ctx = context(model, info, x, seed=4)
    out = NLL(draws=2, batch_size=7).compute(ctx)
    offered = list(model.generators)
    # the job's per-item offsets: item i's own generator in the metric's stream
    u = ctx.sample_noise(0, len(x), DEQUANTISATION_STREAM).rand(len(x), 2, 2, dtype=torch.float64)
    z = ((k[:, None] + u) / LEVELS).float().double().numpy()
    log_p = stats.norm(MEAN, STD).logpdf(z).sum(-1)  # (n, draws)
    expected = -log_p.mean() + 2 * math.log(LEVELS)
    assert out.values["nll_nats"] == pytest.approx(expected, rel=1e-12)
    # seeded: the same number again, whatever the batch size; another seed draws others
    assert NLL(draws=2, batch_size=40).compute(context(model, info, x, seed=4)).values == out.values
    other = NLL(draws=2, batch_size=7).compute(context(model, info, x, seed=5))
    assert other.values["nll_nats"] != pytest.approx(out.values["nll_nats"], rel=1e-6)
    # the model was offered per-item noise for its own draws: one call per batch and draw
    assert [len(g) for g in offered] == [7] * 10 + [5] * 2
    assert all(isinstance(g, SampleNoise) for g in offered)


def test_the_bound_averages_log_p_over_each_bin_and_lies_above_the_discrete_nll():
    x, k, info, model = coarse_setup()
    out = NLL(draws=4000).compute(context(model, info, x))
    a, b = k.numpy() / LEVELS, (k.numpy() + 1) / LEVELS
    # E_u[log N(z; m, s)] over z ~ U[a, b): -log(s sqrt(2 pi)) - E[(z - m)^2] / (2 s^2)
    second_moment = ((b - MEAN) ** 3 - (a - MEAN) ** 3) / (3 * (b - a))
    expected_log_p = (-np.log(STD * math.sqrt(2 * math.pi)) - second_moment / (2 * STD ** 2)).sum(1)
    bound = (-expected_log_p + 2 * math.log(LEVELS)).mean()
    # the exact discrete NLL: -log P(k), P(k) the Gaussian's mass on bin k
    norm = stats.norm(MEAN, STD)
    exact = -np.log(norm.cdf(b) - norm.cdf(a)).sum(1).mean()
    assert out.values["nll_nats"] == pytest.approx(bound, abs=0.01)  # ~5 standard errors
    assert bound - exact > 0.1  # Jensen's gap, wide on these coarse bins
    assert out.values["nll_nats"] > exact + 0.1


def test_a_wrong_log_likelihood_shape_names_the_model():
    class PerCoordinate(DiagonalGaussian):
        def log_likelihood(self, x, generator=None):
            return torch.distributions.Normal(self.mean, self.std).log_prob(x.double())

    info = DataInfo("toy", "vector", (2,))
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"model 'm': log_likelihood\(x\) must return one log "
                                         r"density per item, shape \(4,\), got \(4, 2\)"):
        NLL().compute(context(PerCoordinate(info, (0.0, 0.0), (1.0, 1.0)), info, x))


# -- as a new user meets it: a flow plugin through a suite ----------------------------------

PLUGIN = '''
import math

import torch
from torch import nn

from genbench import (BenchmarkDataset, DataInfo, GenerativeModel, TensorSplit, hookimpl,
                      registered_name, tensor_fingerprint)


class Coupling(nn.Module):
    """RealNVP affine coupling on 2-d points: one coordinate scales and shifts the other."""

    def __init__(self, hidden, flip):
        super().__init__()
        self.flip = flip
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, 2))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _parts(self, x):
        a, b = (x[:, 1:], x[:, :1]) if self.flip else (x[:, :1], x[:, 1:])
        s, t = self.net(a).chunk(2, dim=1)
        return a, b, torch.tanh(s), t

    def _join(self, a, b):
        return torch.cat([b, a] if self.flip else [a, b], dim=1)

    def forward(self, x):
        a, b, s, t = self._parts(x)
        return self._join(a, b * torch.exp(s) + t), s.sum(1)

    def inverse(self, y):
        a, b, s, t = self._parts(y)
        return self._join(a, (b - t) * torch.exp(-s))


class TinyFlow(GenerativeModel):
    description = "an elementwise affine map and two couplings onto a standard normal"
    data_kinds = ("vector",)

    def __init__(self, data_info, hidden: int = 16, lr: float = 0.05):
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(2))
        self.log_scale = nn.Parameter(torch.zeros(2))
        self.couplings = nn.ModuleList([Coupling(hidden, flip) for flip in (False, True)])
        self.opt = torch.optim.Adam(self.parameters(), lr=lr)

    def log_likelihood(self, x, generator=None):
        z = (x - self.shift) * torch.exp(-self.log_scale)
        log_det = -self.log_scale.sum().expand(len(x))
        for coupling in self.couplings:
            z, step = coupling(z)
            log_det = log_det + step
        return -0.5 * (z ** 2).sum(1) - math.log(2 * math.pi) + log_det

    def train_step(self, batch, step):
        loss = -self.log_likelihood(batch).mean()
        self.optimizer_step(loss, self.opt)
        return {"nll": loss.item()}

    def sample(self, n, generator=None):
        z = self.randn(n, 2, generator=generator)
        for coupling in reversed(self.couplings):
            z = coupling.inverse(z)
        return z * torch.exp(self.log_scale) + self.shift


class CoarseBlob(BenchmarkDataset):
    description = "a 2-d Gaussian blob rounded to 8 levels per coordinate"

    def _split(self, name):
        g = torch.Generator().manual_seed(0 if name == "train" else 1)
        x = (0.5 + 0.1 * torch.randn(400 if name == "train" else 100, 2, generator=g)).clamp(0, 1)
        return TensorSplit(torch.round(x * 7) / 7)

    def split(self, name):
        return self._split(name)

    def info(self):
        tr, te = self._split("train"), self._split("test")
        return DataInfo(name=registered_name(self), kind="vector", shape=(2,),
                        feature_extractor="raw", fingerprint=tensor_fingerprint(tr.x, te.x),
                        levels=8)


@hookimpl
def register_models(register):
    register("tiny-flow", TinyFlow)


@hookimpl
def register_datasets(register):
    register("coarse-blob", CoarseBlob)
'''


def flow_plugin():
    imports = {line.split()[1] for line in PLUGIN.splitlines()
               if line.startswith(("import ", "from "))}
    assert imports == {"math", "torch", "genbench"}  # genbench's public names only
    plugin = types.ModuleType("tiny_flow_plugin")
    exec(compile(PLUGIN, "tiny_flow_plugin.py", "exec"), plugin.__dict__)
    return plugin


def test_a_flow_plugin_reports_its_nll_through_a_suite(tmp_path):
    regs = registries_with(flow_plugin())
    spec = tiny_spec(datasets=["coarse-blob", {"name": "ring8", "params": {"n_train": 400,
                                                                           "n_test": 100}}],
                     models=["tiny-flow"], metrics=["nll"], budget={"steps": 60, "batch_size": 64})
    report = run_inline(spec, tmp_path, regs)
    rows = {r.dataset_name: r for r in report.ran}
    assert sorted(rows) == ["coarse-blob", "ring8"]
    for dataset, kind in (("coarse-blob", "exact, dequantised to 8 levels"),
                          ("ring8", "exact, continuous")):
        assert rows[dataset].status == "ok", rows[dataset].error
        [nll] = rows[dataset].metrics
        assert nll.status == "ok", nll.message
        assert nll.details["likelihood"] == kind and nll.details["n_test"] == 100
        assert nll.details["dim"] == 2
    blob = next(m for m in rows["coarse-blob"].metrics).values
    # trained, it beats the uniform density on the unit square (log2(8) = 3 bits/dim;
    # untrained, the flow scores 3.7)
    assert blob["nll_bits_per_dim"] < 3.0
    assert blob["nll_nats"] == pytest.approx(blob["nll_bits_per_dim"] * 2 * math.log(2))


def test_nll_on_models_without_log_likelihood_is_refused_before_training(tmp_path):
    spec = tiny_spec(models=["vae", "ae"], metrics=["nll"])
    with pytest.raises(ConfigError) as info:
        run_inline(spec, tmp_path / "out", registries_with())
    message = str(info.value)
    assert "metric 'nll' applies to no (model, dataset) pair" in message
    assert "for vae, ae (no log_likelihood)" in message
    assert not (tmp_path / "out").exists()
