"""Feature extractors and features: of the generated samples and of the real splits.

Every feature-space metric (FID, KID, IS, precision/recall, and any plugin metric that works
on embeddings) reads its features from :meth:`genbench.EvalContext.features`, which returns
one :class:`JobFeatures` per job and extractor. That object

* loads the extractor once (:func:`load_extractor`; weights are resolved by
  :func:`genbench.features.assets.resolve_weights` and never downloaded);
* embeds the generated samples once, on first use (:meth:`JobFeatures.generated`);
* embeds a real split (``test`` or ``train``, all of it or a fixed seeded subset) once per
  job, on first use, and keeps it on disk keyed by content (:meth:`JobFeatures.split`), so
  the next job with the same data and extractor reads it back; or reads the reference
  split's features from a reference statistics file (``EvalContext.reference_file``, see
  :mod:`genbench.features.reference_files`).

Inputs follow the extractor protocol (docs/plugins.md, "Feature extractors"): images go to
an extractor as uint8 ``Bx3xHxW`` (:func:`to_uint8_images`: ``round(x * 255)`` clamped to
[0, 255], gray channels repeated); an extractor that declares ``input_format = "float"`` (``raw``) gets the data itself, so
vectors never pass through uint8. Extraction runs on ``EvalContext.device`` in batches of
``EvalContext.batch_size``, not through torch-fidelity's input pipeline (a DataLoader with
worker processes and ``cuda=True`` by default). Features are returned on the CPU.

Extractors are :class:`genbench.api.extractor.FeatureExtractor` subclasses (torch-fidelity's
interface on torch alone) or torch-fidelity ``FeatureExtractorBase`` subclasses, registered
through the ``register_feature_extractors`` hook. genbench reads a few optional class attributes
from them (see :class:`~genbench.api.extractor.ExtractorMixin`); a plain torch-fidelity extractor
works with the defaults. Neither this module nor the built-in extractors import torch-fidelity
when imported; it is imported when a result records its version and when
``inception-v3-compat`` builds torch-fidelity's network.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import torch

from genbench.features.assets import check_weights, resolve_weights
from genbench.api.data import DataInfo, LazySplit, tensor_fingerprint
from genbench.api.errors import ConfigError, GenbenchError
from genbench.api.extractor import INPUT_FORMATS, ExtractorMixin, FeatureExtractor, default_supports
from genbench.registry.identity import code_identity
from genbench.api.paths import ScratchFolder, atomic_write, sha256_file
from genbench.features.feature_matrix import FeatureMatrix, FeatureMatrixWriter
from genbench.features.reference_files import ReferenceFile, ReferenceFileError, read_reference_file

if TYPE_CHECKING:
    from genbench.evaluation.context import EvalContext

__all__ = [
    "CACHE_FORMAT", "Extractor", "ExtractorMixin", "FeatureExtractor", "INPUT_FORMATS",
    "JobFeatures", "LAYER_METRICS", "NonFiniteSamplesError", "SPLITS", "SplitFeatures",
    "choose_feature_extractor",
    "extractor_skip_reason", "feature_layer", "layer_skip_reason", "load_extractor", "preflight",
    "preflight_features", "reference_indices", "skip_reason", "split_cache_key", "to_uint8_images",
]

#: The metric names an extractor maps to layers (torch-fidelity's
#: ``get_default_feature_layer_for_metric``). Every layer any of them names is requested, so
#: one pass over a sample set serves them all. A metric outside torch-fidelity reads the layer
#: of the one it resembles (``"prc"`` for k-nearest-neighbour metrics, ``"isc"`` for logits).
#: ``"spatial"`` names flattened spatial feature maps (what sFID reads; only extractors that
#: have them declare it).
LAYER_METRICS = ("fid", "isc", "kid", "prc", "spatial")
#: The real splits features can be taken of (``EvalContext.train`` / ``EvalContext.test``).
SPLITS = ("train", "test")
#: Bumped when what a cached features file holds, or how its key or features are made, changes.
CACHE_FORMAT = 2


class NonFiniteSamplesError(GenbenchError, ValueError):
    """Generated samples contain NaN or infinity, so no feature of them is meaningful."""


# -- choosing an extractor ------------------------------------------------------------------

def choose_feature_extractor(data_info: DataInfo, requested: str | None = None) -> str | None:
    """The extractor for feature-space metrics: ``requested`` (the spec's or ``--extractor``),
    else the dataset's declared default, else ``raw`` for vector data, else None."""
    if requested:
        return requested
    if data_info.feature_extractor:
        return data_info.feature_extractor
    return "raw" if data_info.kind == "vector" else None


# -- what genbench reads from an extractor class ------------------------------------------

def _input_format(cls: type) -> str:
    fmt = getattr(cls, "input_format", "uint8")
    if fmt not in INPUT_FORMATS:
        raise ConfigError(f"{cls.__qualname__}.input_format must be one of {INPUT_FORMATS}, got {fmt!r}")
    return fmt


def extractor_skip_reason(name: str, cls: type, data_info: DataInfo) -> str | None:
    """Why extractor ``name`` cannot embed ``data_info``'s data, or ``None``."""
    supports = getattr(cls, "supports", None)
    reason = supports(data_info) if supports is not None else default_supports(cls, data_info)
    return None if reason is None else f"feature extractor {name!r} does not apply: {reason}"


def feature_layer(cls: type, metric: str) -> str | None:
    """The extractor's layer for ``metric`` (one of :data:`LAYER_METRICS`), ``None`` if none."""
    try:
        return cls.get_default_feature_layer_for_metric(metric)
    except (KeyError, LookupError):
        return None


# -- inputs and extraction ----------------------------------------------------------------

def _check_finite(x: torch.Tensor, what: str) -> None:
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).flatten(1).any(1).sum())
        raise NonFiniteSamplesError(f"{bad} of the {len(x)} {what} contain NaN or infinite values")


