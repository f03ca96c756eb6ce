"""2D synthetic sets for mode collapse and shape fidelity: ring8, grid25, swissroll.

``ring8`` and ``grid25`` are the Gaussian mixtures of the VEEGAN / PacGAN protocol; they
declare their centres and common standard deviation in :class:`~genbench.DataInfo` for the
mode metrics, and label every point with the index of the mode it was drawn from.
``swissroll`` has no modes: it tests whether a model reproduces a thin curved manifold.
Train and test are drawn from different seeded random streams of the same distribution.
"""

from __future__ import annotations

import abc
import functools
import math
from typing import Annotated, Any

import numpy as np
import torch
from annotated_types import Ge

from genbench import (BenchmarkDataset, ConfigError, DataInfo, TensorSplit, hookimpl,
                      registered_name, tensor_fingerprint)

from .options import Count

_SPLIT_STREAM = {"train": 0, "test": 1}


class _Synthetic2D(BenchmarkDataset):
    """Shared options and split handling: ``n_train`` / ``n_test`` points, one ``seed``."""

    @property
    def name(self) -> str:
        """The name this dataset is registered under (``register("ring8", Ring8)``)."""
        return registered_name(self)

    def __init__(self, n_train: Count = 20_000, n_test: Count = 2_500, seed: int = 0):
        self.n = {"train": n_train, "test": n_test}
        self.seed = seed

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Known without drawing a point."""
        return {"kind": "vector", "shape": (2,), "classes": None, "modes": None}

    @abc.abstractmethod
    def _draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``n`` points ``(n, 2)`` and their labels (or None) from ``rng``."""

    @functools.cached_property
    def _splits(self) -> dict[str, TensorSplit]:
        out = {}
        for split, stream in _SPLIT_STREAM.items():
            x, y = self._draw(np.random.default_rng([self.seed, stream]), self.n[split])
            out[split] = TensorSplit(torch.from_numpy(x).float(),
                                     None if y is None else torch.from_numpy(y))
        return out

    def split(self, name: str) -> TensorSplit:
        try:
            return self._splits[name]
        except KeyError:
            raise ConfigError(f"{self.name} has no split {name!r}; valid splits: train, test") from None

    def _fingerprint(self) -> str:
        tr, te = self._splits["train"], self._splits["test"]
        return tensor_fingerprint(tr.x, tr.labels, te.x, te.labels)


class _GaussianMixture(_Synthetic2D):
    """Equal-weight isotropic Gaussians at fixed centres; label = index of the centre."""

    centres: tuple[tuple[float, float], ...] = ()
    std: float = 0.0

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """One class and one mode per centre."""
        return {**super().describe(), "classes": len(cls.centres), "modes": len(cls.centres)}

    def _draw(self, rng, n):
        centres = np.asarray(self.centres, dtype=np.float64)
        labels = rng.integers(0, len(centres), size=n)
        x = centres[labels] + self.std * rng.standard_normal((n, 2))
        return x, labels

    def info(self) -> DataInfo:
        return DataInfo(
            name=self.name, kind="vector", shape=(2,), num_classes=len(self.centres),
            modes=self.centres, mode_std=self.std, feature_extractor="raw",
            fingerprint=self._fingerprint(),
        )


def _ring(k: int, radius: float) -> tuple[tuple[float, float], ...]:
    return tuple((radius * math.cos(2 * math.pi * i / k), radius * math.sin(2 * math.pi * i / k))
                 for i in range(k))


class Ring8(_GaussianMixture):
    """8 Gaussians (std 0.01) evenly spaced on the unit circle, the first at (1, 0)."""

    description = "8 Gaussians on the unit circle, std 0.01 (VEEGAN/PacGAN mode-collapse set)"
    centres = _ring(8, 1.0)
    std = 0.01


class Grid25(_GaussianMixture):
    """25 Gaussians (std 0.05) at {-4, -2, 0, 2, 4}^2; mode ``5*i + j`` sits at (x_i, y_j)."""

    description = "25 Gaussians on the grid {-4,-2,0,2,4}^2, std 0.05 (VEEGAN/PacGAN mode-collapse set)"
    centres = tuple((float(a), float(b)) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4))
    std = 0.05


class SwissRoll(_Synthetic2D):
    """The 2D swiss roll, scaled to the unit disk: a thin spiral with no discrete modes.

    A point is ``t * (cos t, sin t) / (4.5 pi)`` with ``t = 1.5 pi (1 + 2u)``,
    ``u ~ U(0, 1)`` (the parametrisation of scikit-learn's ``make_swiss_roll``), plus
    isotropic Gaussian ``noise`` (standard deviation, in output units). Dividing by the
    largest radius ``4.5 pi`` puts the roll inside the unit disk, on the scale of ``ring8``;
    neighbouring arms lie ``2 pi / 4.5 pi ~ 0.44`` apart, so the default noise keeps them
    clearly separated.
    """

    description = "2D swiss roll inside the unit disk, mode-free shape-fidelity set"
    T_MAX = 4.5 * math.pi

    def __init__(self, n_train: Count = 20_000, n_test: Count = 2_500, seed: int = 0,
                 noise: Annotated[float, Ge(0)] = 0.02):
        super().__init__(n_train=n_train, n_test=n_test, seed=seed)
        self.noise = float(noise)

    def _draw(self, rng, n):
        t = 1.5 * math.pi * (1.0 + 2.0 * rng.random(n))
        x = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / self.T_MAX
        return x + self.noise * rng.standard_normal((n, 2)), None

    def info(self) -> DataInfo:
        return DataInfo(name=self.name, kind="vector", shape=(2,), feature_extractor="raw",
                        fingerprint=self._fingerprint(), extra={"noise": self.noise})


@hookimpl
def register_datasets(register):
    register("ring8", Ring8)
    register("grid25", Grid25)
    register("swissroll", SwissRoll)
