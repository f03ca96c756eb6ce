"""EvalContext: what every metric sees. Samples are generated once and shared."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .data import DataInfo
from .model import GenerativeModel


def choose_feature_extractor(data_info: DataInfo, requested: str | None = None) -> str | None:
    """The extractor for sample-quality metrics: ``requested`` (the spec's or ``--extractor``),
    else the dataset's declared default, else ``raw`` for vector data, else None."""
    if requested:
        return requested
    if data_info.feature_extractor:
        return data_info.feature_extractor
    return "raw" if data_info.kind == "vector" else None


@dataclass
class EvalContext:
    """The trained model, the real data and lazily generated samples for one job.

    ``train``/``test`` are ``(x, labels or None)`` CPU tensors; metrics compare against
    ``test``. :attr:`samples` are generated on first access (``num_samples`` of them, from a
    generator seeded with ``seed``), kept on the CPU as float32 and shared by every metric;
    :attr:`reconstructions` likewise for ``model.reconstruct`` on the test split.
    """

    model: GenerativeModel
    model_name: str
    data_info: DataInfo
    train: tuple[torch.Tensor, torch.Tensor | None]
    test: tuple[torch.Tensor, torch.Tensor | None]
    device: torch.device
    seed: int
    num_samples: int
    cache_dir: Path
    feature_extractor: str | None = None
    feature_weights: str | None = None
    batch_size: int = 256
    #: The run's :class:`genbench.plugin_manager.Registries` (extractors are looked up there).
    registries: Any = None
    timings: dict[str, float] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    _samples: torch.Tensor | None = None
    _reconstructions: torch.Tensor | None = None

    def generator(self, offset: int = 0) -> torch.Generator:
        """A fresh CPU generator seeded from the job seed (+ ``offset`` for independent streams)."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + offset)

    @property
    def samples(self) -> torch.Tensor:
        if self._samples is None:
            self._samples = self._timed("sample_seconds", self._generate)
        return self._samples

    @property
    def reconstructions(self) -> torch.Tensor:
        if self._reconstructions is None:
            self._reconstructions = self._timed("reconstruct_seconds", self._reconstruct)
        return self._reconstructions

    def _timed(self, key: str, fn):
        t0 = time.perf_counter()
        out = fn()
        self.timings[key] = time.perf_counter() - t0
        return out

    @torch.no_grad()
    def _generate(self) -> torch.Tensor:
        self.model.eval()
        gen = self.generator(1)
        chunks, left = [], self.num_samples
        while left > 0:
            n = min(self.batch_size, left)
            chunks.append(self.model.sample(n, generator=gen).detach().float().cpu())
            left -= n
        return torch.cat(chunks).reshape(self.num_samples, *self.data_info.shape)

    @torch.no_grad()
    def _reconstruct(self) -> torch.Tensor:
        self.model.eval()
        x = self.test[0]
        out = [self.model.reconstruct(x[i:i + self.batch_size].to(self.device)).float().cpu()
               for i in range(0, len(x), self.batch_size)]
        return torch.cat(out).reshape(x.shape)
