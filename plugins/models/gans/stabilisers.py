"""The stabilisers of the GAN literature as small, separately testable pieces.

Every GAN of the family accepts the same options (:class:`Stabilisers`), each off by default:

* ``minibatch_discrimination`` (Salimans et al. 2016, "Improved techniques for training
  GANs", sec. 3.2): :class:`MinibatchDiscrimination`, a layer before D's last that lets D
  compare each sample with the rest of its minibatch;
* ``experience_replay`` (Shrivastava et al. 2017, "SimGAN", sec. 2.3): :class:`ReplayBuffer`,
  past generated samples mixed into D's fake batches (``replay_size``, ``replay_rate``);
* ``pack`` (Lin et al. 2018, PacGAN): :func:`pack`, D judges ``m`` samples jointly;
* ``multiscale``: D also judges the image at lower resolutions (:func:`pyramid`, factor-2
  average pooling), one discriminator per scale, judgements averaged in the loss
  (as the multi-scale discriminators of Wang et al. 2018, pix2pixHD, and Karras et al.'s
  multi-resolution critics);
* ``spectral_norm`` (Miyato et al. 2018): :func:`apply_spectral_norm` on D's layers.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Annotated

import torch
from annotated_types import Ge, Interval
from torch import nn
from torch.nn import functional as F

from genbench import ConfigError, DataInfo

#: The smallest side a multiscale discriminator may see.
MIN_SCALE_SIZE = 2


@dataclass(frozen=True)
class Stabilisers:
    """The stabiliser options every GAN takes, declared once: one group of hyper-parameters
    (flat keys in a spec, ``pack = 2``; one instance in Python,
    ``GAN(info, stabilisers=Stabilisers(pack=2))``). :meth:`check` relates them to the
    data."""

    pack: Annotated[int, Ge(1)] = 1
    minibatch_discrimination: bool = False
    minibatch_kernels: Annotated[int, Ge(1)] = 50
    minibatch_kernel_dim: Annotated[int, Ge(1)] = 5
    experience_replay: bool = False
    replay_size: Annotated[int, Ge(1)] = 1000
    #: The fraction of D's fake batch drawn from the replay buffer.
    replay_rate: Annotated[float, Interval(ge=0, le=1)] = 0.5
    multiscale: Annotated[int, Ge(1)] = 1
    spectral_norm: bool = False

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def check(self, model: str, info: DataInfo) -> "Stabilisers":
        """``self`` if ``multiscale`` suits ``info`` (image data with enough pixels for
        every scale); else a :class:`ConfigError` naming ``model``."""
        if self.multiscale > 1:
            if info.kind != "image":
                raise ConfigError(
                    f"{model}: multiscale={self.multiscale} judges images at lower resolutions; "
                    f"{info.name!r} is {info.kind} data of shape {tuple(info.shape)}, which has "
                    "no resolution to lower: leave multiscale at 1")
            smallest = pyramid_shapes(info.shape, self.multiscale)[-1]
            if min(smallest[1:]) < MIN_SCALE_SIZE:
                most = len(pyramid_shapes(info.shape, 64, MIN_SCALE_SIZE))
                raise ConfigError(
                    f"{model}: multiscale={self.multiscale} would shrink {info.shape[1]}x"
                    f"{info.shape[2]} images to {smallest[1]}x{smallest[2]}; at most {most} "
                    f"scales keep a side of {MIN_SCALE_SIZE} pixels or more")
        return self


# -- packing -----------------------------------------------------------------------------

def pack(x: torch.Tensor, m: int) -> torch.Tensor:
    """Group consecutive samples by ``m``: ``(N, C, H, W) -> (N/m, m*C, H, W)`` (images are
    stacked along channels) and ``(N, D) -> (N/m, m*D)`` (vectors concatenated), as PacGAN's
    discriminator input. ``N`` must be a multiple of ``m``."""
    if m == 1:
        return x
    n = x.shape[0]
    if n % m:
        raise ValueError(f"cannot pack {n} samples in groups of {m}")
    return x.reshape(n // m, m * x.shape[1], *x.shape[2:])


def packed_shape(shape: tuple[int, ...], m: int) -> tuple[int, ...]:
    """The shape of one packed item: the first axis (channels or features) times ``m``."""
    return (shape[0] * m, *shape[1:])


# -- multiscale --------------------------------------------------------------------------

def downsample(x: torch.Tensor) -> torch.Tensor:
    """Factor-2 average pooling; an odd side is rounded up (its edge averages what is there)."""
    return F.avg_pool2d(x, 2, ceil_mode=True)


def pyramid(x: torch.Tensor, scales: int) -> list[torch.Tensor]:
    """``x`` and ``scales - 1`` successively halved copies (full resolution first)."""
    out = [x]
    for _ in range(scales - 1):
        out.append(downsample(out[-1]))
    return out


def pyramid_shapes(shape: tuple[int, ...], scales: int,
                   min_size: int = 1) -> list[tuple[int, int, int]]:
    """The image shapes :func:`pyramid` produces (stopping early below ``min_size``)."""
    c, h, w = shape
    out = [(c, h, w)]
    while len(out) < scales:
        h, w = (h + 1) // 2, (w + 1) // 2
        if min(h, w) < min_size:
            break
        out.append((c, h, w))
    return out


# -- minibatch discrimination ---------------------------------------------------------------

class MinibatchDiscrimination(nn.Module):
    """Salimans et al. (2016), sec. 3.2. Features ``f(x_i)`` in R^A are multiplied by a tensor
    T in R^(A x B x C) into rows ``M_i`` in R^(B x C); for each kernel b,
    ``c_b(x_i, x_j) = exp(-||M_i,b - M_j,b||_1)`` and ``o(x_i)_b = sum_j c_b(x_i, x_j)`` over
    the minibatch (j = i included, as in the paper). Output: ``[f(x_i), o(x_i)]``, A + B
    features. T is a bias-free linear layer, so spectral norm applies to it too; it starts
    N(0, 0.05), as in Salimans et al.'s code, and the GAN models keep that (their own
    initialisation skips T)."""

    def __init__(self, in_features: int, kernels: int, kernel_dim: int):
        super().__init__()
        self.kernels, self.kernel_dim = kernels, kernel_dim
        self.T = nn.Linear(in_features, kernels * kernel_dim, bias=False)
        nn.init.normal_(self.T.weight, 0.0, 0.05)

    @property
    def out_features(self) -> int:
        return self.T.in_features + self.kernels

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        m = self.T(f).reshape(-1, self.kernels, self.kernel_dim)
        l1 = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(-1)  # (N, N, B)
        o = torch.exp(-l1).sum(1)
        return torch.cat([f, o], dim=1)


# -- experience replay -----------------------------------------------------------------------

class ReplayBuffer(nn.Module):
    """Past generated samples (Shrivastava et al. 2017). :meth:`mix` replaces a fraction
    ``rate`` of a fake batch by samples drawn from the buffer; :meth:`push` stores new ones:
    it fills the buffer first, then overwrites random slots with as many new samples as a
    batch takes from the buffer (SimGAN: half a batch in, half out).

    The samples and the fill count are persistent buffers, so a checkpoint restores them."""

    def __init__(self, size: int, shape: tuple[int, ...], rate: float):
        super().__init__()
        self.size, self.rate = size, float(rate)
        self.register_buffer("items", torch.zeros(size, *shape))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    def replayed(self, n: int) -> int:
        """How many of a fake batch of ``n`` come from the buffer now."""
        return min(round(self.rate * n), int(self.filled))

    def mix(self, fake: torch.Tensor) -> torch.Tensor:
        """``fake`` with its first :meth:`replayed` rows replaced by random buffer entries."""
        k = self.replayed(len(fake))
        if k == 0:
            return fake
        idx = torch.randint(int(self.filled), (k,), device=self.items.device)
        return torch.cat([self.items[idx].to(fake.dtype), fake[k:]])

    @torch.no_grad()
    def push(self, fake: torch.Tensor) -> None:
        """Store rows of ``fake``; rows holding NaN or infinity (a mixed-precision step that
        overflowed, which the gradient scaler skips) are dropped, never replayed."""
        fake = fake.detach().to(self.items.dtype)
        fake = fake[torch.isfinite(fake.flatten(1)).all(1)]
        filled = int(self.filled)
        free = self.size - filled
        if free > 0:
            new = fake[:free]
            self.items[filled:filled + len(new)] = new
            self.filled += len(new)
            return
        k = min(round(self.rate * len(fake)), self.size)
        if k:
            slots = torch.randperm(self.size, device=self.items.device)[:k]
            self.items[slots] = fake[:k]


# -- spectral norm ---------------------------------------------------------------------------

_NORMALISED = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) on every linear and convolution layer of
    ``module``: each weight is divided by its largest singular value, estimated by one power
    iteration per training forward pass (torch's parametrization)."""
    for layer in list(module.modules()):
        if isinstance(layer, _NORMALISED):
            nn.utils.parametrizations.spectral_norm(layer)
    return module


def normalised_layers(module: nn.Module) -> list[nn.Module]:
    """The layers of ``module`` that carry a spectral-norm parametrization."""
    return [m for m in module.modules() if isinstance(m, _NORMALISED)
            and nn.utils.parametrize.is_parametrized(m, "weight")]


def init_normal(module: nn.Module, std: float = 0.02) -> nn.Module:
    """The DCGAN / PacGAN initialisation: weights N(0, std), biases 0, batch-norm scales
    N(1, std)."""
    for m in module.modules():
        if isinstance(m, _NORMALISED):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module


class Maxout(nn.Module):
    """A maxout layer (Goodfellow et al. 2013): ``pieces`` affine maps, the maximum of each
    unit's pieces."""

    def __init__(self, in_features: int, out_features: int, pieces: int):
        super().__init__()
        self.out_features, self.pieces = out_features, pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).reshape(-1, self.out_features, self.pieces).amax(-1)
