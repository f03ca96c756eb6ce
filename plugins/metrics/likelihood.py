"""Exact negative log-likelihood of the test split (flows, autoregressive models), in bits/dim
as the papers report it: uniformly dequantised for quantised data, the density itself for
continuous data."""

from __future__ import annotations

import math

import torch

from genbench import EvalContext, MetricResult, hookimpl

from .elbo import TestSplitBound, _takes_generator
from .inputs import Count

#: Per-item noise streams of the job (``ctx.sample_noise``): the dequantisation offsets, and
#: the noise passed to a model whose log-likelihood draws any. Streams 11, 12 and 99 are
#: other metrics'.
DEQUANTISATION_STREAM = 13
MODEL_STREAM = 14


class NLL(TestSplitBound):
    """``-log p(x)`` of the test split from the model's exact ``log_likelihood(x)``.

    For data that declares ``levels = L`` (:attr:`genbench.DataInfo.levels`: coordinates
    ``x = k / (L - 1)``, 256 levels for 8-bit images) the number is the RealNVP / Glow
    convention (Dinh et al. 2017; Kingma & Dhariwal 2018; Theis et al. 2016): the data scaled
    to [0, 1] after uniform noise, ``z = (k + u) / L`` with ``u ~ U[0, 1)^D``, and the
    discrete likelihood of ``k`` bounded as

        log P(k) = log E_u[p(z)] - D log L  >=  E_u[log p(z)] - D log L,

    averaged over ``draws`` offsets per item. A model trained on the undequantised values
    ``k / (L - 1)`` is still evaluated at the dequantised points and pays for the mismatch
    (a density peaked on the grid scores badly between its points). A density uniform on
    [0, 1]^D scores exactly ``log2(L)`` bits per dimension. For continuous data
    (``levels = None``) it is ``-log p(x)`` itself. Reported per item in nats and per
    dimension in nats and bits; the details record the kind (``"exact, dequantised to L
    levels"`` or ``"exact, continuous"``): numbers of different kinds do not compare.

    The offsets of item ``i`` come from its own generator in a seeded stream of the job, so
    the value depends neither on ``batch_size`` nor on the order of other items.
    """

    description = ("exact negative log-likelihood of the test split for models with "
                   "log_likelihood (flows, autoregressive): bits per dimension (lower is "
                   "better), nats per dimension and per item; on quantised data (L levels, 256 "
                   "for 8-bit images) the uniformly dequantised bound -E_u[log p((k+u)/L)] + "
                   "D log L of the RealNVP/Glow papers (data scaled to [0, 1] after uniform "
                   "noise; a model trained on the grid values k/(L-1) is evaluated there too "
                   "and pays for the mismatch), on continuous data -log p(x)")
    requires = ("log_likelihood",)
    higher_is_better = {"nll_bits_per_dim": False, "nll_nats_per_dim": False, "nll_nats": False}
    primary = "nll_bits_per_dim"

    def __init__(self, draws: Count = 1, batch_size: Count = 256):
        self.draws, self.batch_size = draws, batch_size

    @torch.no_grad()
    def compute(self, ctx: EvalContext) -> MetricResult:
        model = ctx.model.eval()
        info = ctx.data_info
        levels, dim = info.levels, info.dim
        if levels is not None:
            one = torch.ones(())
            below_one = torch.nextafter(one, one - 1).item()  # the largest float32 below 1
        with_generator = _takes_generator(model.log_likelihood)
        total, n = 0.0, 0  # sum over items of -log p (nats), items seen
        for x in ctx.split_batches("test", self.batch_size):
            b = len(x)
            noise = ctx.sample_noise(n, n + b, MODEL_STREAM) if with_generator else None
            if levels is None:
                total -= self._log_p(ctx, x, noise).sum().item()
            else:
                k = self._grid_indices(x, levels, info.name)
                u = ctx.sample_noise(n, n + b, DEQUANTISATION_STREAM).rand(
                    b, self.draws, *x.shape[1:], dtype=torch.float64)
                for d in range(self.draws):
                    # z lies in [0, 1): rounding (L - 1 + u) / L to float32 could reach 1
                    z = ((k + u[:, d]) / levels).float().clamp_(max=below_one)
                    total -= self._log_p(ctx, z, noise).sum().item() / self.draws
            n += b
        nats = total / n + (0.0 if levels is None else dim * math.log(levels))
        values = {"nll_bits_per_dim": nats / dim / math.log(2), "nll_nats_per_dim": nats / dim,
                  "nll_nats": nats}
        if levels is None:
            details = {"likelihood": "exact, continuous", "levels": None}
        else:
            details = {"likelihood": f"exact, dequantised to {levels} levels", "levels": levels,
                       "draws": self.draws}
        return MetricResult(values, {**details, "n_test": n, "dim": dim})

    @staticmethod
    def _log_p(ctx: EvalContext, x: torch.Tensor, noise) -> torch.Tensor:
        """The model's ``log_likelihood`` of the batch ``x`` (given ``generator=noise`` unless
        ``noise`` is None), float64 on the CPU, checked."""
        model = ctx.model
        x = x.to(ctx.device)
        out = model.log_likelihood(x) if noise is None else model.log_likelihood(x, generator=noise)
        if tuple(out.shape) != (len(x),):
            raise ValueError(f"model {ctx.model_name!r}: log_likelihood(x) must return one log "
                             f"density per item, shape ({len(x)},), got {tuple(out.shape)}")
        return out.double().cpu()

    @staticmethod
    def _grid_indices(x: torch.Tensor, levels: int, dataset: str) -> torch.Tensor:
        """``k`` (float64) with ``x = k / (levels - 1)``; raises when ``x`` is off that grid."""
        scaled = x.double() * (levels - 1)
        k = scaled.round()
        # float32 holds k / (L - 1) to 2^-24 relative: allow that, plus a margin
        off = (scaled - k).abs().max().item()
        if off > 0.01 + (levels - 1) * 2.0 ** -23 or k.min() < 0 or k.max() > levels - 1:
            raise ValueError(
                f"dataset {dataset!r} declares levels = {levels}, but its test split holds values "
                f"off the grid k / {levels - 1} for k = 0..{levels - 1} (in [{x.min().item():g}, "
                f"{x.max().item():g}], up to {off:.3g} of a step off): the dataset's "
                "DataInfo.levels is wrong; declare the right count, or None for continuous data")
        return k


@hookimpl
def register_metrics(register):
    register("nll", NLL)
