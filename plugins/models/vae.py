"""Variational autoencoders (Kingma & Welling, 2014) and beta-VAE (Higgins et al., 2017).

The encoder outputs a diagonal Gaussian q(z|x); z is drawn with the reparameterisation
trick; the decoder gives the parameters of p(x|z): Bernoulli logits for images in [0, 1], or
a Gaussian mean (through a sigmoid for images, linear for vectors) with a learned
per-dimension scale. The loss is the negative ELBO: reconstruction negative log-likelihood
plus ``beta`` times KL(q(z|x) || N(0, I)), summed over dimensions and averaged over the batch
(``beta = 1`` is the VAE; ``beta > 1`` trades reconstruction for a code closer to the prior).
Samples decode z ~ N(0, I).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from annotated_types import Ge, Gt
from torch import nn
from torch.nn import functional as F

from genbench import ConfigError, DataInfo, GenerativeModel, batch_randn, hookimpl, registered_name

from .layers import ConvDecoder, ConvEncoder, LearningRate, Positive, mlp, widths

#: The decoder's likelihood; "auto" is Bernoulli for images, Gaussian for vectors.
Likelihood = Literal["auto", "bernoulli", "gaussian"]
#: The KL term's weight.
Beta = Annotated[float, Ge(0)]
GAUSSIAN_SCALE_INIT = 0.1


class VAEBase(GenerativeModel):
    """What every VAE here shares: the Gaussian posterior, the likelihoods, the loss, sampling.

    A subclass calls :meth:`_setup`, builds ``self.encoder`` (data batch -> ``2 * latent_dim``
    values: mean and log-variance) and ``self.decoder`` (z -> ``dim`` raw outputs per item, any
    shape), then calls :meth:`_finish`.
    """

    family = "vae"

    def _setup(self, data_info: DataInfo, latent_dim: int, likelihood: Likelihood,
               beta: float) -> None:
        """Keep the shared hyper-parameters (declared in the subclass's signature) and check
        the likelihood against the data."""
        label = registered_name(self)
        if likelihood == "auto":
            likelihood = "bernoulli" if data_info.kind == "image" else "gaussian"
        if likelihood == "bernoulli" and data_info.kind != "image":
            raise ConfigError(f"{label}: the Bernoulli likelihood needs data in [0, 1] (images); "
                              f"{data_info.name!r} is {data_info.kind} data, use "
                              "likelihood='gaussian'")
        self.shape, self.dim, self.kind = data_info.shape, data_info.dim, data_info.kind
        self.latent_dim, self.likelihood, self.beta = latent_dim, likelihood, float(beta)

    def _finish(self, lr: float) -> None:
        # log standard deviation of the Gaussian likelihood, one per data dimension
        self.log_scale = nn.Parameter(torch.full((self.dim,), math.log(GAUSSIAN_SCALE_INIT)),
                                      requires_grad=self.likelihood == "gaussian")
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr)

    # q(z|x)
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z|x), each ``(N, latent_dim)``."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's raw outputs, ``(N, dim)``: Bernoulli logits or pre-link Gaussian means."""
        return self.decoder(z).flatten(1)

    def _mean(self, out: torch.Tensor) -> torch.Tensor:
        mean = torch.sigmoid(out) if self.kind == "image" else out
        return mean.reshape(-1, *self.shape)

    def _nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) per sample, in nats, summed over dimensions."""
        x = x.flatten(1).float()
        out = out.float()
        if self.likelihood == "bernoulli":
            return F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(1)
        mean = torch.sigmoid(out) if self.kind == "image" else out
        log_scale = self.log_scale.float().clamp(-7.0, 5.0)
        r = (x - mean) * torch.exp(-log_scale)
        return (0.5 * r.pow(2) + log_scale + 0.5 * math.log(2 * math.pi)).sum(1)

    @staticmethod
    def _kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(N(mu, exp(logvar)) || N(0, I)) per sample, in nats."""
        mu, logvar = mu.float(), logvar.float()
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)

    def elbo(self, x: torch.Tensor,
             generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Per-sample reconstruction NLL and KL (nats) with one posterior draw; -ELBO = recon + kl.

        The draw's noise comes from ``generator`` (a CPU generator) when one is given.
        """
        mu, logvar = (t.float() for t in self.posterior(x))
        eps = (batch_randn(len(mu), *mu.shape[1:], device=mu.device, dtype=mu.dtype)
               if generator is None else self.randn(*mu.shape, generator=generator))
        z = mu + eps * torch.exp(0.5 * logvar)
        return {"recon": self._nll(self.decode_logits(z), x), "kl": self._kl(mu, logvar)}

    def log_importance_weights(self, x: torch.Tensor, k: int,
                               generator: torch.Generator | None = None) -> torch.Tensor:
        """``log p(x|z) + log p(z) - log q(z|x)`` for ``k`` posterior draws per item,
        ``(N, k)`` in nats (float64): the importance weights of Burda et al.'s bound, whose
        ``logmeanexp`` over the draws is a lower bound on ``log p(x)`` that tightens as ``k``
        grows. Draws come from ``generator`` (a CPU generator) when one is given."""
        mu, logvar = (t.double() for t in self.posterior(x))
        n, d = mu.shape
        eps = torch.randn(n, k, d, generator=generator, dtype=torch.float64).to(mu.device)
        z = mu[:, None] + eps * torch.exp(0.5 * logvar)[:, None]
        log_2pi = math.log(2 * math.pi)
        log_q = -0.5 * (eps.pow(2) + logvar[:, None] + log_2pi).sum(2)
        log_prior = -0.5 * (z.pow(2) + log_2pi).sum(2)
        out = self.decode_logits(z.reshape(n * k, d).to(self.log_scale.dtype))
        xs = x.flatten(1)[:, None].expand(n, k, -1).reshape(n * k, -1)
        log_lik = -self._nll(out, xs).double().reshape(n, k)
        return log_lik + log_prior - log_q

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
        """Decoder mean (images in [0, 1])."""
        return self._mean(self.decode_logits(z))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder mean at the posterior mean."""
        return self.decode(self.encode(x))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, *,
               temperature: Annotated[float, Gt(0)] = 1.0) -> torch.Tensor:
        """Decoder means at z ~ N(0, temperature^2 I): ``temperature < 1`` trades diversity
        for typicality (reduced-temperature sampling, a sampling setting)."""
        return self.decode(self.randn(n, self.latent_dim, generator=generator) * temperature)


