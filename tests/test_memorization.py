"""``memorization``: copy rate, AuthPct (Alaa et al. 2022) and C_T (Meehan et al. 2020),
against the definitions computed here by brute force, and on the issue's three cases:
replayed training images, fresh images, training images plus small noise."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from genbench import DataInfo, EvalContext
from genbench.api.errors import ConfigError
from helpers import FixedSamples


def make_ctx(registries, samples, *, train, test, info, cache_dir):
    return EvalContext(model=FixedSamples(info, samples), model_name="m", data_info=info,
                       train=(train, None), test=(test, None), device=torch.device("cpu"), seed=0,
                       num_samples=len(samples), cache_dir=Path(cache_dir), registries=registries)


def memorization(registries, samples, *, train, test, tmp_path, info=None, **options):
    if info is None:  # vectors: the raw coordinates are the features
        info = DataInfo("toy", "vector", (samples.shape[1],),
                        fingerprint=f"toy-{len(train)}-{len(test)}-{len(samples)}")
    # a fresh cache per context: two contexts of one dataset share real-data features by key
    ctx = make_ctx(registries, samples, train=train, test=test, info=info,
                   cache_dir=tmp_path / f"cache-{len(list(tmp_path.iterdir()))}")
    metric = registries.metrics.get("memorization")(**options)
    assert metric.skip_reason(ctx) is None
    return metric.compute(ctx)


# -- the definitions, by brute force ----------------------------------------------------

def official_ct(test, test_cell, gen, gen_cell, train, train_cell, tau, continuity=0.5,
                in_cell=True):
    """C_T as Meehan et al.'s code (``C_T``/``Zu_cells``/``Zu`` in casey-meehan/data-copying)
    computes it, transcribed with full distance matrices and explicit pair counts: per cell,
    distances to the nearest training point of that cell, U = #(gen > test) + 1/2 #ties,
    Z = (U - (mn/2 - 0.5)) / sqrt(mn(n+m+1)/12); cells with Q_m(cell) > tau, weighted by
    P_n(cell). ``continuity`` and ``in_cell`` switch the details off, to show they matter."""
    m, n = len(gen), len(test)
    num = den = 0.0
    for c in np.unique(test_cell):
        if np.sum(gen_cell == c) / m <= tau:
            continue
        cell_train = train if not in_cell else train[train_cell == c]
        g = cdist(gen[gen_cell == c], cell_train).min(1)
        t = cdist(test[test_cell == c], cell_train).min(1)
        u = (g[:, None] > t[None, :]).sum() + 0.5 * (g[:, None] == t[None, :]).sum()
        mc, nc = len(g), len(t)
        z = (u - (mc * nc / 2 - continuity)) / math.sqrt(mc * nc * (mc + nc + 1) / 12)
        num, den = num + nc / n * z, den + nc / n
    return num / den


def by_definition(gen, test, train, gen_cell, test_cell, train_cell):
    """copy rate, AuthPct and C_T from full distance matrices and explicit pair counts."""
    gen, test, train = (np.asarray(a, dtype=np.float64) for a in (gen, test, train))
    d_gen, d_test = cdist(gen, train), cdist(test, train)
    l_gen, l_test = d_gen.min(1), d_test.min(1)
    # copy rate: samples nearer than the 1st percentile of the test points' distances
    copy = np.mean(l_gen < np.percentile(l_test, 1))
    # AuthPct: farther from the nearest training point t than t is from its nearest other one
    d_train = cdist(train, train)
    np.fill_diagonal(d_train, np.inf)
    radius = d_train.min(1)
    auth = 100.0 * np.mean(l_gen > radius[d_gen.argmin(1)])
    ct = official_ct(test, test_cell, gen, gen_cell, train, train_cell, tau=20 / len(gen))
    return copy, auth, ct


def clusters(rng, n, centres, scale=1.0):
    """``n`` points spread evenly over Gaussian clusters around ``centres``; labels."""
    lab = np.arange(n) % len(centres)
    return centres[lab] + scale * rng.standard_normal((n, centres.shape[1])), lab


def test_values_equal_the_definitions(registries, tmp_path):
    """Four far-apart 6-D clusters are K-means' four cells, so the definitions can use the
    known cluster of each point. Samples: half training copies, half new draws."""
    rng = np.random.default_rng(0)
    centres = 100.0 * np.eye(4, 6)
    train, train_lab = clusters(rng, 800, centres)
    test, test_lab = clusters(rng, 400, centres)
    new, new_lab = clusters(rng, 200, centres)
    idx = rng.choice(800, 200, replace=False)
    gen = np.concatenate([train[idx], new])
    gen_lab = np.concatenate([idx % 4, new_lab])
    t = lambda a: torch.from_numpy(a).float()  # noqa: E731
    out = memorization(registries, t(gen), train=t(train), test=t(test), tmp_path=tmp_path, cells=4)

    f32 = lambda a: t(a).double().numpy()  # noqa: E731  (what the metric sees: float32 features)
    copy, auth, ct = by_definition(f32(gen), f32(test), f32(train), gen_lab, test_lab, train_lab)
    assert out.values["copy_rate"] == pytest.approx(copy, abs=1e-12)
    assert out.values["authenticity"] == pytest.approx(auth, abs=1e-9)
    assert out.values["ct"] == pytest.approx(ct, rel=1e-9)
    # the copies are copies, the new draws are not: about half of each
    assert 0.5 <= out.values["copy_rate"] <= 0.53 and out.values["ct"] < -5
    d = out.details
    assert d["n_used"] == 400 and d["n_generated"] == 400 and d["n_train"] == 800
    assert d["cells_used"] == 4 and sorted(r["n_test"] for r in d["ct_cells"]) == [100] * 4
    assert d["feature_extractor"] == "raw"


def test_ct_equals_the_official_statistic_on_overlapping_cells(registries, tmp_path):
    """Random 3-D data in 4 K-means cells that touch, so many points' nearest training point
    lies in another cell: C_T equals the official code's in-cell statistic, continuity
    correction included, and a cell with exactly 20 samples is left out (``> 20``) while
    one with 21 counts."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(5)
    f32 = lambda a: a.astype(np.float32).astype(np.float64)  # noqa: E731  (what the metric sees)
    train, test = f32(rng.standard_normal((300, 3))), f32(rng.standard_normal((200, 3)))
    kmeans = KMeans(n_clusters=4, n_init=1, random_state=0).fit(train)
    # samples: fresh draws and near-copies of training points, 20 in cell 0, 21 in cell 1
    near_copies = train[rng.integers(0, 300, 2000)] + 0.05 * rng.standard_normal((2000, 3))
    pool = f32(np.concatenate([rng.standard_normal((2000, 3)), near_copies]))
    pool = pool[rng.permutation(len(pool))]
    pool_cell = kmeans.predict(pool)
    wanted = {0: 20, 1: 21, 2: 80, 3: 79}
    gen = np.concatenate([pool[pool_cell == c][:k] for c, k in wanted.items()])
    cells = {name: kmeans.predict(a)
             for name, a in (("gen", gen), ("test", test), ("train", train))}

    t = lambda a: torch.from_numpy(a).float()  # noqa: E731
    out = memorization(registries, t(gen), train=t(train), test=t(test), tmp_path=tmp_path, cells=4)
    ct = out.values["ct"]
    args = (test, cells["test"], gen, cells["gen"], train, cells["train"], 20 / len(gen))
    assert ct == pytest.approx(official_ct(*args), rel=1e-9, abs=1e-12)
    # the details the test is about change the value by far more than its tolerance
    assert abs(ct - official_ct(*args, continuity=0.0)) > 1e-3
    assert abs(ct - official_ct(*args, in_cell=False)) > 1e-2
    assert abs(ct - official_ct(*args[:-1], 19 / len(gen))) > 1e-2  # >= 20 would count cell 0
    rows = {r["cell"]: r for r in out.details["ct_cells"]}
    assert {c: rows[c]["n_generated"] for c in rows} == wanted
    assert rows[0]["z"] is None and rows[1]["z"] is not None and out.details["cells_used"] == 3
    assert sum(r["n_train"] for r in rows.values()) == 300 and out.details["cell_threshold"] == 20
    # the global nearest training point is often in another cell: the distances differ
    global_d = cdist(test, train).min(1)
    in_cell_d = np.array([cdist(x[None], train[cells["train"] == c]).min()
                          for x, c in zip(test, cells["test"])])
    assert np.mean(in_cell_d > global_d + 1e-12) > 0.05


