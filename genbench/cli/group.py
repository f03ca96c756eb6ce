"""The ``genbench`` group: its exit policy (one ``Error:`` line and a status for every
command's error), its one-line warnings, and plugin commands added in isolation (a plugin
that raises or redefines a command is left out, and its commands taken back)."""

from __future__ import annotations

import sys

import click

from genbench.api.console import (DEBUG_ENV, DEBUG_HINT, EXIT_INTERRUPTED, debug_from_env, error_line,
                      exit_status, needs_hint, one_line_warnings)


#: (plugin, error) pairs already reported on stderr by this process.
_reported: set[tuple[str, str]] = set()


def _report_broken(broken) -> None:
    """One stderr line per plugin left out, each reported once per process."""
    for b in broken.values():
        if (b.name, b.error) not in _reported:
            _reported.add((b.name, b.error))
            click.echo(f'warning: plugin "{b.name}" left out: {" ".join(b.error.split())}',
                       err=True)


def registries(kinds: list[str] | None = None):
    """The process's registries (one plugin manager per process); reports broken plugins.

    With ``kinds``, only those registries are filled (not cached): listing datasets imports
    no model, metric or feature-extractor module.
    """
    from genbench.registry.manager import build_registries, default_plugin_manager, default_registries

    filled = (default_registries() if kinds is None
              else build_registries(default_plugin_manager(), kinds))
    _report_broken(filled.broken)
    return filled


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
        from genbench.registry.manager import (PLUGIN_FAILURES, call_one_plugin,
                                               default_plugin_manager, plugin_code,
                                               plugins_implementing)

        pm = default_plugin_manager()
        for name, plugin in plugins_implementing(pm, "register_commands"):
            before = dict(self.commands)
            try:
                with plugin_code():
                    call_one_plugin(pm, "register_commands", plugin, cli=self)
            except PLUGIN_FAILURES as exc:
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


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="genbench")
