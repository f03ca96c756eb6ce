"""Builds the pluggy PluginManager and the registries its hooks fill.

Built-in plugins are ordinary modules listed in :data:`DEFAULT_PLUGINS` and registered the
same way a third-party plugin is; then the ``genbench`` entry points are loaded (unless
``GENBENCH_DISABLE_PLUGIN_AUTOLOAD`` is set; ``GENBENCH_LOAD_PLUGINS=a,b`` loads only those),
then pending hooks are checked. pluggy calls the most recently registered plugin first, so
third-party implementations run before the built-ins.

A plugin that fails (import error, unknown hook, a ``register_*`` hook that raises, calls
``sys.exit`` or registers something invalid) is left out whole and recorded in
``pm.broken``; nothing here raises because of one plugin. What plugin code prints while it
is imported or its hooks run goes to stderr (:func:`plugin_code`), so that a command's
stdout holds only its own output (the JSON of ``genbench plugins``).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.metadata
import inspect
import os
import sys
import warnings
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Iterable, Mapping

import pluggy

from genbench.api import hookspecs
from genbench.api.errors import PluginError, RegistrationError, UnknownNameError
from genbench.registry.registries import Entry, Registry

_DATASETS, _MODELS, _METRICS = ("register_datasets",), ("register_models",), ("register_metrics",)

#: Built-in plugin modules, registered before any entry point, and the hooks each implements.
#: A module is imported when one of its hooks is first called (see :class:`LazyPlugin`), so
#: a command that calls none of them, such as ``genbench --help``, imports no torch;
#: tests/test_registry.py checks these hooks against the modules' own.
DEFAULT_PLUGINS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "genbench_plugins.datasets.embedded": _DATASETS,
    "genbench_plugins.datasets.synthetic": _DATASETS,
    "genbench_plugins.datasets.torchvision_sets": _DATASETS,
    "genbench_plugins.datasets.image_folder": _DATASETS,
    "genbench_plugins.datasets.sample_set": _DATASETS,
    "genbench_plugins.models.vae": _MODELS,
    "genbench_plugins.models.autoencoders": _MODELS,
    "genbench_plugins.models.aae": _MODELS,
    "genbench_plugins.metrics.elbo": _METRICS,
    "genbench_plugins.metrics.iwae": _METRICS,
    "genbench_plugins.metrics.likelihood": _METRICS,
    "genbench_plugins.metrics.reconstruction": _METRICS,
    "genbench_plugins.metrics.speed": _METRICS,
    "genbench_plugins.models.reference": _MODELS,
    "genbench_plugins.models.recorded": _MODELS,
    "genbench_plugins.models.exported": _MODELS,
    "genbench_plugins.models.gans": _MODELS,
    "genbench_plugins.models.diffusion": _MODELS,
    "genbench_plugins.samplers.ddpm": ("register_samplers",),
    "genbench_plugins.samplers.ddim": ("register_samplers",),
    "genbench_plugins.metrics.fidelity_metrics": _METRICS,
    "genbench_plugins.metrics.modes": _METRICS,
    "genbench_plugins.metrics.coverage": _METRICS,
    "genbench_plugins.metrics.prdc": _METRICS,
    "genbench_plugins.metrics.ndb": _METRICS,
    "genbench_plugins.metrics.vendi": _METRICS,
    "genbench_plugins.metrics.memorization": _METRICS,
    "genbench_plugins.metrics.fid_inf": _METRICS,
    "genbench_plugins.extractors.builtin": ("register_feature_extractors",),
    "genbench_plugins.executors.builtin": ("register_executors",),
    "genbench_plugins.formats.builtin": ("register_formats",),
    "genbench_plugins.protocols.builtin": ("register_protocols",),
})

ENTRY_POINT_GROUP = "genbench"

#: Each ``register_*`` hook and the :class:`Registries` field it fills.
REGISTRY_HOOKS: tuple[tuple[str, str], ...] = (
    ("register_models", "models"),
    ("register_datasets", "datasets"),
    ("register_metrics", "metrics"),
    ("register_samplers", "samplers"),
    ("register_feature_extractors", "extractors"),
    ("register_executors", "executors"),
    ("register_formats", "formats"),
    ("register_protocols", "protocols"),
)


#: What plugin code may raise and only its plugin pays for: any exception, and the
#: ``SystemExit`` of a ``sys.exit`` in it. ``KeyboardInterrupt`` (Ctrl-C) still stops genbench.
PLUGIN_FAILURES: tuple[type[BaseException], ...] = (Exception, SystemExit)


@contextlib.contextmanager
def plugin_code():
    """Run plugin code (an import, a hook) with its prints sent to stderr: stdout carries the
    command's own output only."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin left out because it failed: where it came from and why."""

    name: str
    distribution: str | None
    version: str | None
    error: str
    #: The hooks it implements, where known (not for one that failed to import).
    hooks: tuple[str, ...] = ()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


