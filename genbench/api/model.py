"""The model contract: :class:`GenerativeModel`."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

# ModelRef is a kind of parameter default; it stays importable from here.
from genbench.api.noise import SampleNoise, noise_rand, noise_randn
from genbench.api.parameters import ModelRef, validate_on_init  # noqa: F401

if TYPE_CHECKING:
    from genbench.api.data import DataInfo
    from genbench.api.budget import Budget

#: Optional methods a model may define; found by looking, never declared.
OPTIONAL_CAPABILITIES = ("reconstruct", "encode", "elbo", "log_importance_weights",
                         "log_likelihood", "sample_range")


class GenerativeModel(nn.Module, abc.ABC):
    """Base class of every model plugin.

    A subclass is built as ``cls(data_info, **hyperparameters)``: the first positional
    parameter of its ``__init__`` receives the :class:`~genbench.DataInfo`, whatever its
    name; every other parameter is a hyper-parameter, declared once with a default and an
    annotation giving its type and constraints (``latent_dim: Annotated[int, Ge(1)] = 8``;
    see :mod:`genbench.api.parameters`), checked before a run builds the model and by a
    direct call ``cls(data_info, latent_dim=0)`` alike. ``__init__`` calls
    ``super().__init__()`` with no arguments and creates its own optimizers (a GAN keeps one
    for D and one for G).

    It trains in one of two ways:

    * define ``train_step(batch, step) -> dict[str, float]``: the training engine feeds
      batches (a float tensor on the model's device; labels are dropped) and shows, checks
      and logs the returned losses. Use :meth:`optimizer_step` for the backward pass so
      that mixed precision works on CUDA; or
    * override ``fit(data, budget)`` (closed-form, pretrained or external models).

    What the engine offers a ``train_step`` model beyond one batch per call:

    * ``batches_per_step`` (an int attribute, default 1; an instance may set it in
      ``__init__``): with ``k > 1`` the engine passes ``batch`` as a tuple of ``k`` fresh,
      consecutive batches of the shuffled stream (a critic trained ``k`` times per generator
      step, each time on new data). The budget still counts ``train_step`` calls: ``steps``
      is the number of calls (generator updates, as the GAN papers count iterations), and
      an ``epochs`` budget is converted to calls so that the data is passed over that many
      times (``epochs * batches_per_epoch // k`` calls, at least 1).
    * Learning-rate schedulers the model keeps as attributes (any
      ``torch.optim.lr_scheduler.LRScheduler``, found by :meth:`schedulers` as
      :meth:`optimizers` finds optimizers) are saved in checkpoints and restored on resume.
      The model steps them itself inside ``train_step``.
    * ``preview_samples`` (a class attribute, default 0): a model that sets it to ``n > 0``
      has ``n`` samples drawn (a fixed seed, in eval mode, without touching the training
      random streams) at the start and at every log point whose losses are finite. If
      training diverges, the last of these is written as ``preview.png`` beside the
      checkpoint and its path is recorded in ``TrainResult.preview_path``, so a diverged GAN
      keeps its last finite sample grid.
    * :meth:`gradients`: ``torch.autograd.grad`` for penalties on gradients (WGAN-GP), correct
      under the engine's gradient scaler.

    :meth:`on_train_end` runs after training with the training split (ex-post density
    estimation, say). Every model implements :meth:`sample`. Optional capabilities, found by
    looking for them: ``reconstruct(x)``, ``encode(x)``, ``elbo(x)``,
    ``log_importance_weights(x, k, generator=None)`` (``(N, k)`` log importance weights
    ``log p(x|z) + log p(z) - log q(z|x)`` of ``k`` posterior draws: the ``iwae`` metric's
    input), ``log_likelihood(x, generator=None)`` (a normalizing flow's or an autoregressive
    model's exact log density ``log p(x)`` in nats, one per item: a ``(B,)`` tensor, for data
    on its own scale, images in [0, 1] and vectors as given; the ``nll`` metric evaluates it
    at uniformly dequantised points when the data declares
    :attr:`~genbench.DataInfo.levels`, so the density must be defined off the data grid;
    ``generator``, a CPU :class:`torch.Generator` or a :class:`~genbench.api.noise.SampleNoise`,
    is for a model whose computation draws noise, and an exact model ignores it), ``nfe`` (network
    evaluations per sample: an attribute, or a method taking the sampling settings), and
    ``sample_range(start, stop, generator=None, **settings)`` for a model whose samples are a
    fixed, indexed stream (a sample set read from files): an evaluation then asks for items
    ``start..stop-1`` batch by batch instead of calling :meth:`sample` per batch, so that no
    batch replays another's. Such a model may also set ``max_samples`` (an int attribute of
    the instance): a suite asking for more samples is refused before anything trains. A
    model made elsewhere may define ``provenance() -> dict`` (its files and their content
    hash, say): every row of it records that under ``model_source``.

    A hyper-parameter whose default is a :class:`ModelRef` takes another model: the runner
    trains that model first and passes the trained instance, in eval mode.
    """

    description: ClassVar[str] = ""
    #: Free-form family name shown by ``genbench list models`` ("vae", "gan", ...).
    family: ClassVar[str] = ""
    #: True for a reference row (a floor a model is read against, not a competitor): its
    #: leaderboard rows sit on top, unranked, and plots leave it out.
    reference: ClassVar[bool] = False
    #: True to add the model to every dataset of a spec that names no ``baselines``.
    default_baseline: ClassVar[bool] = False
    #: Kinds of data (see :data:`genbench.api.data.DATA_KINDS`) the model can be trained on.
    data_kinds: ClassVar[tuple[str, ...]] = ("image", "vector")
    #: For models that override ``fit``: True when fitting is cheap and deterministic (a
    #: copy, a closed form), so the engine refits every time instead of checkpointing state
    #: that may be as large as the data.
    refit_instead_of_checkpoint: ClassVar[bool] = False
    #: Leading positional parameters of ``__init__`` that genbench passes itself (the
    #: DataInfo): not hyper-parameters.
    framework_positionals: ClassVar[int] = 1
    #: Batches the engine passes to each ``train_step`` call (a tuple when more than 1).
    batches_per_step: int = 1
    #: Samples drawn for a preview at log points (0: none); see the class docstring.
    preview_samples: ClassVar[int] = 0
    #: The hyper-parameter naming a sample set (files) that the model replays, or ``None``:
    #: ``genbench eval`` scores a sample set with the registered model that declares one.
    sample_set_parameter: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        validate_on_init(cls)

    def __init__(self) -> None:
        super().__init__()
        # An empty buffer so that .device works for models without parameters.
        self.register_buffer("_device_anchor", torch.empty(0), persistent=False)
        self._grad_scaler: torch.amp.GradScaler | None = None
        #: Optimizer steps the gradient scaler skipped (fp16 overflow), counted by the engine.
        self._amp_backoffs = 0

    # -- capabilities -------------------------------------------------------------------
    @classmethod
    def capabilities(cls) -> tuple[str, ...]:
        """What this model can do, discovered from the methods it defines."""
        caps = ["sample"]
        if callable(getattr(cls, "train_step", None)):
            caps.append("train_step")
        if cls.fit is not GenerativeModel.fit:
            caps.append("fit")
        caps += [c for c in OPTIONAL_CAPABILITIES if callable(getattr(cls, c, None))]
        if hasattr(cls, "nfe"):
            caps.append("nfe")
        return tuple(caps)

    @classmethod
    def supports(cls, data_info: "DataInfo") -> str | None:
        """``None`` if the model can train on this data, else the reason it cannot."""
        if data_info.kind not in cls.data_kinds:
            return f"{data_info.kind} data is not supported (model takes {', '.join(cls.data_kinds)})"
        return None

    # -- training -----------------------------------------------------------------------
    def fit(self, data: torch.utils.data.Dataset, budget: "Budget") -> None:
        """Train without the engine's loop. Override for closed-form or external models.

        The base class is never called: the engine runs its loop over ``train_step`` when a
        model does not override ``fit``.
        """
        raise TypeError(f"{type(self).__name__} defines neither train_step nor fit")

    def on_train_end(self, data: torch.utils.data.Dataset) -> None:
        """Called once after training (not after a diverged run). Default: nothing."""

    def optimizer_step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                       retain_graph: bool = False) -> None:
        """zero_grad, backward and step, through the engine's gradient scaler when AMP is on."""
        optimizer.zero_grad(set_to_none=True)
        scaler = self._grad_scaler
        if scaler is None:
            loss.backward(retain_graph=retain_graph)
            optimizer.step()
        else:
            scaler.scale(loss).backward(retain_graph=retain_graph)
            scaler.step(optimizer)
            # Updating after every step (not once per train_step) lets a model step the same
            # optimizer several times in one train_step, e.g. a critic trained n times per G step.
            before = scaler.get_scale()
            scaler.update()
            if scaler.get_scale() < before:  # this step overflowed and was skipped
                self._amp_backoffs += 1

    def gradients(self, outputs: torch.Tensor, inputs: torch.Tensor | list[torch.Tensor],
                  create_graph: bool = True) -> list[torch.Tensor]:
        """``torch.autograd.grad(outputs.sum(), inputs, create_graph=create_graph)``, correct
        under mixed precision.

        With the engine's gradient scaler active (fp16 on CUDA) the gradient is taken of the
        *scaled* sum, so that small fp16 gradients do not underflow, and multiplied back by
        ``1 / scale`` in float32 before it is returned: a penalty built on it (and added to a
        loss passed to :meth:`optimizer_step`) then has its true value, as in PyTorch's AMP
        "gradient penalty" recipe. Should the scaled gradient overflow, the returned gradient
        is not finite, the optimizer step that follows is skipped by the scaler and the scale
        lowered; the engine does not count that step as a divergence.
        """
        inputs = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
        total = outputs.float().sum()
        scaler = self._grad_scaler
        if scaler is None or not scaler.is_enabled():
            return list(torch.autograd.grad(total, inputs, create_graph=create_graph))
        grads = torch.autograd.grad(scaler.scale(total), inputs, create_graph=create_graph)
        inv_scale = 1.0 / scaler.get_scale()
        return [g.float() * inv_scale for g in grads]

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The model's optimizers by attribute name (saved in checkpoints)."""
        return {k: v for k, v in vars(self).items() if isinstance(v, torch.optim.Optimizer)}

    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        """The model's learning-rate schedulers by attribute name (saved in checkpoints)."""
        return {k: v for k, v in vars(self).items()
                if isinstance(v, torch.optim.lr_scheduler.LRScheduler)}

    # -- sampling -----------------------------------------------------------------------
    @abc.abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples in data space (images in [0, 1]) as a float tensor.

        ``generator`` is a CPU :class:`torch.Generator` or, in an evaluation, a
        :class:`~genbench.api.noise.SampleNoise` (one generator per sample, so that sample
        ``i`` is the same whatever the batch size and on whichever worker it is drawn). Draw
        all noise with :meth:`randn` / :meth:`rand` (and samplers' ``randn_like``), shaped
        ``(n, ...)``: they take either, and samples are the same on every device for a seed.
        Code that calls ``torch.randn(..., generator=generator)`` itself gets a plain
        generator instead, and its samples then depend on the evaluation's batch size. Keyword-only parameters
        after ``generator``, each with a default, are the model's *sampling settings*
        (``def sample(self, n, generator=None, *, steps=50)``): a spec sets them per row
        (``sampling = { steps = 10 }``) and one training serves every setting. ``nfe`` may
        then be a method taking the same keywords.
        """

    @property
    def device(self) -> torch.device:
        return self._device_anchor.device

    def randn(self, *shape: int, generator: "torch.Generator | SampleNoise | None" = None) -> torch.Tensor:
        """Standard normal noise drawn on the CPU from ``generator``, moved to the model's
        device. With a :class:`~genbench.api.noise.SampleNoise` (what an evaluation passes) row
        ``j`` comes from sample ``j``'s own generator, so ``shape[0]`` must be the sample count."""
        return noise_randn(*shape, generator=generator).to(self.device)

    def rand(self, *shape: int, generator: "torch.Generator | SampleNoise | None" = None) -> torch.Tensor:
        """Uniform [0, 1) noise drawn on the CPU from ``generator`` (see :meth:`randn`), moved
        to the model's device."""
        return noise_rand(*shape, generator=generator).to(self.device)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