def to_uint8_images(x: torch.Tensor) -> torch.Tensor:
    """Images ``(N, C, H, W)`` in [0, 1] (C = 1 or 3) as uint8 ``(N, 3, H, W)``.

    Values become ``round(x * 255)`` clamped to [0, 255]; gray channels are repeated. A uint8
    tensor is only checked and channel-expanded.
    """
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ConfigError(f"expected images of shape (N, 1 or 3, H, W), got {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        _check_finite(x, "images")
        x = (x.detach().float() * 255.0).round().clamp(0.0, 255.0).to(torch.uint8)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.contiguous()


@dataclass
class Extractor:
    """A loaded extractor and where its weights came from. Build it with :func:`load_extractor`."""

    name: str
    #: A :class:`~genbench.api.extractor.FeatureExtractor` or torch-fidelity ``FeatureExtractorBase``.
    module: torch.nn.Module
    #: metric (one of :data:`LAYER_METRICS`) -> layer name (``None``: no layer for that metric).
    layers: dict[str, str | None]
    input_format: str
    weights_path: Path | None
    weights_sha256: str | None
    weights_verified: bool | None
    init_kwargs: dict[str, Any]
    device: torch.device

    @property
    def requested_layers(self) -> list[str]:
        """Every layer one pass produces (the keys of :meth:`features`' result)."""
        return list(self.module.get_requested_features_list())

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The data as this extractor takes it: uint8 ``Bx3xHxW`` images or float32 (uint8
        images become ``x / 255``)."""
        if self.input_format == "uint8":
            return to_uint8_images(x)
        if x.dtype == torch.uint8:
            return x.float() / 255.0
        _check_finite(x, "samples")
        return x.detach().float()

    def features(self, x: torch.Tensor, batch_size: int = 256) -> dict[str, torch.Tensor]:
        """One pass over ``x`` (data space) in batches of ``batch_size``: every requested layer
        as ``{layer: (N, D_layer)}``, on the CPU."""
        if len(x) == 0:
            raise ConfigError("cannot extract features of an empty set")
        step = max(1, batch_size)
        return self.features_of_batches((x[i:i + step] for i in range(0, len(x), step)), len(x))

    @torch.no_grad()
    def _outputs(self, batches: Iterable[torch.Tensor], total: int
                 ) -> Iterator[dict[str, torch.Tensor]]:
        """Every requested layer of each non-empty batch, on the CPU, batch by batch; raises
        unless ``total`` items came in all."""
        done = 0
        for batch in batches:
            if not len(batch):
                continue
            batch = self.prepare(batch).to(self.device, non_blocking=True)
            out = self.module.convert_features_tuple_to_dict(self.module(batch))
            yield {k: v.cpu() for k, v in out.items()}
            done += len(batch)
        if not done:
            raise ConfigError("cannot extract features of an empty set")
        if done != total:
            raise ConfigError(f"expected {total} items to extract features of, got {done}")

    def features_of_batches(self, batches: Iterable[torch.Tensor],
                            total: int) -> dict[str, torch.Tensor]:
        """One pass over ``batches`` of ``total`` items in all (data space, or uint8 images as
        a sample store holds them), each embedded as it comes: ``{layer: (total, D_layer)}``
        on the CPU. Only one batch of inputs is in memory at a time, and each layer's matrix
        is allocated once and filled, never concatenated (half the peak memory)."""
        filled: dict[str, torch.Tensor] = {}
        done = 0
        for out in self._outputs(batches, total):
            for k, v in out.items():
                if k not in filled:
                    filled[k] = torch.empty((total, *v.shape[1:]), dtype=v.dtype)
                filled[k][done:done + len(v)] = v
            done += len(next(iter(out.values())))
        return filled

    def features_to_files(self, batches: Iterable[torch.Tensor], total: int,
                          folder: str | os.PathLike) -> dict[str, FeatureMatrix]:
        """What :meth:`features_of_batches` returns, written batch by batch to ``.npy`` files
        in ``folder`` (one per layer, :func:`layer_file_name`) instead of held in memory:
        ``{layer: FeatureMatrix}``. Memory holds one batch, whatever ``total``."""
        writers: dict[str, FeatureMatrixWriter] = {}
        try:
            for out in self._outputs(batches, total):
                for k, v in out.items():
                    if k not in writers:
                        writers[k] = FeatureMatrixWriter(
                            Path(folder) / layer_file_name(k), total)
                    writers[k].append(v.reshape(len(v), -1))
            return {k: w.close() for k, w in writers.items()}
        except BaseException:
            for w in writers.values():
                w.abort()
            raise

    def provenance(self) -> dict[str, Any]:
        """What every stored value records about the extractor."""
        import torch_fidelity

        return {
            "feature_extractor": self.name,
            "weights_sha256": self.weights_sha256,
            "weights_path": None if self.weights_path is None else str(self.weights_path),
            "weights_verified": self.weights_verified,
            "torch_fidelity": torch_fidelity.__version__,
        }


def layer_file_name(layer: str) -> str:
    """The file name a layer's features take in a folder, from a hash of its name (a layer
    name need not be a valid file name)."""
    return f"layer-{hashlib.sha256(layer.encode()).hexdigest()[:16]}.npy"


def _state_sha256(module: torch.nn.Module) -> str | None:
    """sha256 over a module's tensors, for extractors that load no file (None if it has none)."""
    state = module.state_dict()
    if not state:
        return None
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def load_extractor(name: str, cls: type, data_info: DataInfo, *,
                   weights: str | os.PathLike | None = None,
                   device: str | torch.device = "cpu") -> Extractor:
    """Build extractor ``name`` (class ``cls``) for ``data_info``'s data, on ``device``.

    All layers any of :data:`LAYER_METRICS` use are requested, so one pass serves them all.
    Weights are resolved with :func:`~genbench.features.assets.resolve_weights` (never downloaded) and
    passed to the class as ``feature_extractor_weights_path``, torch-fidelity's keyword. An
    extractor that loads no file is identified by the sha256 of its tensors instead.
    """
    reason = extractor_skip_reason(name, cls, data_info)
    if reason is not None:
        raise ConfigError(reason)
    layers = {m: feature_layer(cls, m) for m in LAYER_METRICS}
    requested = list(dict.fromkeys(v for v in layers.values() if v is not None))
    if not requested:
        raise ConfigError(f"feature extractor {name!r} names no layer for any of {', '.join(LAYER_METRICS)}")
    path, sha, verified = resolve_weights(name, cls, weights)
    init = getattr(cls, "init_kwargs", None)
    kwargs = dict(init(data_info)) if init is not None else {}
    module = cls(name, requested, feature_extractor_weights_path=None if path is None else str(path),
                 verbose=False, **kwargs)
    device = torch.device(device)
    module.requires_grad_(False)
    module.eval()
    module.to(device)
    if path is None:
        sha = _state_sha256(module)
    return Extractor(name, module, layers, _input_format(cls), path, sha, verified, kwargs, device)


