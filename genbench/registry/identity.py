"""What identifies a result: canonical hashes, the code behind a plugin class, versions.

A fingerprint must change whenever what it names could change. For trained models that
includes the code that trains them: :func:`code_identity` records the distribution (and
version) that ships a class and a hash of the source files it is defined in, so editing a
model in an editable install, or upgrading its plugin, retrains instead of silently reusing
stale checkpoints and numbers.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import platform
import sys
import types
from typing import Any

from genbench.api.paths import sha256_file

#: Modules whose classes are framework, not plugin code: their edits do not re-key results
#: (the engine's behaviour is versioned by genbench's own version instead).
_FRAMEWORK_PREFIXES = ("genbench", "torch", "torch_fidelity", "builtins", "abc", "typing")


def canonical_hash(obj: Any, length: int = 16) -> str:
    """sha256 of the canonical JSON form of ``obj`` (sorted keys; ``str()`` of the rest)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _is_framework(module: str) -> bool:
    top = module.split(".")[0]
    return top in _FRAMEWORK_PREFIXES


@functools.lru_cache(maxsize=None)
def _distributions_of_top_level() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distribution_of(module: str) -> tuple[str, str] | None:
    """``(distribution, version)`` that installs top-level package of ``module``, if any."""
    top = module.split(".")[0]
    if top == "genbench_plugins":  # the built-ins ship inside the genbench distribution
        top = "genbench"
    for dist in _distributions_of_top_level().get(top, []):
        try:
            return dist, importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _file_sha256(path: str) -> str | None:
    try:
        return sha256_file(path)
    except OSError:  # a module without a readable source file
        return None


def source_modules(cls: type) -> list[str]:
    """The plugin modules whose source defines ``cls``'s behaviour.

    The modules of ``cls`` and of its bases (framework classes such as
    :class:`genbench.GenerativeModel` and torch's excluded), then, transitively, every
    module of the same top-level package that one of them imports or imports names from
    (shared layers, helpers).
    """
    modules = list(dict.fromkeys(k.__module__ for k in cls.__mro__ if not _is_framework(k.__module__)))
    queue = list(modules)
    while queue:
        module = sys.modules.get(queue.pop(0))
        if module is None:
            continue
        top = module.__name__.split(".")[0]
        for value in vars(module).values():
            where = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
            if (isinstance(where, str) and where.split(".")[0] == top and where not in modules
                    and where in sys.modules and not _is_framework(where)):
                modules.append(where)
                queue.append(where)
    return modules


def code_identity(cls: type) -> dict[str, Any]:
    """What identifies the code of a plugin class: where it lives, which distribution and
    version ship it, and the sha256 of each of its :func:`source_modules`' files."""
    sources = {}
    for name in source_modules(cls):
        mod = sys.modules.get(name)
        path = getattr(mod, "__file__", None)
        sources[name] = _file_sha256(path) if path else None
    dist = distribution_of(cls.__module__)
    return {"class": f"{cls.__module__}:{cls.__qualname__}",
            "distribution": None if dist is None else dist[0],
            "version": None if dist is None else dist[1],
            "sources": sources}


def environment_versions() -> dict[str, str | None]:
    """Versions recorded with every result."""
    import torch

    from genbench.api.version import installed_version

    __version__ = installed_version()

    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {"genbench": __version__, "torch": torch.__version__,
            "torch-fidelity": version("torch-fidelity"), "numpy": version("numpy"),
            "python": platform.python_version()}
