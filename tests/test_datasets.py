"""Embedded and synthetic datasets: digits, stacked-digits, ring8, grid25, swissroll."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch

from genbench import Budget
from genbench.api.errors import ConfigError
from genbench.execution.training import train
from genbench_plugins.datasets.embedded import _digits_arrays, digits_split_indices

ALL_DATASETS = {"digits", "stacked-digits", "ring8", "grid25", "swissroll", "mnist",
                "fashion-mnist", "cifar10", "stacked-mnist", "image-folder"}


def item_hashes(x: torch.Tensor) -> set[str]:
    return {hashlib.sha256(row.numpy().tobytes()).hexdigest() for row in x}


def test_registry_lists_every_dataset(registries):
    assert ALL_DATASETS <= set(registries.datasets.names())


@pytest.mark.parametrize("name, kind, shape, classes, modes", [
    ("digits", "image", (1, 8, 8), 10, None),
    ("stacked-digits", "image", (3, 8, 8), 1000, 1000),
    ("ring8", "vector", (2,), 8, 8),
    ("grid25", "vector", (2,), 25, 25),
    ("swissroll", "vector", (2,), None, None),
])
def test_describe(registries, name, kind, shape, classes, modes):
    d = registries.datasets.get(name).describe()
    assert (d["kind"], tuple(d["shape"]), d["classes"], d["modes"]) == (kind, shape, classes, modes)


def test_stacked_sets_describe_their_1000_modes_without_building(registries, monkeypatch):
    """``genbench list datasets`` shows 1,000 modes for both stacked sets, cheaply: nothing is
    stacked and no MNIST file is needed (GENBENCH_DATA is an empty temp dir)."""
    import genbench_plugins.datasets.embedded as embedded

    def refuse(*args, **kwargs):
        raise AssertionError("describe() must not load or stack digits")

    monkeypatch.setattr(embedded, "_digits_arrays", refuse)
    for name in ("stacked-digits", "stacked-mnist"):
        assert registries.datasets.get(name).describe()["modes"] == 1000, name


# -- digits ---------------------------------------------------------------------------------

def test_digits_splits(digits):
    tr, te = digits.split("train"), digits.split("test")
    assert tr.x.shape == (1437, 1, 8, 8) and te.x.shape == (360, 1, 8, 8)
    assert 0.0 <= tr.x.min() and tr.x.max() <= 1.0
    assert not item_hashes(tr.x) & item_hashes(te.x)
    info = digits.info()
    assert (info.num_classes, info.feature_extractor) == (10, "digits-cnn")


# -- stacked-digits -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stacked():
    from genbench_plugins.datasets.embedded import StackedDigits

    return StackedDigits()


def test_stacked_digits_shapes_and_info(stacked):
    tr, te = stacked.split("train"), stacked.split("test")
    assert tr.x.shape == (20_000, 3, 8, 8) and te.x.shape == (10_000, 3, 8, 8)
    assert tr.x.dtype == torch.float32
    assert 0.0 <= tr.x.min() and tr.x.max() <= 1.0
    info = stacked.info()
    assert (info.kind, info.shape, info.num_classes) == ("image", (3, 8, 8), 1000)
    assert info.feature_extractor == "digits-cnn" and len(info.fingerprint) == 16


def test_stacked_digits_default_train_covers_all_1000_labels(stacked):
    assert torch.equal(stacked.split("train").labels.unique(), torch.arange(1000))


def test_stacked_digits_label_is_100_d1_plus_10_d2_plus_d3(stacked):
    images, labels = _digits_arrays()
    images, labels = torch.from_numpy(images), torch.from_numpy(labels)
    for split in ("train", "test"):
        ds, idx = stacked.split(split), stacked.source_indices(split)
        d = labels[idx]
        assert torch.equal(ds.labels, 100 * d[:, 0] + 10 * d[:, 1] + d[:, 2])
        for k in range(3):  # channel k is the k-th source digit
            assert torch.equal(ds.x[:, k], images[idx[:, k]])


def test_stacked_digits_test_digits_never_in_train(stacked):
    train_src, test_src = digits_split_indices(0, 0.2)
    used_train = set(stacked.source_indices("train").flatten().tolist())
    used_test = set(stacked.source_indices("test").flatten().tolist())
    assert used_train <= set(train_src.tolist())
    assert used_test <= set(test_src.tolist())
    assert not used_train & used_test


def test_stacked_digits_seeded_and_sized():
    from genbench_plugins.datasets.embedded import StackedDigits

    a, b = StackedDigits(n_train=500, n_test=200), StackedDigits(n_train=500, n_test=200)
    assert len(a.split("train")) == 500 and len(a.split("test")) == 200
    assert torch.equal(a.split("train").x, b.split("train").x)
    assert a.info().fingerprint == b.info().fingerprint
    c = StackedDigits(n_train=500, n_test=200, seed=1)
    assert not torch.equal(a.split("train").x, c.split("train").x)
    assert a.info().fingerprint != c.info().fingerprint
    with pytest.raises(ConfigError, match=r"'n_train' must be int >= 1 \(default 20000\), got 0"):
        StackedDigits(n_train=0)


# -- Gaussian mixtures ----------------------------------------------------------------------

@pytest.mark.parametrize("name, k, std", [("ring8", 8, 0.01), ("grid25", 25, 0.05)])
def test_mixture_protocol(registries, name, k, std):
    ds = registries.datasets.get(name)(n_train=4000, n_test=1000)
    info = ds.info()
    assert (info.kind, info.shape, info.num_classes, info.feature_extractor) == ("vector", (2,), k, "raw")
    assert info.mode_std == std and len(info.modes) == k
    centres = info.modes_tensor()
    for split, n in (("train", 4000), ("test", 1000)):
        s = ds.split(split)
        assert s.x.shape == (n, 2) and s.x.dtype == torch.float32
        dist = torch.cdist(s.x, centres)
        # every sample lies within 4 std of the centre it is labelled with, its nearest one
        assert (dist[torch.arange(n), s.labels] < 4 * std).all()
        assert torch.equal(dist.argmin(1), s.labels)
        assert torch.equal(s.labels.unique(), torch.arange(k))  # every mode populated
    assert not item_hashes(ds.split("train").x) & item_hashes(ds.split("test").x)


def test_mixture_centres():
    from genbench_plugins.datasets.synthetic import Grid25, Ring8

    ring = torch.tensor(Ring8.centres)
    assert torch.allclose(ring.norm(dim=1), torch.ones(8))
    assert torch.allclose(ring[2], torch.tensor([0.0, 1.0]), atol=1e-12)
    grid = {tuple(c) for c in Grid25.centres}
    assert grid == {(float(a), float(b)) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}


@pytest.mark.parametrize("name", ["ring8", "grid25", "swissroll"])
def test_synthetic_seeded(registries, name):
    cls = registries.datasets.get(name)
    a, b, c = cls(n_train=300, n_test=100), cls(n_train=300, n_test=100), cls(n_train=300, n_test=100, seed=1)
    assert torch.equal(a.split("train").x, b.split("train").x)
    assert torch.equal(a.split("test").x, b.split("test").x)
    assert a.info().fingerprint == b.info().fingerprint != c.info().fingerprint
    assert not item_hashes(a.split("train").x) & item_hashes(a.split("test").x)
    with pytest.raises(ConfigError, match="n_test"):
        cls(n_test=0)
    with pytest.raises(ConfigError, match="valid splits"):
        a.split("validation")


def test_swissroll_lies_on_the_spiral():
    from genbench_plugins.datasets.synthetic import SwissRoll

    ds = SwissRoll(n_train=2000, n_test=10, noise=0.0)
    info = ds.info()
    assert info.modes is None and info.num_classes is None and info.feature_extractor == "raw"
    x = ds.split("train")
    assert isinstance(x[0], torch.Tensor) and x.labels is None
    r = x.x.double().norm(dim=1)
    # radius r = t / (4.5 pi) with t in [1.5 pi, 4.5 pi]: inside the unit disk, outside r = 1/3
    assert r.min() >= 1 / 3 - 1e-6 and r.max() <= 1 + 1e-6
    # and the polar angle is t mod 2 pi
    t = r * SwissRoll.T_MAX
    angle = torch.atan2(x.x[:, 1].double(), x.x[:, 0].double())
    gap = torch.remainder(angle - t + math.pi, 2 * math.pi) - math.pi
    assert gap.abs().max() < 1e-4
    noisy = SwissRoll(n_train=2000, n_test=10, noise=0.02).split("train").x
    assert noisy.norm(dim=1).max() < 1 + 5 * 0.02


# -- end to end at the library level ----------------------------------------------------------

@pytest.mark.parametrize("name, options", [
    ("digits", {}), ("stacked-digits", {"n_train": 2000, "n_test": 500}),
    ("ring8", {}), ("grid25", {}),
])
def test_vae_trains_and_samples(registries, name, options):
    ds = registries.datasets.get(name)(**options)
    info = ds.info()
    model = registries.models.get("vae")(info)
    result = train(model, ds.split("train"), Budget(steps=50, batch_size=64), device="cpu",
                   progress=False)
    assert result.status == "ok" and result.steps == 50
    with torch.no_grad():
        samples = model.sample(16, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (16, *info.shape) and torch.isfinite(samples).all()