# -- before training, and skips -------------------------------------------------------------

def preflight_features(metric: str, data_info: DataInfo, *, feature_extractor: str | None = None,
                       feature_weights: str | os.PathLike | None = None, registries) -> None:
    """Fail before training if ``metric``'s features can never be made for this data.

    ``metric`` is one of :data:`LAYER_METRICS` (the layer the metric reads). Raises
    :class:`~genbench.api.errors.UnknownNameError` for an unknown extractor and
    :class:`~genbench.api.errors.MissingDependencyError` for a package the extractor needs and
    :class:`~genbench.api.errors.AssetMissingError` / :class:`~genbench.features.assets.AssetChecksumError`
    for a missing or damaged weights file. Cases :func:`skip_reason` turns into a recorded skip
    (no extractor chosen, one that does not apply to the data or has no layer for ``metric``)
    pass. Cheap: no model is built; a weights file is hashed once per path, size and mtime.
    ``registries`` are the run's (its extractors are looked up there).
    """
    if metric not in LAYER_METRICS:
        raise ConfigError(f"unknown feature-layer metric {metric!r}; valid: {', '.join(LAYER_METRICS)}")
    name = choose_feature_extractor(data_info, feature_extractor)
    if name is None:
        return
    cls = registries.extractors.get(name)
    if extractor_skip_reason(name, cls, data_info) is not None or feature_layer(cls, metric) is None:
        return
    check_dependencies = getattr(cls, "check_dependencies", None)  # plain torch-fidelity classes
    if check_dependencies is not None:
        check_dependencies()
    check_weights(name, cls, feature_weights)  # and a checkpoint torch reads


