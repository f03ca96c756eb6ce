"""What every GAN of the family shares: the discriminator wrapper that applies the
stabilisers, the D/G alternation of ``train_step``, the balance options and sampling.

A model subclasses :class:`GANBase`, builds ``self.generator`` (z -> data in model space:
images in [-1, 1] through a tanh, vectors unbounded) and a per-scale discriminator trunk
(:meth:`GANBase.build_trunk`), chooses its losses (:meth:`GANBase.discriminator_loss`,
:meth:`GANBase.generator_loss`) and calls :meth:`GANBase._setup` then :meth:`GANBase._finish`.

One training step (one ``train_step`` call, one generator update):

1. ``d_steps`` discriminator updates, each on a fresh real batch: with ``pack = m`` each
   update takes ``m`` batches of the engine's ``batch_size`` and judges ``batch_size``
   packs of ``m`` samples (PacGAN's minibatch of packed samples), so the engine passes
   ``batches_per_step = d_steps * pack`` batches. The fake batch is generated afresh (as
   many samples as real ones), mixed with replayed samples when ``experience_replay`` is on,
   and those fresh samples are then pushed into the buffer;
2. one generator update on a fresh fake batch of the same size, unless the step is one of
   the first ``d_pretrain_steps`` (the discriminator is pre-trained alone; the returned
   losses then have no ``g_loss``).

Learning rates ``lr_d`` / ``lr_g`` are separate (TTUR, Heusel et al. 2017). Returned losses
are the true ones (the mean over the step's D updates, the G update's), so a non-finite value
marks the run diverged.
"""

from __future__ import annotations

import abc
from typing import Annotated, Literal

import torch
from annotated_types import Ge
from torch import nn

from torch.nn import functional as F

from genbench import DataInfo, GenerativeModel, batch_randn, registered_name

from .stabilisers import (MinibatchDiscrimination, ReplayBuffer, Stabilisers,
                          apply_spectral_norm, pack, packed_shape, pyramid, pyramid_shapes)

#: Samples per forward pass of the generator when sampling.
SAMPLE_CHUNK = 500
#: Generator losses of the original GAN (Goodfellow et al. 2014, sec. 3).
Loss = Literal["non-saturating", "minimax"]
#: Discriminator updates per generator update.
DSteps = Annotated[int, Ge(1)]
#: Training steps in which only D trains.
DPretrainSteps = Annotated[int, Ge(0)]


