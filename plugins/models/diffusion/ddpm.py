"""``ddpm``: denoising diffusion probabilistic models (Ho et al. 2020), any registered sampler.

Training (algorithm 1 of the paper): draw t uniformly from the T training timesteps and
noise eps ~ N(0, I), form x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, and regress
the network's eps_theta(x_t, t) on eps (mean squared error, the paper's L_simple). An
exponential moving average of the weights (:mod:`.ema`) is kept, checkpointed, and is
what samples are drawn with.

Sampling: start from N(0, I) and let a *sampler* (a registered :class:`genbench.Sampler`)
walk back through its timesteps, one network evaluation per timestep. Which sampler, how
many steps and how they are spaced are sampling settings, so one trained network is
evaluated with ``ddpm`` at 1,000 steps and ``ddim`` at 10 alike. Sampling runs batched on the
model's device under :func:`torch.inference_mode`, the network under autocast on CUDA; all
noise comes from the CPU generator, so a seed gives the same samples on every device (up to
the device's arithmetic).

Data space: images in [0, 1] are mapped to [-1, 1] (and the predicted clean image is
clipped there while sampling, as in the paper's code); vectors (and latent codes, see
:mod:`.latent`) are standardised with the per-dimension mean and the overall standard
deviation of the first training batch, kept as buffers (the scale-by-std of Rombach et al.
2022 for latents), so that N(0, I) is a sensible prior whatever the data's scale.

How the sampler is built is the convention of :mod:`genbench.api.sampler`:
``sampler_cls(alphas_cumprod=...)``, plus ``eta`` and ``clip_sample`` for a sampler whose
``__init__`` takes them.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import torch
from annotated_types import Ge, Interval
from torch.nn import functional as F

from genbench import (ConfigError, DataInfo, GenerativeModel, Sampler, accepts_any_keyword,
                      batch_randint, batch_randn, global_batch, hyperparameters, registered_name)

from ..layers import LearningRate, Positive
from .ema import EMA, Decay
from .networks import MLPDenoiser, UNet
from .schedule import Beta, ForwardProcess, Schedule, Timesteps, make_betas

#: A dropout probability.
Dropout = Annotated[float, Interval(ge=0, lt=1)]

#: ``steps``: the timesteps a sampler visits (None: all T; at most T, which the sampler checks).
Steps = Annotated[int, Ge(1)] | None
#: ``spacing``: how a sampler spaces its timesteps. Its choices are the sampler's (the built-in
#: ones take ``uniform`` and ``quadratic``, a third-party one may take others), so the
#: sampler checks it, not this declaration.
Spacing = str

#: The keyword options a model passes to a sampler besides ``alphas_cumprod``, when the
#: sampler's ``__init__`` names them.
OPTIONAL_SAMPLER_OPTIONS = ("eta", "clip_sample")


def shipped_samplers() -> dict[str, type[Sampler]]:
    """The samplers this plugin distribution ships (``plugins/samplers``), by the names their
    own ``register_samplers`` hooks give them: what a direct call without registries may
    name. Imported here, not looked up in any process-wide registry."""
    from ...samplers import ddim, ddpm

    shipped: dict[str, type[Sampler]] = {}
    for module in (ddpm, ddim):
        module.register_samplers(register=shipped.__setitem__)
    return shipped


def sampler_class(sampler: str | type[Sampler], registries=None) -> type[Sampler]:
    """The sampler class for a ``sampler`` setting: a class as it is (in a run the evaluation
    context resolves names in the run's registries); a name looked up in ``registries`` when
    given (:class:`~genbench.api.errors.UnknownNameError` lists their samplers), else among
    the samplers this distribution ships (:func:`shipped_samplers`). Any other name without
    ``registries`` is a :class:`~genbench.api.errors.ConfigError` saying what to pass: there
    is no fallback to process-wide registries."""
    if isinstance(sampler, type) and issubclass(sampler, Sampler):
        return sampler
    if not isinstance(sampler, str):
        raise ConfigError(f"sampler must be a Sampler class or a registered sampler's name, "
                          f"got {sampler!r}")
    if registries is not None:
        return registries.samplers.get(sampler)
    shipped = shipped_samplers()
    if sampler in shipped:
        return shipped[sampler]
    raise ConfigError(f"sampler {sampler!r} is not one of the samplers shipped with this model "
                      f"({', '.join(shipped)}), and no registries were given to look it up in: "
                      f"pass the class (sampler=registries.samplers.get({sampler!r})) or the "
                      "registries (registries=...) as well")


class DiffusionModel(GenerativeModel):
    """What ``ddpm`` and ``latent-diffusion`` share: the forward process, the eps-prediction
    loss, the EMA, standardisation of the diffusion space, and sampling through a sampler.

    A subclass calls :meth:`_setup` with its network and the shape of the space it diffuses
    in, and may override :meth:`to_space` (data batch -> that space, before
    standardisation) and :meth:`from_space` (back to data).
    """

    family = "diffusion"

    def _setup(self, network: torch.nn.Module, shape: tuple[int, ...], *, timesteps: int,
               beta_schedule: str, beta_start: float, beta_end: float, lr: float,
               ema_decay: float, clip_sample: float | None,
               standardisation: tuple[float, float] | None = None) -> None:
        """``standardisation``: a fixed ``(shift, scale)`` (images: (0.5, 0.5) maps [0, 1] to
        [-1, 1]); ``None`` takes them from the first training batch."""
        label = registered_name(self)
        self.process = ForwardProcess(make_betas(beta_schedule, timesteps, beta_start, beta_end,
                                                 what=label))
        self.space_shape = tuple(shape)
        self.network = network
        self.ema = EMA(network, ema_decay)
        self.clip_sample = clip_sample
        # Persistent buffers: the checkpoint restores how data maps to the diffusion space.
        # A scale of 0 means "not measured yet".
        shift, scale = standardisation if standardisation is not None else (0.0, 0.0)
        self.register_buffer("space_shift", torch.full(self.space_shape, float(shift)))
        self.register_buffer("space_scale", torch.tensor(float(scale)))
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=lr)

    # -- the diffusion space ------------------------------------------------------------
    def to_space(self, x: torch.Tensor) -> torch.Tensor:
        """A data batch in the space diffused in, before standardisation. Default: as is."""
        return x

    def from_space(self, z: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_space` (samples, after un-standardising). Default: as is."""
        return z

    def standardise(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` shifted and scaled by the buffers; the first training batch sets them."""
        if not self.__dict__.get("_space_measured") and float(self.space_scale) == 0:
            # the whole first batch, also when this process trains on a shard of it
            flat = global_batch(z.detach().float()).flatten(1)
            self.space_shift.copy_(flat.mean(0).reshape(self.space_shape))
            self.space_scale.copy_(flat.std(0).mean().clamp(min=1e-6))
        self._space_measured = True  # checked once per instance, not once per step
        return (z - self.space_shift) / self.space_scale

    def unstandardise(self, z: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`standardise` (an untrained model's scale counts as 1)."""
        scale = torch.where(self.space_scale > 0, self.space_scale, 1.0)
        return z * scale + self.space_shift

    # -- training -----------------------------------------------------------------------
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """L_simple on a clean data batch: || eps - eps_theta(x_t, t) ||^2, t uniform."""
        x0 = self.standardise(self.to_space(x))
        t = batch_randint(self.process.num_timesteps, len(x0), device=x0.device)
        noise = batch_randn(len(x0), *x0.shape[1:], device=x0.device, dtype=x0.dtype)
        return F.mse_loss(self.network(self.process(x0, t, noise), t).float(), noise.float())

    def train_step(self, batch: torch.Tensor, step: int) -> dict[str, float]:
        loss = self.loss(batch)
        self.optimizer_step(loss, self.optimizer)
        self.ema.update(self.network)
        return {"loss": loss.item()}

    # -- sampling -----------------------------------------------------------------------
    def build_sampler(self, sampler: str | type[Sampler] = "ddpm", steps: Steps = None,
                      eta: float = 0.0, spacing: Spacing = "uniform", registries=None) -> Sampler:
        """The sampler of these settings, built on this model's schedule, its timesteps set
        (``registries``: where a sampler name is looked up, see :func:`sampler_class`)."""
        cls = sampler_class(sampler, registries)
        name = getattr(cls, "__qualname__", repr(cls))
        takes = set(hyperparameters(cls))
        anything = accepts_any_keyword(cls)
        if "alphas_cumprod" not in takes and not anything:
            raise ConfigError(f"sampler {name} does not take alphas_cumprod: a sampler is built "
                              "as cls(alphas_cumprod=..., [eta=..., clip_sample=...]) "
                              "(see genbench.api.sampler)")
        options: dict[str, Any] = {"alphas_cumprod": self.process.alphas_cumprod.clone()}
        values = {"eta": float(eta), "clip_sample": self.clip_sample}
        for key in OPTIONAL_SAMPLER_OPTIONS:
            if key in takes or anything:
                options[key] = values[key]
        if float(eta) != 0.0 and "eta" not in options:
            raise ConfigError(f"sampler {name} takes no eta (it applies to samplers such as "
                              f"ddim); leave eta at 0 with this sampler, got eta={eta!r}")
        built = cls(**options)
        built.set_timesteps(self.process.num_timesteps if steps is None else steps, spacing)
        return built

    def nfe(self, *, sampler: str | type[Sampler] = "ddpm", steps: Steps = None,
            eta: float = 0.0, spacing: Spacing = "uniform", registries=None) -> int:
        """Network evaluations per sample: one per timestep the sampler visits."""
        return len(self.build_sampler(sampler, steps, eta, spacing, registries).timesteps)

    def sample(self, n: int, generator: torch.Generator | None = None, registries=None, *,
               sampler: str = "ddpm", steps: Steps = None, eta: float = 0.0,
               spacing: Spacing = "uniform") -> torch.Tensor:
        """``n`` samples, drawn with the EMA weights through ``sampler`` (a Sampler class, or
        a name: see :func:`sampler_class`), visiting ``steps`` timesteps (``None``: all T)
        spaced ``uniform`` or ``quadratic``; ``eta`` is passed to samplers that take it.
        ``registries`` is not a sampling setting (only keyword-only parameters are): in a run
        the evaluation passes the class, so it matters only to a direct call with a name."""
        with torch.inference_mode():
            z = self.denoise(n, generator,
                             self.build_sampler(sampler, steps, eta, spacing, registries))
            out = self.from_space(self.unstandardise(z)).float()
        return out.clone()  # a normal tensor: callers may modify it in place

    @torch.inference_mode()
    def denoise(self, n: int, generator: torch.Generator | None, sampler: Sampler) -> torch.Tensor:
        """Run ``sampler`` from N(0, I) noise with the EMA network; standardised space."""
        network = self.ema.averaged
        x = self.randn(n, *self.space_shape, generator=generator)
        for t in sampler.timesteps.tolist():
            ts = torch.full((n,), t, device=x.device, dtype=torch.long)
            with self._autocast():
                eps = network(x, ts)
            x = sampler.step(eps.float(), t, x, generator)
        return x

    def _autocast(self):
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)

    def num_parameters(self) -> int:
        """Parameters of the network (the EMA copy that samples has as many; not counted twice)."""
        return sum(p.numel() for p in self.network.parameters())


class DDPM(DiffusionModel):
    """Denoising diffusion probabilistic model with a swappable sampler.

    Images get a U-Net (``channels`` at full resolution doubling per level up to
    ``max_channels``, ``num_res_blocks`` per level, self-attention at the lowest resolution
    when ``attention``); vectors an MLP of ``depth`` residual blocks of width ``hidden``.
    ``timesteps`` T and ``beta_schedule`` (``linear`` from ``beta_start`` to ``beta_end``, or
    ``cosine``) define the forward process; ``ema_decay`` the averaged weights sampled with.
    """

    description = ("DDPM (Ho et al. 2020): eps-prediction U-Net (images) or MLP (vectors), "
                   "linear or cosine schedule, EMA weights; sampled with any registered "
                   "sampler (ddpm, ddim) at any step count")

    def __init__(self, data_info: DataInfo, timesteps: Timesteps = 1000,
                 beta_schedule: Schedule = "linear", beta_start: Beta = 1e-4,
                 beta_end: Beta = 0.02, channels: Positive = 32, max_channels: Positive = 128,
                 num_res_blocks: Positive = 1, attention: bool = True, hidden: Positive = 256,
                 depth: Positive = 3, dropout: Dropout = 0.0, lr: LearningRate = 5e-4,
                 ema_decay: Decay = 0.999):
        super().__init__()
        self.kind = data_info.kind
        dropout = float(dropout)
        if data_info.kind == "image":
            network = UNet(data_info.shape, channels, max_channels, num_res_blocks,
                           bool(attention), dropout)
            clip, standardisation = 1.0, (0.5, 0.5)
        else:
            network = MLPDenoiser(data_info.dim, hidden, depth, dropout)
            clip, standardisation = None, None
        self._setup(network, data_info.shape, timesteps=timesteps, beta_schedule=beta_schedule,
                    beta_start=beta_start, beta_end=beta_end, lr=lr, ema_decay=ema_decay,
                    clip_sample=clip, standardisation=standardisation)

    def from_space(self, z: torch.Tensor) -> torch.Tensor:
        return z.clamp(0, 1) if self.kind == "image" else z
