"""The model contract: :class:`GenerativeModel`."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

if TYPE_CHECKING:
    from .data import DataInfo
    from .training import Budget

class ModelRef:
    """A hyper-parameter default that takes another, trained model.

    ``def __init__(self, data_info, autoencoder=ModelRef("conv-ae", latent_dim=8))``: the
    runner trains the referenced model (same dataset and seed) as its own job and passes the
    trained instance, in eval mode, in place of this marker. A spec overrides it with a name
    (``autoencoder = "ae"``) or a table (``autoencoder = { name = "ae", params = { ... } }``).
    """

    __slots__ = ("name", "params")

    def __init__(self, name: str, **params: Any):
        if not isinstance(name, str) or not name:
            raise TypeError(f"ModelRef needs a model name, got {name!r}")
        self.name, self.params = name, dict(params)

    def __repr__(self) -> str:
        inner = "".join(f", {k}={v!r}" for k, v in sorted(self.params.items()))
        return f"ModelRef({self.name!r}{inner})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelRef) and (self.name, self.params) == (other.name, other.params)

    def __hash__(self) -> int:
        return hash((self.name, repr(sorted(self.params.items()))))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}


#: Optional methods a model may define; found by looking, never declared.
OPTIONAL_CAPABILITIES = ("reconstruct", "encode", "elbo")


class GenerativeModel(nn.Module, abc.ABC):
    """Base class of every model plugin.

    A subclass is built as ``cls(data_info, **hyperparameters)``: its ``__init__`` takes the
    :class:`~genbench.DataInfo` first and its hyper-parameters as keyword arguments with
    defaults, calls ``super().__init__()`` with no arguments, and creates its own optimizers
    (a GAN keeps one for D and one for G).

    It trains in one of two ways:

    * define ``train_step(batch, step) -> dict[str, float]``: the training engine feeds
      batches (a float tensor on the model's device; labels are dropped) and shows, checks
      and logs the returned losses. Use :meth:`optimizer_step` for the backward pass so
      that mixed precision works on CUDA; or
    * override ``fit(data, budget)`` (closed-form, pretrained or external models).

    :meth:`on_train_end` runs after training with the training split (ex-post density
    estimation, say). Every model implements :meth:`sample`. Optional capabilities, found by
    looking for them: ``reconstruct(x)``, ``encode(x)``, ``elbo(x)`` and ``nfe`` (network
    evaluations per sample: an attribute, or a method taking the sampling settings).

    A hyper-parameter whose default is a :class:`ModelRef` takes another model: the runner
    trains that model first and passes the trained instance, in eval mode.
    """

    description: ClassVar[str] = ""
    #: Free-form family name shown by ``genbench list models`` ("vae", "gan", ...).
    family: ClassVar[str] = ""
    #: Kinds of data (see :data:`genbench.data.DATA_KINDS`) the model can be trained on.
    data_kinds: ClassVar[tuple[str, ...]] = ("image", "vector")
    #: For models that override ``fit``: True when fitting is cheap and deterministic (a
    #: copy, a closed form), so the engine refits every time instead of checkpointing state
    #: that may be as large as the data.
    refit_instead_of_checkpoint: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        # An empty buffer so that .device works for models without parameters.
        self.register_buffer("_device_anchor", torch.empty(0), persistent=False)
        self._grad_scaler: torch.amp.GradScaler | None = None

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
            scaler.update()

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The model's optimizers by attribute name (saved in checkpoints)."""
        return {k: v for k, v in vars(self).items() if isinstance(v, torch.optim.Optimizer)}

    # -- sampling -----------------------------------------------------------------------
    @abc.abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` samples in data space (images in [0, 1]) as a float tensor.

        ``generator`` is a CPU :class:`torch.Generator`; draw noise with :meth:`randn` so that
        samples are the same on every device for the same seed. Keyword-only parameters
        after ``generator``, each with a default, are the model's *sampling settings*
        (``def sample(self, n, generator=None, *, steps=50)``): a spec sets them per row
        (``sampling = { steps = 10 }``) and one training serves every setting. ``nfe`` may
        then be a method taking the same keywords.
        """

    @property
    def device(self) -> torch.device:
        return self._device_anchor.device

    def randn(self, *shape: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard normal noise drawn on the CPU from ``generator``, moved to the model's device."""
        return torch.randn(*shape, generator=generator).to(self.device)

    def rand(self, *shape: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Uniform [0, 1) noise drawn on the CPU from ``generator``, moved to the model's device."""
        return torch.rand(*shape, generator=generator).to(self.device)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
