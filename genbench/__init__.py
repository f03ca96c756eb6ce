"""genbench: train, evaluate and rank generative models.

The public contract for plugin authors: :data:`hookimpl`, :class:`GenerativeModel`,
:class:`BenchmarkDataset` with :class:`DataInfo`, :class:`Metric` with
:class:`EvalContext`, :class:`Sampler`, :class:`FeatureExtractor`, :class:`ModelRef`,
:class:`Budget` and :func:`split_tensors`, with the errors a plugin raises, the noise helpers
(:func:`batch_randn`...), the feature and fidelity helpers and :func:`registered_name`: every
name in ``__all__`` (docs/plugins.md, "The public API"). Plugins import nothing else of
genbench (tests/test_public_api.py).

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
    from genbench.api.metric import CountNeed, Headline, KeyPresentation, Metric, MetricResult
    from genbench.api.model import GenerativeModel, ModelRef
    from genbench.api.parameters import InputFile
    from genbench.api.sampler import Sampler
    from genbench.api.errors import (AssetInvalidError, AssetMissingError, ConfigError,
                                     DataUnavailableError, GenbenchError, MissingDependencyError,
                                     UnknownNameError)
    from genbench.api.names import registered_name
    from genbench.api.data import tensor_fingerprint
    from genbench.api.paths import data_root
    from genbench.api.sample_files import (SampleSet, SampleSetError, SampleSetInfo,
                                           SAMPLE_FILE_SUFFIXES, content_sha256,
                                           open_sample_set)
    from genbench.api.parallel import batch_rand, batch_randint, batch_randn, global_batch
    from genbench.registry.parameters import accepts_any_keyword, hyperparameters
    from genbench.features.job_features import (JobFeatures, SplitFeatures, extractor_skip_reason,
                                                feature_layer, layer_skip_reason,
                                                preflight_features, reference_indices)
    from genbench.features.feature_matrix import FeatureMatrix
    from genbench.features.fidelity import (fid_from_statistics, fid_statistics, isc_from_logits,
                                            kid_from_features, prc_from_features)
    from genbench.features.assets import resolve_weights
    from genbench.features.reference_files import (ReferenceFile, ReferenceFileError,
                                                   read_reference_file)
    from genbench.features.reference_writer import write_reference_file
    from genbench.evaluation.reference_build import build_reference_file
    from genbench.api.extractor import torch_fidelity_extractor
    from genbench.api.executor import Completion, Executor, ExecutorRequest
    from genbench.execution.local_executor import LocalExecutor
    from genbench.execution.ray_executor import RayExecutor
    from genbench.api.formats import OutputFormat
    from genbench.api.protocol import Protocol
    from genbench.evaluation.records import MetricRecord
    from genbench.evaluation.scoring import Evaluation, evaluate
    from genbench.results.report import render_report, write_reports
    from genbench.results.tensorboard import check_tensorboard_folder, write_tensorboard
    from genbench.execution.suite import RunResult
    from genbench.execution.sample_scoring import score_samples

#: Public name -> the module that defines it (``module:attribute`` where the names differ).
_LAZY = {
    "Budget": "genbench.api.budget",
    "BenchmarkDataset": "genbench.api.data", "DataInfo": "genbench.api.data",
    "TensorSplit": "genbench.api.data", "split_tensors": "genbench.api.data",
    "LazySplit": "genbench.api.data",
    "EvalContext": "genbench.evaluation.context",
    "ExtractorMixin": "genbench.api.extractor", "FeatureExtractor": "genbench.api.extractor",
    "CountNeed": "genbench.api.metric", "Metric": "genbench.api.metric",
    "MetricResult": "genbench.api.metric", "Headline": "genbench.api.metric",
    "KeyPresentation": "genbench.api.metric",
    "GenerativeModel": "genbench.api.model", "ModelRef": "genbench.api.model",
    "InputFile": "genbench.api.parameters",
    "Sampler": "genbench.api.sampler",
    # errors a plugin raises or catches
    **dict.fromkeys(["GenbenchError", "ConfigError", "DataUnavailableError", "AssetMissingError",
                     "AssetInvalidError", "MissingDependencyError", "UnknownNameError"],
                    "genbench.api.errors"),
    # helpers for plugins: names, data, noise under data-parallel training, features
    "registered_name": "genbench.api.names",
    "tensor_fingerprint": "genbench.api.data", "data_root": "genbench.api.paths",
    # sample sets made elsewhere: image folders, zips, .npz/.npy, .csv
    **dict.fromkeys(["SampleSet", "SampleSetError", "SampleSetInfo", "content_sha256",
                     "open_sample_set", "SAMPLE_FILE_SUFFIXES"], "genbench.api.sample_files"),
    **dict.fromkeys(["batch_rand", "batch_randint", "batch_randn", "global_batch"],
                    "genbench.api.parallel"),
    # per-sample noise: sample i depends on the seed and i alone
    **dict.fromkeys(["SampleNoise", "item_seed", "noise_rand", "noise_randn"], "genbench.api.noise"),
    # the on-disk store of an evaluation's samples
    **dict.fromkeys(["SampleStore", "open_sample_store"], "genbench.evaluation.sample_store"),
    **dict.fromkeys(["accepts_any_keyword", "hyperparameters"], "genbench.registry.parameters"),
    **dict.fromkeys(["JobFeatures", "SplitFeatures", "extractor_skip_reason", "feature_layer",
                     "layer_skip_reason", "preflight_features", "reference_indices"],
                    "genbench.features.job_features"),
    "FeatureMatrix": "genbench.features.feature_matrix",
    **dict.fromkeys(["fid_statistics", "fid_from_statistics", "isc_from_logits",
                     "kid_from_features", "prc_from_features"], "genbench.features.fidelity"),
    "resolve_weights": "genbench.features.assets",
    # reference statistics files (genbench reference build)
    **dict.fromkeys(["ReferenceFile", "ReferenceFileError", "read_reference_file"],
                    "genbench.features.reference_files"),
    "write_reference_file": "genbench.features.reference_writer",
    "build_reference_file": "genbench.evaluation.reference_build",
    "torch_fidelity_extractor": "genbench.api.extractor",
    "Completion": "genbench.api.executor", "Executor": "genbench.api.executor",
    "ExecutorRequest": "genbench.api.executor",
    "LocalExecutor": "genbench.execution.local_executor", "RayExecutor": "genbench.execution.ray_executor",
    # named evaluation protocols
    "Protocol": "genbench.api.protocol",
    # output formats, and what the built-in ones write with
    "OutputFormat": "genbench.api.formats",
    **dict.fromkeys(["render_report", "write_reports"], "genbench.results.report"),
    **dict.fromkeys(["check_tensorboard_folder", "write_tensorboard"],
                    "genbench.results.tensorboard"),
    # the library: genbench.run(spec, out=...), genbench.evaluate(model, dataset, ...)
    "run": "genbench.execution.suite:run_and_publish", "RunResult": "genbench.execution.suite",
    "score_samples": "genbench.execution.sample_scoring",
    **dict.fromkeys(["evaluate", "Evaluation"], "genbench.evaluation.scoring"),
    "MetricRecord": "genbench.evaluation.records",
}

__all__ = [
    "BenchmarkDataset", "Budget", "CountNeed", "DataInfo", "EvalContext", "ExtractorMixin",
    "FeatureExtractor", "GenerativeModel", "Metric", "MetricResult", "ModelRef", "Sampler",
    "TensorSplit", "LazySplit", "hookimpl", "split_tensors", "__version__", "InputFile",
    "Completion", "Executor", "ExecutorRequest", "LocalExecutor", "RayExecutor",
    "Headline", "KeyPresentation",
    "AssetInvalidError", "AssetMissingError", "ConfigError", "DataUnavailableError",
    "GenbenchError", "MissingDependencyError", "UnknownNameError",
    "registered_name", "tensor_fingerprint", "data_root",
    "SampleSet", "SampleSetError", "SampleSetInfo", "content_sha256", "open_sample_set",
    "SAMPLE_FILE_SUFFIXES",
    "batch_rand", "batch_randint", "batch_randn", "global_batch",
    "SampleNoise", "item_seed", "noise_rand", "noise_randn", "SampleStore", "open_sample_store",
    "accepts_any_keyword", "hyperparameters",
    "JobFeatures", "SplitFeatures", "extractor_skip_reason", "feature_layer", "layer_skip_reason",
    "preflight_features", "reference_indices", "FeatureMatrix",
    "fid_from_statistics", "fid_statistics", "isc_from_logits", "kid_from_features",
    "prc_from_features", "resolve_weights", "torch_fidelity_extractor",
    "ReferenceFile", "ReferenceFileError", "read_reference_file", "write_reference_file",
    "build_reference_file",
    "Protocol", "OutputFormat", "check_tensorboard_folder", "render_report", "write_reports",
    "write_tensorboard", "run", "RunResult", "evaluate", "Evaluation", "MetricRecord",
    "score_samples",
]


def __getattr__(name: str):
    if name == "__version__":
        from genbench.api.version import installed_version

        value = installed_version()
    elif name in _LAZY:
        module, _, attribute = _LAZY[name].partition(":")
        value = getattr(importlib.import_module(module), attribute or name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