#: The name :func:`preflight_features` had in ``genbench.features`` before 0.2 (public as
#: ``genbench.preflight_features``: ``genbench.preflight`` is the old path of a module).
preflight = preflight_features


def skip_reason(ctx: "EvalContext", metric: str, extractor: str | None = None) -> str | None:
    """Why ``ctx.features(extractor)`` cannot serve ``metric``'s layer in this job, or ``None``.

    ``metric`` is one of :data:`LAYER_METRICS`. An unknown extractor name is not a skip: it
    raises :class:`~genbench.api.errors.UnknownNameError` listing the valid ones.
    """
    return layer_skip_reason(ctx.data_info, metric, extractor=extractor or ctx.extractor_name,
                             registries=ctx.registries)


def layer_skip_reason(data_info: DataInfo, metric: str, *, extractor: str | None,
                      registries) -> str | None:
    """Why extractor ``extractor`` (the run's, chosen by :func:`choose_feature_extractor`)
    cannot serve ``metric``'s layer on this data, or ``None``: :func:`skip_reason` without
    a job, so that it can be asked before anything trains."""
    if extractor is None:
        return (f"dataset {data_info.name!r} declares no feature extractor; choose one "
                "with --extractor or the spec's extractor (e.g. inception-v3-compat)")
    name, cls = extractor, registries.extractors.get(extractor)
    reason = extractor_skip_reason(name, cls, data_info)
    if reason is not None:
        return reason
    if feature_layer(cls, metric) is None:
        if metric == "isc":
            return f"feature extractor {name!r} has no class logits, so the Inception Score is undefined"
        return f"feature extractor {name!r} has no layer for {metric}"
    return None


# -- the content-keyed cache of real-data features -------------------------------------------

def reference_indices(n_total: int, n: int) -> torch.Tensor | None:
    """Which items of a split of ``n_total`` are used when at most ``n`` are wanted: all
    (``None``) or a fixed seeded subset of ``n``, sorted.

    The subset does not depend on the job seed, so every job shares one cache entry.
    """
    if n >= n_total:
        return None
    perm = torch.randperm(n_total, generator=torch.Generator().manual_seed(0))
    return perm[:n].sort().values


def split_cache_key(*, data_fingerprint: str, split: str, n_total: int, n: int, extractor: str,
                    weights_sha256: str | None, layers: list[str], input_format: str,
                    init_kwargs: dict[str, Any] | None = None,
                    code: dict[str, Any] | None = None) -> str:
    """Content key of a cached features file (hex sha256, 24 chars).

    Built from the dataset's content fingerprint, the split's name and size, the number of
    items used and how they are chosen (:func:`reference_indices`), the extractor's name and
    its weights' sha256, the layers kept, how inputs are prepared, the extractor's
    dataset-dependent keywords and its code identity (:func:`genbench.registry.identity.code_identity`:
    editing an extractor must not reuse features it made before), plus :data:`CACHE_FORMAT`.
    """
    parts = {"format": CACHE_FORMAT, "data": data_fingerprint, "split": split,
             "n_total": int(n_total), "n": int(n),
             "subset": "all" if n >= n_total else "randperm-seed0-first-n-sorted",
             "extractor": extractor, "weights_sha256": weights_sha256, "layers": sorted(layers),
             "input": input_format,
             "kwargs": {k: repr(v) for k, v in sorted((init_kwargs or {}).items())},
             "code": code}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


