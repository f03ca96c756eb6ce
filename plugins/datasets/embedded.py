"""Image sets that ship with the installation: no download, ever."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from genbench import (BenchmarkDataset, ConfigError, DataInfo, TensorSplit, hookimpl,
                      registered_name, tensor_fingerprint)

from .options import Count, TestFraction
from .stacking import STACKED_CLASSES, stack, stacked_indices


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel intensities are integers 0..16.
    return (bunch.images / 16.0).astype(np.float32), bunch.target.astype(np.int64)


def digits_split_indices(seed: int, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded train/test indices into scikit-learn's 1,797 digits."""
    from sklearn.model_selection import train_test_split

    _, y = _digits_arrays()
    idx = np.arange(len(y))
    train_idx, test_idx = train_test_split(idx, test_size=test_fraction, random_state=seed,
                                           stratify=y)
    return np.sort(train_idx), np.sort(test_idx)


class Digits(BenchmarkDataset):
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), as 1x8x8 in [0, 1]."""

    description = "scikit-learn's 8x8 handwritten digits: 1,797 gray images, 10 classes, shipped"

    def __init__(self, split_seed: int = 0, test_fraction: TestFraction = 0.2):
        self.split_seed, self.test_fraction = split_seed, test_fraction

    @functools.cached_property
    def _splits(self) -> dict[str, TensorSplit]:
        images, labels = _digits_arrays()
        train_idx, test_idx = digits_split_indices(self.split_seed, self.test_fraction)
        x = torch.from_numpy(images).unsqueeze(1)
        y = torch.from_numpy(labels)
        return {"train": TensorSplit(x[train_idx], y[train_idx]),
                "test": TensorSplit(x[test_idx], y[test_idx])}

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Known without loading the digits."""
        return {"kind": "image", "shape": (1, 8, 8), "classes": 10, "modes": None}

    def split(self, name: str) -> TensorSplit:
        try:
            return self._splits[name]
        except KeyError:
            raise ConfigError(f"{registered_name(self)} has no split {name!r}; "
                              "valid splits: train, test") from None

    def info(self) -> DataInfo:
        tr, te = self._splits["train"], self._splits["test"]
        return DataInfo(
            name=registered_name(self), kind="image", shape=(1, 8, 8), num_classes=10,
            feature_extractor="digits-cnn",
            fingerprint=tensor_fingerprint(tr.x, tr.labels, te.x, te.labels),
            levels=17,  # intensities 0..16, divided by 16
        )


class StackedDigits(BenchmarkDataset):
    """Three digits stacked as the channels of one 3x8x8 image: 1,000 modes.

    The Stacked MNIST construction (VEEGAN, PacGAN) on the shipped 8x8 digits: ``train``
    items draw their three digits from the digits train split, ``test`` items from the
    digits test split (same ``split_seed`` and ``test_fraction`` as ``digits``), so no test
    digit appears in train. The label is ``100*d1 + 10*d2 + d3``. The default ``n_train``
    covers every one of the 1,000 labels (about 20 items per label).
    """

    description = ("Stacked digits: three shipped 8x8 digits as the RGB channels of one image, "
                   "1,000 modes (label 100*d1 + 10*d2 + d3)")

    def __init__(self, n_train: Count = 20_000, n_test: Count = 10_000, seed: int = 0,
                 split_seed: int = 0, test_fraction: TestFraction = 0.2):
        self.n = {"train": n_train, "test": n_test}
        self.seed, self.split_seed, self.test_fraction = seed, split_seed, test_fraction

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Known without stacking anything: 1,000 modes, one per label ``100*d1 + 10*d2 + d3``."""
        return {"kind": "image", "shape": (3, 8, 8), "classes": STACKED_CLASSES,
                "modes": STACKED_CLASSES}

    @functools.cached_property
    def _built(self) -> dict[str, tuple[TensorSplit, torch.Tensor]]:
        images, labels = _digits_arrays()
        x, y = torch.from_numpy(images), torch.from_numpy(labels)
        out = {}
        for name, source in zip(("train", "test"),
                                digits_split_indices(self.split_seed, self.test_fraction)):
            local = stacked_indices(len(source), self.n[name], self.seed, name)
            global_idx = torch.from_numpy(source)[local]
            xs, ys = stack(x, y, global_idx)
            out[name] = (TensorSplit(xs, ys), global_idx)
        return out

    def source_indices(self, name: str) -> torch.Tensor:
        """``(n, 3)`` indices into scikit-learn's digits of the three digits of each item."""
        self.split(name)
        return self._built[name][1]

    def split(self, name: str) -> TensorSplit:
        if name not in ("train", "test"):
            raise ConfigError(f"{registered_name(self)} has no split {name!r}; "
                              "valid splits: train, test")
        return self._built[name][0]

    def info(self) -> DataInfo:
        tr, te = self.split("train"), self.split("test")
        return DataInfo(
            name=registered_name(self), kind="image", shape=(3, 8, 8), num_classes=STACKED_CLASSES,
            feature_extractor="digits-cnn",
            fingerprint=tensor_fingerprint(tr.x, tr.labels, te.x, te.labels),
            extra={"source": "digits", "label": "100*d1 + 10*d2 + d3 (digits in channels 0, 1, 2)"},
            levels=17,  # the digits' intensities 0..16, divided by 16
        )


@hookimpl
def register_datasets(register):
    register("digits", Digits)
    register("stacked-digits", StackedDigits)
