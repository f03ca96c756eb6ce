"""Layer 3, evaluation: the :class:`EvalContext` every metric sees (``context``) and the
evaluation loop that scores a trained model with it (``scoring``: a suite's worker calls it,
and so does ``genbench.evaluate``), built on the features layer.

``genbench.evaluation`` was the module of :class:`EvalContext`; it is still importable from
here, on first use (so that importing this package imports no torch).
"""

import importlib


def __getattr__(name: str):
    if name == "EvalContext":
        return importlib.import_module("genbench.evaluation.context").EvalContext
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
