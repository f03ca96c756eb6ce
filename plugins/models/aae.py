"""Adversarial autoencoder (Makhzani et al., 2015).

A deterministic autoencoder whose code distribution is matched to a prior N(0, I) by
adversarial training instead of a KL term. Every minibatch runs two phases:

1. reconstruction: encoder and decoder minimise the mean squared reconstruction error;
2. regularisation: a discriminator on codes learns to tell prior draws (label 1) from
   encoder codes (label 0), then the encoder, acting as the generator, is updated to make
   the discriminator label its codes 1 (the non-saturating generator loss).

Samples decode z ~ N(0, I). The paper trains with SGD and momentum; Adam is used here
(beta1 = 0.5 for the two adversarial optimizers, as is usual for GANs).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from genbench import DataInfo, GenerativeModel, batch_randn, hookimpl

from .layers import Hidden, LearningRate, Positive, mlp, widths


class AAE(GenerativeModel):
    """Adversarial autoencoder with MLP encoder, decoder and code discriminator."""

    description = ("adversarial autoencoder (Makhzani et al. 2015): deterministic MLP "
                   "autoencoder (512-256 ReLU units, latent 8) whose codes a discriminator "
                   "compares with N(0, I) draws while the encoder learns to fool it; samples "
                   "decoded from the N(0, I) prior")
    family = "aae"

    def __init__(self, data_info: DataInfo, latent_dim: Positive = 8,
                 hidden: Hidden = (512, 256), disc_hidden: Hidden = (256, 256),
                 lr: LearningRate = 1e-3, lr_adv: LearningRate = 2e-4):
        """``hidden``: encoder widths (the decoder uses them reversed); ``disc_hidden``: the
        discriminator's; ``lr``: reconstruction phase; ``lr_adv``: discriminator and encoder in
        the regularisation phase."""
        super().__init__()
        self.latent_dim = latent_dim
        sizes, disc = widths(hidden), widths(disc_hidden)
        self.shape, self.dim, self.kind = data_info.shape, data_info.dim, data_info.kind
        self.encoder = nn.Sequential(nn.Flatten(), mlp([self.dim, *sizes, latent_dim]))
        self.decoder = mlp([latent_dim, *reversed(sizes), self.dim])
        self.discriminator = mlp([latent_dim, *disc, 1])
        self.opt_ae = torch.optim.Adam([*self.encoder.parameters(), *self.decoder.parameters()],
                                       lr=lr)
        self.opt_disc = torch.optim.Adam(self.discriminator.parameters(), lr=lr_adv,
                                         betas=(0.5, 0.999))
        self.opt_gen = torch.optim.Adam(self.encoder.parameters(), lr=lr_adv, betas=(0.5, 0.999))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic code of each item, ``(N, latent_dim)``."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Data-space outputs: sigmoid for images, linear for vectors."""
        out = self.decoder(z).reshape(-1, *self.shape)
        return torch.sigmoid(out) if self.kind == "image" else out

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def train_step(self, batch: torch.Tensor, step: int) -> dict[str, float]:
        # 1. reconstruction phase
        mse = F.mse_loss(self.reconstruct(batch).float(), batch)
        self.optimizer_step(mse, self.opt_ae)

        # 2a. regularisation phase, discriminator: prior draws are "real", codes "fake"
        with torch.no_grad():
            fake = self.encode(batch).float()
        real = batch_randn(len(fake), *fake.shape[1:], device=fake.device, dtype=fake.dtype)
        logits_real = self.discriminator(real).float()
        logits_fake = self.discriminator(fake).float()
        d_loss = (F.binary_cross_entropy_with_logits(logits_real, torch.ones_like(logits_real))
                  + F.binary_cross_entropy_with_logits(logits_fake, torch.zeros_like(logits_fake)))
        self.optimizer_step(d_loss, self.opt_disc)

        # 2b. regularisation phase, generator: the encoder makes its codes look like prior draws
        self.discriminator.requires_grad_(False)
        try:
            logits = self.discriminator(self.encode(batch)).float()
            g_loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
            self.optimizer_step(g_loss, self.opt_gen)
        finally:
            self.discriminator.requires_grad_(True)
        return {"mse": mse.detach(), "d_loss": d_loss.detach(), "g_loss": g_loss.detach()}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder outputs at z ~ N(0, I)."""
        return self.decode(self.randn(n, self.latent_dim, generator=generator))


@hookimpl
def register_models(register):
    register("aae", AAE)