@dataclass
class SplitFeatures:
    """Features of (a fixed subset of) one real split, and whether they came from the cache.

    ``features`` maps every layer the extractor produces to a float CPU tensor ``(n, D_layer)``
    whose row ``i`` embeds item ``indices[i]`` of the split (item ``i`` when ``indices`` is
    ``None``, i.e. the whole split in order).
    """

    split: str
    features: dict[str, torch.Tensor]
    #: Items used, and the split's size.
    n: int
    n_total: int
    #: Sorted positions of the items used in the split, or ``None`` for all of them.
    indices: torch.Tensor | None
    #: The content key (:func:`split_cache_key`) and the file it is cached in.
    key: str
    path: Path
    #: ``"hit"`` (read from the disk cache), ``"miss"`` (extracted in this job) or ``"file"``
    #: (from the evaluation's reference statistics file, ``EvalContext.reference_file``).
    cache: str

    def __getitem__(self, layer: str) -> torch.Tensor:
        """The features of one layer, ``(n, D_layer)`` on the CPU."""
        try:
            return self.features[layer]
        except KeyError:
            raise ConfigError(f"no features of layer {layer!r}; the extractor gives "
                              f"{', '.join(self.features)}") from None


#: Features cache folders that could not be written, each warned about once per process.
_UNWRITABLE_CACHES: set[Path] = set()


def _store_cache(path: Path, blob: dict[str, Any]) -> None:
    """Write a features cache file. One that cannot be written (a read-only or full cache)
    loses nothing: the features stay in memory for this job, and one warning per folder
    says so."""
    try:
        atomic_write(path, lambda tmp: torch.save(blob, tmp))
    except OSError as exc:
        if path.parent not in _UNWRITABLE_CACHES:
            _UNWRITABLE_CACHES.add(path.parent)
            warnings.warn(f"cannot write the features cache {path.parent} "
                          f"({exc.strerror or exc}): features are recomputed by each job; "
                          "set GENBENCH_CACHE to a writable folder", stacklevel=2)


def split_item_count(value) -> int:
    """Items of a split given as ``(x, labels)`` tensors or a :class:`~genbench.api.data.LazySplit`."""
    return value.num_items() if isinstance(value, LazySplit) else len(value[0])


def split_item_batches(value, batch_size: int, indices: torch.Tensor | None):
    """The split's items (those at ``indices``, else all) in batches: read from the dataset
    batch by batch for a :class:`~genbench.api.data.LazySplit` not in memory."""
    if isinstance(value, LazySplit):
        return value.batches(batch_size, indices)
    x = value[0] if indices is None else value[0][indices]
    step = max(1, int(batch_size))
    return (x[i:i + step] for i in range(0, len(x), step))


def _load_cached(path: Path, key: str, n: int, layers: list[str]) -> dict[str, torch.Tensor] | None:
    """The features stored under ``key``, or ``None`` if the file is absent, truncated, foreign
    or does not hold ``n`` rows of every layer (then it is recomputed and overwritten)."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None
    except Exception:  # a truncated or foreign file: recompute and overwrite it
        return None
    if not isinstance(blob, dict) or blob.get("key") != key or blob.get("n") != n:
        return None
    feats = blob.get("features")
    if not isinstance(feats, dict):
        return None
    out = {}
    for layer in layers:
        t = feats.get(layer)
        if not isinstance(t, torch.Tensor) or t.dim() != 2 or len(t) != n:
            return None
        out[layer] = t
    return out


def _concatenate(parts: list[dict[str, FeatureMatrix]], folder: Path,
                 total: int) -> dict[str, FeatureMatrix]:
    """The parts' matrices, layer by layer, one after the other, into ``folder``."""
    out = {}
    for layer in parts[0]:
        with FeatureMatrixWriter(folder / layer_file_name(layer), total) as writer:
            for part in parts:
                for block in part[layer].chunks():
                    writer.append(block)
            out[layer] = writer.close()
    return out


# -- one job's features, per extractor -------------------------------------------------------

