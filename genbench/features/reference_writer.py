"""Writing reference statistics files (the format: :mod:`genbench.features.reference_files`)."""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import numpy as np
import torch

from genbench.api.paths import atomic_write
from genbench.features.fidelity import fid_statistics
from genbench.features.reference_files import (FEATURES_PREFIX, FORMAT, FORMAT_VERSION, IMAGES_KEY,
                                               INDICES_KEY, PROVENANCE_KEY, ReferenceFileError)

__all__ = ["write_reference_file"]


def write_reference_file(path: str | os.PathLike, features, *, fid_layer: str | None,
                         provenance: Mapping[str, Any], images: np.ndarray | None = None) -> None:
    """Write ``features`` (a :class:`~genbench.features.job_features.SplitFeatures`, or a
    mapping of layer to ``(n, D)`` tensor, rows in split order) to the ``.npz`` ``path``,
    whole or not at all.

    Stored: ``mu`` and ``sigma`` (float64) of layer ``fid_layer`` as
    :func:`~genbench.features.fidelity.fid_statistics` computes them (none when ``fid_layer``
    is ``None``), ``features_<layer>`` for every layer (float32, the extractors' dtype; a
    float64 layer is kept as it is, so that features read back are the ones written),
    ``genbench``: ``provenance`` as JSON with the format, its version, ``n``, the layers and
    ``fid_layer`` added, ``indices`` (int64: which items of the split, when ``features`` is
    a SplitFeatures of a subset) and ``images`` (uint8 ``(n, H, W, C)``) as ``arr_0``.

    With ``arr_0`` the file is also an ADM reference batch: OpenAI's evaluator reads its
    images and would take our ``mu``/``sigma`` as its own statistics, which only match the
    ones it computes when the extractor is ``inception-v3-compat`` (its pool_3 features).
    """
    feats = getattr(features, "features", features)
    if not feats:
        raise ReferenceFileError(f"reference file {path}: no features to write")
    arrays: dict[str, np.ndarray] = {}
    rows = set()
    for layer, t in feats.items():
        a = t.detach().cpu().numpy()
        if a.ndim != 2 or not np.issubdtype(a.dtype, np.floating):
            raise ReferenceFileError(f"reference file {path}: layer {layer!r} must be a float "
                                     f"matrix (n, D), got {a.dtype} {a.shape}")
        if a.dtype not in (np.float32, np.float64):
            a = a.astype(np.float32)
        arrays[FEATURES_PREFIX + layer] = a
        rows.add(len(a))
    if len(rows) != 1:
        raise ReferenceFileError(f"reference file {path}: layers of different row counts {sorted(rows)}")
    n = rows.pop()
    if fid_layer is not None:
        if fid_layer not in feats:
            raise ReferenceFileError(f"reference file {path}: no features of the FID layer "
                                     f"{fid_layer!r}; layers: {', '.join(feats)}")
        stats = fid_statistics(torch.as_tensor(feats[fid_layer]))
        arrays["mu"] = np.asarray(stats["mu"], dtype=np.float64)
        arrays["sigma"] = np.asarray(stats["sigma"], dtype=np.float64)
    indices = getattr(features, "indices", None)  # a SplitFeatures of a seeded subset
    if indices is not None:
        arrays[INDICES_KEY] = np.asarray(indices, dtype=np.int64)
    if images is not None:
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3) \
                or len(images) != n:
            raise ReferenceFileError(
                f"reference file {path}: images must be uint8 (n={n}, H, W, 1 or 3), got "
                f"{images.dtype} {images.shape}")
        arrays[IMAGES_KEY] = images
    prov = {**provenance, "format": FORMAT, "format_version": FORMAT_VERSION, "n": n,
            "layers": list(feats), "fid_layer": fid_layer}
    arrays[PROVENANCE_KEY] = np.array(json.dumps(prov, sort_keys=True, default=str))

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez(f, **arrays)

    atomic_write(path, write)