class GenbenchPluginManager(pluggy.PluginManager):
    """A PluginManager that remembers where each plugin came from and which ones failed.

    ``distributions`` maps the names of built-in and entry-point plugins to their
    ``(distribution, version)``; ``broken`` maps the names of plugins left out to their
    :class:`BrokenPlugin` record.
    """

    def __init__(self) -> None:
        super().__init__("genbench")
        self.distributions: dict[str, tuple[str, str]] = {}
        self.broken: dict[str, BrokenPlugin] = {}
        self._order: list[str] = []

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """pluggy's ``register``, also remembering the order of registration."""
        registered = super().register(plugin, name)
        if registered is not None:
            self._order = [n for n in self._order if n != registered] + [registered]
        return registered

    def plugins_in_order(self) -> list[tuple[str, object]]:
        """``(name, plugin)`` of every registered plugin, oldest registration first."""
        return [(n, p) for n in self._order if (p := self.get_plugin(n)) is not None]

    def origin(self, name: str) -> tuple[str | None, str | None]:
        """``(distribution, version)`` of plugin ``name``; ``(None, None)`` for a plugin
        registered directly (a test's, say), whose distribution is not known."""
        return self.distributions.get(name, (None, None))

    def hook_names(self, plugin: object) -> list[str]:
        """The hooks ``plugin`` implements, sorted."""
        return sorted(h.name for h in self.get_hookcallers(plugin) or [])

    def leave_out(self, name: str, error: str) -> BrokenPlugin:
        """Unregister plugin ``name`` (no hook calls it again) and record it as broken."""
        plugin = self.get_plugin(name)
        hooks = tuple(self.hook_names(plugin)) if plugin is not None else ()
        if plugin is not None:
            self.unregister(plugin)
        return self._record(name, error, self.origin(name), hooks)

    def _record(self, name: str, error: str, origin: tuple[str | None, str | None],
                hooks: tuple[str, ...] = ()) -> BrokenPlugin:
        broken = BrokenPlugin(name, origin[0], origin[1], error, hooks)
        self.broken.setdefault(name, broken)
        return broken

    def _add(self, plugin: object, name: str, origin: tuple[str, str]) -> None:
        """Register ``plugin``, recording it as broken if pluggy rejects its hooks."""
        try:
            self.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            self._record(name, _import_failure(name, origin[0], exc), origin)
            return
        self.distributions[name] = origin

    def drop_unknown_hooks(self) -> None:
        """Leave out every plugin that implements a hook genbench does not have."""
        while True:
            try:
                self.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                name = self.get_name(exc.plugin) or repr(exc.plugin)
                valid = sorted(h for h in vars(hookspecs) if h.startswith("register_"))
                self.leave_out(name, f'plugin "{name}" implements a hook genbench does not '
                                     f"have: {exc}; valid hooks: {', '.join(valid)}")


def _import_failure(name: str, dist_name: str, exc: BaseException) -> str:
    return f'Error loading plugin "{name}" (from {dist_name}): {type(exc).__name__}: {exc}'


