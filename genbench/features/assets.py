"""Weights files of feature extractors: where they live, their sha256, ``genbench assets``.

Each extractor class says what file it needs (``weights_filename``, ``weights_sha256``,
``weights_url``, ``default_weights_path()``; see :class:`genbench.api.extractor.ExtractorMixin`),
so no extractor is special-cased here. Nothing is ever downloaded.

* :func:`weights_asset` / :class:`WeightsAsset` — the file an extractor declares.
* :func:`resolve_weights` — the file an extractor will load, checked against its sha256
  (:class:`AssetChecksumError`, :class:`~genbench.api.errors.AssetMissingError`).
* :func:`asset_status` / :class:`AssetStatus` and :func:`list_assets` — what ``genbench assets
  list`` reports per extractor.
* :func:`add_asset` — copy a local file to where the extractor looks for it, after checking
  its sha256 where one is recorded.
* :data:`assets` — the click group (``genbench assets``, ``assets list``, ``assets add``).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from genbench.api.errors import AssetMissingError, ConfigError
from genbench.api.paths import atomic_write, sha256_file

__all__ = [
    "AssetChecksumError", "AssetStatus", "WeightsAsset", "add_asset", "asset_status", "assets",
    "list_assets", "resolve_weights", "sha256_file", "weights_asset",
]


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


# -- `genbench assets` ----------------------------------------------------------------------

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


def _obj_registries(ctx: click.Context):
    """Registries a parent command may have put on the click context, else the default ones."""
    obj = ctx.find_root().obj
    if isinstance(obj, dict):
        return obj.get("registries")
    return getattr(obj, "registries", None)


def _print_table(statuses) -> None:
    rows = [(s.extractor, s.status, s.path or "-",
             s.sha256_expected or ("-" if s.filename is None else "not recorded")) for s in statuses]
    header = ("extractor", "status", "path", "sha256 expected")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(3)]
    for r in [header, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(r[:3], widths)) + "  " + str(r[3]))
    for s in statuses:
        if s.status == "missing":
            click.echo(f"\n{s.extractor}: missing {s.filename}; get it from {s.url or '(no URL recorded)'} "
                       f"and run `genbench assets add {s.extractor} FILE`")
        elif s.status == "checksum mismatch":
            click.echo(f"\n{s.extractor}: {s.path} has sha256 {s.sha256_actual}, expected "
                       f"{s.sha256_expected}; replace it with `genbench assets add {s.extractor} FILE`")


@click.group("assets", invoke_without_command=True)
@click.pass_context
def assets(ctx: click.Context) -> None:
    """Feature-extractor weights: list them (default) or add one from a local file."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_command)


@assets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_command(ctx: click.Context, as_json: bool = False) -> None:
    """List every extractor's weights file: status (ok, missing, checksum mismatch), path, sha256."""
    statuses = list_assets(_obj_registries(ctx))
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in statuses], indent=2))
    else:
        _print_table(statuses)


@assets.command("add")
@click.argument("name")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def add_command(ctx: click.Context, name: str, path: Path) -> None:
    """Install the weights file PATH for extractor NAME (sha256 checked where recorded)."""
    from genbench.api.console import exit_status
    from genbench.api.errors import GenbenchError

    try:  # `genbench assets add` has the command line's handler; this group alone does not
        dest, sha, copied = add_asset(name, path, _obj_registries(ctx))
    except GenbenchError as exc:
        error = click.ClickException(str(exc))
        error.exit_code = exit_status(exc)
        raise error from exc
    verb = "installed" if copied else "already installed (identical)"
    click.echo(f"{name}: {verb} {dest} (sha256 {sha})")
