"""The sampler contract: :class:`Sampler`, a diffusion model's reverse process.

A sampler (a "scheduler" in diffusers) knows the noise schedule and nothing about the
network. A diffusion model names one in its sampling settings (``sampler = "ddim"``) and
drives it::

    sampler = sampler_cls(alphas_cumprod=alphas_cumprod, **extras)
    sampler.set_timesteps(steps, spacing)
    x = noise
    for t in sampler.timesteps:
        x = sampler.step(network(x, t), int(t), x, generator)

so one trained network is evaluated with any registered sampler and step count, and the
network evaluations per sample are ``len(sampler.timesteps)``.

How a model builds a sampler (the convention every sampler and diffusion model follow):

* ``alphas_cumprod`` (keyword, always given): the training schedule as alpha-bar, a 1-D
  float64 CPU tensor of length T whose entry ``t`` is ``prod_{s <= t} (1 - beta_s)`` for the
  training timesteps ``t = 0 .. T-1``; q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0,
  (1 - alpha_bar_t) I). Whatever the model's schedule (linear, cosine, learned), this is all a
  sampler needs, so a sampler never re-implements a schedule.
* Optional extras, given only to a sampler whose ``__init__`` names them (or takes
  ``**kwargs``): ``eta`` (float, stochasticity of DDIM-type samplers; a model refuses a
  non-zero ``eta`` for a sampler that does not take it) and ``clip_sample`` (float or
  ``None``: clip the predicted clean sample to ``[-c, c]``; images scaled to [-1, 1] pass
  1.0).
* Any other option needs a default: the model never sets it.

Where samplers come from: the sampling setting ``sampler`` is the one setting the core
knows by name. When a spec is read, its value must be a registered sampler (an unknown
name is a :class:`~genbench.api.errors.ConfigError` listing the registered ones); when an
evaluation samples, :class:`genbench.evaluation.context.EvalContext` passes the class registered
under that name in the run's registries to ``model.sample`` and ``model.nfe`` in place of
the name. A model called directly takes the class (``sampler=registries.samplers.get("ddim")``),
or a name together with the registries to look it up in: there is no process-wide fallback.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch

from genbench.api.noise import noise_randn
from genbench.api.parameters import validate_on_init


class Sampler(abc.ABC):
    """Base class of sampler plugins.

    Built as ``cls(alphas_cumprod=..., [eta=..., clip_sample=...])`` (the convention in this
    module's docstring). Options are declared like a model's hyper-parameters (``eta:
    Annotated[float, Ge(0)] = 0.0``) and checked when the sampler is built; raise
    :class:`genbench.api.errors.ConfigError` for what a declaration cannot say.
    Subclasses implement :meth:`set_timesteps` and :meth:`step`; both run on the device of
    the tensors they are given, and all randomness comes from the CPU ``generator`` (see
    :meth:`randn_like`), so a seed gives the same samples on every device.
    """

    description: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        validate_on_init(cls)  # options are checked however the sampler is built

    #: The training timesteps the reverse process visits, in the order :meth:`step` visits
    #: them (noisiest first): a 1-D integer tensor set by :meth:`set_timesteps`; one network
    #: evaluation each.
    timesteps: torch.Tensor

    @abc.abstractmethod
    def set_timesteps(self, steps: int, spacing: str) -> None:
        """Choose ``steps`` timesteps of the training schedule to sample with.

        ``spacing`` says how they are picked among the training timesteps (the built-in
        samplers know the DDIM paper's ``"uniform"`` and ``"quadratic"``; diffusers has
        ``"linspace"``, ``"leading"``, ``"trailing"``); a sampler rejects a spacing it does
        not know, or a step count it cannot take, with :class:`genbench.api.errors.ConfigError`
        listing the valid ones. Sets :attr:`timesteps`: ``steps`` of them, descending, or fewer
        where a spacing repeats a timestep (a step from t to t changes nothing, so it is
        visited once; models report ``len(timesteps)`` as the network evaluations).
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
        moved to ``x``'s device and dtype: per sample (row) from a
        :class:`~genbench.api.noise.SampleNoise`, in one block from a :class:`torch.Generator`."""
        return noise_randn(*x.shape, generator=generator).to(device=x.device, dtype=x.dtype)
