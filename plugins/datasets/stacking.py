"""Stacked digits: three digit images as the three channels of one image, 1,000 modes.

The construction of VEEGAN (Srivastava et al., 2017) and PacGAN (Lin et al., 2018) for
Stacked MNIST: draw three digit images uniformly at random (with replacement) from one
split, put them in channels 0, 1, 2 and label the result ``100*d1 + 10*d2 + d3``, where
``d1, d2, d3`` are the labels of the digits in channels 0, 1, 2. Used by ``stacked-digits``
(embedded) and ``stacked-mnist`` (torchvision).
"""

from __future__ import annotations

import numpy as np
import torch

#: Number of modes (label values) of a stacked set.
STACKED_CLASSES = 1000

# Distinct random streams per split, so train and test draws never share a sequence.
_SPLIT_STREAM = {"train": 0, "test": 1}


def stacked_indices(n_source: int, n: int, seed: int, split: str) -> torch.Tensor:
    """``(n, 3)`` int64 indices into a source split of ``n_source`` digits, seeded per split."""
    rng = np.random.default_rng([seed, _SPLIT_STREAM[split]])
    return torch.from_numpy(rng.integers(0, n_source, size=(n, 3), dtype=np.int64))


def stack(images: torch.Tensor, labels: torch.Tensor,
          indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``images[indices[:, k]]`` as channel ``k``; return ``(x, 100*d1 + 10*d2 + d3)``.

    ``images`` is ``(N, H, W)`` or ``(N, 1, H, W)`` (any dtype; the result keeps it),
    ``labels`` is ``(N,)`` with digit labels 0..9, ``indices`` is ``(n, 3)``.
    """
    if images.dim() == 4:
        if images.shape[1] != 1:
            raise ValueError(f"stacking needs single-channel digits, got shape {tuple(images.shape)}")
        images = images[:, 0]
    x = images[indices]  # (n, 3, H, W)
    d = labels.long()[indices]
    return x, 100 * d[:, 0] + 10 * d[:, 1] + d[:, 2]
