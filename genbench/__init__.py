"""genbench: train, evaluate and rank generative models.

The public contract for plugin authors: :data:`hookimpl`, :class:`GenerativeModel`,
:class:`BenchmarkDataset` with :class:`DataInfo`, :class:`Metric` with
:class:`EvalContext`, :class:`Sampler`, :class:`FeatureExtractor`, :class:`ModelRef`,
:class:`Budget` and :func:`split_tensors`.

The names are imported on first use (PEP 562), so that ``import genbench`` and commands that
need no model, such as ``genbench --help``, do not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from genbench import _moved
from genbench.api.hookspecs import hookimpl

_moved.install()  # old module paths (genbench.model...) keep working, with a warning

if TYPE_CHECKING:
    from genbench.api.budget import Budget
    from genbench.api.data import BenchmarkDataset, DataInfo, TensorSplit, split_tensors
    from genbench.evaluation.context import EvalContext
    from genbench.api.extractor import ExtractorMixin, FeatureExtractor
    from genbench.api.metric import CountNeed, Metric, MetricResult
    from genbench.api.model import GenerativeModel, ModelRef
    from genbench.api.sampler import Sampler

#: Public name -> the module that defines it.
_LAZY = {
    "Budget": "genbench.api.budget",
    "BenchmarkDataset": "genbench.api.data", "DataInfo": "genbench.api.data",
    "TensorSplit": "genbench.api.data", "split_tensors": "genbench.api.data",
    "EvalContext": "genbench.evaluation.context",
    "ExtractorMixin": "genbench.api.extractor", "FeatureExtractor": "genbench.api.extractor",
    "CountNeed": "genbench.api.metric", "Metric": "genbench.api.metric",
    "MetricResult": "genbench.api.metric",
    "GenerativeModel": "genbench.api.model", "ModelRef": "genbench.api.model",
    "Sampler": "genbench.api.sampler",
}

__all__ = [
    "BenchmarkDataset", "Budget", "CountNeed", "DataInfo", "EvalContext", "ExtractorMixin",
    "FeatureExtractor", "GenerativeModel", "Metric", "MetricResult", "ModelRef", "Sampler",
    "TensorSplit", "hookimpl", "split_tensors", "__version__",
]


def __getattr__(name: str):
    if name == "__version__":
        from genbench.api.version import installed_version

        value = installed_version()
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
