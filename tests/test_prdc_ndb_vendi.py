"""``prdc`` (density/coverage), ``ndb`` (NDB/K) and ``vendi``: against the ``prdc`` package,
closed forms and the papers' definitions."""

from __future__ import annotations

import contextlib
import io
import math
import tracemalloc
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from genbench import DataInfo, EvalContext
from genbench.api.errors import AssetMissingError, ConfigError
from helpers import FixedSamples


def vector_ctx(registries, samples, *, test, train=None, name="toy"):
    info = DataInfo(name, "vector", (samples.shape[1],), fingerprint=f"{name}-{len(test)}-{len(samples)}")
    return EvalContext(model=FixedSamples(info, samples), model_name="m", data_info=info,
                       train=(train if train is not None else test, None), test=(test, None),
                       device=torch.device("cpu"), seed=0, num_samples=len(samples),
                       cache_dir=Path("unused"), registries=registries)


def package_prdc(real, fake, k):
    """The ``prdc`` package (Naeem et al.'s reference code), on one thread: it asks
    scikit-learn for 8 (``n_jobs=8``), the same distances block by block."""
    import prdc.prdc
    import sklearn.metrics

    def one_thread(x, y=None):
        return sklearn.metrics.pairwise_distances(x, x if y is None else y, metric="euclidean", n_jobs=1)

    with mock.patch.object(prdc.prdc, "compute_pairwise_distance", one_thread), \
            contextlib.redirect_stdout(io.StringIO()):  # it prints the counts
        return prdc.prdc.compute_prdc(np.asarray(real, dtype=np.float64),
                                      np.asarray(fake, dtype=np.float64), k)


# -- prdc -------------------------------------------------------------------------------

@pytest.mark.parametrize("k, dim, shift", [(5, 16, 0.3), (3, 4, 0.0), (5, 64, 1.0)])
def test_density_and_coverage_equal_the_prdc_package(registries, tmp_path, k, dim, shift):
    g = torch.Generator().manual_seed(dim)
    real = torch.randn(700, dim, generator=g)
    fake = 1.3 * torch.randn(500, dim, generator=g) + shift
    ctx = vector_ctx(registries, fake, test=real)
    ctx.cache_dir = tmp_path
    metric = registries.metrics.get("prdc")(k=k)
    assert metric.skip_reason(ctx) is None
    out = metric.compute(ctx)
    # equal counts: the smaller (500), the test split's fixed seeded subset of 500
    assert out.details["n_used"] == 500 and out.details["n_reference_total"] == 700
    assert out.details["feature_extractor"] == "raw" and out.details["k"] == k
    ref = ctx.features().test(500)["raw"]
    expected = package_prdc(ref, fake, k)
    assert out.values["density"] == pytest.approx(expected["density"], abs=1e-6)
    assert out.values["coverage"] == pytest.approx(expected["coverage"], abs=1e-6)


def test_density_and_coverage_are_near_one_on_identical_gaussians(registries, tmp_path):
    """The prdc package's sanity check: 10,000 vs 10,000 draws of N(0, I) in 64-D."""
    g = torch.Generator().manual_seed(0)
    ctx = vector_ctx(registries, torch.randn(10_000, 64, generator=g),
                     test=torch.randn(10_000, 64, generator=g))
    ctx.cache_dir = tmp_path
    out = registries.metrics.get("prdc")().compute(ctx)
    assert out.details["n_used"] == 10_000
    assert out.values["density"] == pytest.approx(1.0, abs=0.05)
    # E[coverage] = 1 - (1/2)^k for identical distributions (Naeem et al. 2020, Sec. 4.2)
    assert out.values["coverage"] == pytest.approx(1 - 0.5 ** 5, abs=0.02)


