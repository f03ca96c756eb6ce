"""Where genbench keeps data, caches and assets on disk, and how it writes them."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Callable

from genbench.api.errors import OutputNotWritableError


_SHA256_MEMO: dict[tuple[int, ...], str] = {}


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (remembered within the process per file: device, inode, size,
    mtime and ctime, so a rewritten or replaced file is hashed again)."""
    st = os.stat(path)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _SHA256_MEMO:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _SHA256_MEMO[key] = h.hexdigest()
    return _SHA256_MEMO[key]


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Create ``path`` whole or not at all: ``write(tmp)`` fills a temporary file beside it,
    which then replaces ``path`` in one rename (readers never see a partial file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the files genbench writes are shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def ensure_writable_dir(path: str | os.PathLike, what: str = "folder") -> Path:
    """Create the folder ``path`` if needed and make sure files can be created in it (a
    real file is created and removed: permission bits say nothing to root, nor about a
    read-only mount); raise :class:`~genbench.api.errors.OutputNotWritableError` naming it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path, prefix=".genbench-probe-"):
            pass
    except (FileExistsError, NotADirectoryError):
        culprit = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
        raise OutputNotWritableError(f"cannot use {path} as the {what}: {culprit} is a file, "
                                     "not a folder") from None
    except OSError as exc:
        raise OutputNotWritableError(f"cannot write to the {what} {path}: "
                                     f"{exc.strerror or exc}") from None
    return path


def check_writable_dir(path: str | os.PathLike, what: str = "folder") -> Path:
    """:func:`ensure_writable_dir` without leaving anything behind: the folder, or the
    nearest ancestor that exists when it does not, must be a folder that takes a file; raise
    :class:`~genbench.api.errors.OutputNotWritableError` naming it."""
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None or existing.is_dir():
        ensure_writable_dir(existing or Path.cwd(), what if existing == path else
                            f"{what} {path} (in {existing})")
        return path
    raise OutputNotWritableError(f"cannot use {path} as the {what}: {existing} is a file, "
                                 "not a folder")


def _user_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "genbench"


#: Where a run's results go (results.db, runs/, leaderboards/) unless told otherwise.
DEFAULT_OUT = "genbench-out"


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """Dataset root: ``explicit`` (``--data-root`` or the spec), else ``$GENBENCH_DATA``,
    else ``~/.cache/genbench/data``."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("GENBENCH_DATA")
    return Path(env).expanduser() if env else _user_cache() / "data"


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Cache of derived quantities (reference features): ``explicit``, else
    ``$GENBENCH_CACHE``, else ``~/.cache/genbench/cache``."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("GENBENCH_CACHE")
    return Path(env).expanduser() if env else _user_cache() / "cache"


class ScratchFolder:
    """A new temporary folder (``path``), removed with its contents when this object is
    collected; unlike ``tempfile.TemporaryDirectory`` it does not warn then, which is how its
    owners (an evaluation's samples and features) end."""

    def __init__(self, prefix: str):
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        weakref.finalize(self, shutil.rmtree, self.path, ignore_errors=True)