class Discriminator(nn.Module):
    """D with the stabilisers around the model's trunks.

    ``forward(x)``: ``x`` (N samples, model space) is packed by ``m`` (N/m items), then for
    each scale s of the pyramid (s = 0 the full resolution) ``trunks[s]`` maps the image to
    features, minibatch discrimination appends its features if on, and a linear head gives
    one judgement. Returns ``(N/m, scales)`` logits (or critic values).
    """

    def __init__(self, trunks: list[tuple[nn.Module, int]], stab: Stabilisers):
        super().__init__()
        self.m, self.scales = stab.pack, stab.multiscale
        self.trunks = nn.ModuleList(t for t, _ in trunks)
        self.minibatch = nn.ModuleList()
        heads = []
        for _, features in trunks:
            if stab.minibatch_discrimination:
                mbd = MinibatchDiscrimination(features, stab.minibatch_kernels,
                                              stab.minibatch_kernel_dim)
                self.minibatch.append(mbd)
                features = mbd.out_features
            heads.append(nn.Linear(features, 1))
        self.heads = nn.ModuleList(heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pack(x, self.m)
        levels = pyramid(x, self.scales) if self.scales > 1 else [x]
        out = []
        for s, level in enumerate(levels):
            h = self.trunks[s](level)
            if len(self.minibatch):
                h = self.minibatch[s](h)
            out.append(self.heads[s](h))
        return torch.cat(out, dim=1)


class GANBase(GenerativeModel):
    """The shared D/G machinery (see the module docstring)."""

    family = "gan"
    #: The engine keeps a preview of samples, so a diverged GAN keeps its last finite grid.
    preview_samples = 64

    # -- building ------------------------------------------------------------------------
    def _setup(self, data_info: DataInfo, latent_dim: int, stab: Stabilisers, *, d_steps: int,
               d_pretrain_steps: int) -> None:
        """Keep the shared options (declared in the subclass's signature, checked where they
        enter) and check the stabilisers against the data; call before building the
        networks."""
        self.shape, self.dim, self.kind = tuple(data_info.shape), data_info.dim, data_info.kind
        self.stab = stab.check(registered_name(self), data_info)
        self.latent_dim, self.d_steps, self.d_pretrain_steps = latent_dim, d_steps, d_pretrain_steps
        # the engine passes this many fresh batches per train_step (see GenerativeModel)
        self.batches_per_step = d_steps * stab.pack

    def trunk_shapes(self) -> list[tuple[int, ...]]:
        """The input shape of each scale's trunk: packed, then the pyramid's resolutions."""
        shape = packed_shape(self.shape, self.stab.pack)
        if self.kind != "image":
            return [shape]
        return pyramid_shapes(shape, self.stab.multiscale)

    @abc.abstractmethod
    def build_trunk(self, in_shape: tuple[int, ...]) -> tuple[nn.Module, int]:
        """D's body for inputs of ``in_shape``: the module and its number of output features
        (the head, a linear layer to one judgement, is added by :class:`Discriminator`)."""

    def init_weights(self, module: nn.Module) -> None:
        """Initialise a freshly built network (before spectral norm): called with the
        generator, then D's trunks, then D's heads; never with minibatch discrimination's
        T, which keeps Salimans et al.'s N(0, 0.05). Default: torch's."""

    def _finish(self, lr_d: float, lr_g: float, betas: tuple[float, float]) -> None:
        """Build D around the trunks, apply spectral norm, create the optimizers and the replay
        buffer; call once ``self.generator`` exists."""
        lr_d, lr_g, betas = float(lr_d), float(lr_g), (float(betas[0]), float(betas[1]))
        self.discriminator = Discriminator([self.build_trunk(s) for s in self.trunk_shapes()],
                                           self.stab)
        self.init_weights(self.generator)
        # D's modules in order, minibatch discrimination left out (see init_weights)
        self.init_weights(self.discriminator.trunks)
        self.init_weights(self.discriminator.heads)
        if self.stab.spectral_norm:
            apply_spectral_norm(self.discriminator)
        self.replay = (ReplayBuffer(self.stab.replay_size, self.shape, self.stab.replay_rate)
                       if self.stab.experience_replay else None)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=lr_d, betas=betas)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=lr_g, betas=betas)

    # -- data spaces ---------------------------------------------------------------------
    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """Images [0, 1] -> [-1, 1] (the tanh range); vectors unchanged."""
        return x * 2 - 1 if self.kind == "image" else x

    def to_data_space(self, x: torch.Tensor) -> torch.Tensor:
        return (x + 1) / 2 if self.kind == "image" else x

    def generate(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` generator outputs in model space (noise from the global stream when
        ``generator`` is None, as in training)."""
        if generator is None:  # this process's rows of the batch's noise (data-parallel)
            z = batch_randn(n, self.latent_dim, device=self.device)
        else:
            z = self.randn(n, self.latent_dim, generator=generator)
        return self.generator(z).reshape(n, *self.shape)

    # -- losses (subclasses choose) ------------------------------------------------------
    @abc.abstractmethod
    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor
                           ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """D's loss on a real and a fake batch (model space, equal sizes), and any parts to
        report beside it."""

    @abc.abstractmethod
    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        """G's loss on a fake batch (model space)."""

    # -- training ------------------------------------------------------------------------
    def train_step(self, batch, step: int) -> dict[str, torch.Tensor]:
        batches = (batch,) if isinstance(batch, torch.Tensor) else tuple(batch)
        m = self.stab.pack
        if len(batches) != self.d_steps * m:
            raise ValueError(f"{registered_name(self)}: train_step needs {self.d_steps * m} "
                             f"batches (d_steps x pack), got {len(batches)}")
        d_losses, parts_sum = [], {}
        for i in range(self.d_steps):
            real = self.to_model_space(torch.cat(batches[i * m:(i + 1) * m]))
            with torch.no_grad():
                fresh = self.generate(len(real))
            fake = self.replay.mix(fresh) if self.replay is not None else fresh
            d_loss, parts = self.discriminator_loss(real, fake)
            self.optimizer_step(d_loss, self.opt_d)
            if self.replay is not None:
                self.replay.push(fresh)
            d_losses.append(d_loss.detach().float())
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v.detach().float()
        out = {"d_loss": torch.stack(d_losses).mean(),
               **{k: v / self.d_steps for k, v in parts_sum.items()}}
        if step >= self.d_pretrain_steps:
            n = len(batches[-1]) * m
            self.discriminator.requires_grad_(False)  # G's update needs no gradient for D
            try:
                g_loss = self.generator_loss(self.generate(n))
                self.optimizer_step(g_loss, self.opt_g)
            finally:
                self.discriminator.requires_grad_(True)
            out["g_loss"] = g_loss.detach().float()
        return out

    # -- sampling ------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Generator outputs at z ~ N(0, I): images in [0, 1], vectors unbounded. All noise is
        drawn first from ``generator`` (a CPU generator), then generated in chunks."""
        z = self.randn(n, self.latent_dim, generator=generator)
        out = [self.generator(c).reshape(len(c), *self.shape) for c in z.split(SAMPLE_CHUNK)]
        x = torch.cat(out) if out else z.new_zeros(0, *self.shape)
        return self.to_data_space(x.float())


class StandardGAN(GANBase):
    """The original GAN objective (Goodfellow et al. 2014): D is a classifier trained with
    binary cross-entropy (real 1, fake 0; with several scales, the mean over them); G
    minimises ``-log D(G(z))`` (``loss="non-saturating"``, the paper's practical choice) or
    ``log(1 - D(G(z)))`` (``loss="minimax"``, the game's value, which saturates early)."""

    def _set_loss(self, loss: Loss) -> None:
        self.loss = loss

    def discriminator_loss(self, real, fake):
        logits_real = self.discriminator(real).float()
        logits_fake = self.discriminator(fake).float()
        loss = (F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))
                + F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake)))
        # D's mean belief that real and fake items are real, to watch the balance
        return loss, {"d_real": torch.sigmoid(logits_real).mean(),
                      "d_fake": torch.sigmoid(logits_fake).mean()}

    def generator_loss(self, fake):
        logits = self.discriminator(fake).float()
        if self.loss == "non-saturating":
            return F.softplus(-logits).mean()  # -log sigmoid(l)
        return -F.softplus(logits).mean()  # log(1 - sigmoid(l))
