"""The generative adversarial network of Goodfellow et al. (2014) with MLP networks.

Defaults for vector data follow the PacGAN synthetic setup (Lin et al. 2018, the ring and
grid experiments, after VEEGAN's): latent z ~ N(0, I_2); generator with 4 hidden layers of
400 ReLU units with batch norm (bias-free, the batch norm shifts); discriminator with 3
maxout layers of 200 units and 5 pieces; weights N(0, 0.02), biases 0; Adam lr 1e-4,
beta1 0.8; batch 100 in the paper (the budget's ``batch_size``).

For images the layers are sized to the image, after Goodfellow et al.'s MNIST model (two
1200-unit ReLU layers in G, two maxout layers of 240 units x 5 pieces in D): G has two
layers of ``clamp(2 x pixels, 256, 1200)`` units, D two maxout layers of
``clamp(pixels / 2, 128, 240)`` units, latent 100; G ends in a tanh mapped to [0, 1].
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge
from torch import nn

from genbench import DataInfo

from ..layers import Betas, Hidden, LearningRate, Positive, widths
from .base import DPretrainSteps, DSteps, Loss, StandardGAN
from .stabilisers import Maxout, Stabilisers, init_normal


def default_sizes(info: DataInfo) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """``(latent_dim, g_hidden, d_hidden)`` for ``info`` (see the module docstring)."""
    if info.kind == "vector":
        return 2, (400,) * 4, (200,) * 3
    g = min(1200, max(256, 2 * info.dim))
    d = min(240, max(128, info.dim // 2))
    return 100, (g, g), (d, d)


def mlp_generator(latent_dim: int, hidden: list[int], shape: tuple[int, ...],
                  image: bool) -> nn.Sequential:
    """z -> Linear (no bias) + batch norm + ReLU per hidden layer -> Linear -> data shape
    (tanh for images)."""
    layers: list[nn.Module] = []
    width = latent_dim
    for h in hidden:
        layers += [nn.Linear(width, h, bias=False), nn.BatchNorm1d(h), nn.ReLU()]
        width = h
    dim = 1
    for s in shape:
        dim *= s
    layers += [nn.Linear(width, dim), *([nn.Tanh()] if image else []), nn.Unflatten(1, shape)]
    return nn.Sequential(*layers)


class GAN(StandardGAN):
    """MLP GAN: batch-normed ReLU generator, maxout discriminator."""

    description = ("GAN (Goodfellow et al. 2014): MLP generator (4x400 ReLU + batch norm, "
                   "latent 2 on 2-D data; sized to the image otherwise) and maxout "
                   "discriminator (3x200 units, 5 pieces), BCE with the non-saturating G loss "
                   "(or minimax); Adam 1e-4, beta1 0.8 (PacGAN's synthetic setup); "
                   "stabilisers: pack, minibatch_discrimination, experience_replay, "
                   "multiscale, spectral_norm, lr_d/lr_g, d_steps, d_pretrain_steps")

    def __init__(self, data_info: DataInfo, latent_dim: Positive | None = None,
                 g_hidden: Hidden | None = None, d_hidden: Hidden | None = None,
                 maxout_pieces: Annotated[int, Ge(2)] = 5, loss: Loss = "non-saturating",
                 lr_d: LearningRate = 1e-4, lr_g: LearningRate = 1e-4,
                 betas: Betas = (0.8, 0.999), d_steps: DSteps = 1,
                 d_pretrain_steps: DPretrainSteps = 0, stabilisers: Stabilisers = Stabilisers()):
        """``latent_dim``, ``g_hidden``, ``d_hidden``: None picks them from the data (2 /
        4x400 / 3x200 on vectors; see the module docstring for images). ``maxout_pieces``:
        pieces per maxout unit of D (a maxout unit takes the maximum of at least two)."""
        super().__init__()
        auto_latent, auto_g, auto_d = default_sizes(data_info)
        self._setup(data_info, auto_latent if latent_dim is None else latent_dim, stabilisers,
                    d_steps=d_steps, d_pretrain_steps=d_pretrain_steps)
        self._set_loss(loss)
        self.g_hidden = widths(auto_g if g_hidden is None else g_hidden)
        self.d_hidden = widths(auto_d if d_hidden is None else d_hidden)
        self.pieces = maxout_pieces
        self.generator = mlp_generator(self.latent_dim, self.g_hidden, self.shape,
                                       self.kind == "image")
        self._finish(lr_d, lr_g, betas)

    def build_trunk(self, in_shape):
        width = 1
        for s in in_shape:
            width *= s
        layers: list[nn.Module] = [nn.Flatten()]
        for h in self.d_hidden:
            layers.append(Maxout(width, h, self.pieces))
            width = h
        return nn.Sequential(*layers), width

    def init_weights(self, module):
        init_normal(module, 0.02)
