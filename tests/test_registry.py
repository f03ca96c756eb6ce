"""Validating registries and the plugin manager."""

import inspect
import sys

import pytest
import torch

from genbench import GenerativeModel, Sampler, __version__, hookimpl
from genbench.api import hookspecs
from genbench.api.errors import ConfigError, RegistrationError, UnknownNameError
from genbench.registry.manager import (DEFAULT_PLUGINS, build_registries, create_plugin_manager,
                                     plugin_info)
from genbench.registry.registries import Registry
from genbench_plugins.metrics.reconstruction import Reconstruction
from genbench_plugins.models.vae import VAE
from helpers import LinearDDIM, SamplerPlugin


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
    with pytest.raises(RegistrationError, match=r"plugin 'p'.*not a subclass of genbench.api.model.GenerativeModel"):
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


def _pm_with(*plugins: tuple[str, object]):
    """The built-ins plus ``(name, plugin)`` pairs registered directly."""
    pm = create_plugin_manager(load_entrypoints=False)
    for name, plugin in plugins:
        pm.register(plugin, name=name)
    return pm


def test_duplicate_keeps_the_first_and_leaves_the_later_plugin_out_whole():
    class Clash:
        @hookimpl
        def register_models(self, register):
            register("clash-only", Tiny)
            register("vae", Tiny)

    pm = _pm_with(("clashing-plugin", Clash()))
    regs = build_registries(pm)
    assert regs.models.get("vae") is VAE
    assert "clash-only" not in regs.models  # registered before the clash, not kept either
    error = pm.broken["clashing-plugin"].error
    assert ("model 'vae' is registered twice: by plugin 'genbench_plugins.models.vae' and by "
            "plugin 'clashing-plugin'") in error
    assert pm.get_plugin("clashing-plugin") is None  # no hook calls it again


def test_hook_that_raises_halfway_keeps_none_of_its_names():
    class Broken:
        @hookimpl
        def register_models(self, register):
            register("half-model", Tiny)

        @hookimpl
        def register_metrics(self, register):
            register("half-metric", Reconstruction)
            raise ImportError("missing dependency foo")

    pm = _pm_with(("broken-plugin", Broken()))
    regs = build_registries(pm)
    assert "half-model" not in regs.models and "half-metric" not in regs.metrics
    assert "recon" in regs.metrics and "vae" in regs.models  # every other plugin still works
    broken = pm.broken["broken-plugin"]
    assert broken.error == ('plugin "broken-plugin" failed in register_metrics: ImportError: '
                            "missing dependency foo")
    assert broken.hooks == ("register_metrics", "register_models")


def test_rejected_registration_fails_the_plugin_even_if_it_catches_the_error():
    class Stubborn:
        @hookimpl
        def register_models(self, register):
            for name in ("fine", "not fine"):
                try:
                    register(name, Tiny)
                except RegistrationError:
                    pass

    pm = _pm_with(("stubborn", Stubborn()))
    regs = build_registries(pm)
    assert "fine" not in regs.models
    assert "a name must be" in pm.broken["stubborn"].error


def test_broken_default_plugin_is_left_out_and_named():
    modules = ("genbench_plugins.nope", "genbench_plugins.models.vae")
    pm = create_plugin_manager(load_entrypoints=False, default_plugins=modules)
    broken = pm.broken["genbench_plugins.nope"]
    assert broken.error.startswith('Error loading plugin "genbench_plugins.nope" (from genbench): '
                                   "ModuleNotFoundError")
    assert (broken.distribution, broken.version) == ("genbench", __version__)
    assert build_registries(pm).models.names() == ["beta-vae", "conv-vae", "vae"]


def test_unknown_hook_leaves_only_that_plugin_out():
    class Typo:
        @hookimpl
        def register_model(self, register):  # singular: no such hook
            register("typo", Tiny)

    pm = _pm_with(("typo-plugin", Typo()))
    assert "vae" in build_registries(pm).models
    error = pm.broken["typo-plugin"].error
    assert error.startswith('plugin "typo-plugin" implements a hook genbench does not have')
    assert "valid hooks: register_commands, register_datasets" in error
    assert pm.broken["typo-plugin"].hooks == ("register_model",)


