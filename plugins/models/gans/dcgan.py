"""DCGAN (Radford, Metz & Chintala, 2016) for any image size.

The paper's architecture guidelines: strided convolutions in D and fractionally-strided
(transposed) convolutions in G instead of pooling; batch norm in both, except G's output
and D's input layers; ReLU in G with a tanh output; LeakyReLU(0.2) in D; no hidden fully
connected layers (G's first layer projects z to the smallest feature map, D's last judges
the whole smallest map, a full-size convolution written as a linear layer); weights
N(0, 0.02); Adam lr 2e-4, beta1 0.5; latent 100.

The number of stages comes from the image size (:func:`dcgan_plan`, after
:func:`genbench_plugins.models.layers.conv_plan`): sides are halved, rounding up, until a
side reaches 4 (the paper's 4x4 projection), with at least two stages for small images
(8x8 digits go 8 -> 4 -> 2: with a single stage, G is one hidden layer deep and its FID on
digits at 3,000 steps was 40 against 7.4 with two). Even sides use the paper's 4x4 kernels
(stride 2, padding 1) and odd sides 3x3 kernels, which map ``n <-> (n + 1) / 2`` exactly,
so 28x28 goes 28 -> 14 -> 7 -> 4 with no padding or cropping of the data. Widths double per
halving from ``channels`` at full resolution up to ``max_channels``: at 64x64 that is the
paper's 64-128-256-512 D and 512-256-128-64 G (as in the PyTorch example).
"""

from __future__ import annotations

from torch import nn

from genbench import ConfigError, DataInfo, registered_name

from ..layers import Betas, LearningRate, Positive, _kernel, conv_plan
from .base import DPretrainSteps, DSteps, Loss, StandardGAN
from .stabilisers import Stabilisers, init_normal


def dcgan_plan(height: int, width: int) -> list[tuple[int, int]]:
    """Spatial sizes from the image down to the smallest map: halve until a side reaches 4,
    keeping at least two stages where the image allows (8 -> 4 -> 2)."""
    if min(height, width) < 2:
        raise ConfigError(f"dcgan needs images of at least 2x2 pixels, got {height}x{width}")
    return conv_plan(height, width, max(1, min(4, min(height, width) // 4)))


def stage_widths(stages: int, channels: int, max_channels: int) -> list[int]:
    """Feature maps per stage: ``channels`` doubling per stage, capped at ``max_channels``."""
    if max_channels < channels:
        raise ConfigError(f"need channels <= max_channels, got channels={channels}, "
                          f"max_channels={max_channels}")
    return [min(channels * 2**i, max_channels) for i in range(stages)]


def _k(size: tuple[int, int]) -> tuple[int, int]:
    return _kernel(size[0]), _kernel(size[1])


def conv_generator(latent_dim: int, shape: tuple[int, ...], channels: int,
                   max_channels: int) -> nn.Sequential:
    """z -> image in [-1, 1]: a full-size transposed convolution projects z to the smallest
    map, then one stride-2 transposed convolution per stage (batch norm + ReLU between),
    tanh output."""
    c, h, w = shape
    plan = dcgan_plan(h, w)
    widths = stage_widths(len(plan) - 1, channels, max_channels)
    layers: list[nn.Module] = [
        nn.Unflatten(1, (latent_dim, 1, 1)),
        nn.ConvTranspose2d(latent_dim, widths[-1], plan[-1], bias=False),
        nn.BatchNorm2d(widths[-1]), nn.ReLU()]
    for i in reversed(range(1, len(plan) - 1)):  # up from plan[i + 1] to plan[i]
        layers += [nn.ConvTranspose2d(widths[i], widths[i - 1], _k(plan[i]), 2, 1, bias=False),
                   nn.BatchNorm2d(widths[i - 1]), nn.ReLU()]
    layers += [nn.ConvTranspose2d(widths[0], c, _k(plan[0]), 2, 1), nn.Tanh()]
    return nn.Sequential(*layers)


def conv_trunk(in_shape: tuple[int, ...], channels: int, max_channels: int,
               batch_norm: bool) -> tuple[nn.Sequential, int]:
    """D's convolutional body: one stride-2 convolution per stage with LeakyReLU(0.2) (batch
    norm after every one but the first when ``batch_norm``), flattened. Returns it and its
    number of features (the smallest map's size)."""
    c, h, w = in_shape
    plan = dcgan_plan(h, w)
    widths = stage_widths(len(plan) - 1, channels, max_channels)
    layers: list[nn.Module] = [nn.Conv2d(c, widths[0], _k(plan[0]), 2, 1),
                               nn.LeakyReLU(0.2)]
    for i in range(1, len(plan) - 1):
        norm = [nn.BatchNorm2d(widths[i])] if batch_norm else []
        layers += [nn.Conv2d(widths[i - 1], widths[i], _k(plan[i]), 2, 1, bias=not batch_norm),
                   *norm, nn.LeakyReLU(0.2)]
    layers.append(nn.Flatten())
    top_h, top_w = plan[-1]
    return nn.Sequential(*layers), widths[-1] * top_h * top_w


def check_channels(label: str, channels: int, max_channels: int) -> None:
    """A :class:`ConfigError` naming ``label`` unless ``channels <= max_channels``."""
    if max_channels < channels:
        raise ConfigError(f"{label}: max_channels ({max_channels}) must be at least channels "
                          f"({channels})")


class DCGAN(StandardGAN):
    """Deep convolutional GAN; the stages adapt to the image size."""

    description = ("DCGAN (Radford et al. 2016): strided-conv D with LeakyReLU(0.2), "
                   "transposed-conv G with ReLU and tanh, batch norm (not on G's output or "
                   "D's input), stages computed from the image size (8, 28, 32, 64 px...), "
                   "latent 100, Adam 2e-4 beta1 0.5; same stabiliser options as gan")
    data_kinds = ("image",)

    def __init__(self, data_info: DataInfo, latent_dim: Positive = 100, channels: Positive = 64,
                 max_channels: Positive = 512, loss: Loss = "non-saturating",
                 lr_d: LearningRate = 2e-4, lr_g: LearningRate = 2e-4,
                 betas: Betas = (0.5, 0.999), d_steps: DSteps = 1,
                 d_pretrain_steps: DPretrainSteps = 0, stabilisers: Stabilisers = Stabilisers()):
        """``channels``: feature maps at the first stage (G's last), doubling per stage up to
        ``max_channels``. With ``spectral_norm`` D has no batch norm (Miyato et al.'s SN
        discriminators have none: it would rescale what the normalisation bounds)."""
        super().__init__()
        if data_info.kind != "image":
            raise ConfigError(f"dcgan needs image data, got {data_info.kind} data "
                              f"{tuple(data_info.shape)}; use gan or wgan-gp")
        self._setup(data_info, latent_dim, stabilisers, d_steps=d_steps,
                    d_pretrain_steps=d_pretrain_steps)
        self._set_loss(loss)
        check_channels(registered_name(self), channels, max_channels)
        self.channels, self.max_channels = channels, max_channels
        self.generator = conv_generator(self.latent_dim, self.shape, channels, max_channels)
        self._finish(lr_d, lr_g, betas)

    def build_trunk(self, in_shape):
        return conv_trunk(in_shape, self.channels, self.max_channels,
                          batch_norm=not self.stab.spectral_norm)

    def init_weights(self, module):
        init_normal(module, 0.02)
