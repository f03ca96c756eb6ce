"""Image sets that ship with the installation: no download, ever."""

from __future__ import annotations

import functools

import numpy as np
import torch

from genbench import BenchmarkDataset, DataInfo, TensorSplit, hookimpl
from genbench.data import tensor_fingerprint
from genbench.errors import ConfigError


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

    def __init__(self, split_seed: int = 0, test_fraction: float = 0.2):
        if not 0.0 < test_fraction < 1.0:
            raise ConfigError(f"digits: test_fraction must lie in (0, 1), got {test_fraction}")
        self.split_seed, self.test_fraction = split_seed, test_fraction

    @functools.cached_property
    def _splits(self) -> dict[str, TensorSplit]:
        images, labels = _digits_arrays()
        train_idx, test_idx = digits_split_indices(self.split_seed, self.test_fraction)
        x = torch.from_numpy(images).unsqueeze(1)
        y = torch.from_numpy(labels)
        return {"train": TensorSplit(x[train_idx], y[train_idx]),
                "test": TensorSplit(x[test_idx], y[test_idx])}

    def split(self, name: str) -> TensorSplit:
        try:
            return self._splits[name]
        except KeyError:
            raise ConfigError(f"digits has no split {name!r}; valid splits: train, test") from None

    def info(self) -> DataInfo:
        tr, te = self._splits["train"], self._splits["test"]
        return DataInfo(
            name="digits", kind="image", shape=(1, 8, 8), num_classes=10,
            feature_extractor="digits-cnn",
            fingerprint=tensor_fingerprint(tr.x, tr.labels, te.x, te.labels),
        )


@hookimpl
def register_datasets(register):
    register("digits", Digits)
