"""Shared fixtures. tests/ is not a package: torch-fidelity installs a top-level ``tests``."""

from __future__ import annotations

import shutil

import pytest
import torch

from genbench.registry.manager import build_registries, create_plugin_manager
from skip_check import configure as configure_skip_check


def pytest_configure(config):
    """In CI (``GENBENCH_CI_ALLOWED_SKIPS`` set), fail on a skip not on the allowed list."""
    configure_skip_check(config)


_PHASES_PASSED = pytest.StashKey[dict]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Remember which phases of a test passed (a failed test keeps its genbench home)."""
    report = yield
    item.stash.setdefault(_PHASES_PASSED, {})[report.when] = report.passed
    return report


@pytest.fixture(autouse=True)
def _isolated_environment(request, tmp_path_factory, monkeypatch):
    """Keep caches and data roots inside the test's temp dir; never autoload plugins.

    The folder is removed after a test that passed, as pytest removes ``tmp_path`` under
    ``tmp_path_retention_policy = "failed"`` (pyproject.toml)."""
    base = tmp_path_factory.mktemp("genbench-home")
    monkeypatch.setenv("GENBENCH_CACHE", str(base / "cache"))
    monkeypatch.setenv("GENBENCH_DATA", str(base / "data"))
    monkeypatch.setenv("TORCH_HOME", str(base / "torch"))
    monkeypatch.setenv("GENBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    torch.manual_seed(0)
    yield
    if request.node.stash.get(_PHASES_PASSED, {}).get("call", False):
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: the test networks are tiny, so it is as fast, deterministic, and
    immune to the oversubscription that several torch processes on two cores suffer."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def registries():
    """Registries from a fresh plugin manager with only the built-in plugins."""
    return build_registries(create_plugin_manager(load_entrypoints=False))


@pytest.fixture
def digits(registries):
    return registries.datasets.get("digits")()


@pytest.fixture
def cli_plugins(monkeypatch):
    """Forget the CLI's process-wide plugin manager, registries and reports for this test
    (and after it); returns the factory of the fresh plugin manager."""
    import genbench.cli.group
    from genbench.registry import manager as plugin_manager
    from genbench.cli.commands import cli

    caches = (plugin_manager.default_plugin_manager, plugin_manager.default_registries)
    for cache in caches:
        cache.cache_clear()
    monkeypatch.setattr(cli, "commands", dict(cli.commands))
    monkeypatch.setattr(cli, "_plugins_added", False)
    monkeypatch.setattr(genbench.cli.group, "_reported", set())
    yield plugin_manager.default_plugin_manager
    for cache in caches:
        cache.cache_clear()


@pytest.fixture
def no_network(monkeypatch):
    """Any download attempt (torch hub, torch-fidelity's Inception, a socket) fails the test
    loudly, and nothing reaches the network."""
    import socket

    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    def refuse(*args, **kwargs):
        raise AssertionError(f"tried to download: {args[:1]}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
