"""``ddim``: denoising diffusion implicit models (Song et al. 2021, equation 12).

From timestep ``t`` to the next one ``t'`` (alpha-bar ``a`` and ``a'``, 1 after the last):

    x_{t'} = sqrt(a') x0 + sqrt(1 - a' - sigma^2) eps + sigma z,
    sigma  = eta sqrt((1 - a') / (1 - a)) sqrt(1 - a / a')

with x0 = (x_t - sqrt(1 - a) eps) / sqrt(a) predicted from the network's noise estimate eps
and z standard normal. ``eta = 0`` is deterministic (the probability-flow-like sampler the
paper's table 1 evaluates at 10..1000 steps); ``eta = 1`` is ancestral DDPM sampling on the
same timesteps. When the predicted x0 is clipped, eps is recomputed from it, so that clipping
changes both terms consistently (and eta = 1 still equals the ``ddpm`` sampler).
"""

from __future__ import annotations

from typing import Annotated

import torch
from annotated_types import Ge

from genbench import hookimpl

from .discrete import ClipSample, DiscreteSampler


class DDIMSampler(DiscreteSampler):
    """DDIM sampling with stochasticity ``eta`` (0: deterministic, 1: DDPM).

    Built as ``DDIMSampler(alphas_cumprod=..., eta=0.0, clip_sample=None)``; ``spacing`` is
    ``uniform`` or ``quadratic`` (the paper uses quadratic for CIFAR-10).
    """

    description = ("DDIM (Song et al. 2021): eta = 0 deterministic, eta = 1 DDPM-like; "
                   "spacings uniform, quadratic")

    def __init__(self, *, alphas_cumprod: torch.Tensor, eta: Annotated[float, Ge(0)] = 0.0,
                 clip_sample: ClipSample = None):
        super().__init__(alphas_cumprod=alphas_cumprod, clip_sample=clip_sample)
        self.eta = float(eta)

    def step(self, model_output: torch.Tensor, t: int, x_t: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        a, a_prev = self.alpha_bars(t)
        x0, eps = self.predict_x0(model_output, x_t, a)
        sigma = self.eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)) ** 0.5
        direction = max(1 - a_prev - sigma ** 2, 0.0) ** 0.5
        x_prev = a_prev ** 0.5 * x0 + direction * eps
        if sigma > 0:
            x_prev = x_prev + sigma * self.randn_like(x_t, generator)
        return x_prev.to(x_t.dtype)


@hookimpl
def register_samplers(register):
    register("ddim", DDIMSampler)
