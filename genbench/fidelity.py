"""The one place that talks to torch-fidelity: extractors, features, FID/IS/KID/PRC, caches.

Sample-quality metrics follow the evaluation protocol of DESIGN.md:

* Images go to an extractor as uint8 ``Bx3xHxW`` (gray channels repeated; ``[0, 1]`` values
  become ``round(x * 255)`` clamped to ``[0, 255]``). Extractors that declare
  ``input_format = "float"`` (``raw``) get the data itself, so vectors never pass through
  uint8.
* Each sample set is put through the extractor once per job; FID, IS, KID and
  precision/recall all read the same features (:class:`FidelityJob`, kept in
  ``EvalContext.extras``). The numbers come from torch-fidelity's own functions
  (``fid_statistics_to_metric``, ``isc_features_to_metric``, ``kid_features_to_metric``,
  ``prc_features_to_metric``), called with the generated set as input 1 and the reference as
  input 2, exactly as ``torch_fidelity.calculate_metrics`` does.
* Reference features and FID statistics are cached on disk under
  ``<cache_dir>/fidelity/``, keyed by content (:func:`reference_cache_key`): the dataset's
  fingerprint, the extractor, the sha256 of its weights and the number of reference samples.
  torch-fidelity's own cache (keyed by a name only) is never used.
* Features are not extracted through torch-fidelity's input pipeline (a DataLoader with
  worker processes, and ``cuda=True`` by default): the extractor is built here and moved to
  ``EvalContext.device``. Every direct torch-fidelity call (tests, benchmark) passes ``cuda=``
  and ``feature_extractor=`` explicitly.
* Weights are never downloaded. A missing file is an :class:`~genbench.errors.AssetMissingError`
  that names the file, its sha256, its URL and where to put it.

Extractors are torch-fidelity ``FeatureExtractorBase`` subclasses registered through the
``register_feature_extractors`` hook. genbench reads a few optional class attributes from them
(see :class:`ExtractorMixin`); a plain torch-fidelity extractor works with the defaults.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch_fidelity
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.metric_fid import (
    KEY_METRIC_FID,
    fid_features_to_statistics,
    fid_statistics_to_metric,
)
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric
from torch_fidelity.metric_prc import (
    KEY_METRIC_F_SCORE,
    KEY_METRIC_PRECISION,
    KEY_METRIC_RECALL,
    prc_features_to_metric,
)

from .data import DataInfo, tensor_fingerprint
from .errors import AssetMissingError, ConfigError, GenbenchError
from .metric import MetricResult

if TYPE_CHECKING:
    from .evaluation import EvalContext

__all__ = [
    "AssetChecksumError", "AssetStatus", "CACHE_FORMAT", "Extractor", "ExtractorMixin",
    "FeatureExtractorBase", "FidelityJob", "METRICS", "NonFiniteSamplesError", "ReferenceSet",
    "WeightsAsset", "asset_status", "choose_extractor", "extractor_skip_reason", "feature_layer",
    "fid_from_statistics", "fid_statistics", "isc_from_logits", "kid_from_features",
    "kid_subset_size", "load_extractor", "preflight", "prc_from_features", "reference_cache_key",
    "reference_indices", "resolve_extractor_name", "resolve_weights", "sha256_file", "skip_reason",
    "to_uint8_images", "weights_asset",
]

#: The sample-quality metrics, in torch-fidelity's names.
METRICS = ("fid", "isc", "kid", "prc")
#: Bumped when what a cached reference file holds, or how its features are made, changes.
CACHE_FORMAT = 1
INPUT_FORMATS = ("uint8", "float")


class AssetChecksumError(AssetMissingError):
    """A weights file is where genbench looks for it, but its sha256 is not the expected one."""


class NonFiniteSamplesError(GenbenchError, ValueError):
    """Generated samples contain NaN or infinity, so no feature of them is meaningful."""


# -- what genbench reads from an extractor class ------------------------------------------

class ExtractorMixin:
    """genbench's side of a feature extractor; mix it in before ``FeatureExtractorBase``.

    Every attribute is optional (a plain torch-fidelity extractor gets these defaults):

    * ``input_format``: ``"uint8"`` (``Bx3xHxW`` uint8 images, torch-fidelity's convention) or
      ``"float"`` (the data tensor itself, float32: vectors ``(B, D)`` or images in [0, 1]).
    * ``weights_filename``, ``weights_sha256``, ``weights_url``: the weights file the extractor
      loads, its expected sha256 (``None`` if unknown) and where it is published.
      :meth:`default_weights_path` is where genbench looks for it; ``genbench assets`` lists
      and installs it there.
    * :meth:`supports` says whether the extractor applies to a dataset; :meth:`init_kwargs`
      adds constructor keywords that depend on the dataset.

    Metric layers come from torch-fidelity's ``get_default_feature_layer_for_metric``; an
    extractor without class logits returns ``None`` for ``"isc"`` and IS is then skipped.
    """

    input_format: ClassVar[str] = "uint8"
    weights_filename: ClassVar[str | None] = None
    weights_sha256: ClassVar[str | None] = None
    weights_url: ClassVar[str | None] = None

    @classmethod
    def default_weights_path(cls) -> Path | None:
        """Where the weights file is looked for: by default torch hub's checkpoint cache."""
        if not cls.weights_filename:
            return None
        return Path(torch.hub.get_dir()) / "checkpoints" / cls.weights_filename

    @classmethod
    def supports(cls, data_info: DataInfo) -> str | None:
        """``None`` if the extractor can embed this data, else the reason it cannot."""
        return _default_supports(cls, data_info)

    @classmethod
    def init_kwargs(cls, data_info: DataInfo) -> dict[str, Any]:
        """Extra constructor keywords for this dataset (default: none)."""
        return {}


def _default_supports(cls: type, data_info: DataInfo) -> str | None:
    if getattr(cls, "input_format", "uint8") == "float":
        return None
    if data_info.kind != "image":
        return f"it embeds images and {data_info.name!r} is {data_info.kind} data"
    if data_info.shape[0] not in (1, 3):
        return f"it embeds gray or RGB images and {data_info.name!r} has {data_info.shape[0]} channels"
    return None


def _input_format(cls: type) -> str:
    fmt = getattr(cls, "input_format", "uint8")
    if fmt not in INPUT_FORMATS:
        raise ConfigError(f"{cls.__qualname__}.input_format must be one of {INPUT_FORMATS}, got {fmt!r}")
    return fmt


def extractor_skip_reason(name: str, cls: type, data_info: DataInfo) -> str | None:
    """Why extractor ``name`` cannot embed ``data_info``'s data, or ``None``."""
    supports = getattr(cls, "supports", None)
    reason = supports(data_info) if supports is not None else _default_supports(cls, data_info)
    return None if reason is None else f"feature extractor {name!r} does not apply: {reason}"


def feature_layer(cls: type, metric: str) -> str | None:
    """The extractor's layer for ``metric`` (one of :data:`METRICS`), ``None`` if it has none."""
    try:
        return cls.get_default_feature_layer_for_metric(metric)
    except (KeyError, LookupError):
        return None


# -- weights files ------------------------------------------------------------------------

_SHA256_MEMO: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (remembered per path, size and mtime within the process)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _SHA256_MEMO:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _SHA256_MEMO[key] = h.hexdigest()
    return _SHA256_MEMO[key]


@dataclass(frozen=True)
class WeightsAsset:
    """The weights file an extractor needs: name, expected sha256, source URL, default place."""

    extractor: str
    filename: str
    sha256: str | None
    url: str | None
    default_path: Path

    def missing_message(self, path: Path | None = None) -> str:
        """What to do when the file is not at ``path`` (default: :attr:`default_path`)."""
        path = path or self.default_path
        sha = self.sha256 or "not recorded"
        source = (f"download it from {self.url} (on a machine with internet access) and "
                  if self.url else "obtain it and ")
        return (
            f"feature extractor {self.extractor!r} needs its weights file {self.filename} "
            f"(sha256 {sha}), which is not at {path}. Nothing is downloaded: {source}"
            f"copy it to {self.default_path}, or run `genbench assets add {self.extractor} FILE`, "
            f"or pass the file's path with --feature-weights (spec: feature_weights)."
        )


def weights_asset(name: str, cls: type) -> WeightsAsset | None:
    """The weights file extractor ``name`` declares, or ``None`` if it declares none."""
    filename = getattr(cls, "weights_filename", None)
    if not filename:
        return None
    default = getattr(cls, "default_weights_path", None)
    path = default() if default is not None else None
    if path is None:
        path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    return WeightsAsset(name, filename, getattr(cls, "weights_sha256", None),
                        getattr(cls, "weights_url", None), Path(path))


def resolve_weights(name: str, cls: type, explicit: str | os.PathLike | None = None
                    ) -> tuple[Path | None, str | None, bool | None]:
    """``(path, sha256, verified)`` of the weights extractor ``name`` will load.

    ``explicit`` (spec / ``--feature-weights``) wins and is used as given; its sha256 is
    recorded and ``verified`` says whether it matches the expected one (``None``: unknown).
    Otherwise the declared default location is used and must hold the expected file.
    ``(None, None, None)`` for an extractor that declares no weights file. Raises
    :class:`AssetMissingError` / :class:`AssetChecksumError`; never downloads.
    """
    asset = weights_asset(name, cls)
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            hint = f" {asset.missing_message(path)}" if asset is not None else ""
            raise AssetMissingError(
                f"feature weights file {str(path)!r} given for extractor {name!r} does not exist.{hint}")
        sha = sha256_file(path)
        expected = asset.sha256 if asset is not None else None
        return path, sha, (None if expected is None else sha == expected)
    if asset is None:
        return None, None, None
    path = asset.default_path
    if not path.is_file():
        raise AssetMissingError(asset.missing_message())
    sha = sha256_file(path)
    if asset.sha256 is not None and sha != asset.sha256:
        raise AssetChecksumError(
            f"feature extractor {name!r}: {path} has sha256 {sha}, expected {asset.sha256}. "
            f"The file is damaged or a different one; replace it (`genbench assets add {name} FILE`)"
            + (f", the original is at {asset.url}" if asset.url else "")
            + ", or pass another file deliberately with --feature-weights.")
    return path, sha, asset.sha256 is not None


@dataclass(frozen=True)
class AssetStatus:
    """One extractor's weights as ``genbench assets list`` reports them."""

    extractor: str
    status: str  # "ok", "missing", "checksum mismatch", "present (sha256 not recorded)", "none needed"
    filename: str | None = None
    path: str | None = None
    sha256_expected: str | None = None
    sha256_actual: str | None = None
    url: str | None = None

    @property
    def ok(self) -> bool:
        """True if the extractor can be used as is."""
        return self.status in ("ok", "present (sha256 not recorded)", "none needed")

    def to_dict(self) -> dict[str, Any]:
        return {"extractor": self.extractor, "status": self.status, "ok": self.ok,
                "filename": self.filename, "path": self.path,
                "sha256_expected": self.sha256_expected, "sha256_actual": self.sha256_actual,
                "url": self.url}


def asset_status(name: str, cls: type) -> AssetStatus:
    """Whether extractor ``name``'s weights are at their default place and intact."""
    asset = weights_asset(name, cls)
    if asset is None:
        return AssetStatus(name, "none needed")
    common = dict(filename=asset.filename, path=str(asset.default_path),
                  sha256_expected=asset.sha256, url=asset.url)
    if not asset.default_path.is_file():
        return AssetStatus(name, "missing", **common)
    actual = sha256_file(asset.default_path)
    if asset.sha256 is None:
        status = "present (sha256 not recorded)"
    else:
        status = "ok" if actual == asset.sha256 else "checksum mismatch"
    return AssetStatus(name, status, sha256_actual=actual, **common)


# -- inputs and features ------------------------------------------------------------------

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
    module: FeatureExtractorBase
    #: metric -> layer name (``None``: the extractor has no layer for that metric).
    layers: dict[str, str | None]
    input_format: str
    weights_path: Path | None
    weights_sha256: str | None
    weights_verified: bool | None
    init_kwargs: dict[str, Any]
    device: torch.device

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The data as this extractor takes it: uint8 ``Bx3xHxW`` images or float32."""
        if self.input_format == "uint8":
            return to_uint8_images(x)
        _check_finite(x, "samples")
        return x.detach().float()

    @torch.no_grad()
    def features(self, x: torch.Tensor, batch_size: int = 256) -> dict[str, torch.Tensor]:
        """One pass over ``x`` (data space): every requested layer, on the CPU."""
        if len(x) == 0:
            raise ConfigError("cannot extract features of an empty set")
        x = self.prepare(x)
        chunks: dict[str, list[torch.Tensor]] = {}
        for i in range(0, len(x), max(1, batch_size)):
            batch = x[i:i + batch_size].to(self.device, non_blocking=True)
            out = self.module.convert_features_tuple_to_dict(self.module(batch))
            for k, v in out.items():
                chunks.setdefault(k, []).append(v.cpu())
        return {k: torch.cat(v, dim=0) for k, v in chunks.items()}

    def provenance(self) -> dict[str, Any]:
        """What every stored value records about the extractor."""
        return {
            "feature_extractor": self.name,
            "weights_sha256": self.weights_sha256,
            "weights_path": None if self.weights_path is None else str(self.weights_path),
            "weights_verified": self.weights_verified,
            "torch_fidelity": torch_fidelity.__version__,
        }


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

    All layers any of the four metrics use are requested, so one pass serves them all.
    Weights are resolved with :func:`resolve_weights` (never downloaded) and passed to the
    class as ``feature_extractor_weights_path``, torch-fidelity's keyword. An extractor that
    loads no file is identified by the sha256 of its tensors instead.
    """
    reason = extractor_skip_reason(name, cls, data_info)
    if reason is not None:
        raise ConfigError(reason)
    layers = {m: feature_layer(cls, m) for m in METRICS}
    requested = list(dict.fromkeys(v for v in layers.values() if v is not None))
    if not requested:
        raise ConfigError(f"feature extractor {name!r} names no layer for any of {', '.join(METRICS)}")
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


# -- metrics from features (torch-fidelity's functions) ------------------------------------

def fid_statistics(features: torch.Tensor) -> dict[str, np.ndarray]:
    """Mean and covariance of features ``(N, D)``, as torch-fidelity computes them."""
    if len(features) < 2:
        raise ConfigError(f"FID needs at least 2 samples, got {len(features)}")
    return fid_features_to_statistics(features.detach().cpu())


def fid_from_statistics(generated: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> float:
    """Frechet distance between two Gaussians (torch-fidelity's ``fid_statistics_to_metric``)."""
    return float(fid_statistics_to_metric(generated, reference, False)[KEY_METRIC_FID])


def isc_from_logits(logits: torch.Tensor, splits: int = 10, shuffle: bool = True,
                    rng_seed: int = 2020) -> tuple[float, float]:
    """Inception Score ``(mean, std)`` over ``splits`` splits of class logits ``(N, K)``."""
    if not 1 <= splits <= len(logits):
        raise ConfigError(f"isc: splits must lie in [1, {len(logits)}] (the sample count), got {splits}")
    out = isc_features_to_metric(logits.detach().cpu(), splits, shuffle, rng_seed)
    return float(out[KEY_METRIC_ISC_MEAN]), float(out[KEY_METRIC_ISC_STD])


def kid_subset_size(n_generated: int, n_reference: int, requested: int = 1000) -> int:
    """The KID subset size actually used: ``min(requested, n_generated, n_reference)``."""
    return int(min(requested, n_generated, n_reference))


def kid_from_features(generated: torch.Tensor, reference: torch.Tensor, *, subsets: int = 100,
                      subset_size: int = 1000, rng_seed: int = 2020, degree: int = 3,
                      gamma: float | None = None, coef0: float = 1.0
                      ) -> tuple[float, float, int]:
    """Kernel Inception Distance ``(mean, std, subset size used)``, polynomial kernel.

    The subset size shrinks to the smaller sample count (torch-fidelity's default of 1,000
    fails on fewer samples); the size used is returned so that it can be recorded.
    """
    used = kid_subset_size(len(generated), len(reference), subset_size)
    if used < 2:
        raise ConfigError(f"KID needs at least 2 samples in each set, got {len(generated)} and {len(reference)}")
    out = kid_features_to_metric(
        generated.detach().cpu(), reference.detach().cpu(), kid_subsets=subsets,
        kid_subset_size=used, rng_seed=rng_seed, kid_kernel="poly", kid_kernel_poly_degree=degree,
        kid_kernel_poly_gamma=gamma, kid_kernel_poly_coef0=coef0, verbose=False)
    return float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD]), used


