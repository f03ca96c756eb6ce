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

from .hookspecs import hookimpl

if TYPE_CHECKING:
    from .budget import Budget
    from .data import BenchmarkDataset, DataInfo, TensorSplit, split_tensors
    from .evaluation import EvalContext
    from .extractor import ExtractorMixin, FeatureExtractor
    from .metric import CountNeed, Metric, MetricResult
    from .model import GenerativeModel, ModelRef
    from .sampler import Sampler

#: Public name -> the submodule that defines it.
_LAZY = {
    "Budget": "budget",
    "BenchmarkDataset": "data", "DataInfo": "data", "TensorSplit": "data",
    "split_tensors": "data",
    "EvalContext": "evaluation",
    "ExtractorMixin": "extractor", "FeatureExtractor": "extractor",
    "CountNeed": "metric", "Metric": "metric", "MetricResult": "metric",
    "GenerativeModel": "model", "ModelRef": "model",
    "Sampler": "sampler",
}

__all__ = [
    "BenchmarkDataset", "Budget", "CountNeed", "DataInfo", "EvalContext", "ExtractorMixin",
    "FeatureExtractor", "GenerativeModel", "Metric", "MetricResult", "ModelRef", "Sampler",
    "TensorSplit", "hookimpl", "split_tensors", "__version__",
]


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("genbench")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0.0.0+unknown"


def __getattr__(name: str):
    if name == "__version__":
        value = _installed_version()
    elif name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