class JobFeatures:
    """The features one job's metrics share, for one extractor: build it with
    :meth:`genbench.EvalContext.features` (once per job and extractor).

    * :meth:`generated` — features of ``ctx.samples``, extracted on first use.
    * :meth:`split` (:meth:`test`, :meth:`train`) — features of a real split, all of it or a
      fixed seeded subset, extracted at most once per job and cached on disk by content.
    * :meth:`layer` — the layer a metric reads (keys of the dicts above).

    Every tensor is float, on the CPU, one row per item: ``(N, D_layer)``. The extractor runs
    on ``ctx.device`` in batches of ``ctx.batch_size``. Treat the tensors as read-only: every
    metric of the job gets the same objects.
    """

    def __init__(self, ctx: "EvalContext", name: str):
        self.ctx, self.name = ctx, name
        self.cls = ctx.registries.extractors.get(name)  # UnknownNameError lists the valid names
        reason = extractor_skip_reason(name, self.cls, ctx.data_info)
        if reason is not None:
            raise ConfigError(reason)
        # --feature-weights belong to the run's extractor, not to another one a metric asks for.
        self.weights = ctx.feature_weights if name == ctx.extractor_name else None
        self._extractor: Extractor | None = None
        self._generated: dict[str, torch.Tensor] | None = None
        self._rows: dict[str, FeatureMatrix] | None = None
        self._splits: dict[tuple[str, int], SplitFeatures] = {}
        self._reference: ReferenceFile | None = None

    @property
    def extractor(self) -> Extractor:
        """The loaded extractor (built on first use, on ``ctx.device``)."""
        if self._extractor is None:
            self._extractor = load_extractor(self.name, self.cls, self.ctx.data_info,
                                             weights=self.weights, device=self.ctx.device)
        return self._extractor

    def layer(self, metric: str) -> str:
        """The layer ``metric`` (one of :data:`LAYER_METRICS`) reads; a
        :class:`~genbench.api.errors.ConfigError` if the extractor has none for it."""
        if metric not in LAYER_METRICS:
            raise ConfigError(f"unknown feature-layer metric {metric!r}; valid: {', '.join(LAYER_METRICS)}")
        layer = self.extractor.layers[metric]
        if layer is None:
            raise ConfigError(f"feature extractor {self.name!r} has no layer for {metric}")
        return layer

    def provenance(self) -> dict[str, Any]:
        """What a result records about the extractor: name, weights sha256/path/verified,
        torch-fidelity version."""
        return self.extractor.provenance()

    def generated_rows(self) -> dict[str, FeatureMatrix]:
        """Features of the generated samples, kept in files: ``{layer: FeatureMatrix}``
        (``(num_samples, D)``; indexing it returns CPU tensors), extracted on the first call of
        the job, batch by batch from ``ctx.sample_store`` (or merged from the shards' files),
        into a temporary folder that lives as long as this object. What a metric that reads
        blocks of rows should use: memory then does not grow with the sample count. Raises
        :class:`NonFiniteSamplesError` if a sample holds NaN or infinity."""
        if self._rows is None:
            self._scratch = ScratchFolder("genbench-features-")  # removed with this object
            folder = self._scratch.path
            parts = getattr(self.ctx, "part_features", None)  # drawn and embedded by shards
            parts = parts(self.extractor) if parts is not None else None
            if parts is not None:
                self._rows = _concatenate(parts, folder, self.ctx.num_samples)
            else:
                store = self.ctx.sample_store
                self._rows = self.extractor.features_to_files(
                    store.batches(self.ctx.batch_size), len(store), folder)
        return self._rows

    def generated(self) -> dict[str, torch.Tensor]:
        """Features of the generated samples, in memory: ``{layer: (num_samples, D)}`` on the
        CPU (:meth:`generated_rows`, read whole once). Raises :class:`NonFiniteSamplesError` if
        a sample holds NaN or infinity."""
        if self._generated is None:
            self._generated = {k: m.load() for k, m in self.generated_rows().items()}
        return self._generated

    def test(self, max_items: int | None = None) -> SplitFeatures:
        """Features of the test split (the reference of every metric); see :meth:`split`."""
        return self.split("test", max_items)

    def train(self, max_items: int | None = None) -> SplitFeatures:
        """Features of the train split (memorisation, NDB bins); see :meth:`split`."""
        return self.split("train", max_items)

    def split(self, split: str, max_items: int | None = None) -> SplitFeatures:
        """Features of the real ``split`` (``"train"`` or ``"test"``).

        All its items in order, or, when ``max_items`` is smaller than the split, the fixed
        seeded subset :func:`reference_indices` picks (the same in every job, whatever its
        seed). Extracted once per job and split size; read from and written to
        ``<cache_dir>/features/`` keyed by content (:func:`split_cache_key`). A cached file
        that is truncated, foreign or incomplete is recomputed and replaced, never trusted.

        When ``ctx.reference_file`` names a reference statistics file, the reference
        (``"test"``) comes from it instead (:meth:`reference_from_file`).
        """
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        if max_items is not None and (isinstance(max_items, bool) or max_items < 1):
            raise ConfigError(f"max_items must be a positive integer or None, got {max_items!r}")
        if split == "test" and self.ctx.reference_file is not None:
            return self.reference_from_file(max_items)
        value = getattr(self.ctx, split)
        total = split_item_count(value)
        n = total if max_items is None else min(int(max_items), total)
        if (split, n) not in self._splits:
            self._splits[(split, n)] = self._load_or_extract(split, value, total, n)
        return self._splits[(split, n)]

    def _load_or_extract(self, split: str, value, total: int, n: int) -> SplitFeatures:
        ext = self.extractor
        layers = ext.requested_layers
        fingerprint = self.ctx.data_info.fingerprint or tensor_fingerprint(value[0])
        key = split_cache_key(
            data_fingerprint=fingerprint, split=split, n_total=total, n=n, extractor=ext.name,
            weights_sha256=ext.weights_sha256, layers=layers, input_format=ext.input_format,
            init_kwargs=ext.init_kwargs, code=code_identity(self.cls))
        path = Path(self.ctx.cache_dir) / "features" / f"{split}-{ext.name}-{key}.pt"
        idx = reference_indices(total, n)
        feats = _load_cached(path, key, n, layers)
        cache = "hit"
        if feats is None:
            cache = "miss"
            feats = ext.features_of_batches(split_item_batches(value, self.ctx.batch_size, idx), n)
            blob = {"key": key, "n": n, "split": split, "features": feats, "extractor": ext.name,
                    "weights_sha256": ext.weights_sha256, "cache_format": CACHE_FORMAT}
            _store_cache(path, blob)
        return SplitFeatures(split, feats, n, total, idx, key, path, cache)

    # -- the reference from a reference statistics file (``genbench reference build``) ----------

    def reference_from_file(self, max_items: int | None = None) -> SplitFeatures:
        """The reference's features from ``ctx.reference_file`` (``cache == "file"``).

        A file genbench wrote must have been made with this job's extractor, weights, layers
        and input format, from this dataset's content; its rows are used as they are, or,
        when ``max_items`` is smaller than its split, the rows of the subset
        :func:`reference_indices` picks, so the numbers equal those against the dataset's
        split. Asking for more items than the file holds is an error naming both counts. A
        foreign file (an ADM batch) has its images extracted with this job's extractor.
        Raises :class:`~genbench.features.reference_files.ReferenceFileError`.
        """
        ref = self._reference_file()
        n_total = ref.n if ref.foreign else int(ref.provenance["n_total"])
        n = n_total if max_items is None else min(int(max_items), n_total)
        if n > ref.n:
            raise ReferenceFileError(
                f"reference file {ref.path} holds {ref.n} of the {n_total} items of its split; "
                f"this evaluation needs {n} (a metric's max_reference); rebuild it with "
                f"--max-items {n} or more, or ask for at most {ref.n}")
        if ("file", n) not in self._splits:
            make = self._foreign_features if ref.foreign else self._file_features
            self._splits[("file", n)] = make(ref, n_total, n)
        return self._splits[("file", n)]

    def _reference_file(self) -> ReferenceFile:
        """``ctx.reference_file``, read and checked against this job once."""
        if self._reference is None:
            ref = read_reference_file(self.ctx.reference_file)
            if ref.foreign:
                self._check_foreign(ref)
            else:
                self._check_file(ref)
            self._reference = ref
        return self._reference

    def _check_file(self, ref: ReferenceFile) -> None:
        prov, ext, info = ref.provenance, self.extractor, self.ctx.data_info
        split = prov.get("split")
        if split not in SPLITS:
            raise ReferenceFileError(f"reference file {ref.path}: unknown split {split!r} in its "
                                     f"provenance; valid: {', '.join(SPLITS)}")
        ours = {"extractor": ext.name, "weights sha256": ext.weights_sha256,
                "layers": sorted(ext.requested_layers), "input format": ext.input_format,
                "data fingerprint": info.fingerprint or tensor_fingerprint(getattr(self.ctx, split)[0])}
        theirs = {"extractor": prov.get("extractor"), "weights sha256": prov.get("weights_sha256"),
                  "layers": sorted(prov.get("layers") or []), "input format": prov.get("input_format"),
                  "data fingerprint": prov.get("data_fingerprint")}
        differ = [f"{k}: the file has {theirs[k]!r}, this evaluation {v!r}"
                  for k, v in ours.items() if theirs[k] != v]
        if differ:
            command = f"genbench reference build {info.name} --split {split} --extractor {ext.name}"
            if int(prov.get("n", 0)) < int(prov.get("n_total", 0)):
                command += f" --max-items {prov['n']}"
            if self.weights is not None:
                command += f" --feature-weights {self.weights}"
            raise ReferenceFileError(f"reference file {ref.path} does not fit this evaluation "
                                     f"({'; '.join(differ)}); rebuild it for this evaluation: "
                                     f"{command} -o {ref.path}")
        wanted = reference_indices(int(prov["n_total"]), ref.n)
        held = ref.indices
        if (wanted is None) != (held is None) or (held is not None and not torch.equal(held, wanted)):
            raise ReferenceFileError(
                f"reference file {ref.path} holds another subset of its split than this genbench "
                f"picks for {ref.n} of {prov['n_total']} items (a different torch version?); "
                f"rebuild it: genbench reference build {info.name} --split {split} "
                f"--extractor {ext.name} --max-items {ref.n} -o {ref.path}")
        if prov.get("code") != code_identity(self.cls):
            warnings.warn(f"reference file {ref.path} was built with other code of extractor "
                          f"{ext.name!r} (its source changed since); rebuild it if its features "
                          "changed", stacklevel=2)

    def _check_foreign(self, ref: ReferenceFile) -> None:
        ext, info = self.extractor, self.ctx.data_info
        if info.kind != "image" or ext.input_format != "uint8":
            raise ReferenceFileError(
                f"reference file {ref.path} holds only images (ADM layout), but extractor "
                f"{ext.name!r} takes {ext.input_format} {info.kind} data; build a genbench "
                f"reference file instead: genbench reference build {info.name} --extractor {ext.name}")
        if tuple(ref.images.shape[2:]) != tuple(info.shape[1:]):
            raise ReferenceFileError(
                f"reference file {ref.path} holds {ref.images.shape[2]}x{ref.images.shape[3]} images; "
                f"dataset {info.name!r} has {info.shape[1]}x{info.shape[2]}")

    def _file_features(self, ref: ReferenceFile, n_total: int, n: int) -> SplitFeatures:
        ext, prov = self.extractor, ref.provenance
        idx = reference_indices(n_total, n)
        feats = ref.features
        if n < ref.n:  # the subset of n lies inside the file's (both are prefixes of one permutation)
            rows = idx if ref.indices is None else torch.searchsorted(ref.indices, idx)
            feats = {layer: t[rows] for layer, t in feats.items()}
        key = split_cache_key(
            data_fingerprint=prov["data_fingerprint"], split=prov["split"], n_total=n_total, n=n,
            extractor=ext.name, weights_sha256=ext.weights_sha256, layers=ext.requested_layers,
            input_format=ext.input_format, init_kwargs=ext.init_kwargs, code=code_identity(self.cls))
        return SplitFeatures("test", feats, n, n_total, idx, key, ref.path, "file")

    def _foreign_features(self, ref: ReferenceFile, n_total: int, n: int) -> SplitFeatures:
        """The images of an ADM batch, extracted as a split is (kept in the features cache)."""
        ext = self.extractor
        layers = ext.requested_layers
        key = split_cache_key(
            data_fingerprint=f"file-sha256:{sha256_file(ref.path)}", split="file", n_total=n_total,
            n=n, extractor=ext.name, weights_sha256=ext.weights_sha256, layers=layers,
            input_format=ext.input_format, init_kwargs=ext.init_kwargs, code=code_identity(self.cls))
        path = Path(self.ctx.cache_dir) / "features" / f"file-{ext.name}-{key}.pt"
        idx = reference_indices(n_total, n)
        feats = _load_cached(path, key, n, layers)
        if feats is None:
            feats = ext.features(ref.images if idx is None else ref.images[idx], self.ctx.batch_size)
            blob = {"key": key, "n": n, "split": "file", "features": feats, "extractor": ext.name,
                    "weights_sha256": ext.weights_sha256, "cache_format": CACHE_FORMAT}
            _store_cache(path, blob)
        return SplitFeatures("test", feats, n, n_total, idx, key, ref.path, "file")
