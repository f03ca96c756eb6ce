"""Exponential moving average of a network's weights (Ho et al. 2020 sample with it).

After each optimizer step the averaged copy moves towards the trained weights:
``ema <- d * ema + (1 - d) * weights`` with ``d = min(decay, (1 + n) / (10 + n))`` after ``n``
earlier updates. The warm-up term (as in TensorFlow's ExponentialMovingAverage with
``num_updates``) keeps short trainings from sampling with weights still close to their
random initialisation. Buffers (none in our networks, but a normalisation's running
statistics, say) are copied as they are.

The copy is a submodule of the model, so it is in the model's ``state_dict`` and therefore in
every checkpoint; its parameters never require gradients and are not optimised.
"""

from __future__ import annotations

import copy

from typing import Annotated

import torch
from annotated_types import Interval
from torch import nn

#: The ``ema_decay`` hyper-parameter of the models that keep an average.
Decay = Annotated[float, Interval(ge=0, lt=1)]


class EMA(nn.Module):
    """An averaged copy (:attr:`averaged`) of ``network``'s weights, updated by :meth:`update`
    (``decay``: a :data:`Decay`, checked where the model declares it)."""

    def __init__(self, network: nn.Module, decay: float):
        super().__init__()
        self.decay = float(decay)
        self.averaged = copy.deepcopy(network).requires_grad_(False).eval()
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def train(self, mode: bool = True) -> "EMA":
        """The averaged network is only evaluated: it stays in eval mode (no dropout)."""
        super().train(mode)
        self.averaged.eval()
        return self

    def current_decay(self) -> float:
        n = int(self.num_updates)
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        """Move the averaged weights towards ``network``'s (same architecture)."""
        d = self.current_decay()
        for avg, p in zip(self.averaged.parameters(), network.parameters()):
            avg.lerp_(p.detach(), 1 - d)
        for avg, b in zip(self.averaged.buffers(), network.buffers()):
            avg.copy_(b)
        self.num_updates += 1
