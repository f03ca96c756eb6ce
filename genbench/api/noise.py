"""Per-sample noise: sample ``i`` of an evaluation depends on the seed and ``i`` alone.

An evaluation draws its samples in batches. With one generator for the whole set, sample
``i``'s noise depends on how many values earlier batches drew, so the samples (and every
number measured on them) change with the batch size, and a sample set cannot be split
across workers. :class:`SampleNoise` gives each sample its own CPU generator, seeded from
``(seed, i)`` (the stacked generators of EDM2's ``generate_images.py``): every draw of shape
``(n, ...)`` takes row ``j`` from sample ``start + j``'s generator, so items ``start..stop-1``
come out the same whether they are drawn in one batch, in ten, or on another machine.

An evaluation passes a :class:`SampleNoise` as the ``generator`` of ``model.sample``; a model
draws from it through :meth:`genbench.GenerativeModel.randn` / :meth:`~genbench.GenerativeModel.rand`
and a sampler through :meth:`genbench.Sampler.randn_like`, which also take a plain
:class:`torch.Generator` (then noise is drawn in one block, as torch does).
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import torch

__all__ = ["SampleNoise", "item_seed", "noise_rand", "noise_randn"]


def item_seed(seed: int, index: int) -> int:
    """The seed of item ``index``'s generator in the stream seeded by ``seed`` (63 bits of a
    hash of both, so neighbouring seeds and indices give unrelated streams)."""
    digest = hashlib.blake2b(f"{int(seed)}:{int(index)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _shape(shape: Sequence) -> tuple[int, ...]:
    """``randn(2, 3)`` and ``randn((2, 3))`` alike, as torch takes them."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


class SampleNoise:
    """Noise for items ``start..stop-1`` of the stream seeded by ``seed``, one generator each.

    Every draw's first dimension is the number of items (``stop - start``); row ``j`` comes
    from item ``start + j``'s generator, so a sample's noise does not depend on the batch it
    is drawn in. ``generator`` is a plain :class:`torch.Generator` for code that cannot use
    per-item streams (a permutation, say): what it draws depends on the batch.
    """

    def __init__(self, seed: int, start: int, stop: int):
        if not 0 <= start <= stop:
            raise ValueError(f"SampleNoise needs 0 <= start <= stop, got start={start}, stop={stop}")
        self.seed, self.start, self.stop = int(seed), int(start), int(stop)
        self._generators = [torch.Generator().manual_seed(item_seed(self.seed, i))
                            for i in range(self.start, self.stop)]
        self._generator: torch.Generator | None = None

    def __len__(self) -> int:
        return self.stop - self.start

    def __repr__(self) -> str:
        return f"SampleNoise(seed={self.seed}, items {self.start}..{self.stop - 1})"

    @property
    def generator(self) -> torch.Generator:
        """One CPU generator for the batch (seeded from the seed and ``start``), for draws that
        are not per item."""
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(item_seed(self.seed, -1 - self.start))
        return self._generator

    def _rows(self, shape: tuple[int, ...], draw) -> torch.Tensor:
        if not shape or shape[0] != len(self):
            raise ValueError(
                f"{self!r} draws noise for {len(self)} samples: the first dimension of a draw "
                f"must be the sample count {len(self)}, got shape {shape}; draw per-sample noise "
                "as (n, ...) and reshape it after")
        return torch.stack([draw(shape[1:], g) for g in self._generators]) if len(self) else \
            draw(shape, None)

    def randn(self, *shape, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Standard normal noise of ``shape`` on the CPU, row ``j`` from item ``start + j``."""
        return self._rows(_shape(shape), lambda s, g: torch.randn(s, generator=g, dtype=dtype))

    def rand(self, *shape, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Uniform [0, 1) noise of ``shape`` on the CPU, row ``j`` from item ``start + j``."""
        return self._rows(_shape(shape), lambda s, g: torch.rand(s, generator=g, dtype=dtype))

    def randint(self, low: int, high: int, shape: Sequence[int]) -> torch.Tensor:
        """Integers in ``[low, high)`` of ``shape`` on the CPU, row ``j`` from item ``start + j``."""
        return self._rows(_shape((shape,)),
                          lambda s, g: torch.randint(low, high, s, generator=g))

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped like ``x`` (first dimension: the items), on ``x``'s
        device and dtype."""
        return self.randn(*x.shape).to(device=x.device, dtype=x.dtype)


def noise_randn(*shape, generator: torch.Generator | SampleNoise | None = None) -> torch.Tensor:
    """Standard normal noise on the CPU: per item from a :class:`SampleNoise`, else
    ``torch.randn`` with ``generator``."""
    if isinstance(generator, SampleNoise):
        return generator.randn(*shape)
    return torch.randn(*_shape(shape), generator=generator)


def noise_rand(*shape, generator: torch.Generator | SampleNoise | None = None) -> torch.Tensor:
    """Uniform [0, 1) noise on the CPU: per item from a :class:`SampleNoise`, else
    ``torch.rand`` with ``generator``."""
    if isinstance(generator, SampleNoise):
        return generator.rand(*shape)
    return torch.rand(*_shape(shape), generator=generator)
