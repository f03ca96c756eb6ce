"""``modes`` (VEEGAN / PacGAN mixtures) and ``coverage`` (classes and stacked-digit modes):
known inputs, the papers' definitions, the expected numbers."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from genbench import BenchmarkDataset, DataInfo, EvalContext, GenerativeModel, TensorSplit, hookimpl
from genbench.api.errors import AssetMissingError, ConfigError
from genbench.plan.spec import SuiteSpec
from helpers import registries_with, run_inline


class FixedSamples(GenerativeModel):
    """Emits the rows of ``x`` in order, cycling; counts the rows it was asked for."""

    def __init__(self, data_info, x=None):
        super().__init__()
        self.x, self.cursor, self.drawn = x, 0, 0

    def sample(self, n, generator=None):
        idx = torch.arange(self.cursor, self.cursor + n) % len(self.x)
        self.cursor += n
        self.drawn += n
        return self.x[idx]


def make_ctx(registries, info, x, tmp_path, *, n=None, train=None, test=None, model=None):
    test = test if test is not None else (x, None)
    return EvalContext(model=model or FixedSamples(info, x), model_name="m", data_info=info,
                       train=train if train is not None else test, test=test,
                       device=torch.device("cpu"), seed=0, num_samples=n or len(x),
                       cache_dir=Path(tmp_path), registries=registries)


def modes(registries, info, x, tmp_path, **options):
    metric = registries.metrics.get("modes")(**options)
    ctx = make_ctx(registries, info, x, tmp_path)
    assert metric.skip_reason(ctx) is None
    return metric.compute(ctx)


@pytest.fixture
def grid25(registries):
    return registries.datasets.get("grid25")(n_train=500, n_test=500).info()


@pytest.fixture
def ring8(registries):
    return registries.datasets.get("ring8")(n_train=500, n_test=500).info()


# -- modes ------------------------------------------------------------------------------

def test_twenty_of_grid25s_centres_are_twenty_modes_all_high_quality(registries, grid25, tmp_path):
    centres = grid25.modes_tensor()
    x = centres[:20].repeat(125, 1)  # 2,500 samples, 125 exactly on each of 20 centres
    out = modes(registries, grid25, x, tmp_path)
    assert out.values["modes"] == 20 and out.values["modes_frac"] == 0.8
    assert out.values["hq"] == 100.0
    # uniform over 20 of 25 modes: KL = sum_i (1/20) log((1/20) / (1/25)) = log(25/20)
    assert out.values["rkl"] == pytest.approx(math.log(25 / 20), abs=1e-12)
    assert out.details["mode_counts"] == [125] * 20 + [0] * 5
    assert out.details["n_samples"] == 2500 and out.details["samples"] == "shared"


def test_points_far_from_every_mode_are_not_high_quality(registries, grid25, tmp_path):
    # (odd, odd) points sit sqrt(2) ~ 28 std from the nearest grid25 mode
    x = torch.tensor([[1.0, 1.0], [-3.0, 1.0], [3.0, -3.0], [1.0, -1.0]]).repeat(625, 1)
    out = modes(registries, grid25, x, tmp_path)
    assert out.values["hq"] == 0.0 and out.values["modes"] == 0
    assert math.isnan(out.values["rkl"])  # no high-quality sample: no histogram to compare


def test_uniform_histogram_has_zero_reverse_kl(registries, grid25, tmp_path):
    g = torch.Generator().manual_seed(0)
    centres = grid25.modes_tensor()
    # 100 per mode, each within 1 std of its centre (well inside the 3-std ball)
    x = centres.repeat(100, 1) + 0.5 * 0.05 * torch.randn(2500, 2, generator=g).clamp(-1.4, 1.4)
    out = modes(registries, grid25, x, tmp_path)
    assert out.values["modes"] == 25 and out.values["hq"] == 100.0
    assert out.values["rkl"] == pytest.approx(0.0, abs=1e-12)


def test_three_standard_deviations_and_reverse_kl_of_a_skewed_histogram(registries, ring8, tmp_path):
    c = ring8.modes_tensor()
    radial = c[0] / c[0].norm()
    inside = c[0] + 2.9 * 0.01 * radial   # 2.9 std from mode 0: high quality
    outside = c[1] + 3.1 * 0.01 * (c[1] / c[1].norm())  # 3.1 std from mode 1: not
    x = torch.stack([inside, c[2], outside, c[2]]).repeat(625, 1)
    out = modes(registries, ring8, x, tmp_path)
    assert out.values["hq"] == 75.0
    assert out.values["modes"] == 2 and out.details["mode_counts"][:3] == [625, 0, 1250]
    # p = (1/3, 2/3) on 2 of 8 modes: KL(p || U8) = sum p log(8 p)
    p = np.array([1 / 3, 2 / 3])
    assert out.values["rkl"] == pytest.approx(float((p * np.log(8 * p)).sum()), rel=1e-12)


def test_default_is_2500_samples_shared_or_drawn(registries, grid25, tmp_path):
    centres = grid25.modes_tensor()
    metric = registries.metrics.get("modes")()
    # the suite made 5,000: the first 2,500 of them are used, nothing more is sampled
    ctx = make_ctx(registries, grid25, centres.repeat(200, 1), tmp_path)
    ctx.samples
    before = ctx.model.drawn
    out = metric.compute(ctx)
    assert ctx.model.drawn == before and out.details["n_samples"] == 2500
    assert out.details["samples"] == "shared" and out.values["modes"] == 25
    # the suite made 100: the metric draws 2,500 of its own, from its own seeded stream
    ctx = make_ctx(registries, grid25, centres.repeat(4, 1), tmp_path)
    ctx.samples
    out = metric.compute(ctx)
    assert ctx.model.drawn == 100 + 2500
    assert out.details["n_samples"] == 2500 and out.details["samples"] == "drawn"
    assert sum(out.details["mode_counts"]) == 2500
    # None: whatever the job made
    out = registries.metrics.get("modes")(num_samples=None).compute(ctx)
    assert out.details["n_samples"] == 100 and out.details["samples"] == "shared"


def test_options_are_validated_and_mode_free_data_is_skipped(registries, tmp_path):
    cls = registries.metrics.get("modes")
    for bad in ({"num_samples": 0}, {"num_samples": 2.5}, {"within": 0}, {"within": "3"}):
        with pytest.raises(ConfigError):
            cls(**bad)
    swiss = registries.datasets.get("swissroll")(n_train=100, n_test=100)
    x = swiss.tensors("test")[0]
    assert "declares no mixture modes" in cls().skip_reason(make_ctx(registries, swiss.info(), x, tmp_path))
    digits = DataInfo("img", "image", (1, 8, 8))
    assert "vector" in cls().skip_reason(make_ctx(registries, digits, torch.zeros(4, 1, 8, 8), tmp_path))
    wrong = DataInfo("wrong", "vector", (3,), modes=((0.0, 0.0),), mode_std=0.1)
    with pytest.raises(ConfigError, match="expected"):
        cls().preflight(wrong, feature_extractor=None, feature_weights=None, registries=registries)


class Blobs3D(BenchmarkDataset):
    """A third-party mixture: four Gaussians in 3-D; declares only ``modes`` and ``mode_std``
    (no classes, no labels, no extractor)."""

    description = "test dataset: four 3-D Gaussians"
    centres = ((0.0, 0.0, 0.0), (5.0, 0.0, 0.0), (0.0, 5.0, 0.0), (0.0, 0.0, 5.0))

    def split(self, name):
        rng = np.random.default_rng(["train", "test"].index(name))
        lab = rng.integers(0, 4, 4000)
        x = np.asarray(self.centres)[lab] + 0.2 * rng.standard_normal((4000, 3))
        return TensorSplit(torch.from_numpy(x).float())

    def info(self):
        return DataInfo("blobs3d", "vector", (3,), modes=self.centres, mode_std=0.2,
                        fingerprint="blobs3d-v1")


class BlobsPlugin:
    @hookimpl
    def register_datasets(self, register):
        register("blobs3d", Blobs3D)


def test_a_third_party_mixture_declaring_only_modes_is_measured(tmp_path):
    regs = registries_with(BlobsPlugin())
    spec = SuiteSpec.from_dict({
        "name": "blobs", "datasets": ["blobs3d"], "models": ["train-data"], "metrics": ["modes"],
        "seeds": [0], "num_samples": 2500, "baselines": [], "budget": {"steps": 1}})
    report = run_inline(spec, tmp_path, regs)
    (record,) = report.ran
    (metric,) = record.metrics
    assert metric.status == "ok", metric.message
    assert metric.values["modes"] == 4
    # P(|N(0, I_3)| <= 3) = P(chi^2_3 <= 9) = 0.9707: the share of real points that are "high quality"
    assert metric.values["hq"] == pytest.approx(97.07, abs=1.5)  # +- 4 binomial std at n = 2,500
    assert metric.values["rkl"] < 0.01


# -- coverage ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_data():
    from genbench.registry.manager import build_registries, create_plugin_manager

    ds = build_registries(create_plugin_manager(load_entrypoints=False)).datasets.get("digits")()
    return ds.info(), ds.tensors("train"), ds.tensors("test")


def digits_ctx(registries, digits_data, x, tmp_path, *, info=None, n=None):
    base, train, test = digits_data
    return make_ctx(registries, info or base, x, tmp_path, n=n, train=train, test=test)


def test_the_real_train_split_covers_all_ten_digit_classes(registries, digits_data, tmp_path):
    info, train, _ = digits_data
    model = registries.models.get("train-data")(info)
    model.fit(TensorSplit(*train), None)
    ctx = make_ctx(registries, info, train[0], tmp_path, train=train, test=digits_data[2],
                   model=model, n=len(train[0]))
    metric = registries.metrics.get("coverage")()
    assert metric.skip_reason(ctx) is None
    out = metric.compute(ctx)
    assert set(out.values) == {"classes_covered", "class_kl"}
    assert out.values["classes_covered"] == 10
    # the split is stratified (about 1/10 per class) and the classifier 99.7% accurate; the
    # rest is sampling noise, E[KL] ~ (K - 1) / 2N = 0.003 for N = 1,437 draws
    assert out.values["class_kl"] < 0.01
    counts = np.asarray(out.details["class_counts"], dtype=float)
    p = counts / counts.sum()
    assert out.values["class_kl"] == pytest.approx(float((p * np.log(10 * p)).sum()), rel=1e-9)
    assert out.details["feature_extractor"] == "digits-cnn" and out.details["weights_sha256"]
    assert out.details["n_samples"] == len(train[0]) and out.details["reference"] == "uniform"


def test_two_digit_classes_cover_two_with_kl_log_5(registries, digits_data, tmp_path):
    info, train, _ = digits_data
    ctx = digits_ctx(registries, digits_data, train[0], tmp_path)
    logits = ctx.features().generated()["logits"]
    right = logits.argmax(1) == train[1]
    zeros = train[0][right & (train[1] == 0)][:50]
    ones = train[0][right & (train[1] == 1)][:50]
    out = registries.metrics.get("coverage")().compute(
        digits_ctx(registries, digits_data, torch.cat([zeros, ones]), tmp_path))
    # half on each of 2 of 10 classes: KL(p || U10) = log(10 / 2)
    assert out.values["classes_covered"] == 2
    assert out.values["class_kl"] == pytest.approx(math.log(5), abs=1e-12)


def test_declared_class_frequencies_are_the_reference(registries, digits_data, tmp_path):
    info, train, _ = digits_data
    freqs = torch.bincount(train[1], minlength=10).tolist()
    declared = dataclasses.replace(info, class_frequencies=tuple(freqs))
    assert sum(declared.class_frequencies) == pytest.approx(1.0)
    x = train[0]
    uniform = registries.metrics.get("coverage")().compute(digits_ctx(registries, digits_data, x, tmp_path))
    out = registries.metrics.get("coverage")().compute(
        digits_ctx(registries, digits_data, x, tmp_path, info=declared))
    assert out.details["reference"] == "declared class frequencies"
    counts = np.asarray(out.details["class_counts"], dtype=float)
    p, r = counts / counts.sum(), np.asarray(declared.class_frequencies)
    assert out.values["class_kl"] == pytest.approx(float((p * np.log(p / r)).sum()), rel=1e-9)
    assert out.values["class_kl"] != uniform.values["class_kl"]
    for bad in ((1.0,) * 9, (1.0,) * 9 + (-1.0,), (0.0,) * 10):
        with pytest.raises(ConfigError, match="class_frequencies"):
            dataclasses.replace(info, class_frequencies=bad)


def test_stacked_digits_at_26000_samples_cover_the_1000_triples(registries, tmp_path):
    ds = registries.datasets.get("stacked-digits")()
    info = ds.info()
    model = registries.models.get("train-data")(info)
    model.fit(ds.split("train"), None)
    ctx = make_ctx(registries, info, None, tmp_path, model=model, n=500,
                   train=ds.tensors("train"), test=ds.tensors("test"))
    metric = registries.metrics.get("coverage")(num_samples=26_000)
    assert metric.skip_reason(ctx) is None
    out = metric.compute(ctx)
    assert set(out.values) == {"modes", "mode_kl"}
    assert out.values["modes"] >= 990 and out.values["mode_kl"] < 0.1
    assert out.details["n_samples"] == 26_000 and out.details["samples"] == "drawn"
    assert sum(out.details["class_counts"]) == 26_000 and out.details["stacked"]


def test_one_digit_triple_covers_one_mode(registries, tmp_path):
    ds = registries.datasets.get("stacked-digits")(n_train=200, n_test=200)
    info = ds.info()
    test = ds.tensors("test")
    one = test[0][:1].repeat(1000, 1, 1, 1)
    out = registries.metrics.get("coverage")().compute(
        make_ctx(registries, info, one, tmp_path, test=test))
    assert out.values["modes"] == 1
    # a point mass against 1,000 uniform modes: KL = log 1000
    assert out.values["mode_kl"] == pytest.approx(math.log(1000), abs=1e-12)


def test_coverage_skips_without_classes_or_classifier(registries, digits_data, tmp_path):
    metric = registries.metrics.get("coverage")()
    ring = registries.datasets.get("ring8")(n_train=100, n_test=100)
    reason = metric.skip_reason(make_ctx(registries, ring.info(), ring.tensors("test")[0], tmp_path))
    assert reason == "needs a classifier extractor: 'raw' has no class logits"
    unnamed = dataclasses.replace(digits_data[0], feature_extractor=None)
    assert "declares none" in metric.skip_reason(
        digits_ctx(registries, digits_data, digits_data[2][0], tmp_path, info=unnamed))
    no_classes = dataclasses.replace(digits_data[0], num_classes=None)
    assert "declares no classes" in metric.skip_reason(
        digits_ctx(registries, digits_data, digits_data[2][0], tmp_path, info=no_classes))
    five = dataclasses.replace(digits_data[0], num_classes=5)
    assert "has 10 class logits, not the 5 classes" in metric.skip_reason(
        digits_ctx(registries, digits_data, digits_data[2][0], tmp_path, info=five))
    with pytest.raises(AssetMissingError):
        metric.preflight(digits_data[0], feature_extractor=None,
                         feature_weights=str(tmp_path / "missing.pt"), registries=registries)
    for bad in ({"num_samples": 0}, {"extractor": ""}):
        with pytest.raises(ConfigError):
            registries.metrics.get("coverage")(**bad)