def prc_from_features(generated: torch.Tensor, reference: torch.Tensor, *, neighborhood: int = 3,
                      batch_size: int = 10000, save_cpu_ram: bool = False
                      ) -> tuple[float, float, float]:
    """Improved precision, recall and F-score (Kynkaanniemi et al. 2019) with k = ``neighborhood``."""
    if not 1 <= neighborhood < min(len(generated), len(reference)):
        raise ConfigError(f"prc: neighborhood must lie in [1, {min(len(generated), len(reference)) - 1}], "
                          f"got {neighborhood}")
    out = prc_features_to_metric(generated.detach().cpu(), reference.detach().cpu(),
                                 prc_neighborhood=neighborhood, prc_batch_size=batch_size,
                                 save_cpu_ram=save_cpu_ram, verbose=False)
    return (float(out[KEY_METRIC_PRECISION]), float(out[KEY_METRIC_RECALL]),
            float(out[KEY_METRIC_F_SCORE]))


# -- the reference cache ------------------------------------------------------------------

def reference_cache_key(*, data_fingerprint: str, extractor: str, weights_sha256: str | None,
                        n_reference: int, layers: list[str], input_format: str,
                        init_kwargs: dict[str, Any] | None = None) -> str:
    """Content key of cached reference features (hex sha256, 24 chars).

    Built from the dataset's content fingerprint, the extractor's name and its weights' sha256,
    the number of reference samples, the layers kept, how inputs are prepared and the
    extractor's dataset-dependent keywords, plus :data:`CACHE_FORMAT`.
    """
    parts = {"format": CACHE_FORMAT, "data": data_fingerprint, "extractor": extractor,
             "weights_sha256": weights_sha256, "n_reference": int(n_reference),
             "layers": sorted(layers), "input": input_format,
             "kwargs": {k: repr(v) for k, v in sorted((init_kwargs or {}).items())}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def reference_indices(n_total: int, n_reference: int) -> torch.Tensor | None:
    """Which reference items are used: all (``None``) or a fixed seeded subset, sorted.

    The subset does not depend on the job seed, so every job shares one cache entry.
    """
    if n_reference >= n_total:
        return None
    perm = torch.randperm(n_total, generator=torch.Generator().manual_seed(0))
    return perm[:n_reference].sort().values


@dataclass
class ReferenceSet:
    """Reference features and FID statistics, and whether they came from the cache."""

    features: dict[str, torch.Tensor]
    fid_stats: dict[str, np.ndarray] | None
    n: int
    key: str
    path: Path
    cache: str  # "hit" or "miss"


def _save_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _load_reference(path: Path, key: str, layers: list[str]) -> ReferenceSet | None:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None
    except Exception:  # a truncated or foreign file: recompute and overwrite it
        return None
    if not isinstance(blob, dict) or blob.get("key") != key:
        return None
    feats = blob.get("features", {})
    if any(layer not in feats for layer in layers):
        return None
    stats = None
    if "fid_mu" in blob:
        stats = {"mu": blob["fid_mu"].numpy(), "sigma": blob["fid_sigma"].numpy()}
    return ReferenceSet(feats, stats, int(blob["n"]), key, path, "hit")


# -- one job's shared state ----------------------------------------------------------------

def choose_extractor(data_info: DataInfo, requested: str | None = None) -> str | None:
    """``requested`` if given, else the dataset's default extractor, else ``raw`` for vectors."""
    from .evaluation import choose_feature_extractor

    return choose_feature_extractor(data_info, requested)


def resolve_extractor_name(ctx: "EvalContext") -> str | None:
    """The extractor for this job: the runner's choice, else the dataset's, else ``raw`` for vectors."""
    return choose_extractor(ctx.data_info, ctx.feature_extractor)


def preflight(metric: str, data_info: DataInfo, *, feature_extractor: str | None = None,
              feature_weights: str | os.PathLike | None = None, registries=None) -> None:
    """Fail before training if ``metric`` (one of :data:`METRICS`) can never run on this data.

    Raises :class:`~genbench.errors.UnknownNameError` for an unknown extractor and
    :class:`AssetMissingError` / :class:`AssetChecksumError` for a missing or damaged weights
    file (see :func:`resolve_weights`). Cases :func:`skip_reason` turns into a recorded skip
    (no extractor chosen, one that does not apply to the data or has no layer for ``metric``)
    pass. Cheap: no model is built; a weights file is hashed once per path, size and mtime.
    """
    if metric not in METRICS:
        raise ConfigError(f"unknown sample-quality metric {metric!r}; valid: {', '.join(METRICS)}")
    name = choose_extractor(data_info, feature_extractor)
    if name is None:
        return
    if registries is None:
        from .plugin_manager import default_registries

        registries = default_registries()
    cls = registries.extractors.get(name)
    if extractor_skip_reason(name, cls, data_info) is not None or feature_layer(cls, metric) is None:
        return
    resolve_weights(name, cls, feature_weights)


def _registries(ctx: "EvalContext"):
    if ctx.registries is not None:
        return ctx.registries
    from .plugin_manager import default_registries

    return default_registries()


class FidelityJob:
    """Everything the four metrics share in one job, for one extractor (see :meth:`of`).

    The extractor is loaded once; the generated samples are embedded once; the reference
    (``ctx.test``, up to ``max_reference`` items) is loaded from the on-disk cache or embedded
    once and stored there.
    """

    EXTRAS_KEY = "genbench.fidelity"

    def __init__(self, ctx: "EvalContext", name: str):
        self.ctx, self.name = ctx, name
        self.cls = _registries(ctx).extractors.get(name)
        self._extractor: Extractor | None = None
        self._generated: dict[str, torch.Tensor] | None = None
        self._generated_stats: dict[str, np.ndarray] | None = None
        self._references: dict[int, ReferenceSet] = {}

    @classmethod
    def of(cls, ctx: "EvalContext") -> "FidelityJob":
        """The job's shared state for its extractor, created on first use."""
        name = resolve_extractor_name(ctx)
        if name is None:
            raise ConfigError(skip_reason(ctx, "fid") or "no feature extractor")
        jobs = ctx.extras.setdefault(cls.EXTRAS_KEY, {})
        key = (name, None if ctx.feature_weights is None else str(ctx.feature_weights))
        if key not in jobs:
            jobs[key] = cls(ctx, name)
        return jobs[key]

    @property
    def extractor(self) -> Extractor:
        if self._extractor is None:
            self._extractor = load_extractor(self.name, self.cls, self.ctx.data_info,
                                             weights=self.ctx.feature_weights, device=self.ctx.device)
        return self._extractor

    def generated(self) -> dict[str, torch.Tensor]:
        """Features of ``ctx.samples`` (extracted on first call)."""
        if self._generated is None:
            self._generated = self.extractor.features(self.ctx.samples, self.ctx.batch_size)
        return self._generated

    def _layer(self, metric: str) -> str:
        layer = self.extractor.layers[metric]
        if layer is None:
            raise ConfigError(f"feature extractor {self.name!r} has no layer for {metric}")
        return layer

    def _data_fingerprint(self, x: torch.Tensor) -> str:
        """The dataset's content fingerprint (plus the split's size), else a hash of ``x``."""
        fp = self.ctx.data_info.fingerprint
        return f"{fp}:test:{len(x)}" if fp else tensor_fingerprint(x)

    def reference(self, max_reference: int) -> ReferenceSet:
        """Reference features for up to ``max_reference`` test items, cached by content."""
        if max_reference < 1:
            raise ConfigError(f"max_reference must be positive, got {max_reference}")
        x = self.ctx.test[0]
        n = min(int(max_reference), len(x))
        if n in self._references:
            return self._references[n]
        ext = self.extractor
        layers = list(ext.module.get_requested_features_list())
        key = reference_cache_key(
            data_fingerprint=self._data_fingerprint(x), extractor=ext.name,
            weights_sha256=ext.weights_sha256, n_reference=n, layers=layers,
            input_format=ext.input_format, init_kwargs=ext.init_kwargs)
        path = Path(self.ctx.cache_dir) / "fidelity" / f"reference-{ext.name}-{key}.pt"
        ref = _load_reference(path, key, layers)
        if ref is None:
            idx = reference_indices(len(x), n)
            feats = ext.features(x if idx is None else x[idx], self.ctx.batch_size)
            stats = None
            fid_layer = ext.layers["fid"]
            if fid_layer is not None and n >= 2:
                stats = fid_statistics(feats[fid_layer])
            blob = {"key": key, "n": n, "features": feats, "extractor": ext.name,
                    "weights_sha256": ext.weights_sha256, "cache_format": CACHE_FORMAT}
            if stats is not None:
                blob["fid_mu"] = torch.from_numpy(np.ascontiguousarray(stats["mu"]))
                blob["fid_sigma"] = torch.from_numpy(np.ascontiguousarray(stats["sigma"]))
            _save_atomic(blob, path)
            ref = ReferenceSet(feats, stats, n, key, path, "miss")
        self._references[n] = ref
        return ref

    def _details(self, metric: str, ref: ReferenceSet | None) -> dict[str, Any]:
        d = {**self.extractor.provenance(), "feature_layer": self.extractor.layers[metric],
             "n_generated": len(self.ctx.samples)}
        if ref is not None:
            d.update(n_reference=ref.n, reference_cache=ref.cache, reference_key=ref.key)
        return d

    # The four metrics. Generated set = torch-fidelity's input 1, reference = input 2.
    def fid(self, max_reference: int = 10000) -> MetricResult:
        """Frechet distance between generated and reference features."""
        layer = self._layer("fid")
        ref = self.reference(max_reference)
        if self._generated_stats is None:
            self._generated_stats = fid_statistics(self.generated()[layer])
        stats = ref.fid_stats if ref.fid_stats is not None else fid_statistics(ref.features[layer])
        value = fid_from_statistics(self._generated_stats, stats)
        return MetricResult({"fid": value}, self._details("fid", ref))

    def isc(self, splits: int = 10, rng_seed: int = 2020) -> MetricResult:
        """Inception Score of the generated samples (reference not needed)."""
        mean, std = isc_from_logits(self.generated()[self._layer("isc")], splits, True, rng_seed)
        return MetricResult({"mean": mean, "std": std},
                            {**self._details("isc", None), "isc_splits": splits, "rng_seed": rng_seed})

    def kid(self, max_reference: int = 10000, subsets: int = 100, subset_size: int = 1000,
            rng_seed: int = 2020) -> MetricResult:
        """Kernel Inception Distance; the subset size used is recorded."""
        layer = self._layer("kid")
        ref = self.reference(max_reference)
        mean, std, used = kid_from_features(self.generated()[layer], ref.features[layer],
                                            subsets=subsets, subset_size=subset_size, rng_seed=rng_seed)
        return MetricResult({"mean": mean, "std": std},
                            {**self._details("kid", ref), "kid_subset_size": used,
                             "kid_subsets": subsets, "rng_seed": rng_seed})

    def prc(self, max_reference: int = 10000, neighborhood: int = 3) -> MetricResult:
        """Improved precision/recall of generated against reference features."""
        layer = self._layer("prc")
        ref = self.reference(max_reference)
        p, r, f = prc_from_features(self.generated()[layer], ref.features[layer],
                                    neighborhood=neighborhood)
        return MetricResult({"precision": p, "recall": r, "f_score": f},
                            {**self._details("prc", ref), "prc_neighborhood": neighborhood})


def skip_reason(ctx: "EvalContext", metric: str) -> str | None:
    """Why ``metric`` (one of :data:`METRICS`) cannot run in this job, or ``None``.

    An unknown extractor name is not a skip: it raises
    :class:`~genbench.errors.UnknownNameError` listing the valid ones.
    """
    name = resolve_extractor_name(ctx)
    if name is None:
        return (f"dataset {ctx.data_info.name!r} declares no feature extractor; choose one "
                "with --extractor or the spec's extractor (e.g. inception-v3-compat)")
    cls = _registries(ctx).extractors.get(name)
    reason = extractor_skip_reason(name, cls, ctx.data_info)
    if reason is not None:
        return reason
    if feature_layer(cls, metric) is None:
        if metric == "isc":
            return f"feature extractor {name!r} has no class logits, so the Inception Score is undefined"
        return f"feature extractor {name!r} has no layer for {metric}"
    return None