def _load_entrypoints(pm: GenbenchPluginManager) -> None:
    only = os.environ.get("GENBENCH_LOAD_PLUGINS")
    wanted = {p.strip() for p in only.split(",") if p.strip()} if only is not None else None
    seen: set[str] = set()
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP:
                continue
            dist_name = dist.metadata["Name"]
            origin = (dist_name, dist.version)
            seen.update((ep.name, dist_name))
            if wanted is not None and ep.name not in wanted and dist_name not in wanted:
                continue
            if pm.is_blocked(ep.name):
                continue
            if pm.get_plugin(ep.name) is not None:
                owner = pm.origin(ep.name)[0]
                pm._record(ep.name, f'plugin name "{ep.name}" is used by two distributions: '
                                    f"{owner} and {dist_name}; uninstall one of them", origin)
                continue
            try:
                with plugin_code():
                    plugin = ep.load()
            except PLUGIN_FAILURES as exc:  # any import failure is reported with the plugin's name
                pm._record(ep.name, _import_failure(ep.name, dist_name, exc), origin)
                continue
            pm._add(plugin, ep.name, origin)
    missing = sorted((wanted or set()) - seen)
    if missing:
        warnings.warn(f"GENBENCH_LOAD_PLUGINS names {', '.join(missing)}, but no installed "
                      f"distribution provides a genbench plugin of that name", stacklevel=2)


def _forward_register(plugin: "LazyPlugin", hook: str) -> Callable:
    @hookspecs.hookimpl(specname=hook)
    def forward(register):
        return plugin.call(hook, register=register)
    return forward


def _forward_cli(plugin: "LazyPlugin", hook: str) -> Callable:
    @hookspecs.hookimpl(specname=hook)
    def forward(cli):
        return plugin.call(hook, cli=cli)
    return forward


#: A forwarding implementation for each hook signature in :mod:`genbench.api.hookspecs`, keyed by
#: the hook's parameter names. Each forwarder is a plain function whose parameters are the
#: hook's own, so pluggy reads them as it reads any implementation's (no signature tricks);
#: tests/test_registry.py checks that every hookspec has one.
FORWARDERS: Mapping[tuple[str, ...], Callable[["LazyPlugin", str], Callable]] = MappingProxyType({
    ("register",): _forward_register,
    ("cli",): _forward_cli,
})


def hook_parameters(hook: str) -> tuple[str, ...]:
    """The parameter names of hookspec ``hook``."""
    return tuple(inspect.signature(getattr(hookspecs, hook)).parameters)


class LazyPlugin:
    """Stands for a plugin module whose hooks are known in advance: it implements them by
    importing the module on the first call and calling the module's own implementation.

    A module that fails to import, or lacks a declared hook, fails in that hook call, and is
    left out like any plugin whose hook raises.
    """

    def __init__(self, module_name: str, hooks: Iterable[str]):
        self.__name__ = module_name
        self._module = None
        for hook in hooks:
            setattr(self, hook, FORWARDERS[hook_parameters(hook)](self, hook))

    def module(self):
        """The plugin module, imported on first use."""
        if self._module is None:
            self._module = importlib.import_module(self.__name__)
        return self._module

    def call(self, hook: str, **kwargs):
        """Call the module's implementation of ``hook`` with the arguments it names."""
        impl = getattr(self.module(), hook)
        wanted = inspect.signature(impl).parameters
        return impl(**{k: v for k, v in kwargs.items() if k in wanted})

    def __repr__(self) -> str:
        return f"<LazyPlugin {self.__name__}>"


def call_one_plugin(pm: pluggy.PluginManager, hook: str, plugin: object, **kwargs) -> list:
    """Call ``plugin``'s implementation of ``hook`` alone, through pluggy's public
    ``subset_hook_caller`` (every other plugin removed), so pluggy passes the arguments the
    implementation names, as in any hook call."""
    others = [p for p in pm.get_plugins() if p is not plugin]
    return pm.subset_hook_caller(hook, remove_plugins=others)(**kwargs)


def plugins_implementing(pm: GenbenchPluginManager, hook: str) -> list[tuple[str, object]]:
    """``(name, plugin)`` of each plugin implementing ``hook``, oldest registration first."""
    return [(n, p) for n, p in pm.plugins_in_order() if hook in pm.hook_names(p)]


