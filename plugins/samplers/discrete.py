"""What the built-in samplers share: a discrete alpha-bar schedule and its timestep spacings.

:class:`DiscreteSampler` takes the training schedule as ``alphas_cumprod`` (the convention of
:mod:`genbench.api.sampler`), picks the timesteps to visit and turns a noise prediction into a
prediction of the clean sample. The two spacings are those of the DDIM paper (Song et al.
2021, appendix D.2, and its official code, ``runners/diffusion.py``), for ``T`` training
timesteps and ``S`` sampling steps:

* ``uniform``: ``floor(i T / S)`` for ``i = 0 .. S-1``: when ``S`` divides ``T`` that is
  ``0, k, 2k, ..., (S - 1) k`` with ``k = T / S``, the official code's ``range(0, T, T // S)``;
  when it does not, that range has more than ``S`` entries, and keeping only its first
  ``S`` would start sampling far below the noisiest timestep, so we spread exactly ``S``;
* ``quadratic``: ``floor(c i^2)`` for ``i = 0 .. S-1`` with ``c (S - 1)^2 = 0.8 T``, that is
  ``int(linspace(0, sqrt(0.8 T), S) ** 2)``. For large ``S`` the floor repeats small values
  (``S = 50, T = 1000`` gives 0 twice); a repeated timestep is a step from t to t, which
  changes nothing, so it is visited once: ``len(timesteps)`` (the network evaluations per
  sample) can then be below ``S``.

The step after the smallest timestep lands on alpha-bar = 1: the clean sample.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import numpy as np
import torch
from annotated_types import Gt

from genbench import ConfigError, Sampler

#: How the built-in samplers may space their timesteps (see the module docstring).
Spacing = Literal["uniform", "quadratic"]
SPACINGS = get_args(Spacing)
#: ``clip_sample``: the bound the predicted clean sample is clipped to, or None.
ClipSample = Annotated[float, Gt(0)] | None


def spaced_timesteps(num_train_timesteps: int, steps: int, spacing: str) -> torch.Tensor:
    """The timesteps of ``spacing`` (see the module docstring), descending, without repeats.
    ``spacing`` is a model's sampling setting whose choices are the sampler's (see
    :data:`Spacing`), and ``steps`` is bounded by ``T``: both are checked here."""
    if spacing not in SPACINGS:
        raise ConfigError(f"unknown spacing {spacing!r}; valid spacings: {', '.join(SPACINGS)}")
    if not 1 <= steps <= num_train_timesteps:
        raise ConfigError(f"steps must be an integer from 1 to the {num_train_timesteps} training "
                          f"timesteps, got {steps!r}")
    if spacing == "uniform":
        ts = np.arange(steps) * num_train_timesteps // steps
    else:
        ts = (np.linspace(0, np.sqrt(0.8 * num_train_timesteps), steps) ** 2).astype(np.int64)
    return torch.from_numpy(np.unique(ts)[::-1].copy())


class DiscreteSampler(Sampler):
    """Base of samplers on a discrete alpha-bar schedule; subclasses implement :meth:`step`.

    ``alphas_cumprod``: alpha-bar of every training timestep (1-D, values in (0, 1),
    non-increasing). ``clip_sample``: clip the predicted clean sample to
    ``[-clip_sample, clip_sample]`` (the model passes 1.0 for images scaled to [-1, 1]);
    ``None`` does not clip.
    """

    def __init__(self, *, alphas_cumprod: torch.Tensor,
                 clip_sample: ClipSample = None):
        a = torch.as_tensor(alphas_cumprod, dtype=torch.float64).cpu()
        name = type(self).__name__
        if a.dim() != 1 or len(a) < 1 or not bool(((a > 0) & (a < 1)).all()) \
                or bool((a.diff() > 0).any()):
            raise ConfigError(f"{name}: alphas_cumprod must be a 1-D tensor of values in (0, 1), "
                              "non-increasing (alpha-bar of each training timestep)")
        self.alphas_cumprod = a
        self.num_train_timesteps = len(a)
        self.clip_sample = None if clip_sample is None else float(clip_sample)
        self.set_timesteps(self.num_train_timesteps, "uniform")

    def set_timesteps(self, steps: int, spacing: Spacing = "uniform") -> None:
        """``steps`` timesteps spaced ``uniform``ly or ``quadratic``ally (DDIM paper)."""
        self.timesteps = spaced_timesteps(self.num_train_timesteps, steps, spacing)
        ts = self.timesteps.tolist()
        self._next = dict(zip(ts, ts[1:] + [-1]))

    def alpha_bars(self, t: int) -> tuple[float, float]:
        """alpha-bar at ``t`` and at the timestep :meth:`step` goes to (1.0 after the last)."""
        if t not in self._next:
            raise ValueError(f"timestep {t} is not one of this sampler's timesteps; call "
                             "set_timesteps and step through .timesteps")
        t_next = self._next[t]
        return float(self.alphas_cumprod[t]), (1.0 if t_next < 0 else float(self.alphas_cumprod[t_next]))

    def predict_x0(self, eps: torch.Tensor, x_t: torch.Tensor,
                   a_t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The clean sample implied by the noise prediction,
        x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t), clipped when :attr:`clip_sample` is set; and
        the noise consistent with it (``eps`` itself unless clipping moved x0)."""
        x0 = (x_t - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
        if self.clip_sample is None:
            return x0, eps
        x0 = x0.clamp(-self.clip_sample, self.clip_sample)
        return x0, (x_t - a_t ** 0.5 * x0) / (1 - a_t) ** 0.5
