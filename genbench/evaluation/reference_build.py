"""Building a reference statistics file from a registered dataset's split
(``genbench reference build``; the format: :mod:`genbench.features.reference_files`)."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch

from genbench.api.data import tensor_fingerprint
from genbench.api.errors import ConfigError
from genbench.api.paths import data_root as default_data_root
from genbench.evaluation.scoring import make_dataset
from genbench.features.job_features import (CACHE_FORMAT, SPLITS, SplitFeatures, choose_feature_extractor,
                                            layer_skip_reason, load_extractor, reference_indices,
                                            split_cache_key, to_uint8_images)
from genbench.features.reference_files import ReferenceFile, read_reference_file
from genbench.features.reference_writer import write_reference_file
from genbench.registry.identity import code_identity, environment_versions

if TYPE_CHECKING:
    from genbench.registry.manager import Registries

__all__ = ["build_reference_file"]


def _jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it (anything else as its ``repr``)."""
    return json.loads(json.dumps(value, default=repr))


def build_reference_file(registries: "Registries", dataset_name: str, *, split: str = "train",
                         extractor: str | None = None, out: str | os.PathLike,
                         dataset_params: Mapping[str, Any] | None = None,
                         data_root: str | os.PathLike | None = None, download: bool = False,
                         feature_weights: str | os.PathLike | None = None,
                         max_items: int | None = None, device: str | torch.device = "cpu",
                         batch_size: int = 256, include_images: bool = False) -> ReferenceFile:
    """Write the features split ``split`` of dataset ``dataset_name`` contributes to every
    feature metric to ``out`` (see :func:`~genbench.features.reference_writer.write_reference_file`),
    and return the file as read back.

    The features are extracted as an evaluation extracts a real split
    (:meth:`genbench.features.job_features.JobFeatures.split`): the same extractor loading
    (``extractor``, else the dataset's default, else ``raw`` for vectors; ``feature_weights``
    for its weights), the same fixed subset (:func:`~genbench.features.job_features.reference_indices`)
    when ``max_items`` is smaller than the split, the same batches of ``batch_size`` on
    ``device``; so an evaluation that reads the file gets the numbers it would get from the
    split. ``include_images`` also stores the items as uint8 NHWC images (``arr_0``, ADM's
    layout; image data only). The provenance records the dataset (name, options,
    fingerprint), split, counts, subset rule, extractor (name, weights sha256, layers, input
    format, keywords, code), the features cache key it corresponds to, versions and time.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if max_items is not None and (isinstance(max_items, bool) or int(max_items) < 1):
        raise ConfigError(f"max_items must be a positive integer or None, got {max_items!r}")
    dataset = make_dataset(registries, dataset_name, dataset_params,
                           root=str(default_data_root(data_root)), download=download)
    info = dataset.info()
    name = choose_feature_extractor(info, extractor)
    if name is None:
        raise ConfigError(layer_skip_reason(info, "fid", extractor=None, registries=registries))
    cls = registries.extractors.get(name)
    if include_images and info.kind != "image":
        raise ConfigError(f"dataset {dataset_name!r} holds {info.kind} data; images (--images) "
                          "need image data")
    ext = load_extractor(name, cls, info, weights=feature_weights, device=device)
    x = dataset.tensors(split)[0]
    n_total = len(x)
    n = n_total if max_items is None else min(int(max_items), n_total)
    idx = reference_indices(n_total, n)
    items = x if idx is None else x[idx]
    feats = ext.features(items, batch_size)
    layers = ext.requested_layers
    fingerprint = info.fingerprint or tensor_fingerprint(x)
    code = code_identity(cls)
    key = split_cache_key(
        data_fingerprint=fingerprint, split=split, n_total=n_total, n=n, extractor=ext.name,
        weights_sha256=ext.weights_sha256, layers=layers, input_format=ext.input_format,
        init_kwargs=ext.init_kwargs, code=code)
    provenance = _jsonable({
        "dataset": dataset_name, "dataset_params": dict(dataset_params or {}),
        "data_info": {"name": info.name, "kind": info.kind, "shape": list(info.shape),
                      "num_classes": info.num_classes, "feature_extractor": info.feature_extractor,
                      "fingerprint": info.fingerprint},
        "data_fingerprint": fingerprint, "split": split, "n": n, "n_total": n_total,
        "subset": "all" if idx is None else "randperm-seed0-first-n-sorted",
        "extractor": ext.name, "weights_sha256": ext.weights_sha256,
        "weights_verified": ext.weights_verified, "layers": layers,
        "layer_metrics": ext.layers, "input_format": ext.input_format,
        "init_kwargs": {k: repr(v) for k, v in sorted(ext.init_kwargs.items())}, "code": code,
        "cache_key": key, "cache_format": CACHE_FORMAT, "batch_size": int(batch_size),
        "device": str(ext.device), "versions": environment_versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    })
    images = None
    if include_images:
        images = to_uint8_images(items).permute(0, 2, 3, 1).contiguous().numpy()
    out = Path(out)
    write_reference_file(out, SplitFeatures(split, feats, n, n_total, idx, key, out, "miss"),
                         fid_layer=ext.layers.get("fid"), provenance=provenance, images=images)
    return read_reference_file(out)
