"""One writer per output folder.

A run holds an operating-system lock on ``OUT/.genbench.lock`` (through :mod:`filelock`:
``flock`` on POSIX, ``LockFileEx`` on Windows) from planning to storing its last job. The
operating system releases it when the process ends, however it ends, so a killed run never
leaves a stale lock behind. Beside it, ``OUT/.genbench.lock.json`` says who holds it (pid,
host, command, start time), so that a second run can name the first. (The lock file itself
cannot carry that: filelock releases older than 4.0 truncate it on every attempt to take it.)
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock, Timeout

from genbench.api.errors import OutputInUseError, OutputNotWritableError
from genbench.api.paths import atomic_write, ensure_writable_dir

LOCK_NAME = ".genbench.lock"
HOLDER_NAME = ".genbench.lock.json"


def check_lock_files(out_dir: str | os.PathLike) -> None:
    """Raise :class:`~genbench.api.errors.OutputNotWritableError` naming the path when
    ``out_dir``'s lock file or holder record is there but is not a file (a folder, say):
    genbench cannot lock the folder, and never removes what it did not create."""
    for name in (LOCK_NAME, HOLDER_NAME):
        path = Path(out_dir) / name
        if (path.exists() or path.is_symlink()) and not path.is_file():
            kind = "a folder" if path.is_dir() else "not a regular file"
            raise OutputNotWritableError(
                f"cannot lock the output folder {out_dir}: {path} is {kind}, where genbench "
                f"keeps its lock file; remove it (or choose another --out) and run again")


def lock_holder(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    """What the holder of ``out_dir``'s lock recorded (``pid``, ``host``, ``command``,
    ``started``), or ``None`` when nothing is recorded. Only meaningful while the lock is
    held: a killed holder leaves its record until the next run replaces it."""
    try:
        info = json.loads((Path(out_dir) / HOLDER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def describe_holder(info: dict[str, Any] | None) -> str:
    """``info`` (from :func:`lock_holder`) as words for a message."""
    if not info:
        return "another genbench process"
    return (f"genbench process {info.get('pid')} on host {info.get('host')} "
            f"(`{info.get('command')}`, started {info.get('started')})")


class OutputLock:
    """The lock of the output folder ``out_dir``, as a context manager.

    Taking it creates the folder if needed (a folder that cannot be written, or a lock path
    that is a folder, raises :class:`~genbench.api.errors.OutputNotWritableError`). When
    another process holds it, ``wait=True`` prints one line naming that process through
    ``echo`` and waits for it; ``wait=False`` raises
    :class:`~genbench.api.errors.OutputInUseError` naming it.
    """

    def __init__(self, out_dir: str | os.PathLike, *, wait: bool = True,
                 echo: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
                 poll_interval: float = 0.5):
        self.out_dir = Path(out_dir)
        self.wait, self.echo, self.poll_interval = wait, echo, poll_interval
        self._lock: FileLock | None = None

    def acquire(self) -> None:
        ensure_writable_dir(self.out_dir, "output folder")
        check_lock_files(self.out_dir)
        lock = FileLock(str(self.out_dir / LOCK_NAME))
        try:
            try:
                lock.acquire(timeout=0)
            except Timeout:
                holder = describe_holder(self._recorded_holder())
                if not self.wait:
                    raise OutputInUseError(
                        f"{self.out_dir} is in use by {holder}; wait for it to finish, or "
                        "choose another --out") from None
                self.echo(f"{self.out_dir} is in use by {holder}; waiting for it to finish "
                          "(Ctrl-C to stop)")
                lock.acquire(poll_interval=self.poll_interval)
        except PermissionError as exc:
            raise OutputNotWritableError(f"cannot lock the output folder {self.out_dir}: "
                                         f"{exc.strerror or exc}") from None
        self._lock = lock
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            atomic_write(self.out_dir / HOLDER_NAME,
                         lambda tmp: Path(tmp).write_text(json.dumps(info), encoding="utf-8"))
        except BaseException:
            self.release()
            raise

    def _recorded_holder(self) -> dict[str, Any] | None:
        """The holder's record; a holder that has just taken the lock writes it a moment
        later, and a record of a process that is gone is not its."""
        for _ in range(20):
            info = lock_holder(self.out_dir)
            if info is not None and (info.get("host") != socket.gethostname()
                                     or _alive(info.get("pid"))):
                return info
            time.sleep(0.05)
        return None

    def release(self) -> None:
        if self._lock is None:
            return
        try:  # the record goes first: nobody may read it as the next holder's
            (self.out_dir / HOLDER_NAME).unlink(missing_ok=True)
        finally:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def _command() -> str:
    """This process's command line, as a user would have typed it."""
    program = Path(sys.argv[0])
    name = f"python -m {program.parent.name}" if program.name == "__main__.py" else program.name
    return shlex.join([name, *sys.argv[1:]]) if name else "python"


def _alive(pid: Any) -> bool:
    """Whether process ``pid`` of this host exists."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate it there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, under another user
        return True
    return True
