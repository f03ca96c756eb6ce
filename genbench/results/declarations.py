"""What the plugins declare about stored results, looked up when boards are published.

A metric's :attr:`~genbench.Metric.presentation` (headline places, short headers, plot
roles) and a model's :attr:`~genbench.GenerativeModel.reference` are read from the
registries, not stored with each result: they say how to show a result, not what was
measured, so a changed header applies to every stored result without a rerun and a
``results.db`` of any age reads alike. (What ranks a result, each key's direction, is stored
with it.) A stored metric label is resolved to its class through the class its job's
provenance recorded (``code.metrics``), so a relabelled metric (``label = "kid-1k"``) keeps
its presentation; a job without that record falls back to the label as a registered name. A
metric or model whose plugin is not installed gets no declaration: its values are in the
full tables and files, not the main table, and the model's rows are ranked.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from genbench.api.metric import KeyPresentation

#: The presentation of a key no metric declares.
UNDECLARED = KeyPresentation()


def _class_path(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '')}:{getattr(obj, '__qualname__', '')}"


class Declarations:
    """The metric classes behind the labels of ``jobs`` (``store.jobs()`` rows, the latest
    last) and the models' declarations, from ``registries``. Publishing and the CLI pass
    theirs; the process's are the fallback only for a direct library call that has none
    (:func:`~genbench.results.boards.build_leaderboards` or
    :func:`~genbench.results.plots.quality_column` on a store in a notebook)."""

    def __init__(self, jobs: pd.DataFrame | None = None, registries=None):
        self._registries = registries
        self._recorded: dict[str, str] = {}  # metric label -> class path, latest job wins
        if jobs is not None and "provenance" in jobs:
            for prov in jobs["provenance"]:
                code = prov.get("code") if isinstance(prov, dict) else None
                metrics = code.get("metrics") if isinstance(code, dict) else None
                for label, identity in (metrics or {}).items():
                    if isinstance(identity, dict) and identity.get("class"):
                        self._recorded[label] = identity["class"]
        self._by_path: dict[str, type] | None = None

    @property
    def registries(self):
        if self._registries is None:
            from genbench.registry.manager import default_registries

            self._registries = default_registries()
        return self._registries

    def metric(self, label: str) -> type | None:
        """The metric class stored under ``label``, or None when no registry knows it."""
        path = self._recorded.get(label)
        if path is not None:
            if self._by_path is None:
                self._by_path = {_class_path(e.obj): e.obj for e in self.registries.metrics}
            if path in self._by_path:
                return self._by_path[path]
        metrics = self.registries.metrics
        return metrics.get(label) if label in metrics else None

    def presentation(self, label: str, key: str) -> KeyPresentation:
        """How key ``key`` of the metric stored as ``label`` is presented."""
        cls = self.metric(label)
        declared = getattr(cls, "presentation", None) or {}
        return declared.get(key, UNDECLARED)

    def reference(self, model_name: str) -> bool:
        """Whether the model registered as ``model_name`` declares itself a reference row."""
        models = self.registries.models
        return model_name in models and bool(getattr(models.get(model_name), "reference", False))
