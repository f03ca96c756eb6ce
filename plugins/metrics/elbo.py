"""Negative ELBO on the test split, in nats per dimension, with its two parts."""

from __future__ import annotations

import contextlib
import inspect

import torch

from genbench import CountNeed, EvalContext, Metric, MetricResult, hookimpl

from .inputs import Count


def _takes_generator(fn) -> bool:
    try:
        return "generator" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class TestSplitBound(Metric):
    """What the likelihood bounds on the test split share: they need one test item, and
    record the model's likelihood kind (bounds of different kinds do not compare)."""

    def count_needs(self) -> tuple[CountNeed, ...]:
        return (CountNeed("test", 1, why="an average over the test split"),)

    @staticmethod
    def likelihood_details(model) -> dict[str, str]:
        """``{"likelihood": kind}`` when the model names its likelihood, else ``{}``."""
        likelihood = getattr(model, "likelihood", None)
        return {"likelihood": likelihood} if isinstance(likelihood, str) else {}


class ELBO(TestSplitBound):
    """-ELBO = E_q[-log p(x|z)] + KL(q(z|x) || p(z)), averaged over the test split.

    The model's ``elbo(x)`` returns per-sample ``recon`` (negative log-likelihood) and ``kl``
    in nats from one posterior draw; this metric averages ``draws`` draws per test item and
    divides by the data dimension. Draws come from the job's seeded generator (passed as
    ``elbo(x, generator=...)`` when the model accepts it, else through the seeded global RNG),
    so the numbers are reproducible.
    """

    description = ("negative ELBO on the test split in nats per dimension (lower is better), "
                   "split into reconstruction NLL and KL; an upper bound on -log p(x) for "
                   "continuous likelihoods. With a Bernoulli likelihood on continuous [0, 1] "
                   "pixels the reconstruction term is a binary cross-entropy, not a density: "
                   "its floor is the pixels' own entropy, not 0, and the number compares only "
                   "models with the same likelihood")
    requires = ("elbo",)
    higher_is_better = {"neg_elbo_nats_per_dim": False, "recon_nats_per_dim": False}
    primary = "neg_elbo_nats_per_dim"

    def __init__(self, draws: Count = 1, batch_size: Count = 256):
        self.draws, self.batch_size = draws, batch_size

    @torch.no_grad()
    def compute(self, ctx: EvalContext) -> MetricResult:
        model = ctx.model.eval()
        x_all = ctx.test[0]
        gen = ctx.generator(7)
        with_generator = _takes_generator(model.elbo)
        recon_sum = kl_sum = 0.0
        # A model without a generator argument draws from the global RNG: seed it from the
        # job's generator and restore it afterwards.
        rng = contextlib.nullcontext() if with_generator else torch.random.fork_rng()
        with rng:
            if not with_generator:
                torch.manual_seed(int(torch.randint(2**62, (1,), generator=gen)))
            for i in range(0, len(x_all), self.batch_size):
                x = x_all[i:i + self.batch_size].to(ctx.device)
                for _ in range(self.draws):
                    parts = model.elbo(x, generator=gen) if with_generator else model.elbo(x)
                    recon_sum += parts["recon"].double().sum().item()
                    kl_sum += parts["kl"].double().sum().item()
        per = len(x_all) * self.draws * ctx.data_info.dim
        recon, kl = recon_sum / per, kl_sum / per
        values = {"neg_elbo_nats_per_dim": recon + kl, "recon_nats_per_dim": recon,
                  "kl_nats_per_dim": kl}
        details = {"draws": self.draws, "n_test": len(x_all), "dim": ctx.data_info.dim,
                   **self.likelihood_details(model)}
        return MetricResult(values, details)


@hookimpl
def register_metrics(register):
    register("elbo", ELBO)
