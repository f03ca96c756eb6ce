"""Noise-prediction networks eps_theta(x_t, t): a small U-Net for images, an MLP for vectors.

Both take the noisy batch and the integer training timesteps ``t`` (shape ``(B,)``) and
return a tensor shaped like the batch. The timestep enters through the sinusoidal embedding
of Vaswani et al. 2017 as used by Ho et al. 2020, followed by a two-layer MLP.

The U-Net follows Ho et al. 2020 (appendix B) at a smaller scale: a 3x3 input convolution;
per resolution ``num_res_blocks`` residual blocks (group norm, SiLU, 3x3 convolutions, the
time embedding added in between, dropout) and a stride-2 downsampling; a middle of
residual block, single-head self-attention and residual block at the lowest resolution;
the mirror image upwards with skip connections concatenated; group norm, SiLU and a 3x3
output convolution initialised to zero. Resolutions halve (rounding up) while both sides
exceed 4, so 8x8 has two levels (8, 4), 28x28 and 32x32 four, 64x64 five; odd sizes are
undone exactly by upsampling to the skip connection's size.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..layers import conv_plan, conv_widths


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of timesteps ``t`` (``(B,)``): ``(B, dim)``, sines then cosines
    at frequencies ``max_period ** (-i / (dim / 2))``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device,
                                                           dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of width ``dim`` followed by Linear-SiLU-Linear to ``out_dim``."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.dim))


def group_norm(channels: int) -> nn.GroupNorm:
    """Group norm with the most groups (up to 32, as in Ho et al.) of at least 4 channels."""
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0 and channels >= 4 * g
                  or g == 1)
    return nn.GroupNorm(groups, channels)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """Pre-activation residual block conditioned on the time embedding (added per channel)."""

    def __init__(self, in_ch: int, out_ch: int, temb_dim: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = group_norm(in_ch), nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.temb = nn.Linear(temb_dim, out_ch)
        self.norm2 = group_norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Single-head self-attention over the spatial positions, with a residual connection."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        attended = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.out(attended.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """The noise-prediction U-Net for images of shape ``(C, H, W)``.

    ``channels`` at full resolution, doubling per level up to ``max_channels``;
    ``attention`` puts self-attention in the middle block (the lowest resolution).
    """

    def __init__(self, shape: tuple[int, int, int], channels: int = 32, max_channels: int = 128,
                 num_res_blocks: int = 1, attention: bool = True, dropout: float = 0.0):
        super().__init__()
        in_ch, height, width = shape
        sizes = conv_plan(height, width, min_size=4)
        widths = conv_widths(len(sizes) - 1, channels, max_channels)
        temb_dim = 4 * channels
        self.time = TimeEmbedding(channels, temb_dim)
        self.conv_in = nn.Conv2d(in_ch, channels, 3, padding=1)

        self.down = nn.ModuleList()
        skips, ch = [channels], channels
        for level, width_ in enumerate(widths):
            for _ in range(num_res_blocks):
                self.down.append(ResBlock(ch, width_, temb_dim, dropout))
                ch = width_
                skips.append(ch)
            if level < len(widths) - 1:
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)

        self.mid = nn.ModuleList([ResBlock(ch, ch, temb_dim, dropout),
                                  SelfAttention(ch) if attention else nn.Identity(),
                                  ResBlock(ch, ch, temb_dim, dropout)])

        self.up = nn.ModuleList()
        for level in reversed(range(len(widths))):
            for _ in range(num_res_blocks + 1):
                self.up.append(ResBlock(ch + skips.pop(), widths[level], temb_dim, dropout))
                ch = widths[level]
            if level > 0:
                self.up.append(nn.Conv2d(ch, ch, 3, padding=1))  # after a nearest upsampling

        self.norm_out = group_norm(ch)
        self.conv_out = _zero(nn.Conv2d(ch, in_ch, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.time(t)
        h = self.conv_in(x)
        hs = [h]
        for layer in self.down:
            h = layer(h, temb) if isinstance(layer, ResBlock) else layer(h)
            hs.append(h)
        for layer in self.mid:
            h = layer(h, temb) if isinstance(layer, ResBlock) else layer(h)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, hs.pop()], dim=1), temb)
            else:  # upsample to the size of the next skip connection, then convolve
                h = layer(F.interpolate(h, size=hs[-1].shape[-2:], mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


class MLPBlock(nn.Module):
    """Residual MLP block: LayerNorm, SiLU, Linear (+ time embedding), SiLU, Linear."""

    def __init__(self, width: int, temb_dim: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1, self.temb = nn.Linear(width, width), nn.Linear(temb_dim, width)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = _zero(nn.Linear(width, width))

    def forward(self, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        z = self.fc1(F.silu(self.norm(h))) + self.temb(F.silu(temb))
        return h + self.fc2(self.dropout(F.silu(z)))


class MLPDenoiser(nn.Module):
    """Noise prediction for vectors ``(B, D)``: input layer, ``depth`` residual blocks of
    width ``hidden`` conditioned on the time embedding, output layer."""

    def __init__(self, dim: int, hidden: int = 256, depth: int = 3, dropout: float = 0.0):
        super().__init__()
        self.time = TimeEmbedding(hidden, hidden)
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList([MLPBlock(hidden, hidden, dropout) for _ in range(depth)])
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.time(t)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, temb)
        return self.out(F.silu(self.norm(h)))