def create_plugin_manager(
    load_entrypoints: bool | None = None,
    default_plugins: Iterable[str] | Mapping[str, Iterable[str]] = DEFAULT_PLUGINS,
) -> GenbenchPluginManager:
    """A fresh PluginManager with the built-ins and (by default) the installed plugins.

    ``default_plugins`` names modules, imported now, or maps module names to the hooks
    they implement, registered as :class:`LazyPlugin` and imported on first use.
    ``load_entrypoints=None`` follows ``GENBENCH_DISABLE_PLUGIN_AUTOLOAD``. Never raises for
    a plugin that fails to import or implements an unknown hook: it is left out and recorded
    in ``pm.broken``, built-ins included.
    """
    from genbench.api.version import installed_version

    __version__ = installed_version()

    pm = GenbenchPluginManager()
    pm.add_hookspecs(hookspecs)
    origin = ("genbench", __version__)
    for module_name in default_plugins:
        if isinstance(default_plugins, Mapping):
            pm._add(LazyPlugin(module_name, default_plugins[module_name]), module_name, origin)
            continue
        try:
            with plugin_code():
                module = importlib.import_module(module_name)
        except PLUGIN_FAILURES as exc:
            pm._record(module_name, _import_failure(module_name, origin[0], exc), origin)
            continue
        pm._add(module, module_name, origin)
    if load_entrypoints is None:
        load_entrypoints = not _env_flag("GENBENCH_DISABLE_PLUGIN_AUTOLOAD")
    if load_entrypoints:
        _load_entrypoints(pm)
    pm.drop_unknown_hooks()
    return pm


def _import_attribute(module: str, name: str) -> type | tuple[type, ...]:
    value = getattr(importlib.import_module(module), name)
    return value if isinstance(value, type) else value()  # a function naming the bases


def _call_attribute(module: str, name: str, *args):
    return getattr(importlib.import_module(module), name)(*args)


def _lazy_function(module: str, name: str) -> Callable:
    """``module.name``, imported on the first call (picklable, like :func:`_base`)."""
    return functools.partial(_call_attribute, module, name)


#: What an extractor class must subclass, as a rejected registration names it (the bases
#: are looked up only when a registration is checked, and torch-fidelity's only if imported).
EXTRACTOR_BASES = ("genbench.api.extractor.FeatureExtractor or "
                   "torch_fidelity.feature_extractor_base.FeatureExtractorBase")


def _base(module: str, name: str) -> Callable[[], type | tuple[type, ...]]:
    """A registry's base class (or a function returning the accepted bases), imported when the
    first registration is checked (picklable: registries travel to the worker processes)."""
    return functools.partial(_import_attribute, module, name)


@dataclass
class Registries:
    """Every registry, filled from one PluginManager.

    ``broken`` is the plugin manager's record of the plugins left out (shared, so a lookup
    that fails mentions them).
    """

    models: Registry
    datasets: Registry
    metrics: Registry
    samplers: Registry
    extractors: Registry
    executors: Registry
    formats: Registry
    protocols: Registry
    broken: Mapping[str, BrokenPlugin] = field(default_factory=dict)

    def by_kind(self, kind: str) -> Registry:
        """The registry of ``kind``: one of :data:`REGISTRY_HOOKS`' fields ("models", "formats"...)."""
        kinds = [field_name for _, field_name in REGISTRY_HOOKS]
        if kind not in kinds:
            raise UnknownNameError("registry kind", kind, kinds)
        return getattr(self, kind)


def _stage(pm: GenbenchPluginManager, plugin: object, plugin_name: str,
           regs: Registries, kinds: Iterable[str]) -> list[tuple[Registry, Entry]]:
    """Call every ``register_*`` hook of one plugin; return what it registered, validated.

    Raises :class:`PluginError` (a :class:`RegistrationError` for an invalid or taken name)
    when a hook raises or a registration is rejected, even if the plugin caught the error.
    """
    staged: list[tuple[Registry, Entry]] = []
    for hook_name, kind in REGISTRY_HOOKS:
        if kind not in kinds:
            continue
        registry = regs.by_kind(kind)
        pending: dict[str, Entry] = {}
        rejected: list[RegistrationError] = []

        def register(name, obj, _registry=registry, _pending=pending, _rejected=rejected):
            try:
                _registry.check(name, obj, plugin_name, _pending)
            except RegistrationError as exc:
                _rejected.append(exc)
                raise
            _pending[name] = Entry(name, obj, plugin_name)

        if hook_name not in pm.hook_names(plugin):
            continue
        try:
            with plugin_code():
                call_one_plugin(pm, hook_name, plugin, register=register)
        except PLUGIN_FAILURES as exc:
            if rejected:
                raise rejected[0] from None
            raise PluginError(f'plugin "{plugin_name}" failed in {hook_name}: '
                              f"{type(exc).__name__}: {exc}") from exc
        if rejected:
            raise rejected[0]
        staged += [(registry, e) for e in pending.values()]
    return staged


