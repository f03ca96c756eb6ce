"""What a process of a (possibly data-parallel) training sees: the public noise helpers.

Models draw per-sample training noise with :func:`batch_randn`, :func:`batch_rand` and
:func:`batch_randint`, and take statistics of a training batch with :func:`global_batch`. In
one process they are ``torch.randn`` and friends and the batch itself. Under data-parallel
training (``[train] nproc = N``, see :mod:`genbench.execution.distributed`) each of the N rank
processes trains on its contiguous ``1/N`` of every global batch (:func:`shard`); then the
noise helpers return this rank's rows of the noise one process would draw for the whole
batch (every rank draws it all, so their random streams stay equal), and
:func:`global_batch` gathers the whole batch, so a model's training is that of one process
with the same global batch up to floating-point summation order.

The launcher (:mod:`genbench.execution.distributed`) marks a rank with :func:`active`; all of them
are importable from ``genbench``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.distributed as dist

from genbench.api.errors import ConfigError


@dataclass(frozen=True)
class DataParallel:
    """This process's place in a data-parallel training."""

    rank: int
    world_size: int


_current: DataParallel | None = None


def current() -> DataParallel | None:
    """The data-parallel training this process is a rank of (``None`` in one process)."""
    return _current


@contextlib.contextmanager
def active(dp: DataParallel):
    """Make ``dp`` this process's place in a data-parallel training while in the block."""
    global _current
    previous, _current = _current, dp
    try:
        yield
    finally:
        _current = previous


def _rows(n: int, dp: DataParallel, what: str) -> slice:
    if n % dp.world_size:
        raise ConfigError(f"data-parallel training over {dp.world_size} processes needs "
                          f"{what} divisible by {dp.world_size}, got {n}; choose a batch_size "
                          f"that is a multiple of nproc")
    k = n // dp.world_size
    return slice(dp.rank * k, (dp.rank + 1) * k)


def shard(batch):
    """This rank's contiguous share of a global batch (a tensor, or a tuple of tensors when
    the model takes several batches per step); the batch itself in one process."""
    dp = _current
    if dp is None or dp.world_size == 1:
        return batch
    if isinstance(batch, torch.Tensor):
        return batch[_rows(len(batch), dp, "the batch size")]
    return type(batch)(shard(b) for b in batch)


class _Gather(torch.autograd.Function):
    """All-gather in rank order whose backward gives a rank's rows the sum over ranks of
    their gradients: every rank computes the same statistic of the global batch, so after
    the engine averages gradients over the ranks a loss term built on it gets one process's
    gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
        ctx.rows = slice(rank * len(x), (rank + 1) * len(x))
        parts = [torch.empty_like(x) for _ in range(world_size)]
        dist.all_gather(parts, x)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rows], None, None


def global_batch(x: torch.Tensor) -> torch.Tensor:
    """The global batch of which ``x`` is this rank's shard, gathered from every rank in rank
    order; ``x`` itself in one process. For statistics a model takes of a training batch (a
    diffusion model's standardisation, a sparse autoencoder's mean activations), so that
    every rank gets one process's numbers. Differentiable: a loss term computed on it trains
    as it does in one process. Every rank must call it at the same step (it is a
    collective, in the backward pass too when ``x`` requires a gradient)."""
    dp = _current
    if dp is None or dp.world_size == 1:
        return x
    return _Gather.apply(x.contiguous(), dp.rank, dp.world_size)


def _global_noise(draw: Callable[..., torch.Tensor], n: int, shape: tuple[int, ...],
                  kwargs: dict[str, Any]) -> torch.Tensor:
    dp = _current
    if dp is None or dp.world_size == 1:
        return draw(n, *shape, **kwargs)
    # every rank draws the whole batch's noise, so their random streams stay equal
    return draw(n * dp.world_size, *shape, **kwargs)[_rows(n * dp.world_size, dp, "noise rows")]


def batch_randn(n: int, *shape: int, device=None, dtype=None) -> torch.Tensor:
    """``torch.randn(n, *shape)`` for the ``n`` items of a training (shard of a) batch,
    from the global random stream. Under data-parallel training it returns this rank's rows
    of the noise one process would draw for the whole batch, so draw per-sample training
    noise with it (see the module docstring)."""
    return _global_noise(torch.randn, n, shape, {"device": device, "dtype": dtype})


def batch_rand(n: int, *shape: int, device=None, dtype=None) -> torch.Tensor:
    """``torch.rand(n, *shape)`` for the ``n`` items of a training batch; see
    :func:`batch_randn`."""
    return _global_noise(torch.rand, n, shape, {"device": device, "dtype": dtype})


def batch_randint(high: int, n: int, device=None) -> torch.Tensor:
    """``torch.randint(0, high, (n,))`` for the ``n`` items of a training batch (diffusion
    timesteps, say); see :func:`batch_randn`."""
    def draw(m: int, **kwargs) -> torch.Tensor:
        return torch.randint(0, high, (m,), **kwargs)

    return _global_noise(draw, n, (), {"device": device})
