"""Old import paths of genbench's modules, kept working for one release.

Until 0.2 genbench was 40 flat modules (``genbench.model``, ``genbench.distributed``...);
they now live in one package per layer. Importing an old path gives the module at its new
place with a :class:`DeprecationWarning` naming it. Plugins should import from ``genbench``
itself (its ``__all__``). The finder is installed when ``genbench`` is imported and answers
only the names below, so it changes nothing else of the import system.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: Old module path -> where it lives now (``genbench.registry``, ``genbench.features`` and
#: ``genbench.cli`` are packages at the old names and re-export what the modules held).
MOVED = {
    "genbench.errors": "genbench.api.errors",
    "genbench.hookspecs": "genbench.api.hookspecs",
    "genbench.budget": "genbench.api.budget",
    "genbench.data": "genbench.api.data",
    "genbench.model": "genbench.api.model",
    "genbench.metric": "genbench.api.metric",
    "genbench.sampler": "genbench.api.sampler",
    "genbench.extractor": "genbench.api.extractor",
    "genbench.paths": "genbench.api.paths",
    "genbench.console": "genbench.api.console",
    "genbench.plugin_manager": "genbench.registry.manager",
    "genbench.config": "genbench.registry.parameters",
    "genbench.identity": "genbench.registry.identity",
    "genbench.fidelity": "genbench.features.fidelity",
    "genbench.assets": "genbench.features.assets",
    "genbench.evaluation": "genbench.evaluation.context",
    "genbench.spec": "genbench.plan.spec",
    "genbench.references": "genbench.plan.references",
    "genbench.jobs": "genbench.plan.jobs",
    "genbench.scheduling": "genbench.plan.scheduling",
    "genbench.store": "genbench.results.store",
    "genbench.failures": "genbench.results.failures",
    "genbench.statistics": "genbench.results.statistics",
    "genbench.leaderboard": "genbench.results.boards",
    "genbench.figures": "genbench.results.figures",
    "genbench.plots": "genbench.results.plots",
    "genbench.report": "genbench.results.report",
    "genbench.tensorboard": "genbench.results.tensorboard",
    "genbench.runner": "genbench.execution.runner",
    "genbench.worker": "genbench.execution.worker",
    "genbench.executors": "genbench.execution.local_executor",
    "genbench.ray_executor": "genbench.execution.ray_executor",
    "genbench.training": "genbench.execution.training",
    "genbench.checkpoints": "genbench.execution.checkpoints",
    "genbench.distributed": "genbench.execution.distributed",
    "genbench.locking": "genbench.execution.locking",
    "genbench.preflight": "genbench.execution.preflight",
}


class _MovedModuleLoader(importlib.abc.Loader):
    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec):
        warnings.warn(f"{spec.name} moved to {self.new}; import from genbench (its public "
                      f"API) or from {self.new}: the old path will be removed in genbench 0.3",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(self.new)

    def exec_module(self, module) -> None:
        """The module was executed at its new place."""


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old paths in :data:`MOVED` (and nothing else)."""

    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        return None if new is None else importlib.util.spec_from_loader(fullname, _MovedModuleLoader(new))


def install() -> None:
    """Add the finder to ``sys.meta_path`` once."""
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
