"""genbench's installed version."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def installed_version() -> str:
    """The version of the installed ``genbench`` distribution."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("genbench")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0+unknown"