def test_unknown_name_mentions_plugins_that_failed_to_load(tmp_path, monkeypatch):
    # A plugin module genbench_pca may well be installed (one is here, on sys.path): the test
    # makes its import fail whatever is installed.
    (tmp_path / "genbench_pca.py").write_text(
        "from genbench import hookimpl\nfrom genbench_plugins.models.vae import VAE\n\n\n"
        "@hookimpl\ndef register_models(register):\n    register('pca', VAE)\n")
    monkeypatch.syspath_prepend(tmp_path)
    monkeypatch.setitem(sys.modules, "genbench_pca", None)
    pm = create_plugin_manager(load_entrypoints=False,
                               default_plugins=("genbench_pca", "genbench_plugins.models.vae"))
    regs = build_registries(pm)
    with pytest.raises(UnknownNameError) as info:
        regs.models.get("pca")
    assert str(info.value) == (
        "unknown model 'pca'; valid models: beta-vae, conv-vae, vae; note: plugin "
        '"genbench_pca" failed to load (see above), the name may have been its')
    with pytest.raises(UnknownNameError, match="valid registry kinds: datasets, executors, extractors"):
        regs.by_kind("widgets")


def test_every_hook_is_documented_and_keyword_called():
    specs = [f for name, f in vars(hookspecs).items()
             if name.startswith("register_") and callable(f)]
    assert {f.__name__ for f in specs} == {"register_models", "register_datasets", "register_metrics",
                                           "register_samplers", "register_feature_extractors",
                                           "register_executors", "register_formats",
                                           "register_protocols", "register_commands"}
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
    assert {i["status"] for i in info} == {"ok"}
    assert registries.models.entry("vae").plugin == "genbench_plugins.models.vae"


# -- samplers --------------------------------------------------------------------------

def test_sampler_registry_validates_like_the_others():
    regs = build_registries(_pm_with(("samplers", SamplerPlugin())))
    assert regs.by_kind("samplers").get("ddim-test") is LinearDDIM
    assert regs.samplers.entry("ddim-test").plugin == "samplers"
    with pytest.raises(RegistrationError, match="not a subclass of genbench.api.sampler.Sampler"):
        regs.samplers.register("tiny", Tiny, plugin="p")


@pytest.mark.parametrize("spacing", ["linspace", "leading"])
def test_ddim_with_the_true_noise_recovers_x0(spacing):
    """x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps; a network that predicts eps exactly makes every
    DDIM step land on the same expression at the next timestep, and the last one on x0."""
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    eps = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    sampler = LinearDDIM()
    sampler.set_timesteps(10, spacing)
    assert len(sampler.timesteps) == 10 and bool((sampler.timesteps.diff() < 0).all())
    a = sampler.alpha_bar[sampler.timesteps[0]]
    x = a.sqrt() * x0 + (1 - a).sqrt() * eps
    for i, t in enumerate(sampler.timesteps):
        x = sampler.step(eps, int(t), x, gen)
        assert x.shape == (4, 3) and x.dtype == torch.float64
        if i + 1 < len(sampler.timesteps):
            a = sampler.alpha_bar[sampler.timesteps[i + 1]]
            torch.testing.assert_close(x, a.sqrt() * x0 + (1 - a).sqrt() * eps)
    torch.testing.assert_close(x, x0)
    with pytest.raises(ConfigError, match="unknown spacing 'cosine'; valid: linspace, leading"):
        sampler.set_timesteps(10, "cosine")


def test_sampler_noise_comes_from_the_cpu_generator():
    x = torch.zeros(2, 3, dtype=torch.float64)
    a = Sampler.randn_like(x, torch.Generator().manual_seed(1))
    b = Sampler.randn_like(x, torch.Generator().manual_seed(1))
    assert a.dtype == torch.float64 and a.shape == x.shape and torch.equal(a, b)