def test_fresh_draws_score_like_new_data(registries, tmp_path):
    """Samples from the data distribution, independent of the training split: copy rate
    about 1% by construction, C_T about 0 (a standard normal's scale)."""
    rng = np.random.default_rng(1)
    centres = 4.0 * rng.standard_normal((5, 8))
    t = lambda a: torch.from_numpy(a).float()  # noqa: E731
    train, test, gen = (t(clusters(rng, n, centres)[0]) for n in (4000, 3000, 3000))
    out = memorization(registries, gen, train=train, test=test, tmp_path=tmp_path)
    assert out.values["copy_rate"] == pytest.approx(0.01, abs=0.006)
    assert abs(out.values["ct"]) < 1.0
    assert out.details["cells_used"] == 10
    # underfitting, for the sign: samples farther from the training data than new data is
    blurred = memorization(registries, gen + 0.5 * torch.randn(gen.shape), train=train, test=test,
                           tmp_path=tmp_path)
    assert blurred.values["ct"] > 3 and blurred.values["copy_rate"] < 0.01


# -- the cases, on digit images (digits-cnn features) -----------------------------

def test_training_images_are_copies(registries, digits, tmp_path):
    info, (x_train, _), (x_test, _) = digits.info(), digits.tensors("train"), digits.tensors("test")
    g = torch.Generator().manual_seed(0)
    replayed = x_train[torch.randperm(len(x_train), generator=g)[:500]]
    out = memorization(registries, replayed, train=x_train, test=x_test, tmp_path=tmp_path, info=info)
    assert out.values["copy_rate"] > 0.9
    assert out.values["authenticity"] < 1.0  # percent
    assert out.values["ct"] < -3
    d = out.details
    assert d["feature_extractor"] == "digits-cnn" and d["feature_layer"] == "penultimate"
    assert d["n_used"] == len(x_test) == 360 and d["n_generated"] == 500
    assert d["n_train"] == len(x_train)


