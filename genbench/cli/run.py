"""``genbench run``: parse the options, call :func:`genbench.execution.suite.run_and_publish`
(``genbench.run``), print the boards; Ctrl-C and SIGTERM keep what finished."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from genbench.api.console import EXIT_INTERRUPTED
from genbench.api.errors import ConfigError
from genbench.cli.group import registries
from genbench.cli.options import DEFAULT_OUT, csv_list, seeds_option


def _interrupted_message(out_dir: Path) -> str:
    """What an interrupted ``genbench run`` kept: stored jobs, checkpoints, or nothing."""
    from genbench.results.store import ResultStore

    kept = []
    if (out_dir / "results.db").exists():
        count = ResultStore(out_dir / "results.db", readonly=True).count()
        kept.append(f"{count} finished job(s) are stored in {out_dir / 'results.db'}")
    if (out_dir / "runs").is_dir() and any((out_dir / "runs").iterdir()):
        kept.append(f"checkpoints in {out_dir / 'runs'} are reused")
    if not kept:
        return f"interrupted before anything finished: nothing is stored in {out_dir}"
    return f"interrupted: {'; '.join(kept)}; run the same command again to resume"


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt


#: Where the folders named by the formats' own options (``--tensorboard DIR``) are kept.
_DECLARED_OUTPUTS = "genbench.outputs"


def _output_option(ctx, param, values) -> dict[str, Path]:
    """The ``--output FORMAT=DIR`` callback: ``{format: folder}``."""
    outputs = {}
    for value in values:
        name, sep, directory = value.partition("=")
        if not sep or not name.strip() or not directory.strip():
            raise click.BadParameter(f"expected FORMAT=DIR (a format's name, =, a folder), "
                                     f"got {value!r}")
        outputs[name.strip()] = Path(directory.strip())
    return outputs


def _declared_output(name: str):
    """The callback of format ``name``'s own option: its folder, kept in the context."""
    def keep(ctx, param, value) -> None:
        if value is not None:
            ctx.meta.setdefault(_DECLARED_OUTPUTS, {})[name] = value
    return keep


class _RunCommand(click.Command):
    """``genbench run``, with each output format's own option (:attr:`OutputFormat.option`)
    added when the command is parsed or its help shown, so that the group loads no plugin."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        taken = {opt for p in params for opt in p.opts}
        declared = []
        for entry in registries(["formats"]).formats:
            option = entry.obj.option
            if option is None:
                continue
            if not option.startswith("--") or option in taken:
                raise ConfigError(f"output format {entry.name!r} declares option {option!r}, "
                                  "which is not a new --name option of genbench run")
            taken.add(option)
            description = getattr(entry.obj, "description", "")
            description = f": {description}" if description else ""
            declared.append(click.Option(
                [option, f"output_{len(declared)}"], metavar="DIR", expose_value=False,
                type=click.Path(file_okay=False, path_type=Path),
                callback=_declared_output(entry.name),
                help=f"Also write the {entry.name} format into this folder{description}; "
                     f"the same as --output {entry.name}=DIR."))
        return params[:-1] + declared + params[-1:]  # the help option stays last


@click.command(cls=_RunCommand)
@click.argument("spec", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", default=DEFAULT_OUT, show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Output directory.")
@click.option("--models", help="Comma-separated model labels or names (a registered name not "
              "in the spec runs with its defaults).")
@click.option("--datasets", help="Comma-separated dataset labels or names.")
@click.option("--metrics", help="Comma-separated metric names.")
@click.option("--seeds", callback=seeds_option, help="Comma-separated seeds, e.g. 0,1,2.")
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
              help="torch CPU threads for every job (default: each job's share of the cores "
              "by the plan: all of them for a job that runs alone, an equal share among jobs "
              "that can run at once; workers never oversubscribe them).")
@click.option("--executor", help="Where jobs run: local (worker processes, the default) or "
              'ray (one Ray task per job; needs: pip install "genbench[ray]"). Overrides the '
              "spec's executor.")
@click.option("--address", help="With --executor ray: the Ray cluster, auto (the cluster this "
              "machine belongs to), ray://HOST:PORT or HOST:PORT (default: a new local Ray).")
@click.option("--nproc", type=click.IntRange(min=1), help="Train each model data-parallel on "
              "this many processes (one per GPU on CUDA; gloo on the CPU). Overrides the "
              "spec's [train] nproc.")
@click.option("--job-timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop a job (a training or an evaluation) that runs longer than this and "
              "record it as failed; the next run retries it. Overrides the spec's "
              "job_timeout (default: no limit). Not with --jobs 0.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or per-job lines.")
@click.option("--no-wait", is_flag=True, help="When another genbench run is writing to OUT, "
              "exit with status 2 naming it instead of waiting for it to finish.")
@click.option("--output", "outputs", multiple=True, callback=_output_option,
              metavar="FORMAT=DIR", help="Also write an output format that runs do not "
              "publish into folder DIR (repeatable; `genbench list formats` lists them).")
def run(spec, out_dir, models, datasets, metrics, seeds, device, data_root, download,
        extractor, feature_weights, force, jobs, threads, executor, address, nproc, job_timeout,
        quiet, no_wait, outputs):
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
    from genbench.execution.suite import run_and_publish

    for name, directory in click.get_current_context().meta.get(_DECLARED_OUTPUTS, {}).items():
        if outputs.get(name, directory) != directory:
            raise click.UsageError(f"two folders for output format {name!r}: "
                                   f"{outputs[name]} and {directory}")
        outputs[name] = directory
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        result = run_and_publish(
            spec, out=out_dir, models=csv_list(models), datasets=csv_list(datasets),
            metrics=csv_list(metrics), seeds=seeds, device=device, data_root=data_root,
            download=download, extractor=extractor, feature_weights=feature_weights,
            force=force, jobs=jobs, threads=threads, executor=executor, address=address,
            nproc=nproc, job_timeout=job_timeout, wait=not no_wait, progress=False if quiet else None,
            outputs=outputs,
            echo=(lambda s: None) if quiet else (lambda s: click.echo(s, err=True)),
            registries=registries())
    except KeyboardInterrupt:
        click.echo("\n" + _interrupted_message(out_dir), err=True)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        signal.signal(signal.SIGTERM, previous)

    for board in result.boards.values():
        click.echo(board.to_text())
    report = result.report
    if not quiet:
        click.echo(f"leaderboards written to {out_dir / 'leaderboards' / result.spec.name} "
                   f"({len(result.files)} files)", err=True)
    for name, files in result.outputs.items() if not quiet else ():
        click.echo(f"{name}: {len(files)} file(s) written to {outputs[name]}", err=True)
    if not result.ok:
        click.echo(f"{len(report.failed)} job(s) and {len(report.metric_failures)} metric(s) "
                   "failed; see the notes above and `genbench results --failed`", err=True)
        sys.exit(1)