def build_registries(pm: GenbenchPluginManager, kinds: Iterable[str] | None = None) -> Registries:
    """Call the ``register_*`` hooks plugin by plugin, oldest first, recording each owner.

    A plugin's registrations are kept only if all its hooks succeed; a plugin that fails is
    left out whole (unregistered from ``pm`` and recorded in ``pm.broken``), so the built-ins
    keep their names and a later duplicate marks the later plugin broken, naming both.

    ``kinds`` (e.g. ``["datasets"]``) fills only those registries, calling only their hooks,
    and imports no plugin module that implements none of them (``genbench list``); the
    others stay empty, and a plugin whose other hooks would fail is not noticed.
    """
    wanted = [kind for _, kind in REGISTRY_HOOKS] if kinds is None else list(kinds)
    regs = Registries(
        models=Registry("model", _base("genbench.api.model", "GenerativeModel"), pm.broken),
        datasets=Registry("dataset", _base("genbench.api.data", "BenchmarkDataset"), pm.broken),
        metrics=Registry("metric", _base("genbench.api.metric", "Metric"), pm.broken),
        samplers=Registry("sampler", _base("genbench.api.sampler", "Sampler"), pm.broken),
        extractors=Registry("feature extractor", _base("genbench.api.extractor", "extractor_bases"),
                            pm.broken, accepts=EXTRACTOR_BASES,
                            complete=_lazy_function("genbench.api.extractor", "missing_methods")),
        executors=Registry("executor", _base("genbench.api.executor", "Executor"), pm.broken,
                           complete=_lazy_function("genbench.api.executor", "incomplete")),
        formats=Registry("output format", _base("genbench.api.formats", "OutputFormat"), pm.broken),
        protocols=Registry("protocol", _base("genbench.api.protocol", "Protocol"), pm.broken,
                           complete=_lazy_function("genbench.api.protocol", "incomplete_protocol")),
        broken=pm.broken,
    )
    for kind in wanted:
        regs.by_kind(kind)  # an unknown kind lists the valid ones
    pm.drop_unknown_hooks()  # plugins registered after create_plugin_manager, too
    for plugin_name, plugin in pm.plugins_in_order():
        try:
            staged = _stage(pm, plugin, plugin_name, regs, wanted)
        except PluginError as exc:
            pm.leave_out(plugin_name, str(exc))
            continue
        for registry, e in staged:
            registry.register(e.name, e.obj, e.plugin)
    return regs


def _info(name: str, hooks: Iterable[str], origin: tuple[str | None, str | None],
          **extra: str) -> dict:
    return {"name": name, "hooks": sorted(hooks), "distribution": origin[0],
            "version": origin[1], **extra}


def plugin_info(pm: GenbenchPluginManager, include_builtins: bool = False) -> list[dict]:
    """What ``genbench plugins`` prints: name, hooks, distribution, version and status
    (``"ok"``, or ``"broken"`` with the ``"error"``) of each plugin."""
    out = [_info(name, pm.hook_names(plugin), pm.origin(name), status="ok")
           for name, plugin in pm.list_name_plugin() if plugin is not None]
    out += [_info(b.name, b.hooks, (b.distribution, b.version), status="broken", error=b.error)
            for b in pm.broken.values()]
    if not include_builtins:
        out = [i for i in out if i["name"] not in DEFAULT_PLUGINS]
    return sorted(out, key=lambda d: (d["name"], d["status"]))


@functools.lru_cache(maxsize=1)
def default_plugin_manager() -> GenbenchPluginManager:
    """The process's plugin manager, created on first use and then reused."""
    return create_plugin_manager()


@functools.lru_cache(maxsize=1)
def default_registries() -> Registries:
    """Registries of :func:`default_plugin_manager`, built on first use and then reused."""
    return build_registries(default_plugin_manager())
