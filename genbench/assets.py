"""``genbench assets``: the feature extractors' weights files, listed and installed offline.

Works through the extractor registry: each extractor class says what file it needs
(``weights_filename``, ``weights_sha256``, ``weights_url``, ``default_weights_path()``; see
:class:`genbench.fidelity.ExtractorMixin`), so no extractor is special-cased here.

* :func:`list_assets` — one :class:`~genbench.fidelity.AssetStatus` per extractor.
* :func:`add_asset` — copy a local file to where the extractor looks for it, after checking
  its sha256 where one is recorded.
* :data:`assets` — the click group (``genbench assets``, ``assets list``, ``assets add``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import click

from .errors import AssetMissingError, ConfigError


def _registries(registries=None):
    if registries is not None:
        return registries
    from .plugin_manager import default_registries

    return default_registries()


def list_assets(registries=None) -> list:
    """The weights status of every registered extractor (present, missing, checksum), by name."""
    from .fidelity import asset_status

    return [asset_status(e.name, e.obj) for e in _registries(registries).extractors]


def add_asset(name: str, source: str | os.PathLike, registries=None) -> tuple[Path, str, bool]:
    """Install ``source`` as extractor ``name``'s weights; return ``(path, sha256, copied)``.

    Refuses (:class:`~genbench.errors.ConfigError`) a file whose sha256 differs from the
    recorded one, and an extractor that needs no file. ``copied`` is False when an identical
    file was already in place. The copy is atomic.
    """
    from .fidelity import sha256_file, weights_asset

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
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name, suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
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
    from .errors import GenbenchError

    try:
        dest, sha, copied = add_asset(name, path, _obj_registries(ctx))
    except GenbenchError as exc:
        raise click.ClickException(str(exc)) from exc
    verb = "installed" if copied else "already installed (identical)"
    click.echo(f"{name}: {verb} {dest} (sha256 {sha})")
