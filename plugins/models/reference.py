"""Reference rows for leaderboards: ``train-data`` (a perfect memoriser) and ``uniform-noise``.

``train-data`` "generates" items of the training split, so its scores against the test split
are what a model that reproduced the data distribution exactly would get at this sample size
(FID near zero, but not zero). ``uniform-noise`` draws uniform noise over the data's range and
marks the other end of the scale.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from genbench import ConfigError, DataInfo, GenerativeModel, SampleNoise, TensorSplit, hookimpl, item_seed


def _split_tensor(data: Dataset) -> torch.Tensor:
    """All items of a training split as one float tensor (labels dropped)."""
    if isinstance(data, TensorSplit):
        return data.x
    xs = []
    for batch in DataLoader(data, batch_size=256, shuffle=False):
        xs.append(batch[0] if isinstance(batch, (tuple, list)) else batch)
    return torch.cat(xs).float()


class TrainingData(GenerativeModel):
    """Samples are items of the training split, drawn without replacement when n <= N.

    ``fit`` copies the split into the buffer ``data``. That copy is cheap and as large as the
    data (600 MB for CIFAR-10), so it is refitted on every run rather than checkpointed.
    """

    description = "reference row: samples drawn from the training split itself (no learning)"
    family = "reference"
    reference = True
    default_baseline = True
    refit_instead_of_checkpoint = True

    def __init__(self, data_info: DataInfo):
        super().__init__()
        self.shape = tuple(data_info.shape)
        self.register_buffer("data", torch.empty(0, *self.shape), persistent=False)

    def fit(self, data: Dataset, budget) -> None:
        x = _split_tensor(data).detach().float()
        if x.shape[1:] != self.shape:
            raise ConfigError(f"train-data: items have shape {tuple(x.shape[1:])}, expected {self.shape}")
        self.data = x.clone().to(self.device)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` training items: a random subset if ``n <= N``, else whole shuffled passes
        (each item ``n // N`` or ``n // N + 1`` times)."""
        total = len(self.data)
        if total == 0:
            raise ConfigError("train-data has no data: it must be fitted (trained) before sampling")
        if isinstance(generator, SampleNoise):  # an evaluation: its items of the seeded stream
            return self._stream_items(generator.start, generator.stop, generator.seed)
        passes = -(-n // total)
        idx = torch.cat([torch.randperm(total, generator=generator) for _ in range(passes)])[:n]
        return self.data[idx.to(self.data.device)]

    def _stream_items(self, start: int, stop: int, seed: int) -> torch.Tensor:
        """Items ``start..stop-1`` of a stream of whole shuffled passes over the training set,
        pass ``p`` a permutation seeded from ``seed`` and ``p``: the same items whatever the
        batches they are drawn in."""
        total = len(self.data)
        idx = []
        for p in range(start // total, -(-stop // total)):
            perm = torch.randperm(total, generator=torch.Generator().manual_seed(item_seed(seed, -1 - p)))
            lo, hi = max(start, p * total) - p * total, min(stop, (p + 1) * total) - p * total
            idx.append(perm[lo:hi])
        idx = torch.cat(idx) if idx else torch.empty(0, dtype=torch.long)
        return self.data[idx.to(self.data.device)]


class UniformNoise(GenerativeModel):
    """Uniform noise over the data's range: [0, 1] for images, the training set's bounding
    box (per coordinate) for vectors."""

    description = "baseline row: uniform noise over the data range ([0, 1] images, bounding box of vectors)"
    family = "reference"
    reference = True

    def __init__(self, data_info: DataInfo):
        super().__init__()
        self.shape = tuple(data_info.shape)
        self.kind = data_info.kind
        self.register_buffer("low", torch.zeros(self.shape))
        self.register_buffer("high", torch.ones(self.shape))

    def fit(self, data: Dataset, budget) -> None:
        if self.kind == "image":
            return
        x = _split_tensor(data)
        self.low.copy_(x.amin(dim=0))
        self.high.copy_(x.amax(dim=0))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.low + (self.high - self.low) * self.rand(n, *self.shape, generator=generator)


@hookimpl
def register_models(register):
    register("train-data", TrainingData)
    register("uniform-noise", UniformNoise)
