"""Test helpers: extra plugins registered on a fresh manager, spec building."""

from __future__ import annotations

import torch

from genbench import Metric, hookimpl
from genbench.plugin_manager import build_registries, create_plugin_manager
from genbench_plugins.models.vae import VAE


def registries_with(*plugins):
    """Registries of the built-ins plus ``plugins`` (objects with hookimpls)."""
    pm = create_plugin_manager(load_entrypoints=False)
    for p in plugins:
        pm.register(p)
    return build_registries(pm)


class DivergingVAE(VAE):
    """A VAE whose inputs are scaled by infinity from step 5 on, so its loss becomes NaN."""

    description = "test model: diverges at step 5"

    def train_step(self, batch, step):
        if step >= 4:
            batch = batch * float("inf")
        return super().train_step(batch, step)


class BrokenMetric(Metric):
    description = "test metric: always raises"

    def compute(self, ctx):
        raise RuntimeError("this metric is broken on purpose")


class TestPlugin:
    @hookimpl
    def register_models(self, register):
        register("diverging-vae", DivergingVAE)

    @hookimpl
    def register_metrics(self, register):
        register("broken", BrokenMetric)


def tiny_spec(**overrides):
    from genbench.spec import SuiteSpec

    d = {"name": "t", "datasets": ["digits"], "models": ["vae"], "metrics": ["recon", "speed"],
         "seeds": [0], "budget": {"steps": 40, "batch_size": 64}, "num_samples": 64,
         "baselines": []}
    d.update(overrides)
    return SuiteSpec.from_dict(d)


def params_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
