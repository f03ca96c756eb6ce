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

#: Old module path -> where it lives now: a module, or the modules it was split into, the
#: first the main one (``genbench.registry``, ``genbench.features``,
#: ``genbench.evaluation`` and ``genbench.cli`` are packages at the old names and re-export
#: what the modules held).
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
    "genbench.config": ("genbench.registry.parameters", "genbench.api.parameters"),
    "genbench.identity": "genbench.registry.identity",
    "genbench.fidelity": "genbench.features.fidelity",
    "genbench.assets": "genbench.features.assets",
    "genbench.spec": "genbench.plan.spec",
    "genbench.references": "genbench.plan.references",
    "genbench.jobs": "genbench.plan.jobs",
    "genbench.scheduling": "genbench.plan.scheduling",
    "genbench.store": "genbench.results.store",
    "genbench.failures": "genbench.results.failures",
    "genbench.statistics": "genbench.results.statistics",
    "genbench.leaderboard": ("genbench.results.boards", "genbench.results.rendering",
                             "genbench.results.sample_figures"),
    "genbench.figures": "genbench.results.figures",
    "genbench.plots": "genbench.results.plots",
    "genbench.report": "genbench.results.report",
    "genbench.tensorboard": "genbench.results.tensorboard",
    "genbench.runner": "genbench.execution.runner",
    "genbench.worker": "genbench.execution.worker",
    "genbench.executors": ("genbench.execution.local_executor",
                           "genbench.execution.executor_support", "genbench.api.executor"),
    "genbench.ray_executor": "genbench.execution.ray_executor",
    "genbench.training": ("genbench.execution.training", "genbench.execution.devices",
                          "genbench.execution.batches", "genbench.execution.amp",
                          "genbench.execution.checkpoints"),
    "genbench.checkpoints": "genbench.execution.checkpoints",
    "genbench.distributed": ("genbench.execution.distributed", "genbench.api.parallel"),
    "genbench.locking": "genbench.execution.locking",
    "genbench.preflight": "genbench.execution.preflight",
}


class _MovedModuleLoader(importlib.abc.Loader):
    """Makes the old path an alias module: the new module's names, the same objects (a class
    imported from either path is one class), while the new module keeps its own identity."""

    def __init__(self, new: str | tuple[str, ...]):
        self.new = (new,) if isinstance(new, str) else new

    def exec_module(self, module) -> None:
        split = f" (some of its names are now in {', '.join(self.new[1:])})" if self.new[1:] else ""
        warnings.warn(f"{module.__name__} moved to {self.new[0]}; import from genbench (its "
                      f"public API) or from {self.new[0]}{split}: the old path will be removed "
                      "in genbench 0.3", DeprecationWarning, stacklevel=2)
        targets = [importlib.import_module(name) for name in self.new]
        for target in reversed(targets):  # the main module's names win
            module.__dict__.update({k: v for k, v in vars(target).items()
                                    if not (k.startswith("__") and k.endswith("__"))})
        module.__doc__ = targets[0].__doc__
        module.__getattr__ = lambda name: getattr(targets[0], name)  # names added later, too


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old paths in :data:`MOVED` (and nothing else)."""

    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        return None if new is None else importlib.util.spec_from_loader(fullname, _MovedModuleLoader(new))


def install() -> None:
    """Add the finder to ``sys.meta_path`` once."""
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
