"""Reference statistics files: the features a real split contributes to every feature metric,
in one ``.npz``, with where they came from.

``genbench reference build`` writes one (:func:`genbench.evaluation.reference_build.build_reference_file`,
through :func:`genbench.features.reference_writer.write_reference_file`); an evaluation whose
``EvalContext.reference_file`` names one reads its reference features from it instead of
extracting the reference split (:meth:`genbench.features.job_features.JobFeatures.split`).

The file is a plain ``np.savez`` archive, readable with ``np.load(path, allow_pickle=False)``:

* ``mu`` (D,), ``sigma`` (D, D): float64 mean and covariance of the FID layer's features, as
  :func:`genbench.features.fidelity.fid_statistics` computes them (absent when the extractor
  has no FID layer);
* ``features_<layer>``: every layer's feature matrix, one row per item, in split order
  (float32, the extractors' dtype);
* ``genbench``: the provenance, a JSON object in a 0-d unicode array (format and version,
  dataset, split, counts, extractor and weights sha256, layers, versions, creation time);
* ``indices`` (int64, only for a subset): the sorted positions in the split of the items
  used (:func:`genbench.features.job_features.reference_indices`);
* ``arr_0`` (optional): the items as uint8 ``NHWC`` images, the layout of the reference
  batches of OpenAI's ADM evaluator (guided-diffusion ``evaluations/evaluator.py``).

An ADM reference batch (``arr_0``, perhaps with ``mu``/``sigma``/``mu_s``/``sigma_s``, no
``genbench`` key) reads as a *foreign* file: its ``provenance`` is ``None`` and an evaluation
extracts its images with the job's extractor.

This module only reads (the writer needs torch-fidelity's statistics, which would make the
features layer's modules import each other in a circle).
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genbench.api.errors import ConfigError

__all__ = ["FEATURES_PREFIX", "FORMAT", "FORMAT_VERSION", "IMAGES_KEY", "INDICES_KEY", "PROVENANCE_KEY",
           "ReferenceFile", "ReferenceFileError", "read_reference_file"]

#: ``provenance["format"]`` of every file genbench writes.
FORMAT = "genbench-reference"
#: Bumped when what a file holds, or what a key means, changes; newer files are refused.
FORMAT_VERSION = 1
#: The key of the provenance JSON; a file without it is foreign (ADM layout).
PROVENANCE_KEY = "genbench"
#: The key of the images, uint8 NHWC (ADM's reference batches use the same).
IMAGES_KEY = "arr_0"
#: ``features_<layer>`` holds one layer's features.
FEATURES_PREFIX = "features_"
#: The key of the positions in the split of the items of a subset.
INDICES_KEY = "indices"


class ReferenceFileError(ConfigError):
    """A reference statistics file is missing, unreadable, malformed, or does not fit the
    evaluation it is given to (another extractor, weights or dataset)."""


@dataclass
class ReferenceFile:
    """A reference statistics file, as :func:`read_reference_file` reads it."""

    path: Path
    #: float64 mean ``(D,)`` and covariance ``(D, D)`` of the FID layer (``None``: not stored).
    mu: np.ndarray | None
    sigma: np.ndarray | None
    #: layer -> float32 CPU tensor ``(n, D_layer)``, rows in split order; ``None`` in a foreign file.
    features: dict[str, torch.Tensor] | None
    #: uint8 ``(n, C, H, W)`` CPU tensor, or ``None`` when the file holds no images.
    images: torch.Tensor | None
    #: What genbench recorded when it wrote the file; ``None`` for a foreign file.
    provenance: dict[str, Any] | None
    #: Sorted positions in the split of the items held, when they are a subset; else ``None``.
    indices: torch.Tensor | None = None

    @property
    def foreign(self) -> bool:
        """Whether the file was not written by genbench (an ADM batch: images only)."""
        return self.provenance is None

    @property
    def n(self) -> int:
        """Items in the file (rows of every feature matrix, or images)."""
        if self.features:
            return len(next(iter(self.features.values())))
        return 0 if self.images is None else len(self.images)


def _fail(path: Path, why: str) -> ReferenceFileError:
    return ReferenceFileError(f"reference file {path}: {why}")


def _array(npz, key: str, path: Path) -> np.ndarray:
    try:
        return npz[key]
    except (ValueError, OSError, zipfile.BadZipFile) as exc:  # object arrays, a damaged member
        raise _fail(path, f"cannot read {key!r} ({exc}); reference files hold plain numeric "
                          "arrays, loadable with allow_pickle=False") from None


def _statistics(npz, path: Path) -> tuple[np.ndarray | None, np.ndarray | None]:
    has = [k for k in ("mu", "sigma") if k in npz.files]
    if not has:
        return None, None
    if len(has) == 1:
        raise _fail(path, f"holds {has[0]!r} without {({'mu', 'sigma'} - set(has)).pop()!r}")
    mu, sigma = _array(npz, "mu", path), _array(npz, "sigma", path)
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise _fail(path, f"mu has shape {mu.shape} and sigma {sigma.shape}; expected (D,) "
                          "and (D, D)")
    return mu.astype(np.float64, copy=False), sigma.astype(np.float64, copy=False)


def _images(npz, path: Path) -> torch.Tensor | None:
    if IMAGES_KEY not in npz.files:
        return None
    x = _array(npz, IMAGES_KEY, path)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise _fail(path, f"{IMAGES_KEY!r} must be uint8 images (N, H, W, 1 or 3) (ADM's layout), "
                          f"got {x.dtype} {x.shape}")
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def _provenance(npz, path: Path) -> dict[str, Any]:
    raw = _array(npz, PROVENANCE_KEY, path)
    try:
        prov = json.loads(str(raw[()]))
    except (json.JSONDecodeError, TypeError, IndexError) as exc:
        raise _fail(path, f"its {PROVENANCE_KEY!r} entry is not a JSON object ({exc})") from None
    if not isinstance(prov, dict) or prov.get("format") != FORMAT:
        raise _fail(path, f"its {PROVENANCE_KEY!r} entry is not genbench's provenance "
                          f"(format {FORMAT!r})")
    version = prov.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise _fail(path, f"format version {version!r}; this genbench reads versions up to "
                          f"{FORMAT_VERSION}: upgrade genbench or rebuild the file")
    return prov


def read_reference_file(path: str | os.PathLike) -> ReferenceFile:
    """Read a reference statistics file written by genbench, or an ADM reference batch.

    Raises :class:`ReferenceFileError` for a missing file, one that is not an ``.npz``
    archive, one with neither genbench's ``genbench`` key nor ADM's ``arr_0``, feature
    matrices (or images) of different row counts, and ``mu``/``sigma`` of mismatched shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file" if not path.exists() else "not a file")
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise _fail(path, f"not an .npz archive ({type(exc).__name__}: {exc})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise _fail(path, "holds a single array (.npy), not an .npz archive")
    with npz:
        if PROVENANCE_KEY not in npz.files and IMAGES_KEY not in npz.files:
            raise _fail(path, f"holds neither genbench's {PROVENANCE_KEY!r} entry nor ADM's "
                              f"{IMAGES_KEY!r} images (keys: {', '.join(npz.files) or 'none'}); "
                              "build one with `genbench reference build`")
        mu, sigma = _statistics(npz, path)
        images = _images(npz, path)
        if PROVENANCE_KEY not in npz.files:
            return ReferenceFile(path, mu, sigma, None, images, None)
        provenance = _provenance(npz, path)
        features = {}
        for key in npz.files:
            if key.startswith(FEATURES_PREFIX):
                a = _array(npz, key, path)
                if a.ndim != 2 or not np.issubdtype(a.dtype, np.floating):
                    raise _fail(path, f"{key!r} must be a float matrix (n, D), got {a.dtype} {a.shape}")
                features[key[len(FEATURES_PREFIX):]] = torch.from_numpy(a)
        indices = (torch.from_numpy(_array(npz, INDICES_KEY, path)) if INDICES_KEY in npz.files
                   else None)
    if not features:
        raise _fail(path, f"holds no {FEATURES_PREFIX}<layer> entries")
    if indices is not None and (indices.dim() != 1 or indices.dtype != torch.int64):
        raise _fail(path, f"{INDICES_KEY!r} must be int64 positions (n,), got {indices.dtype} "
                          f"{tuple(indices.shape)}")
    rows = {layer: len(t) for layer, t in features.items()}
    if images is not None:
        rows[IMAGES_KEY] = len(images)
    if indices is not None:
        rows[INDICES_KEY] = len(indices)
    if len(set(rows.values())) != 1:
        shown = ", ".join(f"{k}: {v}" for k, v in rows.items())
        raise _fail(path, f"its entries have different row counts ({shown})")
    n = next(iter(rows.values()))
    if provenance.get("n") != n:
        raise _fail(path, f"holds {n} rows but its provenance says n = {provenance.get('n')!r}")
    fid_layer = provenance.get("fid_layer")
    if mu is not None and fid_layer in features and features[fid_layer].shape[1] != len(mu):
        raise _fail(path, f"mu has {len(mu)} dimensions but the FID layer {fid_layer!r} has "
                          f"{features[fid_layer].shape[1]}")
    return ReferenceFile(path, mu, sigma, features, images, provenance, indices)


def reference_file_items(path: str | os.PathLike) -> int:
    """How many reference items the file at ``path`` holds (its provenance's ``n``, or the
    images of an ADM batch), read without loading its arrays: what a preflight compares with
    the items a metric needs. Raises :class:`ReferenceFileError` as :func:`read_reference_file`."""
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file" if not path.exists() else "not a file")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if f"{PROVENANCE_KEY}.npy" in names:
                with np.load(path, allow_pickle=False) as npz:
                    return int(_provenance(npz, path).get("n", 0))
            if f"{IMAGES_KEY}.npy" not in names:
                raise _fail(path, f"holds neither genbench's {PROVENANCE_KEY!r} entry nor ADM's "
                                  f"{IMAGES_KEY!r} images; build one with `genbench reference build`")
            with archive.open(f"{IMAGES_KEY}.npy") as member:
                version = np.lib.format.read_magic(member)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if read_header is not None:
                    shape = read_header(member)[0]
                    return int(shape[0]) if shape else 0
            with np.load(path, allow_pickle=False) as npz:  # a newer .npy header: read it whole
                return len(_array(npz, IMAGES_KEY, path))
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise _fail(path, f"not an .npz archive ({type(exc).__name__}: {exc})") from None
