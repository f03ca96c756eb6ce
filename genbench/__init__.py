"""genbench: train, evaluate and rank generative models.

The public contract for plugin authors: :data:`hookimpl`, :class:`GenerativeModel`,
:class:`BenchmarkDataset` with :class:`DataInfo`, :class:`Metric` with
:class:`EvalContext`, and :class:`Budget`.
"""

from importlib.metadata import PackageNotFoundError, version as _version

from .data import BenchmarkDataset, DataInfo, TensorSplit
from .evaluation import EvalContext
from .hookspecs import hookimpl
from .metric import Metric, MetricResult
from .model import GenerativeModel
from .training import Budget

try:
    __version__ = _version("genbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "BenchmarkDataset", "Budget", "DataInfo", "EvalContext", "GenerativeModel", "Metric",
    "MetricResult", "TensorSplit", "hookimpl", "__version__",
]
