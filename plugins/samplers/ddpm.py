"""``ddpm``: ancestral sampling (Ho et al. 2020, algorithm 2).

Each step draws x_{t'} from the Gaussian posterior q(x_{t'} | x_t, x0) of the forward
process, with x0 predicted from the network's noise estimate:

    mean = sqrt(a') beta / (1 - a) * x0 + sqrt(1 - beta) (1 - a') / (1 - a) * x_t
    var  = beta (1 - a') / (1 - a),          beta = 1 - a / a'

where ``a`` and ``a'`` are alpha-bar at ``t`` and at the next timestep ``t'`` (1 after the
last). Over all T timesteps ``beta`` is the training beta_t and ``var`` the posterior variance
beta-tilde_t, the paper's sigma_t^2 = beta-tilde_t choice; over fewer steps it is the same
process on the respaced schedule (Nichol & Dhariwal 2021, section 4). This is DDIM with
eta = 1, written as the paper writes it.
"""

from __future__ import annotations

import torch

from genbench import hookimpl

from .discrete import DiscreteSampler


class DDPMSampler(DiscreteSampler):
    """Ancestral DDPM sampling: the forward process's posterior, one Gaussian draw per step.

    Built as ``DDPMSampler(alphas_cumprod=..., clip_sample=None)`` (see :class:`DiscreteSampler`);
    ``spacing`` is ``uniform`` or ``quadratic``.
    """

    description = ("ancestral sampling (Ho et al. 2020): a draw from the forward process "
                   "posterior q(x_t-1 | x_t, x0) per step; spacings uniform, quadratic")

    def step(self, model_output: torch.Tensor, t: int, x_t: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        a, a_prev = self.alpha_bars(t)
        x0, _ = self.predict_x0(model_output, x_t, a)
        beta = 1 - a / a_prev
        mean = (a_prev ** 0.5 * beta / (1 - a)) * x0 + ((1 - beta) ** 0.5 * (1 - a_prev) / (1 - a)) * x_t
        var = beta * (1 - a_prev) / (1 - a)
        if var <= 0:  # the last step (a' = 1) and repeated timesteps add no noise
            return mean.to(x_t.dtype)
        return (mean + var ** 0.5 * self.randn_like(x_t, generator)).to(x_t.dtype)


@hookimpl
def register_samplers(register):
    register("ddpm", DDPMSampler)
