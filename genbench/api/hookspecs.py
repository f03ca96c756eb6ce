"""The hooks a genbench plugin can implement.

This module is the plugin author's manual. Every hook is called with keyword arguments;
implement it with any subset of the parameters listed (pluggy passes only those you name).
New parameters may be added in later versions; existing ones are never renamed.

A plugin is a module (or object) with functions decorated by :data:`hookimpl`::

    from genbench import hookimpl

    @hookimpl
    def register_models(register):
        register("pca", PCAModel)

Third-party plugins are found through the ``genbench`` entry-point group.

A plugin that fails is left out whole and reported by name, and every other plugin keeps
working: one that cannot be imported or implements a hook not listed here, one whose
``register_*`` hook raises or registers an invalid or already taken name (none of its
registrations is kept), and one whose :func:`register_commands` raises or redefines a command.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("genbench")
hookimpl = pluggy.HookimplMarker("genbench")


@hookspec
def register_models(register):
    """Register generative models.

    Called once when the registries are built. Call ``register(name, model_cls)`` once per
    model, where ``model_cls`` is a subclass of :class:`genbench.GenerativeModel`. The name is
    what users type in specs and on the command line; it must be unique across all plugins
    and contain no whitespace, commas or path separators. Returns nothing.
    """


@hookspec
def register_datasets(register):
    """Register datasets.

    Call ``register(name, dataset_cls)`` once per dataset, where ``dataset_cls`` is a subclass
    of :class:`genbench.BenchmarkDataset`. Same naming rules as :func:`register_models`.
    Returns nothing.
    """


@hookspec
def register_metrics(register):
    """Register evaluation metrics.

    Call ``register(name, metric_cls)`` once per metric, where ``metric_cls`` is a subclass of
    :class:`genbench.Metric`. Same naming rules as :func:`register_models`. Returns nothing.
    """


@hookspec
def register_feature_extractors(register):
    """Register feature extractors for sample-quality metrics (FID, IS, KID, PRC).

    Call ``register(name, extractor_cls)`` once per extractor, where ``extractor_cls`` is a
    subclass of :class:`genbench.FeatureExtractor` (torch-fidelity's interface, without
    importing torch-fidelity) or of torch-fidelity's ``FeatureExtractorBase``. Returns nothing.
    """


@hookspec
def register_samplers(register):
    """Register diffusion samplers (DDPM, DDIM, third-party solvers).

    Call ``register(name, sampler_cls)`` once per sampler, where ``sampler_cls`` is a subclass
    of :class:`genbench.Sampler`. Diffusion models look samplers up by the name their
    ``sampler`` sampling setting gives. Same naming rules as :func:`register_models`.
    Returns nothing.
    """


@hookspec
def register_formats(register):
    """Register output formats of the leaderboards.

    Call ``register(name, format_cls)`` once per format, where ``format_cls`` is a subclass
    of :class:`genbench.OutputFormat`. The name is what ``genbench leaderboard --format``
    takes; a run writes every format whose ``published`` is true into ``OUT/leaderboards``.
    Same naming rules as :func:`register_models`. Returns nothing.
    """


@hookspec
def register_protocols(register):
    """Register evaluation protocols: everything a number depends on, under one name.

    Call ``register(name, protocol_cls)`` once per protocol, where ``protocol_cls`` is a
    subclass of :class:`genbench.Protocol` naming its extractor, metrics with their options,
    sample count and resize. A spec picks it with ``protocol = "name"``, ``genbench eval``
    with ``--protocol name``. Same naming rules as :func:`register_models`. Returns nothing.
    """


@hookspec
def register_executors(register):
    """Register executors: where a suite's jobs run (worker processes, a cluster).

    Call ``register(name, executor_cls)`` once per executor, where ``executor_cls`` is a
    subclass of :class:`genbench.Executor` that defines the protocol's methods and declares
    its ``Options`` (a dataclass: the accepted ``[executor_options]``, validated before
    anything trains) and :meth:`~genbench.Executor.from_request`. A spec picks it with
    ``executor = "name"``, the command line with ``--executor name``. Same naming rules as
    :func:`register_models`. Returns nothing.
    """


@hookspec
def register_commands(cli):
    """Add commands to the ``genbench`` command line.

    ``cli`` is the top-level :class:`click.Group`; decorate new commands with
    ``@cli.command()``. Called once when the command line is built. Returns nothing.
    """
