"""The ``genbench`` command line."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click

from . import __version__
from .errors import (ConfigError, DataUnavailableError, GenbenchError, PluginError, SpecError,
                     UnknownNameError)

DEFAULT_OUT = "genbench-out"
USAGE_ERRORS = (UnknownNameError, ConfigError, SpecError)


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


def _seeds(ctx, param, value: str | None) -> list[int] | None:
    items = _csv(value)
    if items is None:
        return None
    try:
        seeds = [int(s) for s in items]
    except ValueError:
        raise click.BadParameter(f"seeds must be comma-separated integers, got {value!r}")
    from .spec import MAX_SEED

    if any(not 0 <= s <= MAX_SEED for s in seeds):
        raise click.BadParameter(f"seeds must lie between 0 and {MAX_SEED}")
    if len(set(seeds)) != len(seeds):
        raise click.BadParameter(f"seeds has duplicates: {value}")
    return seeds


def _registries():
    from .plugin_manager import default_registries

    try:
        return default_registries()
    except PluginError as exc:
        raise click.ClickException(str(exc)) from None


class _Group(click.Group):
    """Adds plugin commands lazily, so that ``--help`` of a broken plugin still explains."""

    _plugins_added = False

    def _add_plugin_commands(self):
        if self._plugins_added:
            return
        self._plugins_added = True
        from .plugin_manager import create_plugin_manager

        try:
            pm = create_plugin_manager()
        except PluginError:
            return  # reported by the command that needs the plugins
        pm.hook.register_commands(cli=self)

    def list_commands(self, ctx):
        self._add_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx, name):
        cmd = super().get_command(ctx, name)
        if cmd is None:
            self._add_plugin_commands()
            cmd = super().get_command(ctx, name)
        return cmd


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="genbench")
def cli():
    """Train, evaluate and rank generative models.

    \b
    Quick start:
      genbench run                    run the default suite (offline, CPU, minutes)
      genbench leaderboard            print the tables of what has run
      genbench list models            what can be benchmarked
      genbench run my_suite.toml      run your own suite spec

    Results go to ./genbench-out (results.db, runs/, leaderboards/) unless --out says
    otherwise. Finished jobs are never rerun, so an interrupted run resumes.
    """


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt


@cli.command()
@click.argument("spec", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", default=DEFAULT_OUT, show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Output directory.")
@click.option("--models", help="Comma-separated model labels or names (a registered name not "
              "in the spec runs with its defaults).")
@click.option("--datasets", help="Comma-separated dataset labels or names.")
@click.option("--metrics", help="Comma-separated metric names.")
@click.option("--seeds", callback=_seeds, help="Comma-separated seeds, e.g. 0,1,2.")
@click.option("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")
@click.option("--data-root", type=click.Path(file_okay=False),
              help="Where datasets live (default: $GENBENCH_DATA or ~/.cache/genbench/data).")
@click.option("--download", is_flag=True, default=None,
              help="Allow downloading datasets that are missing.")
@click.option("--extractor", help="Feature extractor for sample-quality metrics (overrides "
              "each dataset's default).")
@click.option("--feature-weights", type=click.Path(dir_okay=False),
              help="Weights file for the feature extractor.")
@click.option("--force", is_flag=True, help="Rerun (and retrain) jobs that are already stored.")
@click.option("--threads", type=click.IntRange(min=1),
              help="CPU threads for torch (default: torch's own choice, all cores). Use 1 when "
              "other processes share a small machine: tiny models train many times faster.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or per-job lines.")
def run(spec, out_dir, models, datasets, metrics, seeds, device, data_root, download,
        extractor, feature_weights, force, threads, quiet):
    """Run a suite SPEC (TOML; default: the embedded default suite) and print leaderboards.

    Each dataset x model x seed is a job: trained, sampled once, measured by every metric
    and stored in OUT/results.db with its provenance; samples, a sample grid, the loss curve
    and the checkpoint go to OUT/runs/<job>/. A job that fails is recorded and the suite
    goes on. Exit status: 0 when every job and metric succeeded (diverged models are a
    result, not an error), 1 when some failed, 2 for usage errors.
    """
    from .leaderboard import build_leaderboards, save_sample_figures, write_leaderboards
    from .runner import SuiteRunner
    from .spec import SuiteSpec

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    registries = _registries()
    try:
        suite = SuiteSpec.from_toml(spec) if spec is not None else SuiteSpec.default()
        suite = suite.select(
            registries, models=_csv(models), datasets=_csv(datasets), metrics=_csv(metrics),
            seeds=seeds, device=device, feature_extractor=extractor,
            feature_weights=feature_weights, download=download, data_root=data_root)
        runner = SuiteRunner(suite, out_dir, registries, force=force,
                             progress=False if quiet else None,
                             echo=(lambda s: None) if quiet else
                             (lambda s: click.echo(s, err=True)))
    except USAGE_ERRORS as exc:
        raise click.UsageError(str(exc)) from None
    except GenbenchError as exc:
        raise click.ClickException(str(exc)) from None

    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        report = runner.run()
    except KeyboardInterrupt:
        n = runner.store.count()
        click.echo(f"\ninterrupted: {n} finished job(s) are stored in {runner.store.path}; "
                   "run the same command again to resume", err=True)
        sys.exit(130)
    except USAGE_ERRORS as exc:
        raise click.UsageError(str(exc)) from None
    except DataUnavailableError as exc:
        raise click.ClickException(str(exc)) from None
    except GenbenchError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        signal.signal(signal.SIGTERM, previous)

    try:
        boards = build_leaderboards(runner.store, suite=suite.name,
                                    fingerprints=report.fingerprints, primary=suite.primary_metric)
    except GenbenchError as exc:
        raise click.UsageError(str(exc)) from None
    written = write_leaderboards(boards, out_dir / "leaderboards")
    written += save_sample_figures(boards, runner.store, out_dir / "leaderboards",
                                   fingerprints=report.fingerprints)
    for board in boards.values():
        click.echo(board.to_markdown())
    if not quiet:
        click.echo(f"leaderboards written to {out_dir / 'leaderboards' / suite.name} "
                   f"({len(written)} files)", err=True)
    problems = len(report.failed) + len(report.metric_failures)
    if problems:
        click.echo(f"{len(report.failed)} job(s) and {len(report.metric_failures)} metric(s) "
                   "failed; see the notes above and `genbench results`", err=True)
        sys.exit(1)


def _open_store(out_dir: Path):
    from .store import ResultStore

    path = out_dir / "results.db"
    if not path.exists():
        raise click.ClickException(f"no results in {out_dir} (expected {path}); run `genbench run --out {out_dir}` first")
    return ResultStore(path)


@cli.command()
@click.option("--out", "out_dir", default=DEFAULT_OUT, show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "html", "tex"]), default="md",
              show_default=True)
@click.option("--suite", help="Only jobs of this suite name.")
@click.option("--primary", help="Sort by this column, e.g. recon.mse.")
def leaderboard(out_dir, fmt, suite, primary):
    """Print the leaderboards (one per dataset) from OUT/results.db."""
    from .leaderboard import FORMATS, build_leaderboards

    store = _open_store(out_dir)
    try:
        boards = build_leaderboards(store, suite=suite, primary=primary)
    except GenbenchError as exc:
        raise click.UsageError(str(exc)) from None
    if not boards:
        suites = sorted(set(store.jobs()["suite"]))
        raise click.ClickException(
            f"no jobs of suite {suite!r}; suites stored: {', '.join(suites)}" if suite and suites
            else "no jobs stored yet")
    for (suite_name, dataset), board in boards.items():
        if fmt != "md" and len(boards) > 1:
            click.echo(f"# {suite_name} / {dataset}")
        click.echo(getattr(board, FORMATS[fmt])())


@cli.command()
@click.option("--out", "out_dir", default=DEFAULT_OUT, show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True)
def results(out_dir, fmt):
    """Every stored job with its metric values and provenance (raw rows)."""
    import pandas as pd

    rows = _open_store(out_dir).results()
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


@cli.command(name="list")
@click.argument("kind", type=click.Choice(["models", "datasets", "metrics", "extractors"]))
def list_(kind):
    """List the registered models, datasets, metrics or feature extractors."""
    from tabulate import tabulate

    from .config import hyperparameters

    registries = _registries()
    rows = []
    for e in registries.by_kind(kind):
        cls = e.obj
        desc = (getattr(cls, "description", "") or (cls.__doc__ or "").strip().split("\n")[0])
        if kind == "models":
            rows.append([e.name, cls.family, ",".join(cls.data_kinds),
                         ",".join(cls.capabilities()), e.plugin, desc])
        elif kind == "datasets":
            try:
                d = cls.describe()
                shape = "x".join(map(str, d["shape"])) if d.get("shape") else "?"
                rows.append([e.name, d.get("kind"), shape, d.get("classes") or "-",
                             d.get("modes") or "-", e.plugin, desc])
            except Exception as exc:  # a dataset that cannot describe itself is still listed
                rows.append([e.name, "?", "?", "?", "?", e.plugin, f"{desc} [{exc}]"])
        elif kind == "metrics":
            rows.append([e.name, ",".join(cls.data_kinds), ",".join(cls.requires), e.plugin, desc])
        else:
            params = ", ".join(hyperparameters(cls)) if hasattr(cls, "__init__") else ""
            rows.append([e.name, e.plugin, desc or params])
    headers = {
        "models": ["name", "family", "data", "capabilities", "plugin", "description"],
        "datasets": ["name", "kind", "shape", "classes", "modes", "plugin", "description"],
        "metrics": ["name", "data", "needs", "plugin", "description"],
        "extractors": ["name", "plugin", "description"],
    }[kind]
    click.echo(tabulate(rows, headers=headers, tablefmt="simple", maxcolwidths=[None] * (len(headers) - 1) + [60]))


@cli.command()
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins.")
def plugins(show_all):
    """Installed plugins as JSON: name, version, distribution and hooks."""
    from .plugin_manager import create_plugin_manager, plugin_info

    try:
        pm = create_plugin_manager()
    except PluginError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(plugin_info(pm, include_builtins=show_all), indent=2))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="genbench")


def _add_core_commands() -> None:
    from .assets import assets

    cli.add_command(assets)


_add_core_commands()
