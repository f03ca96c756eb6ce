"""What the command line and its worker processes print besides results: warnings and errors,
one line each, never a traceback unless asked for (``--debug`` or ``GENBENCH_DEBUG=1``).

Nothing here runs at import: the command line and the worker processes install it, so that
a program that imports genbench keeps its own warning display.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from typing import Iterator

from genbench.api.errors import USER_ERRORS, GenbenchError

#: The environment variable that turns ``--debug`` on.
DEBUG_ENV = "GENBENCH_DEBUG"
#: Exit statuses: a failure during the run, an error the user can fix before running, Ctrl-C.
EXIT_FAILED, EXIT_USER_ERROR, EXIT_INTERRUPTED = 1, 2, 130

DEBUG_HINT = f"(rerun with --debug, or {DEBUG_ENV}=1, to see the traceback)"


def debug_from_env() -> bool:
    """Whether ``GENBENCH_DEBUG`` asks for tracebacks."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A ``warnings.showwarning`` that prints ``warning: <message>`` as one line to stderr
    (no source location, no source line)."""
    target = sys.stderr if file is None else file
    if target is None:  # pythonw: no console
        return
    try:
        target.write(f"warning: {' '.join(str(message).split())}\n")
    except OSError:  # the stream is gone (a closed pipe); so is the warning, as in Python's own
        pass


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Within the block, every warning prints as one ``warning: ...`` line."""
    saved = warnings.showwarning
    warnings.showwarning = show_warning
    try:
        yield
    finally:
        warnings.showwarning = saved


def install_one_line_warnings() -> None:
    """Every warning prints as one ``warning: ...`` line for the rest of this process (a
    worker process's setup)."""
    warnings.showwarning = show_warning


def exit_status(exc: BaseException) -> int:
    """2 for an error the user can fix before running (:data:`~genbench.api.errors.USER_ERRORS`),
    1 for anything else."""
    return EXIT_USER_ERROR if isinstance(exc, USER_ERRORS) else EXIT_FAILED


def error_line(exc: BaseException) -> str:
    """What follows ``Error:`` for ``exc``: genbench's own message as it is (it says what to
    do); for any other exception its type and the first line of its message."""
    if isinstance(exc, GenbenchError):
        return str(exc)
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def needs_hint(exc: BaseException) -> bool:
    """Whether the traceback would help: for anything but genbench's own errors."""
    return not isinstance(exc, GenbenchError)
