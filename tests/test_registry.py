"""Validating registries and the plugin manager."""

import inspect

import pytest
import torch

from genbench import GenerativeModel, hookimpl, hookspecs
from genbench.errors import PluginError, RegistrationError, UnknownNameError
from genbench.plugin_manager import (DEFAULT_PLUGINS, build_registries, create_plugin_manager,
                                     plugin_info)
from genbench.registry import Registry


class Tiny(GenerativeModel):
    def __init__(self, data_info):
        super().__init__()

    def sample(self, n, generator=None):
        return torch.zeros(n, 2)


@pytest.mark.parametrize("bad", ["", "two words", "a/b", "a,b", "..x", 3, None])
def test_bad_names_are_rejected(bad):
    reg = Registry("model", GenerativeModel)
    with pytest.raises(RegistrationError, match="name must be"):
        reg.register(bad, Tiny, plugin="p")


def test_wrong_base_class_names_plugin_and_base():
    reg = Registry("model", GenerativeModel)
    with pytest.raises(RegistrationError, match=r"plugin 'p'.*not a subclass of genbench.model.GenerativeModel"):
        reg.register("x", dict, plugin="p")
    with pytest.raises(RegistrationError):
        reg.register("x", Tiny(None), plugin="p")  # an instance, not a class


def test_duplicate_names_both_plugins():
    reg = Registry("model", GenerativeModel)
    reg.register("x", Tiny, plugin="first")
    with pytest.raises(RegistrationError, match="by plugin 'first' and by plugin 'second'"):
        reg.register("x", Tiny, plugin="second")


def test_unknown_name_lists_valid_ones():
    reg = Registry("model", GenerativeModel)
    reg.register("b", Tiny, plugin="p")
    reg.register("a", Tiny, plugin="p")
    with pytest.raises(UnknownNameError) as info:
        reg.get("c")
    assert str(info.value) == "unknown model 'c'; valid models: a, b"


def test_duplicate_across_plugins_through_hooks():
    class Clash:
        @hookimpl
        def register_models(self, register):
            register("vae", Tiny)

    pm = create_plugin_manager(load_entrypoints=False)
    pm.register(Clash(), name="clashing-plugin")
    with pytest.raises(RegistrationError, match="'genbench_plugins.models.vae' and by plugin 'clashing-plugin'"):
        build_registries(pm)


def test_plugin_hook_exception_is_named():
    class Broken:
        @hookimpl
        def register_metrics(self, register):
            raise ImportError("missing dependency foo")

    pm = create_plugin_manager(load_entrypoints=False)
    pm.register(Broken(), name="broken-plugin")
    with pytest.raises(PluginError, match='plugin "broken-plugin" failed in register_metrics: ImportError: missing dependency foo'):
        build_registries(pm)


def test_broken_default_plugin_is_named():
    with pytest.raises(PluginError, match='Error loading plugin "genbench_plugins.nope"'):
        create_plugin_manager(load_entrypoints=False, default_plugins=("genbench_plugins.nope",))


def test_every_hook_is_documented_and_keyword_called():
    specs = [f for name, f in vars(hookspecs).items()
             if name.startswith("register_") and callable(f)]
    assert {f.__name__ for f in specs} == {"register_models", "register_datasets", "register_metrics",
                                           "register_feature_extractors", "register_commands"}
    for f in specs:
        doc = inspect.getdoc(f)
        assert doc and len(doc) > 60, f.__name__
        for param in inspect.signature(f).parameters:
            assert f"``{param}``" in doc or param in doc


def test_builtins_are_ordinary_plugins(registries):
    pm = create_plugin_manager(load_entrypoints=False)
    names = [n for n, _ in pm.list_name_plugin()]
    assert names[: len(DEFAULT_PLUGINS)] == list(DEFAULT_PLUGINS)
    assert plugin_info(pm) == []  # without --all only third-party plugins are shown
    info = plugin_info(pm, include_builtins=True)
    assert {i["name"] for i in info} == set(DEFAULT_PLUGINS)
    assert registries.models.entry("vae").plugin == "genbench_plugins.models.vae"
