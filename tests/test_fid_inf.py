"""``fid-inf``: FD-infinity (Chong & Forsyth 2020) on Gaussians whose FID is known in closed
form, and its fit against an independent least-squares fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from genbench import DataInfo, EvalContext
from genbench.api.errors import ConfigError
from helpers import FixedSamples


def whitened(rng, m, d):
    """``m`` points whose sample mean is exactly 0 and sample covariance (ddof 1) exactly I."""
    x = rng.standard_normal((m, d))
    x -= x.mean(0)
    chol = np.linalg.cholesky(np.cov(x, rowvar=False))
    return np.linalg.solve(chol, x.T).T


def gaussian_ctx(registries, tmp_path, seed, *, d=32, n=2000, m=5000):
    """Reference: a Gaussian fitted exactly to N(0, I). Samples: ``n`` draws of
    N(mu, diag(s^2)). The Frechet distance between the two Gaussians is
    |mu|^2 + sum (s_i - 1)^2 (the covariances commute)."""
    rng = np.random.default_rng(seed)
    ref = whitened(rng, m, d)
    mu, s = np.full(d, 0.1), np.linspace(0.7, 1.3, d)
    gen = mu + s * rng.standard_normal((n, d))
    closed_form = float(mu @ mu + ((s - 1) ** 2).sum())
    info = DataInfo("gauss", "vector", (d,), fingerprint=f"gauss-{seed}-{d}-{m}")
    f32 = lambda a: torch.from_numpy(a).float()  # noqa: E731
    ctx = EvalContext(model=FixedSamples(info, f32(gen)), model_name="m", data_info=info,
                      train=(f32(ref), None), test=(f32(ref), None), device=torch.device("cpu"),
                      seed=0, num_samples=n, cache_dir=Path(tmp_path), registries=registries)
    return ctx, closed_form


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_extrapolation_is_closer_to_the_closed_form_than_fid_at_the_largest_n(registries, tmp_path,
                                                                              seed):
    ctx, closed_form = gaussian_ctx(registries, tmp_path, seed)
    out = registries.metrics.get("fid-inf")().compute(ctx)
    at_largest = out.details["fid_at_largest_n"]
    assert abs(out.values["fid_inf"] - closed_form) < abs(at_largest - closed_form)
    # absolutely: what extrapolation cannot remove is the sampling error of the 2000 draws'
    # mean and covariance, to first order 2 mu.dm + 2 sum (s_i - 1) ds_i with standard
    # deviation sqrt(4 sum mu_i^2 s_i^2 / n + 2 sum (s_i - 1)^2 s_i^2 / n) = 0.04 here (over 20
    # seeds: 0.033, largest error 0.061); 0.15 is nearly 4 of them, a tenth of closed_form
    assert abs(out.values["fid_inf"] - closed_form) < 0.15
    assert at_largest > closed_form  # FID's bias is upwards
    assert out.values["r2"] > 0.9


def test_the_fit_and_the_counts(registries, tmp_path):
    ctx, _ = gaussian_ctx(registries, tmp_path, 3)
    fid = registries.metrics.get("fid")().compute(ctx)
    out = registries.metrics.get("fid-inf")().compute(ctx)
    d = out.details
    # 15 counts evenly spaced from 10% of the samples to all of them (the paper's 5k..50k)
    assert d["counts"] == [int(c) for c in np.linspace(200, 2000, 15).round()]
    assert d["n_generated"] == 2000 and d["n_reference"] == 5000
    # the largest count is every sample: the `fid` metric's value
    assert d["fid_at_largest_n"] == pytest.approx(fid.values["fid"], rel=1e-9)
    # an independent least-squares line through (1/N, FID): its intercept and r^2
    x, y = 1.0 / np.asarray(d["counts"], dtype=float), np.asarray(d["fids"])
    slope, intercept = np.polyfit(x, y, 1)
    assert out.values["fid_inf"] == pytest.approx(intercept, rel=1e-9)
    assert d["slope"] == pytest.approx(slope, rel=1e-9)
    assert out.values["r2"] == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2, rel=1e-9)
    # seeded subsets: the same numbers again
    again = registries.metrics.get("fid-inf")().compute(ctx)
    assert again.values == out.values


def scipy_fid(a, b):
    """The textbook Frechet distance between Gaussians fitted to ``a`` and ``b`` (float64,
    covariances with ddof 1), through SciPy's matrix square root."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float((mu_a - mu_b) @ (mu_a - mu_b) + np.trace(cov_a + cov_b - 2 * root))


