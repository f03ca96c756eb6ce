"""Pictures of samples: image grids and 2-D scatter plots."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from genbench.api.data import DataInfo


def save_sample_grid(samples: torch.Tensor, info: DataInfo, path: str | Path,
                     reference: torch.Tensor | None = None, max_items: int = 64) -> Path | None:
    """Write a PNG of samples: a grid for images, a scatter (over ``reference``) for 2-D
    vectors. Returns the path, or None when the data has no natural picture."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if info.kind == "image":
        from torchvision.utils import save_image

        items = samples[:max_items].float().clamp(0, 1)
        nrow = max(1, int(round(len(items) ** 0.5)))
        scale = max(1, 64 // max(info.shape[1:]))  # tiny images are upscaled to be seen
        if scale > 1:
            items = torch.nn.functional.interpolate(items, scale_factor=scale, mode="nearest")
        save_image(items, path, nrow=nrow, padding=2, pad_value=1.0)
        return path
    if info.kind == "vector" and info.shape[0] >= 2:
        # A bare Figure (no pyplot) draws off-screen without touching the user's backend.
        from matplotlib.figure import Figure

        fig = Figure(figsize=(4, 4), dpi=100)
        ax = fig.subplots()
        if reference is not None:
            ax.scatter(reference[:, 0], reference[:, 1], s=2, c="0.7", label="data")
        ax.scatter(samples[:, 0], samples[:, 1], s=2, c="tab:red", label="samples")
        if info.modes is not None:
            m = info.modes_tensor()
            ax.scatter(m[:, 0], m[:, 1], marker="x", c="k", s=30, label="modes")
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(loc="upper right", fontsize=7, markerscale=3)
        fig.tight_layout()
        fig.savefig(path)
        return path
    return None


def count_modes(x: torch.Tensor, centres: torch.Tensor, std: float, within: float = 3.0) -> int:
    """Modes captured by samples ``x`` ``(n, 2)`` under the VEEGAN / PacGAN rule the ``modes``
    metric applies: modes that are the nearest mode of a sample within ``within`` std."""
    d = torch.cdist(x.double(), centres.double(), compute_mode="donot_use_mm_for_euclid_dist")
    dist, nearest = d.min(dim=1)
    return int(nearest[dist <= within * std].unique().numel())


def _shared_limits(samples: dict[str, torch.Tensor], centres: torch.Tensor,
                   radius: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Axis limits every panel shares: the modes with their circles, and the central 98% of
    every model's samples (so that a few far-off samples do not shrink the rest to a dot)."""
    lo = centres.min(dim=0).values - radius
    hi = centres.max(dim=0).values + radius
    for x in samples.values():
        x = x[torch.isfinite(x[:, :2]).all(dim=1), :2].double()
        if len(x):
            lo = torch.minimum(lo, torch.quantile(x, 0.01, dim=0).float())
            hi = torch.maximum(hi, torch.quantile(x, 0.99, dim=0).float())
    pad = 0.08 * float((hi - lo).max())
    return (float(lo[0]) - pad, float(hi[0]) + pad), (float(lo[1]) - pad, float(hi[1]) + pad)


def save_model_comparison(samples: dict[str, torch.Tensor], path: str | Path,
                          per_model: int = 16, *, modes: torch.Tensor | None = None,
                          mode_std: float | None = None,
                          mode_counts: dict[str, float] | None = None,
                          within: float = 3.0) -> Path | None:
    """One picture comparing models: a strip of image samples per model (a row each, in the
    given order), or a scatter per model for 2-D vectors. None if there is nothing to show.

    For 2-D mixtures pass the true ``modes`` ``(K, 2)`` and their ``mode_std``: every panel
    then draws the centres and their ``within``-std circles under the model's samples, all
    panels share their axes, and each title gives the model's modes captured, out of K: its
    entry in ``mode_counts`` (the stored ``modes.modes``) when there is one, else counted
    here from the samples shown (:func:`count_modes`)."""
    samples = {k: v for k, v in samples.items() if v is not None and len(v)}
    if not samples:
        return None
    from matplotlib.figure import Figure

    first = next(iter(samples.values()))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if first.dim() == 4:
        from torchvision.utils import make_grid

        fig = Figure(figsize=(per_model * 0.6 + 1.5, 0.7 * len(samples) + 0.3), dpi=100)
        axes = fig.subplots(len(samples), 1, squeeze=False)[:, 0]
        for ax, (name, x) in zip(axes, samples.items()):
            strip = make_grid(x[:per_model].float().clamp(0, 1), nrow=per_model, padding=1,
                              pad_value=1.0)
            ax.imshow(strip.permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    elif first.dim() == 2 and first.shape[1] >= 2:
        cols = min(4, len(samples))
        rows = -(-len(samples) // cols)
        fig = Figure(figsize=(2.5 * cols, 2.5 * rows), dpi=100)
        with_modes = modes is not None and mode_std is not None and first.shape[1] == 2
        axes = fig.subplots(rows, cols, squeeze=False, sharex=with_modes, sharey=with_modes).ravel()
        if with_modes:
            from matplotlib.patches import Circle

            centres = torch.as_tensor(modes, dtype=torch.float32).reshape(-1, 2)
            xlim, ylim = _shared_limits(samples, centres, within * mode_std)
            counts = mode_counts or {}
        for ax, (name, x) in zip(axes, samples.items()):
            title = name
            if with_modes:
                for c in centres.tolist():
                    ax.add_patch(Circle(c, within * mode_std, fill=False, lw=0.6, ec="0.45", zorder=1))
                ax.scatter(centres[:, 0], centres[:, 1], marker="x", s=12, lw=0.8, c="k", zorder=1)
                n = counts.get(name)
                if n is None or not math.isfinite(n):
                    n = count_modes(x[:, :2], centres, mode_std, within)
                title = f"{name}\nmodes {n:g}/{len(centres)}"
            ax.scatter(x[:, 0], x[:, 1], s=1, c="tab:red", zorder=2)
            ax.set_title(title, fontsize=8)
            if with_modes:  # shared axes: the same limits everywhere, squares kept square
                ax.set_xlim(*xlim)
                ax.set_ylim(*ylim)
                ax.set_aspect("equal", adjustable="box")
            else:
                ax.set_aspect("equal", adjustable="datalim")
            ax.tick_params(labelsize=6)
        for ax in axes[len(samples):]:
            ax.axis("off")
    else:
        return None
    fig.tight_layout()
    fig.savefig(path)
    return path
