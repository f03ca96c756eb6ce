"""Layer 2, features: choosing and loading feature extractors (and their weights), the
features of samples and real splits with their on-disk cache, and torch-fidelity's
statistics.

``genbench.features`` was one module; its names are still reachable here, imported on first
use so that importing a light module of this package (``assets``) does not import torch.
"""

import importlib


def __getattr__(name: str):
    module = importlib.import_module("genbench.features.job_features")
    if name == "__all__" or name in module.__all__:
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
