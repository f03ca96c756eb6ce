"""Variational autoencoders (Kingma & Welling, 2014).

The encoder outputs a diagonal Gaussian q(z|x); z is drawn with the reparameterisation
trick; the decoder gives the parameters of p(x|z), Bernoulli for images in [0, 1] or Gaussian
with a learned per-dimension scale. The loss is the negative ELBO: reconstruction negative
log-likelihood plus ``beta`` times KL(q(z|x) || N(0, I)), summed over dimensions and averaged
over the batch.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from genbench import DataInfo, GenerativeModel, hookimpl
from genbench.errors import ConfigError

LIKELIHOODS = ("auto", "bernoulli", "gaussian")


def mlp(sizes: list[int], activation=nn.ReLU) -> nn.Sequential:
    """Linear layers of the given sizes with ``activation`` between them (none at the end)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class VAE(GenerativeModel):
    """MLP VAE: encoder 150-100 -> latent 10 -> decoder 100-150, the classic design."""

    description = ("Variational autoencoder with MLP encoder/decoder (150-100 hidden units, "
                   "latent 10), Gaussian prior, samples decoded from the prior")
    family = "vae"

    def __init__(self, data_info: DataInfo, latent_dim: int = 10,
                 hidden: tuple = (150, 100), likelihood: str = "auto", beta: float = 1.0,
                 lr: float = 1e-3):
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ConfigError(f"vae: likelihood must be one of {', '.join(LIKELIHOODS)}, got {likelihood!r}")
        if latent_dim < 1:
            raise ConfigError(f"vae: latent_dim must be positive, got {latent_dim}")
        if beta < 0:
            raise ConfigError(f"vae: beta must be non-negative, got {beta}")
        if likelihood == "auto":
            likelihood = "bernoulli" if data_info.kind == "image" else "gaussian"
        self.shape, self.dim = data_info.shape, data_info.dim
        self.latent_dim, self.likelihood, self.beta = latent_dim, likelihood, float(beta)
        hidden = [int(h) for h in hidden]
        self.encoder = mlp([self.dim, *hidden, 2 * latent_dim])
        self.decoder = mlp([latent_dim, *reversed(hidden), self.dim])
        # log standard deviation of the Gaussian likelihood, one per data dimension
        self.log_scale = nn.Parameter(torch.zeros(self.dim), requires_grad=likelihood == "gaussian")
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr)

    # q(z|x)
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x.flatten(1)).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def _mean(self, out: torch.Tensor) -> torch.Tensor:
        mean = torch.sigmoid(out) if self.likelihood == "bernoulli" else out
        return mean.reshape(-1, *self.shape)

    def _nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) per sample, in nats, summed over dimensions."""
        x = x.flatten(1)
        if self.likelihood == "bernoulli":
            return F.binary_cross_entropy_with_logits(out.float(), x, reduction="none").sum(1)
        log_scale = self.log_scale.clamp(-7.0, 5.0)
        z = (x - out.float()) * torch.exp(-log_scale)
        return (0.5 * z.pow(2) + log_scale + 0.5 * math.log(2 * math.pi)).sum(1)

    @staticmethod
    def _kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(N(mu, exp(logvar)) || N(0, I)) per sample, in nats."""
        return 0.5 * (mu.float().pow(2) + logvar.float().exp() - 1.0 - logvar.float()).sum(1)

    def elbo(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-sample reconstruction NLL and KL (nats); -ELBO = recon + kl (with beta = 1)."""
        mu, logvar = self.posterior(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return {"recon": self._nll(self.decode_logits(z), x), "kl": self._kl(mu, logvar)}

    def train_step(self, batch: torch.Tensor, step: int) -> dict[str, float]:
        parts = self.elbo(batch)
        recon, kl = parts["recon"].mean(), parts["kl"].mean()
        loss = recon + self.beta * kl
        self.optimizer_step(loss, self.optimizer)
        return {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach()}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior mean of z."""
        return self.posterior(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self._mean(self.decode_logits(z))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder mean at the posterior mean."""
        return self.decode(self.encode(x))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder means at z ~ N(0, I)."""
        return self.decode(self.randn(n, self.latent_dim, generator=generator))


@hookimpl
def register_models(register):
    register("vae", VAE)
