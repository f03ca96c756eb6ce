"""Test helpers: extra plugins registered on a fresh manager, spec building."""

from __future__ import annotations

import os
import signal

import torch

from genbench import GenerativeModel, Metric, ModelRef, Sampler, hookimpl, split_tensors
from genbench.api.errors import ConfigError
from genbench.registry.manager import build_registries, create_plugin_manager
from genbench_plugins.models.autoencoders import AE
from genbench_plugins.models.vae import VAE


def registries_with(*plugins):
    """Registries of the built-ins plus ``plugins`` (objects with hookimpls)."""
    pm = create_plugin_manager(load_entrypoints=False)
    for p in plugins:
        pm.register(p)
    return build_registries(pm)


class FixedSamples(GenerativeModel):
    """Returns the rows of ``x`` in order (rewind by setting ``cursor = 0``)."""

    def __init__(self, data_info, x=None):
        super().__init__()
        self.x, self.cursor = x, 0

    def sample(self, n, generator=None):
        out = self.x[self.cursor:self.cursor + n]
        self.cursor += n
        return out


class Interrupted(Exception):
    """Raised by :func:`interrupt_at`: a training stopped part-way, as by a kill."""


def interrupt_at(model, step: int) -> None:
    """Make ``model.train_step`` raise :class:`Interrupted` when called for ``step``."""
    original = model.train_step

    def train_step(batch, s):
        if s == step:
            raise Interrupted
        return original(batch, s)

    model.train_step = train_step


class ExplodingVAE(VAE):
    """A VAE whose training raises in its third step (a failed training job)."""

    description = "test model: its training raises at step 2"

    def train_step(self, batch, step):
        if step == 2:
            raise RuntimeError("exploded on purpose at step 2")
        return super().train_step(batch, step)


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
    from genbench.plan.spec import SuiteSpec

    d = {"name": "t", "datasets": ["digits"], "models": ["vae"], "metrics": ["recon", "speed"],
         "seeds": [0], "budget": {"steps": 40, "batch_size": 64}, "num_samples": 64,
         "baselines": []}
    d.update(overrides)
    return SuiteSpec.from_dict(d)


def tiny_spec_toml(*, name: str = "t", dataset: str = "digits", models=("vae",),
                   metrics=("recon",), seeds=(0,), num_samples: int = 64, steps: int = 30) -> str:
    """A tiny suite spec as the TOML a user writes, one key per line (tests edit it with
    ``str.replace``, e.g. ``'models = ["vae"]'``)."""
    def toml_list(values) -> str:
        return "[" + ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in values) + "]"

    return (f'name = "{name}"\ndatasets = ["{dataset}"]\nmodels = {toml_list(models)}\n'
            f"metrics = {toml_list(metrics)}\nseeds = {toml_list(seeds)}\n"
            f"num_samples = {num_samples}\nbaselines = []\n[budget]\nsteps = {steps}\n")


def invoke_cli(*args: str, catch_exceptions: bool = False, env: dict | None = None):
    """``genbench ARGS`` through click's test runner, in this process."""
    from click.testing import CliRunner

    from genbench.cli.commands import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=catch_exceptions, env=env)


def params_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- runner v2: counted training, sampling settings, models built on models --------------

class CountsTrainSteps:
    """Mixin: counts, per class and in this process, the train_step calls it gets."""

    calls = 0

    def train_step(self, batch, step):
        type(self).calls += 1
        return super().train_step(batch, step)


class CountingVAE(CountsTrainSteps, VAE):
    description = "test model: a VAE that counts its training steps"
    calls = 0


class RefinedVAE(VAE):
    """A VAE sampled with ``refine`` extra posterior-mean passes x <- decode(encode(x)), so
    its network evaluations per sample depend on a sampling setting."""

    description = "test model: VAE with iterated-reconstruction sampling"

    @torch.no_grad()
    def sample(self, n, generator=None, *, temperature: float = 1.0, refine: int = 0):
        x = super().sample(n, generator, temperature=temperature)
        for _ in range(refine):
            x = self.reconstruct(x)
        return x

    def nfe(self, *, temperature: float = 1.0, refine: int = 0) -> int:
        return 1 + 2 * refine


class CountingAE(CountsTrainSteps, AE):
    description = "test model: an AE that counts its training steps"
    calls = 0


class CodeGaussian(GenerativeModel):
    """Two-stage model: a full-covariance Gaussian fitted to a trained autoencoder's codes of
    the training split; samples are decoded draws from it."""

    description = "test model: Gaussian on the codes of a trained autoencoder"
    family = "two-stage"
    fits = 0
    arrived_in_eval_mode = None

    def train(self, mode: bool = True):
        """The autoencoder stays frozen: in eval mode while this model trains."""
        super().train(mode)
        self.autoencoder.eval()
        return self

    def __init__(self, data_info, autoencoder=ModelRef("counting-ae", latent_dim=4),
                 jitter: float = 1e-4):
        super().__init__()
        CodeGaussian.arrived_in_eval_mode = not autoencoder.training
        self.autoencoder, self.jitter = autoencoder, jitter
        d = autoencoder.latent_dim
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("scale_tril", torch.eye(d))

    @torch.no_grad()
    def fit(self, data, budget):
        CodeGaussian.fits += 1
        x, _ = split_tensors(data)
        codes = self.autoencoder.encode(x.to(self.device)).double()
        cov = torch.cov(codes.T) + self.jitter * torch.eye(codes.shape[1], dtype=codes.dtype)
        self.mean.copy_(codes.mean(0).float())
        self.scale_tril.copy_(torch.linalg.cholesky(cov).float())

    @torch.no_grad()
    def sample(self, n, generator=None):
        z = self.mean + self.randn(n, self.mean.numel(), generator=generator) @ self.scale_tril.T
        return self.autoencoder.decode(z)