class VAE(VAEBase):
    """MLP VAE: encoder 150-100 -> latent 10 -> decoder 100-150, the classic design."""

    description = ("Variational autoencoder with MLP encoder/decoder (150-100 hidden units, "
                   "latent 10), Bernoulli (images) or Gaussian (vectors) likelihood, "
                   "N(0, I) prior, samples decoded from the prior")

    def __init__(self, data_info: DataInfo, latent_dim: Positive = 10,
                 hidden: Positive | tuple[Positive, ...] = (150, 100),
                 likelihood: Likelihood = "auto", beta: Beta = 1.0, lr: LearningRate = 1e-3):
        """``likelihood="auto"``: Bernoulli for images, Gaussian for vectors. ``hidden=()``
        gives linear encoder and decoder."""
        super().__init__()
        self._setup(data_info, latent_dim, likelihood, beta)
        sizes = widths(hidden)
        self.encoder = nn.Sequential(nn.Flatten(), mlp([self.dim, *sizes, 2 * latent_dim]))
        self.decoder = mlp([latent_dim, *reversed(sizes), self.dim])
        self._finish(lr)


class BetaVAE(VAE):
    """beta-VAE (Higgins et al., 2017): the MLP VAE with the KL term weighted by ``beta``."""

    description = ("beta-VAE: the MLP VAE with its KL term weighted by beta (default 4), "
                   "trading reconstruction for a code closer to the N(0, I) prior; samples "
                   "decoded from the prior")

    def __init__(self, data_info: DataInfo, latent_dim: Positive = 10,
                 hidden: Positive | tuple[Positive, ...] = (150, 100),
                 likelihood: Likelihood = "auto", beta: Beta = 4.0, lr: LearningRate = 1e-3):
        super().__init__(data_info, latent_dim=latent_dim, hidden=hidden,
                         likelihood=likelihood, beta=beta, lr=lr)


class ConvVAE(VAEBase):
    """Convolutional VAE: stride-2 conv encoder, transposed-conv decoder, any image size."""

    description = ("convolutional VAE: stride-2 conv encoder and transposed-conv decoder that "
                   "adapt to the image size, latent 32, Bernoulli likelihood by default, "
                   "samples decoded from the N(0, I) prior")
    data_kinds = ("image",)

    def __init__(self, data_info: DataInfo, latent_dim: Positive = 32, channels: Positive = 32,
                 max_channels: Positive = 256, likelihood: Likelihood = "auto",
                 beta: Beta = 1.0, lr: LearningRate = 1e-3):
        """``channels`` at full resolution, doubling per halving up to ``max_channels``."""
        super().__init__()
        if data_info.kind != "image":
            raise ConfigError(f"conv-vae needs image data, got {data_info.kind} data "
                              f"{data_info.shape}; use vae")
        self._setup(data_info, latent_dim, likelihood, beta)
        self.encoder = ConvEncoder(self.shape, 2 * latent_dim, channels, max_channels)
        self.decoder = ConvDecoder(latent_dim, self.shape, channels, max_channels)
        self._finish(lr)


@hookimpl
def register_models(register):
    register("vae", VAE)
    register("conv-vae", ConvVAE)
    register("beta-vae", BetaVAE)
