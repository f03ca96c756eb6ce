"""``genbench assets``: list the feature extractors' weights files, or add one from a local
file (the work is :mod:`genbench.features.assets`'s)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from genbench.features.assets import add_asset, list_assets


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