def test_memory_is_linear_in_the_number_of_points(monkeypatch):
    """3,000 x 3,000 float64 distances would be 72 MB; the chunks stay far below it."""
    from genbench_plugins.metrics import neighbours
    from genbench_plugins.metrics.prdc import density_coverage

    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((3000, 8)), rng.standard_normal((3000, 8))
    expected = package_prdc(real, fake, 5)
    monkeypatch.setattr(neighbours, "WORKING_MEMORY_MB", 4)
    tracemalloc.start()
    try:
        out = density_coverage(real, fake, 5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 24 * 2**20, f"peak {peak / 2**20:.1f} MB"
    assert out["density"] == pytest.approx(expected["density"], abs=1e-12)
    assert out["coverage"] == pytest.approx(expected["coverage"], abs=1e-12)


def test_prdc_options(registries):
    cls = registries.metrics.get("prdc")
    for bad in ({"k": 0}, {"k": 2.0}, {"max_reference": 5}):
        with pytest.raises(ConfigError):
            cls(**bad)


@pytest.mark.parametrize("name", ["prdc", "ndb", "vendi"])
def test_feature_metrics_skip_without_an_extractor_and_preflight_weights(registries, digits, name,
                                                                           tmp_path):
    metric = registries.metrics.get(name)()
    images = DataInfo("imgs", "image", (3, 16, 16))
    ctx = EvalContext(model=FixedSamples(images, torch.rand(4, 3, 16, 16)), model_name="m",
                      data_info=images, train=(torch.rand(4, 3, 16, 16), None),
                      test=(torch.rand(4, 3, 16, 16), None), device=torch.device("cpu"), seed=0,
                      num_samples=4, cache_dir=Path("unused"), registries=registries)
    assert "declares no feature extractor" in metric.skip_reason(ctx)
    with pytest.raises(AssetMissingError):  # before anything trains
        metric.preflight(digits.info(), feature_extractor=None,
                         feature_weights=str(tmp_path / "missing.pt"), registries=registries)


# -- ndb --------------------------------------------------------------------------------

def clusters(per_cluster, rng, centres):
    """``per_cluster[i]`` points within 0.01 of ``centres[i]``."""
    return torch.from_numpy(np.concatenate([
        c + 0.01 * rng.standard_normal((n, 2)) for c, n in zip(centres, per_cluster)])).float()


def test_ndb_counts_the_bins_that_differ_and_their_js_divergence(registries, tmp_path):
    """100 tight, far-apart clusters are K-means' 100 bins (the default K, as the paper's
    code); samples miss 10 of them."""
    rng = np.random.default_rng(0)
    centres = np.array([(10.0 * i, 10.0 * j) for i in range(10) for j in range(10)])
    train = clusters([100] * 100, rng, centres)
    samples = clusters([0] * 10 + [100] * 90, rng, centres)
    ctx = vector_ctx(registries, samples, test=train[:500], train=train)
    ctx.cache_dir = tmp_path
    out = registries.metrics.get("ndb")().compute(ctx)
    assert out.details["bins"] == 100
    # missing bins: p = 1/100 of 10,000 vs q = 0 of 9,000, z = 9.5: different. The other 90:
    # p = 1/100 vs q = 1/90, z = -0.75, p-value 0.45: not different.
    assert out.details["ndb"] == 10 and out.values["ndb_k"] == pytest.approx(0.1)
    p = np.full(100, 1 / 100)
    q = np.r_[np.zeros(10), np.full(90, 1 / 90)]
    m = (p + q) / 2
    kl = lambda a, b: float(np.sum(a[a > 0] * np.log(a[a > 0] / b[a > 0])))  # noqa: E731
    assert out.values["ndb_js"] == pytest.approx(0.5 * kl(p, m) + 0.5 * kl(q, m), rel=1e-9)
    assert out.details["n_train"] == 10_000 and out.details["n_generated"] == 9000


def test_ndb_z_test_at_its_threshold():
    """Two-sided two-proportion z-test: |z| = 1.96 is the 0.05 boundary."""
    from genbench_plugins.metrics.ndb import different_bins

    n = m = 10_000
    # p = 0.5 + d/2, q = 0.5 - d/2 gives pooled 0.5 and z = d / sqrt(0.25 * 2 / n)
    se = math.sqrt(0.25 * 2 / n)
    d = np.array([1.90, 1.95, 1.97, 2.10]) * se
    got = different_bins(0.5 + d / 2, n, 0.5 - d / 2, m, 0.05)
    assert got.tolist() == [False, False, True, True]
    assert not different_bins(np.zeros(1), n, np.zeros(1), m, 0.05).any()  # empty in both


def test_ndb_train_vs_test_few_bins_one_class_removed_many(registries, tmp_path):
    """Five 8-D Gaussian classes: the test split is binned like the training split; without
    one class, that class's bins (1/5 of them) all differ."""
    rng = np.random.default_rng(1)
    means = 6.0 * rng.standard_normal((5, 8))

    def draw(n, classes=range(5)):
        lab = rng.choice(list(classes), n)
        return torch.from_numpy(means[lab] + rng.standard_normal((n, 8))).float(), lab

    train, _ = draw(10_000)
    test, lab = draw(5_000)
    metric = registries.metrics.get("ndb")()
    ctx = vector_ctx(registries, test, test=test, train=train)
    ctx.cache_dir = tmp_path
    same = metric.compute(ctx)
    keep = torch.from_numpy(lab != 0)
    ctx = vector_ctx(registries, test[keep], test=test, train=train)
    ctx.cache_dir = tmp_path
    missing = metric.compute(ctx)
    assert same.values["ndb_k"] <= 0.1  # about alpha: false positives only
    assert missing.values["ndb_k"] >= 0.2
    assert missing.values["ndb_js"] > 5 * same.values["ndb_js"]


def test_ndb_on_digits_features(registries, digits, tmp_path):
    """The digits test split against the training bins (digits-cnn features): few bins
    differ; with the 3s removed, more (at K = 100 and about 3.6 test digits a bin, a missing
    bin is not always significant, so fewer than the 3s' tenth of the bins)."""
    info, train, test = digits.info(), digits.tensors("train"), digits.tensors("test")

    def run(x):
        ctx = EvalContext(model=FixedSamples(info, x), model_name="m", data_info=info, train=train,
                          test=test, device=torch.device("cpu"), seed=0, num_samples=len(x),
                          cache_dir=tmp_path, registries=registries)
        return registries.metrics.get("ndb")().compute(ctx)

    same, missing = run(test[0]), run(test[0][test[1] != 3])
    assert same.values["ndb_k"] <= 0.05 < missing.values["ndb_k"]
    assert missing.values["ndb_js"] > 1.5 * same.values["ndb_js"]
    assert same.details["feature_extractor"] == "digits-cnn"
    assert same.details["feature_layer"] == "penultimate"


def test_ndb_options(registries):
    cls = registries.metrics.get("ndb")
    for bad in ({"bins": 0}, {"alpha": 0.0}, {"alpha": 1.5}, {"max_train": 10}, {"kmeans_seed": -1}):
        with pytest.raises(ConfigError):
            cls(**bad)


# -- vendi ------------------------------------------------------------------------------

def vendi_by_definition(x: np.ndarray) -> float:
    """exp(-sum l log l), l the eigenvalues of K / n, K the n x n cosine similarity matrix
    (Friedman & Dieng 2023, Def. 3.1), built entry by entry."""
    n = len(x)
    norms = np.linalg.norm(x, axis=1)
    k = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            if norms[i] == 0 or norms[j] == 0:  # no direction: alike only to another zero
                k[i, j] = float(norms[i] == norms[j] == 0)
            else:
                k[i, j] = x[i] @ x[j] / (norms[i] * norms[j])
    lam = np.linalg.eigvalsh(k / n)
    lam = lam[lam > 1e-15]
    return float(np.exp(-np.sum(lam * np.log(lam))))


def vendi(registries, x, tmp_path):
    ctx = vector_ctx(registries, x, test=x)
    ctx.cache_dir = tmp_path
    metric = registries.metrics.get("vendi")()
    assert metric.skip_reason(ctx) is None
    return metric.compute(ctx)


def test_copies_of_one_point_score_one(registries, tmp_path):
    x = torch.tensor([[0.3, -1.2, 2.0, 0.5]]).repeat(300, 1)
    out = vendi(registries, x, tmp_path)
    assert out.values["vendi"] == pytest.approx(1.0, abs=1e-9)
    assert out.details["n_samples"] == 300 and out.details["kernel"] == "cosine"


@pytest.mark.parametrize("k", [2, 5, 12])
def test_k_separated_clusters_score_about_k(registries, tmp_path, k):
    """For the cosine kernel, well separated means orthogonal directions: cluster j lies
    around 10 e_j, so similarities are ~1 within a cluster and ~0 across."""
    g = torch.Generator().manual_seed(k)
    directions = 10.0 * torch.eye(16)[:k]
    exact = directions.repeat_interleave(40, dim=0)
    assert vendi(registries, exact, tmp_path).values["vendi"] == pytest.approx(k, abs=1e-9)
    noisy = exact + 0.05 * torch.randn(exact.shape, generator=g)  # 2% of the norm
    assert vendi(registries, noisy, tmp_path).values["vendi"] == pytest.approx(k, rel=0.01)


def test_vendi_equals_its_definition_on_random_features(registries, tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(150, 6, generator=g) + torch.tensor([2.0, 0, 0, 0, 0, 0])
    x[::10] = 0.0  # dead features: 15 all-zero rows
    out = vendi(registries, x, tmp_path)
    assert out.details["n_zero_features"] == 15
    assert out.values["vendi"] == pytest.approx(vendi_by_definition(x.double().numpy()), rel=1e-9)
