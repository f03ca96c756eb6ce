"""genbench: train, evaluate and rank generative models.

The public contract for plugin authors: :data:`hookimpl`, :class:`GenerativeModel`,
:class:`BenchmarkDataset` with :class:`DataInfo`, :class:`Metric` with
:class:`EvalContext`, :class:`Sampler`, :class:`ModelRef`, :class:`Budget` and
:func:`split_tensors`.
"""

from importlib.metadata import PackageNotFoundError, version as _version

from .budget import Budget
from .data import BenchmarkDataset, DataInfo, TensorSplit, split_tensors
from .evaluation import EvalContext
from .features import ExtractorMixin
from .hookspecs import hookimpl
from .metric import Metric, MetricResult
from .model import GenerativeModel, ModelRef
from .sampler import Sampler

try:
    __version__ = _version("genbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "BenchmarkDataset", "Budget", "DataInfo", "EvalContext", "ExtractorMixin", "GenerativeModel",
    "Metric", "MetricResult", "ModelRef", "Sampler", "TensorSplit", "hookimpl", "split_tensors",
    "__version__",
]
