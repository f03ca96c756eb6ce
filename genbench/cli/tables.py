"""What has run: ``genbench leaderboard`` (the boards, in any output format that prints)
and ``genbench results`` (the stored rows, or what failed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from genbench.cli.group import registries
from genbench.cli.options import DEFAULT_OUT, csv_list


def open_store(out_dir: Path):
    """``OUT/results.db``, read-only; a :class:`~genbench.api.errors.ConfigError` when absent."""
    from genbench.api.errors import ConfigError
    from genbench.results.store import ResultStore

    path = out_dir / "results.db"
    if not path.exists():
        raise ConfigError(f"no results in {out_dir} (expected {path}); run `genbench run --out {out_dir}` first")
    return ResultStore(path, readonly=True)  # never waits for, or blocks, a run writing it


def output_format(name: str, registered):
    """An instance of the output format ``name`` of the ``registered`` ones, if it prints;
    else an :class:`~genbench.api.errors.UnknownNameError` listing those that do."""
    from genbench.api.errors import UnknownNameError

    printable = [e.name for e in registered if e.obj.renders()]
    if name not in printable:
        raise UnknownNameError("output format", name, printable, broken=registered.broken)
    return registered.get(name)()


@click.command()
@click.option("--out", "out_dir", default=DEFAULT_OUT, show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", default="md", show_default=True,
              help="Any output format that prints (`genbench list formats`): md, latex, "
              "csv (one tidy CSV, a line per cell, for every dataset), html (one "
              "self-contained page) or a plugin's.")
@click.option("--suite", help="Only jobs of this suite name.")
@click.option("--dataset", "datasets", help="Comma-separated dataset labels (default: all).")
@click.option("--metrics", help="Comma-separated metrics or columns to show, e.g. fid,prc.recall.")
@click.option("--sort", "sort", help="Sort by this column, e.g. recon.mse.")
@click.option("--primary", "sort", hidden=True)
@click.option("--full", is_flag=True, help="Every metric key, not just the headline columns.")
def leaderboard(out_dir, fmt, suite, datasets, metrics, sort, full):
    """Print the leaderboards (one per dataset) from OUT/results.db."""
    from genbench.results.boards import build_leaderboards
    from genbench.execution.suite import metric_descriptions

    store = open_store(out_dir)
    # the metrics and models declare how their results are presented
    regs = registries(["formats", "metrics", "models"])
    output = output_format(fmt, regs.formats)
    boards = build_leaderboards(store, suite=suite, primary=sort, registries=regs, descriptions=(
        metric_descriptions(regs) if output.needs_descriptions else None))
    if not boards:
        from genbench.api.errors import ConfigError

        suites = sorted(set(store.jobs()["suite"]))
        raise ConfigError(  # a name or folder to fix: exit 2, like `results` on an empty folder
            f"no jobs of suite {suite!r} in {out_dir}; suites stored: {', '.join(suites)}"
            if suite and suites else f"no jobs stored yet in {out_dir}; run `genbench run "
            f"--out {out_dir}` first")
    wanted = csv_list(datasets)
    if wanted:
        stored = sorted({d for _, d in boards})
        unknown = [d for d in wanted if d not in stored]
        if unknown:
            raise click.UsageError(f"no dataset {', '.join(map(repr, unknown))} in {out_dir}; "
                                   f"datasets stored: {', '.join(stored)}")
        boards = {k: b for k, b in boards.items() if k[1] in wanted}
    chosen = csv_list(metrics)
    if chosen:
        known = {n for b in boards.values() for c in b.columns for n in (c.metric, c.base, c.name)}
        unknown = [m for m in chosen if m not in known]
        if unknown:
            raise click.UsageError(f"no metric or column {', '.join(map(repr, unknown))}; "
                                   f"columns: {', '.join(sorted({c.name for b in boards.values() for c in b.columns}))}")
    click.echo(output.render(boards, store, full=full, metrics=chosen), nl=False)


@click.command()
@click.option("--out", "out_dir", default=DEFAULT_OUT, show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "text"]),
              help="Default: csv; text with --failed.")
@click.option("--failed", is_flag=True, help="Only what failed or diverged (jobs, metrics, "
              "trainings, failed reruns), each with its error and stored traceback; exit "
              "status 1 when there is any.")
def results(out_dir, fmt, failed):
    """Every stored job with its metric values and provenance (raw rows); with --failed,
    only what went wrong, with its traceback."""
    import pandas as pd

    if failed:
        _print_failures(open_store(out_dir), fmt or "text")
        return
    if fmt == "text":
        raise click.BadParameter("text is for --failed; use csv or json", param_hint="--format")
    rows = open_store(out_dir).results()
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, default=str, allow_nan=False))
        return
    flat = []
    for r in rows:
        row = {k: v for k, v in r.items() if k not in ("metrics", "metric_status", "provenance")}
        row.update(r["metrics"])
        row["provenance"] = json.dumps(r["provenance"], sort_keys=True, default=str)
        flat.append(row)
    click.echo(pd.DataFrame(flat).to_csv(index=False), nl=False)


def _print_failures(store, fmt: str) -> None:
    """``results --failed``: exits 1 when anything failed, 0 (saying so) when nothing did."""
    from dataclasses import fields

    from genbench.results.failures import Failure, collect_failures

    failures = collect_failures(store)
    if fmt == "json":
        click.echo(json.dumps([f.to_dict() for f in failures], indent=2))
    elif fmt == "csv":
        import pandas as pd

        table = pd.DataFrame([f.to_dict() for f in failures],
                             columns=[f.name for f in fields(Failure)])
        click.echo(table.to_csv(index=False), nl=False)
    elif failures:
        click.echo("\n\n".join(f.to_text() for f in failures))
    if not failures:  # on stderr when stdout is data
        click.echo(f"no failed or diverged jobs in {store.path}", err=fmt != "text")
        return
    sys.exit(1)
