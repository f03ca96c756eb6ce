"""Reconstruction error on the test split: MSE, PSNR and (images) SSIM."""

from __future__ import annotations

import math

import numpy as np
import torch

from genbench import (CountNeed, EvalContext, Headline, KeyPresentation, Metric, MetricResult,
                      hookimpl)


def psnr(mse: float, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB for a mean squared error over values in ``data_range``."""
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def mean_ssim(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean SSIM (Wang et al. 2004) over images (N, C, H, W) in [0, 1], via scikit-image."""
    from skimage.metrics import structural_similarity

    a = x.permute(0, 2, 3, 1).numpy().astype(np.float64)
    b = y.permute(0, 2, 3, 1).numpy().astype(np.float64)
    win = min(7, a.shape[1], a.shape[2])
    win -= (win + 1) % 2  # scikit-image needs an odd window no larger than the image
    scores = [structural_similarity(p, q, data_range=1.0, channel_axis=2, win_size=win)
              for p, q in zip(a, b)]
    return float(np.mean(scores))


class Reconstruction(Metric):
    """Reconstruct the test split and compare with it."""

    description = ("test-split reconstruction: MSE (per element), PSNR (dB, from the split's "
                   "MSE) and mean SSIM for images (scikit-image, uniform 7x7 window, smaller "
                   "for images under 7 pixels)")
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
        values = {"mse": mse}
        if ctx.data_info.kind == "image":
            values["psnr"] = psnr(mse, 1.0)
            values["ssim"] = mean_ssim(r, x)
        return MetricResult(values, {"n_test": len(x)})


@hookimpl
def register_metrics(register):
    register("recon", Reconstruction)