class CycleA(CodeGaussian):
    description = "test model: references cycle-b"

    def __init__(self, data_info, autoencoder=ModelRef("cycle-b"), jitter: float = 1e-4):
        super().__init__(data_info, autoencoder, jitter)


class CycleB(CodeGaussian):
    description = "test model: references cycle-a"

    def __init__(self, data_info, autoencoder=ModelRef("cycle-a"), jitter: float = 1e-4):
        super().__init__(data_info, autoencoder, jitter)


class KilledVAE(VAE):
    """A VAE whose worker process is killed with SIGKILL at its third training step."""

    description = "test model: its process dies while training"

    def train_step(self, batch, step):
        if step == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().train_step(batch, step)


class FlakyAE(CountingAE):
    """An autoencoder whose training raises while ``FlakyAE.failures`` is positive (a
    transient fault: out of memory, a lost file system...), then trains normally."""

    description = "test model: training fails the first time"
    failures = 0

    def train_step(self, batch, step):
        if FlakyAE.failures > 0:
            FlakyAE.failures -= 1
            raise RuntimeError("transient fault")
        return super().train_step(batch, step)


class DyingSamplerVAE(VAE):
    """A VAE whose worker process is killed when it samples with ``die=True``."""

    description = "test model: one sampling setting kills its process"

    @torch.no_grad()
    def sample(self, n, generator=None, *, temperature: float = 1.0, die: bool = False):
        if die:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().sample(n, generator, temperature=temperature)


class RunnerPlugin:
    """The models above, registered like a third-party plugin."""

    @hookimpl
    def register_models(self, register):
        register("counting-vae", CountingVAE)
        register("refined-vae", RefinedVAE)
        register("counting-ae", CountingAE)
        register("code-gaussian", CodeGaussian)
        register("cycle-a", CycleA)
        register("cycle-b", CycleB)
        register("killed-vae", KilledVAE)
        register("flaky-ae", FlakyAE)
        register("dying-sampler-vae", DyingSamplerVAE)


def run_inline(spec, out, registries, **kwargs):
    """Run ``spec`` in this process (``jobs=0``), quietly; returns the report."""
    from genbench.execution.runner import SuiteRunner

    return SuiteRunner(spec, out, registries, progress=False, echo=lambda s: None, jobs=0,
                       **kwargs).run()


def stored_jobs(db) -> list[tuple]:
    """``(job_key, created_at, id)`` of every job in results database ``db`` (none yet: [])."""
    import sqlite3

    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as con:
            return con.execute("SELECT job_key, created_at, id FROM jobs").fetchall()
    except sqlite3.OperationalError:
        return []


# -- a sampler ----------------------------------------------------------------------------

class LinearDDIM(Sampler):
    """Deterministic DDIM (eta = 0, Song et al. 2021) on a linear beta schedule, predicting
    the noise epsilon; the step after the last timestep lands on alpha_bar = 1, the clean x0."""

    description = "test sampler: deterministic DDIM on a linear beta schedule"

    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 1e-4,
                 beta_end: float = 0.02, alphas_cumprod: torch.Tensor | None = None):
        betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
        self.alpha_bar = torch.cumprod(1 - betas, 0)
        if alphas_cumprod is not None:  # a model's schedule (the genbench.api.sampler convention)
            self.alpha_bar = torch.as_tensor(alphas_cumprod, dtype=torch.float64)
            num_train_timesteps = len(self.alpha_bar)
        self.spacings = {
            "linspace":
                lambda steps: torch.linspace(0, num_train_timesteps - 1, steps).round().long(),
            "leading": lambda steps: torch.arange(steps) * (num_train_timesteps // steps),
        }

    def set_timesteps(self, steps, spacing="leading"):
        if spacing not in self.spacings:
            raise ConfigError(f"unknown spacing {spacing!r}; valid: {', '.join(self.spacings)}")
        self.timesteps = self.spacings[spacing](steps).flip(0)

    def alpha_bar_after(self, t):
        later = self.timesteps[self.timesteps < t]
        return self.alpha_bar[later[0]] if len(later) else torch.tensor(1.0, dtype=torch.float64)

    def step(self, model_output, t, x_t, generator=None):
        a_t, a_prev = self.alpha_bar[t], self.alpha_bar_after(t)
        x0 = (x_t - (1 - a_t).sqrt() * model_output) / a_t.sqrt()
        return (a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * model_output).to(x_t.dtype)


class SamplerPlugin:
    @hookimpl
    def register_samplers(self, register):
        register("ddim-test", LinearDDIM)
