"""Deterministic autoencoders: undercomplete, stacked, convolutional, denoising and sparse.

Each learns an encoder x -> z and a decoder z -> x by minimising the mean squared
reconstruction error (plus a sparsity penalty for ``sparse-ae``). None of them defines a
distribution over codes, so they become generative by ex-post density estimation: after
training, :meth:`Autoencoder.on_train_end` fits a full-covariance Gaussian mixture to the
codes of the training split (scikit-learn, seeded with the job seed), keeps its weights,
means and Cholesky factors as persistent buffers (so checkpoints restore it), and
:meth:`Autoencoder.sample` draws codes from it in torch and decodes them.

Image decoders end in a sigmoid (outputs in [0, 1]); vector decoders are linear.
"""

from __future__ import annotations

import math
from typing import Annotated, Iterator, Literal

import numpy as np
import torch
from annotated_types import Ge, Gt, Interval, MinLen
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from genbench import (ConfigError, DataInfo, GenerativeModel, TensorSplit, batch_rand, batch_randn,
                      global_batch, hookimpl, noise_rand, noise_randn, registered_name)

from .layers import ConvDecoder, ConvEncoder, Hidden, LearningRate, Positive, mlp, widths

Noise = Literal["gaussian", "masking"]
Sparsity = Literal["kl", "l1"]
#: Components of the Gaussian mixture fitted to the codes.
GMMComponents = Annotated[int, Ge(1)]
#: The mixture's covariance regularisation.
RegCovar = Annotated[float, Gt(0)]
#: Default ``sparsity_weight`` for each kind of sparsity penalty.
SPARSITY_WEIGHTS = {"kl": 0.01, "l1": 1e-3}
_SAMPLING_NOTE = ("; generative by ex-post density estimation: a Gaussian mixture fitted to "
                  "the training codes is sampled and decoded")


