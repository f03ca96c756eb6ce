"""Importance-weighted NLL bound (Burda et al. 2016) on the test split, in nats and bits/dim."""

from __future__ import annotations

import math

import torch

from genbench import EvalContext, MetricResult, hookimpl

from .elbo import TestSplitBound
from .inputs import Count


class IWAE(TestSplitBound):
    """``-log p(x)`` bounded above by ``-logmeanexp_k log w_k`` with ``k`` posterior draws per
    test item (the bound VAE papers and pythae's reproducibility table report; K = 1 is the
    ELBO in expectation, and the bound tightens to ``-log p(x)`` as ``k`` grows).

    The model gives the log importance weights (``log_importance_weights(x, k, generator)``);
    draws come from the job's seeded generator, so the numbers are reproducible. Reported
    per item in nats and per dimension in nats and bits; the likelihood kind the model uses
    is recorded, since bounds of different likelihoods (a Bernoulli cross-entropy on [0, 1]
    pixels against a Gaussian density) are not comparable.
    """

    description = ("importance-weighted bound on the negative log-likelihood of the test split "
                   "(Burda et al. 2016; k posterior draws per item): nats per item, nats and "
                   "bits per dimension (lower is better)")
    requires = ("log_importance_weights",)
    higher_is_better = {"nll_nats": False, "nll_nats_per_dim": False, "nll_bits_per_dim": False}
    primary = "nll_nats"

    def __init__(self, k: Count = 200, batch_size: Count = 64):
        self.k, self.batch_size = k, batch_size

    @torch.no_grad()
    def compute(self, ctx: EvalContext) -> MetricResult:
        model = ctx.model.eval()
        gen = ctx.generator(11)
        total, n = 0.0, 0
        for x in ctx.split_batches("test", self.batch_size):
            log_w = model.log_importance_weights(x.to(ctx.device), self.k, generator=gen).double()
            bound = torch.logsumexp(log_w, dim=1) - math.log(self.k)  # log p(x) lower bound
            total -= bound.sum().item()
            n += len(x)
        nats = total / n
        dim = ctx.data_info.dim
        values = {"nll_nats": nats, "nll_nats_per_dim": nats / dim,
                  "nll_bits_per_dim": nats / dim / math.log(2)}
        return MetricResult(values, {"k": self.k, "n_test": n, "dim": dim,
                                     **self.likelihood_details(model)})


@hookimpl
def register_metrics(register):
    register("iwae", IWAE)
