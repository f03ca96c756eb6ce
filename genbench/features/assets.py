"""Weights files of feature extractors: where they live, their sha256, adding one.

Each extractor class says what file it needs (``weights_filename``, ``weights_sha256``,
``weights_url``, ``default_weights_path()``; see :class:`genbench.api.extractor.ExtractorMixin`),
so no extractor is special-cased here. Nothing is ever downloaded.

* :func:`weights_asset` / :class:`WeightsAsset` — the file an extractor declares.
* :func:`resolve_weights` — the file an extractor will load, checked against its sha256
  (:class:`AssetChecksumError`, :class:`~genbench.api.errors.AssetMissingError`).
* :func:`check_weights` — :func:`resolve_weights`, and a file whose sha256 is not the
  recorded one must at least be a checkpoint torch reads (what runs before training).
* :func:`asset_status` / :class:`AssetStatus` and :func:`list_assets` — what ``genbench assets
  list`` reports per extractor.
* :func:`add_asset` — copy a local file to where the extractor looks for it, after checking
  its sha256 where one is recorded.
The ``genbench assets`` commands that print them are :mod:`genbench.cli.assets`.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genbench.api.errors import AssetInvalidError, AssetMissingError, ConfigError
from genbench.api.paths import atomic_write, sha256_file

__all__ = [
    "AssetChecksumError", "AssetStatus", "TORCH_WEIGHTS_SUFFIXES", "WeightsAsset", "add_asset",
    "asset_status", "assets", "check_weights", "list_assets", "resolve_weights", "sha256_file",
    "weights_asset",
]

#: A declared weights file (``weights_filename``) with one of these suffixes is a checkpoint
#: ``torch.save`` wrote: the file an extractor gets instead must load with
#: ``torch.load(..., weights_only=True)`` (:func:`check_weights`).
TORCH_WEIGHTS_SUFFIXES = (".pt", ".pth")


class AssetChecksumError(AssetMissingError):
    """A weights file is where genbench looks for it, but its sha256 is not the expected one."""


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
        import torch  # torch hub's folder; imported here so that `genbench --help` is fast

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


#: sha256 of a weights file -> why torch cannot load it (``None``: it loads); per process.
_TORCH_VERDICTS: dict[str, str | None] = {}


def _torch_load_failure(path: Path, sha: str) -> str | None:
    """Why ``torch.load(path, weights_only=True)`` fails (its exception's type), or ``None``."""
    if sha not in _TORCH_VERDICTS:
        import torch

        try:  # a zip checkpoint is memory-mapped: its tensors are not read
            torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
            _TORCH_VERDICTS[sha] = None
        except Exception as exc:  # torch's message advises weights_only=False: not repeated
            _TORCH_VERDICTS[sha] = type(exc).__name__
    return _TORCH_VERDICTS[sha]


def check_weights(name: str, cls: type, explicit: str | os.PathLike | None = None
                  ) -> tuple[Path | None, str | None, bool | None]:
    """:func:`resolve_weights`, then, where the file is not the recorded one (``explicit``,
    or a default file without a recorded sha256) and the extractor declares a torch
    checkpoint (:data:`TORCH_WEIGHTS_SUFFIXES`), that ``torch.load(..., weights_only=True)``
    reads it; raise :class:`~genbench.api.errors.AssetInvalidError` naming the file, the
    extractor and the file expected. Called before anything trains; the verdict is kept per
    content (sha256), so a file is loaded once per process.
    """
    path, sha, verified = resolve_weights(name, cls, explicit)
    asset = weights_asset(name, cls)
    if (path is None or verified or asset is None
            or not asset.filename.lower().endswith(TORCH_WEIGHTS_SUFFIXES)):
        return path, sha, verified
    failure = _torch_load_failure(path, sha)
    if failure is not None:
        recorded = f" (sha256 {asset.sha256})" if asset.sha256 else ""
        fix = ("pass the right file with --feature-weights (spec: feature_weights)" if explicit
               is not None else f"replace it (`genbench assets add {name} FILE`)")
        raise AssetInvalidError(
            f"feature weights file {path} of extractor {name!r} is not a PyTorch checkpoint "
            f"(torch.load with weights_only=True fails: {failure}); {name!r} expects "
            f"{asset.filename}{recorded}, a file written by torch.save: {fix}")
    return path, sha, verified


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
        """The row as JSON-ready values (``genbench assets list --json``)."""
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


def _registries(registries=None):
    if registries is not None:
        return registries
    from genbench.registry.manager import default_registries

    return default_registries()


def list_assets(registries=None) -> list[AssetStatus]:
    """The weights status of every registered extractor (present, missing, checksum), by name."""
    return [asset_status(e.name, e.obj) for e in _registries(registries).extractors]


def add_asset(name: str, source: str | os.PathLike, registries=None) -> tuple[Path, str, bool]:
    """Install ``source`` as extractor ``name``'s weights; return ``(path, sha256, copied)``.

    Refuses (:class:`~genbench.api.errors.ConfigError`) a file whose sha256 differs from the
    recorded one, and an extractor that needs no file. ``copied`` is False when an identical
    file was already in place. The copy is atomic.
    """
    cls = _registries(registries).extractors.get(name)
    asset = weights_asset(name, cls)
    if asset is None:
        raise ConfigError(f"feature extractor {name!r} loads no weights file; nothing to add")
    src = Path(source).expanduser()
    if not src.is_file():
        raise AssetMissingError(f"{src} is not a file")
    sha = sha256_file(src)
    if asset.sha256 is not None and sha != asset.sha256:
        raise ConfigError(
            f"{src} has sha256 {sha}, but {name!r} needs {asset.filename} with sha256 "
            f"{asset.sha256}" + (f" (from {asset.url})" if asset.url else "")
            + "; not installed")
    dest = asset.default_path
    if dest.is_file() and sha256_file(dest) == sha:
        return dest, sha, False
    atomic_write(dest, lambda tmp: shutil.copyfile(src, tmp))
    return dest, sha, True
