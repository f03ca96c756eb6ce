"""Shared fixtures. tests/ is not a package: torch-fidelity installs a top-level ``tests``."""

from __future__ import annotations

import pytest
import torch

from genbench.plugin_manager import build_registries, create_plugin_manager


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    """Keep caches and data roots inside the test's temp dir; never autoload plugins."""
    base = tmp_path_factory.mktemp("genbench-home")
    monkeypatch.setenv("GENBENCH_CACHE", str(base / "cache"))
    monkeypatch.setenv("GENBENCH_DATA", str(base / "data"))
    monkeypatch.setenv("TORCH_HOME", str(base / "torch"))
    monkeypatch.setenv("GENBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    torch.manual_seed(0)


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
