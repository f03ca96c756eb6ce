"""The sampler contract: :class:`Sampler`, a diffusion model's reverse process.

A sampler (a "scheduler" in diffusers) knows the noise schedule and nothing about the
network. A diffusion model names one in its sampling settings (``sampler = "ddim"``), looks it
up in ``registries.samplers`` and drives it::

    sampler = sampler_cls(**options)
    sampler.set_timesteps(steps, spacing)
    x = noise
    for t in sampler.timesteps:
        x = sampler.step(network(x, t), int(t), x, generator)

so one trained network is evaluated with any registered sampler and step count.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import torch


class Sampler(abc.ABC):
    """Base class of sampler plugins.

    Built as ``cls(**options)``: keyword arguments with defaults (the training schedule, say
    ``num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02``), validated like a metric's
    options. Subclasses implement :meth:`set_timesteps` and :meth:`step`; both run on the
    device of the tensors they are given, and all randomness comes from the CPU ``generator``
    (see :meth:`randn_like`), so a seed gives the same samples on every device.
    """

    description: ClassVar[str] = ""

    #: The timesteps of the reverse process, in the order :meth:`step` visits them (noisiest
    #: first): a 1-D integer tensor set by :meth:`set_timesteps`.
    timesteps: torch.Tensor

    @abc.abstractmethod
    def set_timesteps(self, steps: int, spacing: str) -> None:
        """Choose ``steps`` timesteps of the training schedule to sample with.

        ``spacing`` says how they are picked among the training timesteps (for example
        ``"linspace"``, ``"leading"`` or ``"trailing"``, as in diffusers); a sampler rejects a
        spacing it does not know with :class:`genbench.errors.ConfigError` listing the valid
        ones. Sets :attr:`timesteps` (length ``steps``, descending).
        """

    @abc.abstractmethod
    def step(self, model_output: torch.Tensor, t: int, x_t: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """One reverse step from timestep ``t`` to the one after it in :attr:`timesteps`.

        ``x_t`` is the current noisy batch, shape ``(B, *data_shape)``; ``model_output`` is the
        network's prediction at ``(x_t, t)`` with the same shape (the noise epsilon, unless a
        sampler documents another parameterisation); ``t`` is an element of
        :attr:`timesteps`. Returns ``x_prev``, shape and dtype of ``x_t``: the batch at the next
        timestep, or the clean sample after the last one. Stochastic samplers draw their
        noise from ``generator`` (a CPU :class:`torch.Generator`; ``None`` = global RNG).
        """

    @staticmethod
    def randn_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard normal noise shaped like ``x``, drawn on the CPU from ``generator`` and
        moved to ``x``'s device and dtype."""
        return torch.randn(x.shape, generator=generator).to(device=x.device, dtype=x.dtype)
