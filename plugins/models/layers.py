"""Building blocks shared by several model families: an MLP, a size-adapting conv pair and
the declared types of their sizes.

:class:`ConvEncoder` and :class:`ConvDecoder` take any image shape ``(C, H, W)``: the encoder
halves the spatial size (rounding up) with stride-2 convolutions until a side reaches
``min_size``, and the decoder retraces exactly the same sizes with transposed convolutions,
so 8x8, 28x28, 32x32 and 64x64 inputs (or non-square ones) need no hand-editing.
"""

from __future__ import annotations

from typing import Annotated, Callable

from annotated_types import Ge, Gt, Interval, MinLen
from torch import nn

from genbench import ConfigError

NORMS = ("none", "batch")

# -- declared parameter types (see genbench.registry.parameters) ----------------------------
#: A count that must be at least one: a width, a latent dimension, a number of layers.
Positive = Annotated[int, Ge(1)]
#: Hidden layer widths: a non-empty tuple of widths, or one width for a single layer.
Hidden = Positive | Annotated[tuple[Positive, ...], MinLen(1)]
#: A learning rate.
LearningRate = Annotated[float, Gt(0)]
#: Adam's ``(beta1, beta2)``.
Betas = tuple[Annotated[float, Interval(ge=0, lt=1)], Annotated[float, Interval(ge=0, lt=1)]]


def widths(hidden: int | tuple[int, ...]) -> list[int]:
    """Hidden layer widths as a list (one int is one layer)."""
    return [hidden] if isinstance(hidden, int) else list(hidden)


def mlp(sizes: list[int], activation: Callable[[], nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers of the given sizes with ``activation`` between them (none at the end)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def conv_plan(height: int, width: int, min_size: int = 4) -> list[tuple[int, int]]:
    """Spatial sizes from the input down: halve (rounding up) while both sides exceed ``min_size``.

    ``conv_plan(28, 28) == [(28, 28), (14, 14), (7, 7), (4, 4)]``.
    """
    if min_size < 1:
        raise ConfigError(f"min_size must be at least 1, got {min_size}")
    sizes = [(height, width)]
    while min(height, width) > min_size:
        height, width = (height + 1) // 2, (width + 1) // 2
        sizes.append((height, width))
    return sizes


def conv_widths(levels: int, channels: int, max_channels: int) -> list[int]:
    """Channel count at each resolution of a plan: ``channels`` doubling per level, capped."""
    if channels < 1 or max_channels < channels:
        raise ConfigError(f"need 1 <= channels <= max_channels, got channels={channels}, "
                          f"max_channels={max_channels}")
    return [min(channels * 2**i, max_channels) for i in range(levels + 1)]


def _kernel(size: int) -> int:
    # With stride 2 and padding 1: kernel 4 maps an even side n <-> n/2 exactly, kernel 3 maps
    # an odd side n <-> (n + 1)/2 exactly, in both directions (conv and transposed conv).
    return 4 if size % 2 == 0 else 3


def _norm(kind: str, channels: int) -> list[nn.Module]:
    if kind not in NORMS:
        raise ConfigError(f"norm must be one of {', '.join(NORMS)}, got {kind!r}")
    return [nn.BatchNorm2d(channels)] if kind == "batch" else []


def _check_image_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ConfigError(f"conv layers need an image shape (C, H, W), got {tuple(shape)}; "
                          "use an MLP model for vector data")
    c, h, w = (int(s) for s in shape)
    return c, h, w


class ConvEncoder(nn.Module):
    """Image ``(N, C, H, W)`` -> ``(N, out_features)``.

    A 3x3 stem convolution, one stride-2 convolution per level of :func:`conv_plan` (each
    followed by ``norm`` and ``activation``), then a linear layer from the flattened map.
    """

    def __init__(self, in_shape: tuple[int, ...], out_features: int, channels: int = 32,
                 max_channels: int = 256, min_size: int = 4, norm: str = "none",
                 activation: Callable[[], nn.Module] = nn.ReLU):
        super().__init__()
        c, h, w = _check_image_shape(in_shape)
        plan = conv_plan(h, w, min_size)
        widths = conv_widths(len(plan) - 1, channels, max_channels)
        layers: list[nn.Module] = [nn.Conv2d(c, widths[0], 3, padding=1), activation()]
        for i, (hi, wi) in enumerate(plan[:-1]):
            layers += [nn.Conv2d(widths[i], widths[i + 1], (_kernel(hi), _kernel(wi)),
                                 stride=2, padding=1),
                       *_norm(norm, widths[i + 1]), activation()]
        layers += [nn.Flatten(), nn.Linear(widths[-1] * plan[-1][0] * plan[-1][1], out_features)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class ConvDecoder(nn.Module):
    """``(N, in_features)`` -> image ``(N, C, H, W)`` (raw outputs; the caller picks the link).

    Mirrors :class:`ConvEncoder` with the same arguments: a linear layer to the smallest map,
    one stride-2 transposed convolution per level back up the same sizes, and a 3x3 head.
    """

    def __init__(self, in_features: int, out_shape: tuple[int, ...], channels: int = 32,
                 max_channels: int = 256, min_size: int = 4, norm: str = "none",
                 activation: Callable[[], nn.Module] = nn.ReLU):
        super().__init__()
        c, h, w = _check_image_shape(out_shape)
        plan = conv_plan(h, w, min_size)
        widths = conv_widths(len(plan) - 1, channels, max_channels)
        top_h, top_w = plan[-1]
        layers: list[nn.Module] = [nn.Linear(in_features, widths[-1] * top_h * top_w),
                                   activation(), nn.Unflatten(1, (widths[-1], top_h, top_w))]
        for i in reversed(range(len(plan) - 1)):
            hi, wi = plan[i]
            layers += [nn.ConvTranspose2d(widths[i + 1], widths[i], (_kernel(hi), _kernel(wi)),
                                          stride=2, padding=1),
                       *_norm(norm, widths[i]), activation()]
        layers.append(nn.Conv2d(widths[0], c, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z)
