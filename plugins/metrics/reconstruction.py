"""Reconstruction error on the test split: MSE, PSNR and (images) SSIM.

SSIM is Wang et al. (2004, "Image Quality Assessment: From Error Visibility to Structural
Similarity", Sec. III-C) as they define it: local means, variances and covariance under an
11 x 11 circular Gaussian window of standard deviation 1.5 pixels (normalised to unit sum;
population moments), ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2`` with ``L = 1``, averaged over
the windows that lie inside the image, then over channels and images (no downsampling of
large images). Computed by scikit-image with those settings.

Images under 11 pixels on a side (the 8 x 8 digits) cannot hold that window. The fallback
(:func:`ssim_window`) keeps its shape: the largest odd square window that fits, its standard
deviation scaled alike, ``1.5 * size / 11`` (7 x 7, sigma 0.9545 on 8 x 8 images). Such
values are not comparable with published SSIM; ``details["ssim_window"]`` names the window
used.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from genbench import (CountNeed, EvalContext, Headline, KeyPresentation, Metric, MetricResult,
                      hookimpl)


def psnr(mse: float, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB for a mean squared error over values in ``data_range``."""
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


#: Wang et al.'s SSIM window: 11 x 11 Gaussian weights of standard deviation 1.5 pixels.
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5


def ssim_window(height: int, width: int) -> tuple[int, float, str]:
    """``(size, sigma, name)`` of the Gaussian SSIM window for ``height`` x ``width`` images:
    Wang et al.'s 11 x 11, sigma 1.5 where it fits, else the largest odd size that fits with
    sigma ``1.5 * size / 11`` (a named fallback)."""
    size = min(SSIM_WINDOW, height, width)
    size -= (size + 1) % 2
    if size == SSIM_WINDOW:
        return size, SSIM_SIGMA, f"gaussian {size}x{size} sigma {SSIM_SIGMA:g} (Wang et al. 2004)"
    sigma = SSIM_SIGMA * size / SSIM_WINDOW
    return size, sigma, (f"gaussian {size}x{size} sigma {sigma:.4g} (fallback: images under "
                         f"{SSIM_WINDOW} pixels; sigma = 1.5 * {size} / {SSIM_WINDOW})")


def mean_ssim(x: torch.Tensor, y: torch.Tensor) -> tuple[float, str]:
    """Mean SSIM (Wang et al. 2004) over images (N, C, H, W) in [0, 1] with the Gaussian
    window of :func:`ssim_window`, via scikit-image; and that window's name."""
    from skimage.metrics import structural_similarity

    a = x.permute(0, 2, 3, 1).numpy().astype(np.float64)
    b = y.permute(0, 2, 3, 1).numpy().astype(np.float64)
    size, sigma, name = ssim_window(a.shape[1], a.shape[2])
    # scikit-image filters with radius int(3.5 sigma + 0.5), which is (size - 1) / 2 here
    scores = [structural_similarity(p, q, data_range=1.0, channel_axis=2, win_size=size,
                                    gaussian_weights=True, sigma=sigma,
                                    use_sample_covariance=False)
              for p, q in zip(a, b)]
    return float(np.mean(scores)), name


class Reconstruction(Metric):
    """Reconstruct the test split and compare with it."""

    description = ("test-split reconstruction: MSE (per element), PSNR (dB, from the split's "
                   "MSE) and mean SSIM for images (Wang et al. 2004: Gaussian 11x11 window, "
                   "sigma 1.5; a smaller Gaussian window, named in the details, for images "
                   "under 11 pixels)")
    requires = ("reconstruct",)
    higher_is_better = {"mse": False, "psnr": True, "ssim": True}
    primary = "mse"
    nonfinite_ok = frozenset({"psnr"})  # infinite for a perfect reconstruction (MSE 0)
    presentation = {"mse": KeyPresentation("recon MSE", (Headline(80),))}

    def count_needs(self) -> tuple[CountNeed, ...]:
        return (CountNeed("test", 1, why="an average over the test split"),)

    def compute(self, ctx: EvalContext) -> MetricResult:
        x = ctx.test[0]
        r = ctx.reconstructions
        if ctx.data_info.kind == "image":
            r = r.clamp(0.0, 1.0)
        mse = torch.mean((r.double() - x.double()) ** 2).item()
        values, details = {"mse": mse}, {"n_test": len(x)}
        if ctx.data_info.kind == "image":
            values["psnr"] = psnr(mse, 1.0)
            values["ssim"], details["ssim_window"] = mean_ssim(r, x)
        return MetricResult(values, details)


@hookimpl
def register_metrics(register):
    register("recon", Reconstruction)