def test_fresh_test_images_are_not_copies(registries, digits, tmp_path):
    """Half of the test split as samples, the other half as the reference: neither was
    trained on (by the model or by digits-cnn). 180 of each: 4 cells keep >= 20 per cell."""
    info, (x_train, _), (x_test, _) = digits.info(), digits.tensors("train"), digits.tensors("test")
    perm = torch.randperm(len(x_test), generator=torch.Generator().manual_seed(1))
    out = memorization(registries, x_test[perm[:180]], train=x_train, test=x_test[perm[180:]],
                       tmp_path=tmp_path, info=info, cells=4)
    # 1% of 180 is under 2 points: the copy rate is about 0.01 with a wide spread
    assert out.values["copy_rate"] <= 0.04
    assert abs(out.values["ct"]) < 1.5
    assert out.values["authenticity"] > 40


def test_training_images_plus_small_noise_are_copying(registries, digits, tmp_path):
    info, (x_train, _), (x_test, _) = digits.info(), digits.tensors("train"), digits.tensors("test")
    g = torch.Generator().manual_seed(2)
    near = x_train[torch.randperm(len(x_train), generator=g)[:500]]
    near = (near + 0.03 * torch.randn(near.shape, generator=g)).clamp(0, 1)
    out = memorization(registries, near, train=x_train, test=x_test, tmp_path=tmp_path, info=info)
    assert out.values["ct"] < -3
    assert out.values["authenticity"] < 10


# -- options and edge cases -------------------------------------------------------------

def test_ct_is_nan_with_a_reason_when_no_cell_has_enough_samples(registries, tmp_path):
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.standard_normal((300, 4))).float()
    out = memorization(registries, x[:30], train=x[100:], test=x[30:100], tmp_path=tmp_path,
                       cells=4, cell_threshold=30)  # more than 30 of 30: never
    assert math.isnan(out.values["ct"]) and "no cell holds more than 30" in out.details["ct_note"]
    assert out.details["cells_used"] == 0 and math.isfinite(out.values["copy_rate"])


def test_directions_and_options(registries):
    cls = registries.metrics.get("memorization")
    assert cls.higher_is_better == {"copy_rate": False, "authenticity": True}  # ct informative
    for bad in ({"cells": 0}, {"cell_threshold": -1}, {"copy_percentile": 0},
                {"copy_percentile": 100}, {"max_train": 3}, {"kmeans_seed": -1},
                {"max_reference": 1.5}):
        with pytest.raises(ConfigError):
            cls(**bad)


def test_skipped_without_an_extractor(registries):
    images = DataInfo("imgs", "image", (3, 16, 16))
    x = torch.rand(4, 3, 16, 16)
    ctx = make_ctx(registries, x, train=x, test=x, info=images, cache_dir="unused")
    assert "declares no feature extractor" in registries.metrics.get("memorization")().skip_reason(ctx)