def auto_latent_dim(dim: int) -> int:
    """The default code size: a quarter of the data dimension, at least 1 and at most 32."""
    return max(1, min(32, dim // 4))


def iterate_items(data: Dataset, batch_size: int = 512) -> Iterator[torch.Tensor]:
    """The items of a split in order, in CPU float batches (labels dropped)."""
    if isinstance(data, TensorSplit):
        yield from data.x.split(batch_size)
        return
    for batch in DataLoader(data, batch_size=batch_size, shuffle=False):
        yield (batch[0] if isinstance(batch, (tuple, list)) else batch).float()


class GaussianMixtureCodes(nn.Module):
    """A full-covariance Gaussian mixture over codes: fitted by scikit-learn, sampled in torch.

    Its parameters are persistent buffers (``weights``, ``means``, ``scale_tril``: the
    Cholesky factors of the covariances), so ``state_dict`` round-trips restore it.
    All-zero weights mean "not fitted yet".
    """

    def __init__(self, components: int, dim: int, reg_covar: float):
        super().__init__()
        self.components, self.dim, self.reg_covar = components, dim, reg_covar
        self.register_buffer("weights", torch.zeros(components))
        self.register_buffer("means", torch.zeros(components, dim))
        self.register_buffer("scale_tril", torch.zeros(components, dim, dim))

    @property
    def fitted(self) -> bool:
        return bool(self.weights.sum() > 0)

    def fit(self, codes: torch.Tensor, seed: int) -> None:
        """Fit to ``codes`` (N, dim) with EM from a k-means start seeded by ``seed``."""
        from sklearn.mixture import GaussianMixture

        x = codes.detach().double().cpu().numpy()
        if len(x) < self.components:
            raise ConfigError(f"gmm_components={self.components} needs at least that many "
                              f"training items, got {len(x)}; lower gmm_components")
        if not np.isfinite(x).all():
            raise ValueError("cannot fit the code density: the encoder produced non-finite codes")
        gmm = GaussianMixture(self.components, covariance_type="full", reg_covar=self.reg_covar,
                              random_state=seed)
        gmm.fit(x)
        chol = np.linalg.cholesky(gmm.covariances_)
        dev = self.weights.device
        self.weights.copy_(torch.as_tensor(gmm.weights_, dtype=torch.float32, device=dev))
        self.means.copy_(torch.as_tensor(gmm.means_, dtype=torch.float32, device=dev))
        self.scale_tril.copy_(torch.as_tensor(chol, dtype=torch.float32, device=dev))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` codes on the CPU, drawn from ``generator`` (component, then Gaussian noise)."""
        if not self.fitted:
            raise RuntimeError("the code density is not fitted: train the model first (the "
                               "training engine fits it in on_train_end) or load a checkpoint")
        weights, means, tril = self.weights.cpu(), self.means.cpu(), self.scale_tril.cpu()
        # the component by inverting the weights' CDF at a uniform draw: one draw per sample
        cdf = torch.cumsum(weights.double(), 0)
        u = noise_rand(n, generator=generator).double() * cdf[-1]
        k = torch.searchsorted(cdf, u, right=True).clamp_(max=len(weights) - 1)
        eps = noise_randn(n, self.dim, 1, generator=generator)
        return means[k] + (tril[k] @ eps).squeeze(-1)


class Autoencoder(GenerativeModel):
    """Base of the deterministic autoencoders: reconstruct, encode, decode and sample.

    Subclasses build ``self.encoder`` (data batch -> codes) and ``self.decoder`` (codes -> raw
    outputs, any shape with ``dim`` elements per item), then call :meth:`_finish`.
    """

    family = "autoencoder"

    def __init__(self, data_info: DataInfo, latent_dim: int | None, gmm_components: int,
                 gmm_reg_covar: float, undercomplete: bool):
        super().__init__()
        self.shape, self.dim, self.kind = data_info.shape, data_info.dim, data_info.kind
        if latent_dim is None:
            latent_dim = auto_latent_dim(self.dim)
        self.latent_dim = latent_dim
        if undercomplete and self.latent_dim >= self.dim:
            raise ConfigError(f"{registered_name(self)} is undercomplete: latent_dim must be "
                              f"smaller than the data dimension {self.dim}, got {self.latent_dim}")
        self.code_density = GaussianMixtureCodes(gmm_components, self.latent_dim,
                                                 float(gmm_reg_covar))

    def _finish(self, lr: float) -> None:
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr)

    # -- the network --------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code of each item, ``(N, latent_dim)``."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Data-space outputs for codes ``z``: sigmoid for images, linear for vectors."""
        out = self.decoder(z).reshape(-1, *self.shape)
        return torch.sigmoid(out) if self.kind == "image" else out

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    # -- training -----------------------------------------------------------------------
    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training losses on a clean batch; ``"loss"`` is the one minimised."""
        mse = F.mse_loss(self.reconstruct(x).float(), x)
        return {"loss": mse, "mse": mse}

    def train_step(self, batch: torch.Tensor, step: int) -> dict[str, float]:
        parts = self.losses(batch)
        self.optimizer_step(parts["loss"], self.optimizer)
        return {k: v.detach() for k, v in parts.items()}

    @torch.no_grad()
    def on_train_end(self, data: Dataset) -> None:
        """Fit the Gaussian mixture to the training codes (seeded with torch's initial seed)."""
        was_training = self.training
        self.eval()
        codes = torch.cat([self.encode(x.to(self.device)).float().cpu()
                           for x in iterate_items(data)])
        self.code_density.fit(codes, seed=torch.initial_seed() % 2**32)
        self.train(was_training)

    # -- sampling -----------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode codes drawn from the Gaussian mixture fitted to the training codes."""
        return self.decode(self.code_density.sample(n, generator).to(self.device))


def _mlp_encoder(dim: int, hidden: list[int], latent_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), mlp([dim, *hidden, latent_dim]))


class AE(Autoencoder):
    """Undercomplete MLP autoencoder with one hidden layer on each side of the code."""

    description = ("undercomplete autoencoder: MLP with one hidden layer (128 ReLU units) "
                   "each side of a smaller linear code, MSE loss" + _SAMPLING_NOTE)

    def __init__(self, data_info: DataInfo, latent_dim: Positive | None = None,
                 hidden: Positive = 128, lr: LearningRate = 1e-3,
                 gmm_components: GMMComponents = 10, gmm_reg_covar: RegCovar = 1e-6):
        """``latent_dim=None``: a quarter of the data dimension (1 to 32); must be smaller."""
        super().__init__(data_info, latent_dim, gmm_components, gmm_reg_covar, undercomplete=True)
        h = hidden
        self.encoder = _mlp_encoder(self.dim, [h], self.latent_dim)
        self.decoder = mlp([self.latent_dim, h, self.dim])
        self._finish(lr)


class DeepAE(Autoencoder):
    """Stacked (deep) undercomplete MLP autoencoder; the decoder mirrors the encoder."""

    description = ("stacked autoencoder: MLP encoder 256-128-64 ReLU units to a smaller "
                   "linear code, mirrored decoder, MSE loss" + _SAMPLING_NOTE)

    def __init__(self, data_info: DataInfo, latent_dim: Positive | None = None,
                 hidden: Annotated[tuple[Positive, ...], MinLen(2)] = (256, 128, 64),
                 lr: LearningRate = 1e-3, gmm_components: GMMComponents = 10,
                 gmm_reg_covar: RegCovar = 1e-6):
        """``hidden``: encoder layer widths, at least two (the decoder uses them reversed)."""
        super().__init__(data_info, latent_dim, gmm_components, gmm_reg_covar, undercomplete=True)
        sizes = widths(hidden)
        self.encoder = _mlp_encoder(self.dim, sizes, self.latent_dim)
        self.decoder = mlp([self.latent_dim, *reversed(sizes), self.dim])
        self._finish(lr)


class ConvAE(Autoencoder):
    """Convolutional autoencoder: stride-2 conv encoder, transposed-conv decoder, any size."""

    description = ("convolutional autoencoder: stride-2 conv encoder and transposed-conv "
                   "decoder that adapt to the image size, linear code, MSE loss" + _SAMPLING_NOTE)
    data_kinds = ("image",)

    def __init__(self, data_info: DataInfo, latent_dim: Positive | None = None,
                 channels: Positive = 32, max_channels: Positive = 256, lr: LearningRate = 1e-3,
                 gmm_components: GMMComponents = 10, gmm_reg_covar: RegCovar = 1e-6):
        """``channels`` at full resolution, doubling per halving up to ``max_channels``."""
        if data_info.kind != "image":
            raise ConfigError(f"conv-ae needs image data, got {data_info.kind} data "
                              f"{data_info.shape}; use ae or deep-ae")
        super().__init__(data_info, latent_dim, gmm_components, gmm_reg_covar, undercomplete=True)
        self.encoder = ConvEncoder(self.shape, self.latent_dim, channels, max_channels)
        self.decoder = ConvDecoder(self.latent_dim, self.shape, channels, max_channels)
        self._finish(lr)


class DenoisingAE(Autoencoder):
    """Denoising autoencoder (Vincent et al. 2008): clean reconstructions of corrupted inputs."""

    description = ("denoising autoencoder: MLP (128 ReLU units each side) trained to "
                   "reconstruct the clean input from a corrupted one (Gaussian noise or "
                   "masking noise)" + _SAMPLING_NOTE)

    def __init__(self, data_info: DataInfo, latent_dim: Positive | None = None,
                 hidden: Hidden = (128,), noise: Noise = "gaussian",
                 noise_level: Annotated[float, Gt(0)] = 0.3, lr: LearningRate = 1e-3,
                 gmm_components: GMMComponents = 10, gmm_reg_covar: RegCovar = 1e-6):
        """``noise="gaussian"``: add N(0, noise_level^2) to every element;
        ``noise="masking"``: set each element to 0 with probability ``noise_level``."""
        super().__init__(data_info, latent_dim, gmm_components, gmm_reg_covar,
                         undercomplete=False)
        if noise == "masking" and not noise_level < 1:
            raise ConfigError(f"denoising-ae: noise_level is a masking probability with "
                              f"noise='masking', so it must be below 1, got {noise_level!r}")
        self.noise, self.noise_level = noise, float(noise_level)
        sizes = widths(hidden)
        self.encoder = _mlp_encoder(self.dim, sizes, self.latent_dim)
        self.decoder = mlp([self.latent_dim, *reversed(sizes), self.dim])
        self._finish(lr)

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The training corruption applied to ``x``; noise from ``generator`` if given."""
        if self.noise == "gaussian":
            eps = (batch_randn(len(x), *x.shape[1:], device=x.device, dtype=x.dtype)
                   if generator is None
                   else torch.randn(x.shape, generator=generator).to(x.device, x.dtype))
            return x + self.noise_level * eps
        u = (batch_rand(len(x), *x.shape[1:], device=x.device, dtype=x.dtype) if generator is None
             else torch.rand(x.shape, generator=generator).to(x.device, x.dtype))
        return x * (u >= self.noise_level).to(x.dtype)

    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mse = F.mse_loss(self.reconstruct(self.corrupt(x)).float(), x)
        return {"loss": mse, "mse": mse}


class SparseAE(Autoencoder):
    """Sparse autoencoder: sigmoid code with an L1 or KL(target rate) activity penalty."""

    description = ("sparse autoencoder: MLP (128 ReLU units each side) with a sigmoid code "
                   "and a sparsity penalty, KL(target || mean activation) per unit or L1 "
                   "on the activations, MSE loss" + _SAMPLING_NOTE)

    def __init__(self, data_info: DataInfo, latent_dim: Positive | None = None,
                 hidden: Hidden = (128,), sparsity: Sparsity = "kl",
                 target: Annotated[float, Interval(gt=0, lt=1)] = 0.1,
                 sparsity_weight: Annotated[float, Ge(0)] | None = None,
                 lr: LearningRate = 3e-3, gmm_components: GMMComponents = 10,
                 gmm_reg_covar: RegCovar = 1e-6):
        """``latent_dim=None``: twice the other autoencoders' default (a sparse code can afford
        more units). ``target``: the mean activation rate the KL penalty aims for;
        ``sparsity_weight=None``: 0.01 for ``kl``, 1e-3 for ``l1``. The default ``lr`` is
        higher than the other autoencoders' because saturating sigmoid codes learn slowly."""
        if latent_dim is None:
            latent_dim = 2 * auto_latent_dim(data_info.dim)
        super().__init__(data_info, latent_dim, gmm_components, gmm_reg_covar,
                         undercomplete=False)
        if sparsity_weight is None:
            sparsity_weight = SPARSITY_WEIGHTS[sparsity]
        self.sparsity, self.target = sparsity, float(target)
        self.sparsity_weight = float(sparsity_weight)
        sizes = widths(hidden)
        self.encoder = nn.Sequential(_mlp_encoder(self.dim, sizes, self.latent_dim), nn.Sigmoid())
        self.decoder = mlp([self.latent_dim, *reversed(sizes), self.dim])
        self._finish(lr)

    def penalty(self, code: torch.Tensor) -> torch.Tensor:
        """The sparsity penalty of a batch of codes (before weighting)."""
        code = code.float()
        if self.sparsity == "l1":
            return code.abs().sum(1).mean()
        # Ng's sparse autoencoder: sum over units of KL(Bernoulli(rho) || Bernoulli(rho_hat)),
        # rho_hat a unit's mean activation over the batch (the global one when data-parallel).
        rho = self.target
        rho_hat = global_batch(code).mean(0).clamp(1e-6, 1 - 1e-6)
        kl = (rho * (math.log(rho) - rho_hat.log())
              + (1 - rho) * (math.log(1 - rho) - (1 - rho_hat).log()))
        return kl.sum()

    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        code = self.encode(x)
        mse = F.mse_loss(self.decode(code).float(), x)
        sparsity = self.penalty(code)
        return {"loss": mse + self.sparsity_weight * sparsity, "mse": mse, "sparsity": sparsity,
                "mean_activation": code.detach().float().mean()}


@hookimpl
def register_models(register):
    register("ae", AE)
    register("deep-ae", DeepAE)
    register("conv-ae", ConvAE)
    register("denoising-ae", DenoisingAE)
    register("sparse-ae", SparseAE)