def test_each_subset_fid_is_the_textbook_frechet_distance(registries, tmp_path):
    """Every recorded FID recomputed with SciPy's sqrtm on the subset the docstring names: a
    seeded ``default_rng(rng_seed)`` choice without replacement per count, in order, and all
    samples at the largest count."""
    ctx, _ = gaussian_ctx(registries, tmp_path, 5, d=16, n=600, m=1000)
    out = registries.metrics.get("fid-inf")(points=6).compute(ctx)
    d = out.details
    gen = ctx.model.x.double().numpy()  # the features: the raw float32 vectors
    ref = ctx.test[0].double().numpy()
    rng = np.random.default_rng(2020)
    expected = []
    for n in d["counts"]:
        subset = gen if n == len(gen) else gen[np.sort(rng.choice(len(gen), n, replace=False))]
        expected.append(scipy_fid(subset, ref))
    assert d["counts"][-1] == 600 and len(expected) == 6
    np.testing.assert_allclose(d["fids"], expected, rtol=1e-5)
    assert d["fid_at_largest_n"] == pytest.approx(expected[-1], rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_fid_inf_of_two_equal_gaussians_is_zero(registries, tmp_path, seed):
    """Samples and reference both N(0, I) in d = 64: the Frechet distance at N -> infinity is 0,
    while FID at N samples is biased by about d/N + d(d + 1)/(4N) (the mean's squared norm
    and, to second order, ||S - I||_F^2 / 4): 0.55 at N = 2000. The extrapolation removes the
    bias but not the scatter of the subset FIDs about the 1/N line: over 30 seeds of this
    set-up fid_inf had mean -0.035, standard deviation 0.045 and largest magnitude 0.12, so
    0.2 (about 4 standard deviations) bounds it, far below the bias an implementation that
    did not extrapolate would leave."""
    d, n = 64, 2000
    rng = np.random.default_rng(100 + seed)
    ref = whitened(rng, 5000, d)
    gen = rng.standard_normal((n, d))
    info = DataInfo("gauss0", "vector", (d,), fingerprint=f"gauss0-{seed}")
    f32 = lambda a: torch.from_numpy(a).float()  # noqa: E731
    ctx = EvalContext(model=FixedSamples(info, f32(gen)), model_name="m", data_info=info,
                      train=(f32(ref), None), test=(f32(ref), None), device=torch.device("cpu"),
                      seed=0, num_samples=n, cache_dir=Path(tmp_path), registries=registries)
    out = registries.metrics.get("fid-inf")().compute(ctx)
    bias = d / n + d * (d + 1) / (4 * n)
    assert out.details["fid_at_largest_n"] == pytest.approx(bias, abs=0.1)
    assert abs(out.values["fid_inf"] - 0.0) < 0.2


def test_reuses_the_jobs_features(registries, tmp_path, monkeypatch):
    """No extraction of its own: after ``fid`` made the features, extracting is an error."""
    ctx, _ = gaussian_ctx(registries, tmp_path, 4, n=400, m=600)
    registries.metrics.get("fid")().compute(ctx)

    def no_extraction(*args, **kwargs):
        raise AssertionError("fid-inf extracted features")

    monkeypatch.setattr(ctx.features().extractor, "features", no_extraction)
    out = registries.metrics.get("fid-inf")(points=5).compute(ctx)
    assert len(out.details["counts"]) == 5 and np.isfinite(out.values["fid_inf"])


def test_sample_counts():
    from genbench_plugins.metrics.fid_inf import sample_counts

    assert sample_counts(50_000, 15, 0.1) == [int(c) for c in np.linspace(5000, 50_000, 15).round()]
    assert sample_counts(10, 15, 0.1) == list(range(2, 11))  # rounded, no repeats
    with pytest.raises(ValueError, match="range of sample counts"):
        sample_counts(2, 15, 0.5)


def test_directions_and_options(registries):
    cls = registries.metrics.get("fid-inf")
    assert cls.higher_is_better == {"fid_inf": False} and cls.primary == "fid_inf"  # r2 informative
    for bad in ({"points": 1}, {"points": 0}, {"min_fraction": 0}, {"min_fraction": 1.0},
                {"max_reference": 0}, {"rng_seed": -1}, {"points": 2.5}):
        with pytest.raises(ConfigError):
            cls(**bad)
