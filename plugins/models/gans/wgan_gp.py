"""WGAN-GP (Gulrajani et al. 2017): a Wasserstein GAN whose critic is kept near
1-Lipschitz by a gradient penalty instead of weight clipping.

The critic D maximises ``E[D(x)] - E[D(G(z))]``; its loss adds
``lambda * E[(||grad_x^ D(x^)||_2 - 1)^2]`` on random interpolates
``x^ = eps x + (1 - eps) G(z)``, ``eps ~ U[0, 1]`` per sample (Algorithm 1, lambda = 10). The
critic takes ``n_critic = 5`` steps per generator step (``d_steps``), each on a fresh real
batch; G minimises ``-E[D(G(z))]``. Adam lr 1e-4, betas (0.5, 0.9). The critic has no batch
norm (the penalty is per sample; batch norm would couple the samples).

Networks by data kind: vectors use the paper's toy MLPs (3 hidden ReLU layers of 512 units in
G and D, latent 2); images use the DCGAN architecture (:mod:`.dcgan`) without batch norm in
the critic, latent 128 (as the paper's CIFAR-10 code).

Under mixed precision the penalty's input gradient is taken through the engine's gradient
scaler and unscaled (:meth:`genbench.GenerativeModel.gradients`).
"""

from __future__ import annotations

from typing import Annotated, Callable, Sequence

import torch
from annotated_types import Ge
from torch import nn

from genbench import ConfigError, DataInfo, batch_rand, registered_name

from ..layers import Betas, Hidden, LearningRate, Positive, mlp, widths
from .base import DPretrainSteps, DSteps, GANBase
from .dcgan import check_channels, conv_generator, conv_trunk
from .stabilisers import Stabilisers

Gradients = Callable[[torch.Tensor, torch.Tensor], Sequence[torch.Tensor]]


def _autograd(outputs: torch.Tensor, inputs: torch.Tensor) -> Sequence[torch.Tensor]:
    return torch.autograd.grad(outputs.sum(), inputs, create_graph=True)


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor, eps: torch.Tensor | None = None,
                     gradients: Gradients = _autograd, pack: int = 1) -> torch.Tensor:
    """``E[(||grad D(x^)||_2 - 1)^2]`` over interpolates ``x^ = eps real + (1 - eps) fake``.

    ``critic`` maps N samples to ``(K,)`` or ``(K, S)`` scores (K = N / m items when it packs
    m consecutive samples; S scales, averaged); the gradient norm is taken per item, over all
    its samples' coordinates. ``eps``: one weight per sample; if None, one drawn from U[0, 1]
    per item and shared by its ``pack`` samples, so that a packed interpolate lies on the
    segment between a real pack and a fake pack. ``gradients(outputs, inputs)``: gradient of
    ``outputs.sum()`` with a graph (the model's AMP-aware
    :meth:`~genbench.GenerativeModel.gradients` in training)."""
    n = real.shape[0]
    if eps is None:
        eps = batch_rand(n // pack, device=real.device).repeat_interleave(pack)
    eps = eps.reshape(n, *([1] * (real.dim() - 1))).to(real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat)
    if scores.dim() > 1:
        scores = scores.float().mean(1)
    (grad,) = gradients(scores, x_hat)
    norms = grad.float().reshape(scores.shape[0], -1).norm(2, dim=1)
    return ((norms - 1) ** 2).mean()


class WGANGP(GANBase):
    """Wasserstein GAN with gradient penalty; MLP on vectors, DCGAN-style convs on images."""

    description = ("WGAN-GP (Gulrajani et al. 2017): Wasserstein critic without batch norm, "
                   "gradient penalty lambda 10 on random interpolates, 5 critic steps per G "
                   "step (each on a fresh batch), Adam 1e-4 betas (0.5, 0.9); MLP 3x512 "
                   "(vectors) or DCGAN convs (images); same stabiliser options as gan")

    def __init__(self, data_info: DataInfo, latent_dim: Positive | None = None,
                 hidden: Hidden = (512, 512, 512), channels: Positive = 64,
                 max_channels: Positive = 512, gp_weight: Annotated[float, Ge(0)] = 10.0,
                 lr_d: LearningRate = 1e-4, lr_g: LearningRate = 1e-4,
                 betas: Betas = (0.5, 0.9), d_steps: DSteps = 5,
                 d_pretrain_steps: DPretrainSteps = 0, stabilisers: Stabilisers = Stabilisers()):
        """``latent_dim``: None is 2 on vectors, 128 on images. ``hidden``: G's and the
        critic's ReLU layers on vector data; ``channels``/``max_channels``: the conv widths on
        images (as dcgan). ``gp_weight``: the penalty's lambda; ``d_steps``: n_critic."""
        super().__init__()
        if stabilisers.minibatch_discrimination:
            # as with batch norm: a critic coupling the samples of a batch has no per-sample
            # gradient, which the penalty constrains (Gulrajani et al. 2017, sec. 4)
            raise ConfigError("wgan-gp: minibatch_discrimination couples the samples of a batch, "
                              "which invalidates the gradient penalty; use pack, multiscale, "
                              "spectral_norm or experience_replay instead")
        image = data_info.kind == "image"
        self._setup(data_info, (128 if image else 2) if latent_dim is None else latent_dim,
                    stabilisers, d_steps=d_steps, d_pretrain_steps=d_pretrain_steps)
        self.gp_weight = float(gp_weight)
        self.hidden = widths(hidden)
        check_channels(registered_name(self), channels, max_channels)
        self.channels, self.max_channels = channels, max_channels
        if image:
            self.generator = conv_generator(self.latent_dim, self.shape, channels, max_channels)
        else:
            self.generator = mlp([self.latent_dim, *self.hidden, self.dim])
        self._finish(lr_d, lr_g, betas)

    def build_trunk(self, in_shape):
        if self.kind == "image":
            return conv_trunk(in_shape, self.channels, self.max_channels, batch_norm=False)
        width = 1
        for s in in_shape:
            width *= s
        return nn.Sequential(nn.Flatten(), mlp([width, *self.hidden]), nn.ReLU()), self.hidden[-1]

    def critic(self, x: torch.Tensor) -> torch.Tensor:
        """One score per (packed) item, the mean over scales."""
        return self.discriminator(x).float().mean(1)

    def discriminator_loss(self, real, fake):
        d_real, d_fake = self.critic(real).mean(), self.critic(fake).mean()
        gp = gradient_penalty(self.discriminator, real, fake, gradients=self.gradients,
                              pack=self.stab.pack)
        loss = d_fake - d_real + self.gp_weight * gp
        # the critic's estimate of the Wasserstein distance, and the penalty itself
        return loss, {"wasserstein": d_real - d_fake, "gp": gp}

    def generator_loss(self, fake):
        return -self.critic(fake).mean()
