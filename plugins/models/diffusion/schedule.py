"""Noise schedules and the forward process q(x_t | x_0) of a discrete-time diffusion model.

Timesteps are indexed ``t = 0 .. T-1``. ``betas[t]`` is the variance added at step ``t``
and ``alphas_cumprod[t]`` (alpha-bar) is ``prod_{s <= t} (1 - betas[s])``, so that

    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I).

* ``linear`` (Ho et al. 2020): betas evenly spaced from ``beta_start`` to ``beta_end``
  (1e-4 .. 0.02 for T = 1000 in the paper). Both are given for T = 1000 and scaled by
  1000 / T (as Nichol & Dhariwal 2021 do in their code), so that every T ends at the same
  noise level: T = 100 runs from 1e-3 to 0.2, and alpha_bar at the last step is about 4e-5
  either way, close enough to N(0, I) to start sampling from.
* ``cosine`` (Nichol & Dhariwal 2021, eq. 17): alpha_bar follows
  f(t) / f(0) with f(t) = cos^2(((t / T) + s) / (1 + s) * pi / 2), s = 0.008; the betas
  derived from it are clipped at 0.999 so the last steps stay finite. Our index t is the
  paper's t + 1 (the paper's alpha_bar_0 = 1 is the clean data, before step 0 here).

The schedule is kept in float64: 1 - alpha_bar near t = 0 and alpha_bar near t = T lose
digits in float32. Samplers receive ``alphas_cumprod`` (see :mod:`genbench.api.sampler`).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from annotated_types import Ge, Gt
from torch import nn

from genbench import ConfigError

#: The noise schedules (the ``beta_schedule`` hyper-parameter).
Schedule = Literal["linear", "cosine"]
#: Training timesteps T: at least 2 (one noising step and one to sample from).
Timesteps = Annotated[int, Ge(2)]
#: ``beta_start``/``beta_end`` of the linear schedule (at T = 1000; see :func:`linear_betas`).
Beta = Annotated[float, Gt(0)]
#: The cosine schedule's offset s (Nichol & Dhariwal 2021, section 3.2).
COSINE_OFFSET = 0.008
#: Upper bound on a cosine-schedule beta (Nichol & Dhariwal 2021: "to prevent singularities").
MAX_BETA = 0.999


def linear_betas(timesteps: int, beta_start: float, beta_end: float) -> torch.Tensor:
    """``timesteps`` betas evenly spaced from ``beta_start`` to ``beta_end`` times
    ``1000 / timesteps`` (float64)."""
    scale = 1000 / timesteps
    return torch.linspace(scale * beta_start, scale * beta_end, timesteps, dtype=torch.float64)


def cosine_betas(timesteps: int, s: float = COSINE_OFFSET) -> torch.Tensor:
    """Betas whose alpha-bar is f(t + 1) / f(0) (Nichol & Dhariwal 2021), clipped at 0.999."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64)
    f = torch.cos((steps / timesteps + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=MAX_BETA)


def make_betas(schedule: Schedule, timesteps: int, beta_start: float, beta_end: float,
               what: str = "diffusion") -> torch.Tensor:
    """The betas of ``schedule`` (each argument as its model declares it: :data:`Schedule`,
    :data:`Timesteps`, :data:`Beta`). ``beta_start``/``beta_end`` are used by the linear
    schedule only, which also needs them ordered and below T / 1000 (a :class:`ConfigError`
    naming ``what`` otherwise)."""
    if schedule == "cosine":
        return cosine_betas(timesteps)
    if not 0 < beta_start <= beta_end < timesteps / 1000:
        raise ConfigError(f"{what}: the linear schedule needs 0 < beta_start <= beta_end < "
                          f"T / 1000 (they are scaled by 1000 / T, T = {timesteps}), got "
                          f"beta_start={beta_start!r}, beta_end={beta_end!r}")
    return linear_betas(timesteps, beta_start, beta_end)


class ForwardProcess(nn.Module):
    """q(x_t | x_0) for one schedule: noising a clean batch at given timesteps.

    :attr:`alphas_cumprod` stays a float64 CPU tensor (samplers are built from it); the
    square roots used in training are float32 buffers that follow the model to its device
    (not saved: they are a function of the hyper-parameters).
    """

    def __init__(self, betas: torch.Tensor):
        super().__init__()
        self.betas = betas.double()
        self.alphas_cumprod = torch.cumprod(1 - self.betas, 0)
        self.num_timesteps = len(self.betas)
        self.register_buffer("sqrt_alphas_cumprod", self.alphas_cumprod.sqrt().float(),
                             persistent=False)
        self.register_buffer("sqrt_one_minus_alphas_cumprod",
                             (1 - self.alphas_cumprod).sqrt().float(), persistent=False)

    def forward(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) noise, item by item (``t``:
        ``(B,)`` integer timesteps on the batch's device)."""
        shape = (-1,) + (1,) * (x0.dim() - 1)
        mean = self.sqrt_alphas_cumprod[t].reshape(shape).to(x0.dtype)
        std = self.sqrt_one_minus_alphas_cumprod[t].reshape(shape).to(x0.dtype)
        return mean * x0 + std * noise
