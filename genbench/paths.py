"""Where genbench keeps data, caches and assets on disk."""

from __future__ import annotations

import os
from pathlib import Path


def _user_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "genbench"


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
