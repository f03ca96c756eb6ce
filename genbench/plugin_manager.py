"""Builds the pluggy PluginManager and the registries its hooks fill.

Built-in plugins are ordinary modules listed in :data:`DEFAULT_PLUGINS` and registered the
same way a third-party plugin is; then the ``genbench`` entry points are loaded (unless
``GENBENCH_DISABLE_PLUGIN_AUTOLOAD`` is set; ``GENBENCH_LOAD_PLUGINS=a,b`` loads only those),
then pending hooks are checked. pluggy calls the most recently registered plugin first, so
third-party implementations run before the built-ins.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
import warnings
from dataclasses import dataclass
from typing import Iterable

import pluggy

from . import hookspecs
from .data import BenchmarkDataset
from .errors import PluginError
from .metric import Metric
from .model import GenerativeModel
from .registry import Registry

#: Built-in plugin modules, registered before any entry point.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "genbench_plugins.datasets.embedded",
    "genbench_plugins.datasets.synthetic",
    "genbench_plugins.datasets.torchvision_sets",
    "genbench_plugins.datasets.image_folder",
    "genbench_plugins.models.vae",
    "genbench_plugins.models.autoencoders",
    "genbench_plugins.models.aae",
    "genbench_plugins.metrics.elbo",
    "genbench_plugins.metrics.reconstruction",
    "genbench_plugins.metrics.speed",
    "genbench_plugins.models.reference",
    "genbench_plugins.metrics.fidelity_metrics",
    "genbench_plugins.extractors.builtin",
)

ENTRY_POINT_GROUP = "genbench"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _load_entrypoints(pm: "GenbenchPluginManager") -> None:
    only = os.environ.get("GENBENCH_LOAD_PLUGINS")
    wanted = {p.strip() for p in only.split(",") if p.strip()} if only is not None else None
    seen: set[str] = set()
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP:
                continue
            dist_name = dist.metadata["Name"]
            seen.update((ep.name, dist_name))
            if wanted is not None and ep.name not in wanted and dist_name not in wanted:
                continue
            if pm.is_blocked(ep.name):
                continue
            if pm.get_plugin(ep.name) is not None:
                owner = pm.distributions.get(ep.name, ("genbench", ""))[0]
                raise PluginError(
                    f'plugin name "{ep.name}" is used by two distributions: {owner} and '
                    f"{dist_name}; uninstall one of them")
            try:
                plugin = ep.load()
            except Exception as exc:  # any import failure is reported with the plugin's name
                raise PluginError(
                    f'Error loading plugin "{ep.name}" (from {dist_name}): '
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            pm.register(plugin, name=ep.name)
            pm.distributions[ep.name] = (dist_name, dist.version)
    missing = sorted((wanted or set()) - seen)
    if missing:
        warnings.warn(f"GENBENCH_LOAD_PLUGINS names {', '.join(missing)}, but no installed "
                      f"distribution provides a genbench plugin of that name", stacklevel=2)


class GenbenchPluginManager(pluggy.PluginManager):
    """A PluginManager that remembers which distribution each entry-point plugin came from."""

    def __init__(self) -> None:
        super().__init__("genbench")
        self.distributions: dict[str, tuple[str, str]] = {}


def create_plugin_manager(
    load_entrypoints: bool | None = None,
    default_plugins: Iterable[str] = DEFAULT_PLUGINS,
) -> GenbenchPluginManager:
    """A fresh PluginManager with the built-ins and (by default) the installed plugins.

    ``load_entrypoints=None`` follows ``GENBENCH_DISABLE_PLUGIN_AUTOLOAD``.
    """
    pm = GenbenchPluginManager()
    pm.add_hookspecs(hookspecs)
    for module_name in default_plugins:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise PluginError(f'Error loading plugin "{module_name}": {exc}') from exc
        pm.register(module, name=module_name)
    if load_entrypoints is None:
        load_entrypoints = not _env_flag("GENBENCH_DISABLE_PLUGIN_AUTOLOAD")
    if load_entrypoints:
        _load_entrypoints(pm)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        raise PluginError(f'plugin "{name}" implements a hook genbench does not have: {exc}; '
                          f"valid hooks: {', '.join(sorted(h for h in pm.hook.__dict__ if not h.startswith('_')))}") from exc
    return pm


def _feature_extractor_base() -> type:
    from .fidelity import FeatureExtractorBase

    return FeatureExtractorBase


@dataclass
class Registries:
    """Every registry, filled from one PluginManager."""

    models: Registry
    datasets: Registry
    metrics: Registry
    extractors: Registry

    def by_kind(self, kind: str) -> Registry:
        return {"models": self.models, "datasets": self.datasets,
                "metrics": self.metrics, "extractors": self.extractors}[kind]


def build_registries(pm: pluggy.PluginManager) -> Registries:
    """Call every ``register_*`` hook, one implementation at a time, recording the owner."""
    regs = Registries(
        models=Registry("model", GenerativeModel),
        datasets=Registry("dataset", BenchmarkDataset),
        metrics=Registry("metric", Metric),
        extractors=Registry("feature extractor", _feature_extractor_base),
    )
    for hook_name, registry in (
        ("register_models", regs.models),
        ("register_datasets", regs.datasets),
        ("register_metrics", regs.metrics),
        ("register_feature_extractors", regs.extractors),
    ):
        hook = getattr(pm.hook, hook_name)
        # Oldest first: built-ins own their names, and a later duplicate names both plugins.
        for impl in hook.get_hookimpls():
            plugin_name = impl.plugin_name

            def register(name, obj, _plugin=plugin_name, _registry=registry):
                _registry.register(name, obj, plugin=_plugin)

            try:
                impl.function(**{a: register for a in impl.argnames})
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(
                    f'plugin "{plugin_name}" failed in {hook_name}: {type(exc).__name__}: {exc}'
                ) from exc
    return regs


def plugin_info(pm: GenbenchPluginManager, include_builtins: bool = False) -> list[dict]:
    """What ``genbench plugins`` prints: name, version and hooks of each plugin."""
    from . import __version__

    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        if not include_builtins and name in DEFAULT_PLUGINS:
            continue
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        info = {"name": name, "hooks": hooks}
        if name in pm.distributions:
            info["distribution"], info["version"] = pm.distributions[name]
        else:
            info["distribution"], info["version"] = "genbench", __version__
        out.append(info)
    return sorted(out, key=lambda d: d["name"])


@functools.lru_cache(maxsize=1)
def default_registries() -> Registries:
    """Registries of the default plugin manager, built on first use and then reused."""
    return build_registries(create_plugin_manager())
