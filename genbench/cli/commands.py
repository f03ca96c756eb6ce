"""The ``genbench`` command line."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click

from genbench.api.console import (DEBUG_ENV, DEBUG_HINT, EXIT_INTERRUPTED, debug_from_env, error_line,
                      exit_status, needs_hint, one_line_warnings)

DEFAULT_OUT = "genbench-out"


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
    from genbench.plan.spec import MAX_SEED

    if any(not 0 <= s <= MAX_SEED for s in seeds):
        raise click.BadParameter(f"seeds must lie between 0 and {MAX_SEED}")
    if len(set(seeds)) != len(seeds):
        raise click.BadParameter(f"seeds has duplicates: {value}")
    return seeds


#: (plugin, error) pairs already reported on stderr by this process.
_reported: set[tuple[str, str]] = set()


def _report_broken(broken) -> None:
    """One stderr line per plugin left out, each reported once per process."""
    for b in broken.values():
        if (b.name, b.error) not in _reported:
            _reported.add((b.name, b.error))
            click.echo(f'warning: plugin "{b.name}" left out: {" ".join(b.error.split())}',
                       err=True)


def _registries(kinds: list[str] | None = None):
    """The process's registries (one plugin manager per process); reports broken plugins.

    With ``kinds``, only those registries are filled (not cached): listing datasets imports
    no model, metric or feature-extractor module.
    """
    from genbench.registry.manager import build_registries, default_plugin_manager, default_registries

    registries = (default_registries() if kinds is None
                  else build_registries(default_plugin_manager(), kinds))
    _report_broken(registries.broken)
    return registries


class _Group(click.Group):
    """Adds plugin commands lazily (from the process's one plugin manager), so that
    ``genbench run`` never pays for them and a broken plugin cannot hide ``--help``."""

    _plugins_added = False

    def _add_plugin_commands(self):
        """Call each plugin's ``register_commands``, oldest first; a plugin that raises or
        redefines an existing command is left out and its commands are taken back."""
        if self._plugins_added:
            return
        self._plugins_added = True
        from genbench.registry.manager import call_one_plugin, default_plugin_manager, plugins_implementing

        pm = default_plugin_manager()
        for name, plugin in plugins_implementing(pm, "register_commands"):
            before = dict(self.commands)
            try:
                call_one_plugin(pm, "register_commands", plugin, cli=self)
            except Exception as exc:
                error = f'plugin "{name}" failed in register_commands: {type(exc).__name__}: {exc}'
            else:
                replaced = sorted(n for n, c in before.items() if self.commands.get(n) is not c)
                error = (f'plugin "{name}" redefines or removes the command(s) '
                         f"{', '.join(replaced)}, defined by genbench or an earlier plugin; "
                         "uninstall or disable one of them") if replaced else None
            if error is not None:
                self.commands = before
                pm.leave_out(name, error)
        _report_broken(pm.broken)

    def list_commands(self, ctx):
        self._add_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx, name):
        cmd = super().get_command(ctx, name)
        if cmd is None:
            self._add_plugin_commands()
            cmd = super().get_command(ctx, name)
        return cmd

    def main(self, *args, **kwargs):
        """Warnings print as one line each; an error outside any command (while ``--help``
        loads the plugins, say) still prints no traceback."""
        with one_line_warnings():
            try:
                return super().main(*args, **kwargs)
            except click.ClickException:  # standalone_mode=False hands them to the caller
                raise
            except Exception as exc:  # a command's errors never get here: see invoke
                failure = _fail(exc, debug_from_env())
                failure.show()
                sys.exit(failure.exit_code)

    def invoke(self, ctx):
        """Every command's errors, in one place: ``Error: <message>`` and exit status 2 for
        one the user can fix before running (USER_ERRORS), 1 for any other, 130 on Ctrl-C;
        the traceback only with ``--debug`` (or GENBENCH_DEBUG=1)."""
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            raise _fail(exc, ctx.params.get("debug", False)) from None


class _Failure(click.ClickException):
    """An exception from a command, shown as ``Error: ...`` (plus a hint where a traceback
    would help) with its exit status."""

    def __init__(self, exc: BaseException):
        super().__init__(error_line(exc))
        self.exit_code = exit_status(exc)
        self.hint = DEBUG_HINT if needs_hint(exc) else None

    def show(self, file=None) -> None:
        super().show(file)
        if self.hint:
            click.echo(self.hint, file=file, err=file is None)


def _fail(exc: BaseException, debug: bool) -> _Failure:
    """``exc`` as a :class:`_Failure`; with ``debug``, its traceback is printed first."""
    failure = _Failure(exc)
    if debug:
        import traceback

        click.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)
        failure.hint = None
    return failure


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="genbench", prog_name="genbench")
@click.option("--debug", is_flag=True, envvar=DEBUG_ENV,
              help=f"Show the Python traceback of an error (also: {DEBUG_ENV}=1).")
def cli(debug):
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


def _interrupted_message(runner, out_dir: Path) -> str:
    """What an interrupted ``genbench run`` kept: stored jobs, checkpoints, or nothing."""
    kept = []
    if (out_dir / "results.db").exists():  # checked first: runner.store would create it
        kept.append(f"{runner.store.count()} finished job(s) are stored in {out_dir / 'results.db'}")
    if (out_dir / "runs").is_dir() and any((out_dir / "runs").iterdir()):
        kept.append(f"checkpoints in {out_dir / 'runs'} are reused")
    if not kept:
        return f"interrupted before anything finished: nothing is stored in {out_dir}"
    return f"interrupted: {'; '.join(kept)}; run the same command again to resume"


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
@click.option("--jobs", "-j", "jobs", type=click.IntRange(min=0),
              help="Jobs run at once, each in its own worker process (default: one per "
              "available core on the CPU, one per GPU on CUDA; 0 runs in this process, for "
              "debuggers).")
@click.option("--threads", type=click.IntRange(min=1),
              help="torch CPU threads per worker (default: the worker's share of the cores, "
              "so that workers never oversubscribe them).")
@click.option("--executor", help="Where jobs run: local (worker processes, the default) or "
              'ray (one Ray task per job; needs: pip install "genbench[ray]"). Overrides the '
              "spec's executor.")
@click.option("--address", help="With --executor ray: the Ray cluster, auto (the cluster this "
              "machine belongs to), ray://HOST:PORT or HOST:PORT (default: a new local Ray).")
@click.option("--nproc", type=click.IntRange(min=1), help="Train each model data-parallel on "
              "this many processes (one per GPU on CUDA; gloo on the CPU). Overrides the "
              "spec's [train] nproc.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or per-job lines.")
@click.option("--no-wait", is_flag=True, help="When another genbench run is writing to OUT, "
              "exit with status 2 naming it instead of waiting for it to finish.")
@click.option("--tensorboard", "tensorboard_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write each training's losses as TensorBoard event files, one folder "
              'per training in this directory (needs: pip install "genbench[tensorboard]").')
def run(spec, out_dir, models, datasets, metrics, seeds, device, data_root, download,
        extractor, feature_weights, force, jobs, threads, executor, address, nproc, quiet,
        no_wait, tensorboard_dir):
    """Run a suite SPEC (TOML; default: the embedded default suite) and print leaderboards.

    Each dataset x model x sampling setting x seed is a row: its model is trained once
    (rows that differ only in label or evaluation share the training), sampled once,
    measured by every metric and stored in OUT/results.db with its provenance; the
    checkpoint and loss curve go to OUT/runs/<training>/, samples and a sample grid to
    OUT/runs/<training>/eval-<id>/. Jobs run in parallel worker processes (--jobs). A job
    that fails, or whose worker dies, is recorded and the suite goes on; Ctrl-C keeps every
    finished job, and running the same command again resumes. Exit status: 0 when every job and metric succeeded (diverged models are a
    result, not an error), 1 when some failed, 2 for an error to fix before running (a
    name, a value, a file, missing data or weights), 130 when interrupted.
    """
    from genbench.plan.jobs import safe_dirname
    from genbench.results.boards import build_leaderboards, save_sample_figures, write_leaderboards
    from genbench.results.plots import save_plots
    from genbench.results.report import write_report
    from genbench.run.runner import SuiteRunner
    from genbench.plan.spec import SuiteSpec

    if tensorboard_dir is not None:  # fail before any training, not after all of them
        from genbench.api.paths import ensure_writable_dir
        from genbench.results.tensorboard import require_tensorboard

        require_tensorboard()
        ensure_writable_dir(tensorboard_dir, "TensorBoard folder")
    registries = _registries()
    suite = SuiteSpec.from_toml(spec) if spec is not None else SuiteSpec.default()
    # Another executor than the spec's starts from no options: the spec's are not its own.
    base_options = suite.executor_options if executor in (None, suite.executor) else {}
    if address is not None and (executor or suite.executor) != "ray":
        from genbench.api.errors import ConfigError

        raise ConfigError(f"--address names a Ray cluster, but this run's executor is "
                          f"{executor or suite.executor!r}; add --executor ray")
    suite = suite.select(
        registries, models=_csv(models), datasets=_csv(datasets), metrics=_csv(metrics),
        seeds=seeds, device=device, feature_extractor=extractor,
        feature_weights=feature_weights, download=download, data_root=data_root,
        executor=executor, nproc=nproc,
        executor_options=base_options if address is None else {**base_options, "address": address})
    runner = SuiteRunner(suite, out_dir, registries, force=force, jobs=jobs, threads=threads,
                         progress=False if quiet else None, wait=not no_wait,
                         echo=(lambda s: None) if quiet else
                         (lambda s: click.echo(s, err=True)))

    boards: dict = {}
    written: list[Path] = []

    def publish(report) -> None:
        """The suite's leaderboard files, every stored row of it (under the run's lock)."""
        boards.update(build_leaderboards(runner.store, suite=suite.name,
                                         include=report.fingerprints,
                                         primary=suite.primary_metric,
                                         descriptions=_metric_descriptions(registries)))
        written.extend(write_leaderboards(boards, out_dir / "leaderboards"))
        written.extend(save_sample_figures(boards, runner.store, out_dir / "leaderboards"))
        written.extend(save_plots(boards, runner.store, out_dir / "leaderboards"))
        if boards:  # every board is filed under this suite
            written.append(write_report(boards, runner.store, out_dir / "leaderboards"
                                        / safe_dirname(suite.name) / "index.html"))

    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        report = runner.run(publish=publish)
    except KeyboardInterrupt:
        click.echo("\n" + _interrupted_message(runner, out_dir), err=True)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        signal.signal(signal.SIGTERM, previous)

    for board in boards.values():
        click.echo(board.to_text())
    if not quiet:
        click.echo(f"leaderboards written to {out_dir / 'leaderboards' / suite.name} "
                   f"({len(written)} files)", err=True)
    if tensorboard_dir is not None:
        from genbench.results.tensorboard import write_tensorboard

        events = write_tensorboard(runner.store, tensorboard_dir, fingerprints=report.fingerprints)
        if not quiet:
            click.echo(f"TensorBoard event files written to {tensorboard_dir} "
                       f"({len(events)} trainings)", err=True)
    problems = len(report.failed) + len(report.metric_failures)
    if problems:
        click.echo(f"{len(report.failed)} job(s) and {len(report.metric_failures)} metric(s) "
                   "failed; see the notes above and `genbench results --failed`", err=True)
        sys.exit(1)


def _open_store(out_dir: Path):
    from genbench.api.errors import ConfigError
    from genbench.results.store import ResultStore

    path = out_dir / "results.db"
    if not path.exists():
        raise ConfigError(f"no results in {out_dir} (expected {path}); run `genbench run --out {out_dir}` first")
    return ResultStore(path, readonly=True)  # never waits for, or blocks, a run writing it


def _metric_descriptions(registries) -> dict[str, str]:
    return {name: getattr(registries.metrics.get(name), "description", "") or ""
            for name in registries.metrics.names()}


@cli.command()
@click.option("--out", "out_dir", default=DEFAULT_OUT, show_default=True,
              type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "latex", "html"]), default="md",
              show_default=True, help="csv: one tidy CSV (a line per cell) for every dataset; "
              "html: one self-contained page.")
@click.option("--suite", help="Only jobs of this suite name.")
@click.option("--dataset", "datasets", help="Comma-separated dataset labels (default: all).")
@click.option("--metrics", help="Comma-separated metrics or columns to show, e.g. fid,prc.recall.")
@click.option("--sort", "sort", help="Sort by this column, e.g. recon.mse.")
@click.option("--primary", "sort", hidden=True)
@click.option("--full", is_flag=True, help="Every metric key, not just the headline columns.")
def leaderboard(out_dir, fmt, suite, datasets, metrics, sort, full):
    """Print the leaderboards (one per dataset) from OUT/results.db."""
    import pandas as pd

    from genbench.results.boards import build_leaderboards

    store = _open_store(out_dir)
    # the report's tooltips need the metrics' descriptions: the plugins load for it only
    boards = build_leaderboards(store, suite=suite, primary=sort, descriptions=(
        _metric_descriptions(_registries(["metrics"])) if fmt == "html" else None))
    if not boards:
        from genbench.api.errors import ConfigError

        suites = sorted(set(store.jobs()["suite"]))
        raise ConfigError(  # a name or folder to fix: exit 2, like `results` on an empty folder
            f"no jobs of suite {suite!r} in {out_dir}; suites stored: {', '.join(suites)}"
            if suite and suites else f"no jobs stored yet in {out_dir}; run `genbench run "
            f"--out {out_dir}` first")
    wanted = _csv(datasets)
    if wanted:
        stored = sorted({d for _, d in boards})
        unknown = [d for d in wanted if d not in stored]
        if unknown:
            raise click.UsageError(f"no dataset {', '.join(map(repr, unknown))} in {out_dir}; "
                                   f"datasets stored: {', '.join(stored)}")
        boards = {k: b for k, b in boards.items() if k[1] in wanted}
    chosen = _csv(metrics)
    if chosen:
        known = {n for b in boards.values() for c in b.columns for n in (c.metric, c.base, c.name)}
        unknown = [m for m in chosen if m not in known]
        if unknown:
            raise click.UsageError(f"no metric or column {', '.join(map(repr, unknown))}; "
                                   f"columns: {', '.join(sorted({c.name for b in boards.values() for c in b.columns}))}")
    if fmt == "csv":
        tidy = pd.concat([b.tidy() for b in boards.values()], ignore_index=True)
        click.echo(tidy.to_csv(index=False), nl=False)
    elif fmt == "html":
        from genbench.results.report import render_report

        click.echo(render_report(boards, store), nl=False)
    else:
        for board in boards.values():
            click.echo(board.to_latex(full, chosen) if fmt == "latex"
                       else board.to_markdown(full, chosen))


@cli.command()
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
        _print_failures(_open_store(out_dir), fmt or "text")
        return
    if fmt == "text":
        raise click.BadParameter("text is for --failed; use csv or json", param_hint="--format")
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


def _description(cls: type) -> str:
    return getattr(cls, "description", "") or (cls.__doc__ or "").strip().split("\n")[0]


def _model_row(e) -> list:
    cls = e.obj
    return [e.name, cls.family, ",".join(cls.data_kinds), ",".join(cls.capabilities()), e.plugin,
            _description(cls)]


def _dataset_row(e) -> list:
    cls = e.obj
    try:
        d = cls.describe()
    except Exception as exc:  # a dataset that cannot describe itself is still listed
        return [e.name, "?", "?", "?", "?", e.plugin, f"{_description(cls)} [{exc}]"]
    shape = "x".join(map(str, d["shape"])) if d.get("shape") else "?"
    return [e.name, d.get("kind") or "?", shape, _count(d, "classes"), _count(d, "modes"),
            e.plugin, _description(cls)]


def _count(described: dict, key: str):
    """A count from ``describe()``: ``?`` where it is not known, ``-`` where there is none."""
    return "?" if key not in described else described[key] or "-"


def _metric_row(e) -> list:
    cls = e.obj
    return [e.name, ",".join(cls.data_kinds), ",".join(cls.requires), e.plugin, _description(cls)]


def _plain_row(e) -> list:
    return [e.name, e.plugin, _description(e.obj)]


#: ``genbench list KIND``: the table's headers and how a registry entry becomes a row.
_LIST_TABLES = {
    "models": (["name", "family", "data", "capabilities", "plugin", "description"], _model_row),
    "datasets": (["name", "kind", "shape", "classes", "modes", "plugin", "description"],
                 _dataset_row),
    "metrics": (["name", "data", "needs", "plugin", "description"], _metric_row),
    "samplers": (["name", "plugin", "description"], _plain_row),
    "extractors": (["name", "plugin", "description"], _plain_row),
}


@cli.command(name="list")
@click.argument("kind", type=click.Choice(list(_LIST_TABLES)))
def list_(kind):
    """List the registered models, datasets, metrics, samplers or feature extractors."""
    from tabulate import tabulate

    headers, row = _LIST_TABLES[kind]
    rows = [row(e) for e in _registries([kind]).by_kind(kind)]
    if not rows:
        click.echo(f"no {kind} registered (plugins add them through a register_* hook; "
                   "`genbench plugins --all` shows what is installed)")
        return
    click.echo(tabulate(rows, headers=headers, tablefmt="simple",
                        maxcolwidths=[None] * (len(headers) - 1) + [60]))


# -- genbench show ------------------------------------------------------------------------

#: Constructor arguments genbench passes to every feature extractor itself (torch-fidelity's
#: own), so they are not options a user sets.
_EXTRACTOR_FRAMEWORK_PARAMS = ("name", "features_list", "feature_extractor_weights_path",
                               "verbose")


def _type_name(annotation, default) -> str:
    import inspect

    from genbench.api.model import ModelRef

    if isinstance(default, ModelRef):
        return "model"
    if annotation is not inspect.Parameter.empty:
        if isinstance(annotation, str):  # postponed annotations are kept as written
            return annotation
        if isinstance(annotation, type):
            return annotation.__name__
        return str(annotation).replace("typing.", "")
    if default is inspect.Parameter.empty or default is None:
        return "-"
    return type(default).__name__


def _parameters(func, defaults: dict, skip: tuple[str, ...] = ()) -> list[dict]:
    """Rows ``{name, default, type, required}`` for the parameters of ``func`` in ``defaults``."""
    import inspect

    params = inspect.signature(func).parameters
    rows = []
    for name, default in defaults.items():
        if name in skip:
            continue
        required = default is inspect.Parameter.empty
        rows.append({"name": name, "default": None if required else default,
                     "type": _type_name(params[name].annotation, default), "required": required})
    return rows


def _options(cls: type, skip: tuple[str, ...] = ()) -> list[dict]:
    from genbench.registry.parameters import hyperparameters

    return _parameters(cls.__init__, hyperparameters(cls), skip)


def _model_details(cls: type) -> dict:
    from genbench.registry.parameters import hyperparameters, sampling_settings

    return {"family": cls.family, "data_kinds": list(cls.data_kinds),
            "capabilities": list(cls.capabilities()),
            "hyperparameters": _parameters(cls.__init__, hyperparameters(cls)),
            "sampling_settings": _parameters(cls.sample, sampling_settings(cls))}


def _dataset_details(cls: type) -> dict:
    try:
        data = dict(cls.describe()) or "not described (known only once the data is loaded)"
    except Exception as exc:  # data that is absent is still shown, with the reason
        data = f"unavailable: {type(exc).__name__}: {exc}"
    return {"data": data, "options": _options(cls)}


def _metric_details(cls: type) -> dict:
    return {"data_kinds": list(cls.data_kinds), "requires": list(cls.requires),
            "higher_is_better": dict(cls.higher_is_better), "primary": cls.primary,
            "options": _options(cls)}


def _sampler_details(cls: type) -> dict:
    return {"options": _options(cls)}


def _extractor_details(cls: type) -> dict:
    details = {"input_format": getattr(cls, "input_format", "uint8")}
    for attr in ("weights_filename", "weights_sha256", "weights_url"):
        if getattr(cls, attr, None):
            details[attr] = getattr(cls, attr)
    details["options"] = _options(cls, skip=_EXTRACTOR_FRAMEWORK_PARAMS)
    return details


#: ``genbench show KIND NAME``: what is shown beyond name, description, plugin and class.
_SHOW_DETAILS = {"model": _model_details, "dataset": _dataset_details,
                 "metric": _metric_details, "sampler": _sampler_details,
                 "extractor": _extractor_details}
#: Details shown as tables of parameters.
_PARAMETER_TABLES = ("hyperparameters", "sampling_settings", "options")


def _show_value(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    return "-" if value is None or value == "" else str(value)


def _render(info: dict) -> str:
    """``info`` as text: a two-column table of its fields, then one table per parameter list."""
    from tabulate import tabulate

    origin = f" ({info['distribution']} {info['version']})" if info["distribution"] else ""
    shown = {**info, "plugin": info["plugin"] + origin}
    fields = [[k.replace("_", " "), _show_value(v)] for k, v in shown.items()
              if k not in _PARAMETER_TABLES + ("kind", "name", "distribution", "version")]
    parts = [f"{info['kind']} {info['name']}",
             tabulate(fields, tablefmt="plain", maxcolwidths=[None, 80], disable_numparse=True)]
    for key in _PARAMETER_TABLES:
        if key not in info:
            continue
        title = key.replace("_", " ").replace("hyperparameters", "hyper-parameters")
        rows = [[r["name"], "<required>" if r["required"] else repr(r["default"]), r["type"]]
                for r in info[key]]
        parts.append(f"\n{title}:\n" + (tabulate(rows, headers=["name", "default", "type"],
                                                   tablefmt="simple", disable_numparse=True)
                                          if rows else "(none)"))
    return "\n".join(parts)


def _json_default(value):
    to_dict = getattr(value, "to_dict", None)  # a ModelRef: {"name": ..., "params": ...}
    return to_dict() if callable(to_dict) else repr(value)


@cli.command()
@click.argument("kind", type=click.Choice(list(_SHOW_DETAILS)))
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def show(kind, name, as_json):
    """Everything about one registered model, dataset, metric, sampler or extractor: its
    plugin and class, and every hyper-parameter, option or sampling setting with its
    default and type."""
    from genbench.registry.manager import default_plugin_manager

    entry = _registries([kind + "s"]).by_kind(kind + "s").entry(name)
    cls = entry.obj
    distribution, version = default_plugin_manager().origin(entry.plugin)
    info = {"kind": kind, "name": entry.name, "description": _description(cls),
            "plugin": entry.plugin, "distribution": distribution, "version": version,
            "class": f"{cls.__module__}:{cls.__qualname__}", **_SHOW_DETAILS[kind](cls)}
    click.echo(json.dumps(info, indent=2, default=_json_default) if as_json else _render(info))


@cli.command()
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins.")
def plugins(show_all):
    """Installed plugins as JSON: name, version, distribution, hooks and status ("ok", or
    "broken" with the error that left it out)."""
    from genbench.registry.manager import default_plugin_manager, plugin_info

    cli._add_plugin_commands()  # where a plugin's register_commands can fail
    _registries()  # where its register_* hooks can fail
    click.echo(json.dumps(plugin_info(default_plugin_manager(), include_builtins=show_all),
                          indent=2))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="genbench")


def _add_core_commands() -> None:
    from genbench.features.assets import assets

    cli.add_command(assets)


_add_core_commands()
