"""The training loop: budgets, checkpoints with resume, the NaN guard; :func:`train`."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from genbench.api.budget import Budget
from genbench.api.data import TensorSplit
from genbench.api.errors import CheckpointCorruptError, ConfigError, TrainingDiverged
from genbench.api.model import GenerativeModel
from genbench.api.paths import atomic_write
from genbench.execution.amp import autocast, mixed_precision, scaler_overflowed
from genbench.execution.batches import (LoaderBatches, TensorBatches, batches_per_step,
                                        total_train_steps)
from genbench.execution.checkpoints import (CHECKPOINT_FORMAT, is_checkpoint_of, load_checkpoint_file,
                                           load_model_state)
from genbench.execution.devices import resolve_device, seed_everything
from genbench.execution.previews import Preview


@dataclass
class TrainResult:
    """What happened in one training run."""

    status: str  # "ok" or "diverged"
    steps: int
    seconds: float
    losses: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int = 0
    diverged_step: int | None = None
    stopped_by_time: bool = False
    #: Where the last finite preview grid was written when training diverged (models that
    #: set ``preview_samples``), else None.
    preview_path: str | None = None
    #: Steps whose non-finite losses came from an fp16 gradient-scaler overflow: the scaler
    #: skipped their update and lowered its scale, so they are not a divergence.
    amp_skipped_steps: int = 0


def overrides_fit(model: GenerativeModel | type[GenerativeModel]) -> bool:
    """Whether a model (or model class) trains through its own ``fit``."""
    cls = model if isinstance(model, type) else type(model)
    return cls.fit is not GenerativeModel.fit


class Trainer:
    """Runs a model's training under a :class:`Budget`.

    ``checkpoint_path``: where to save (atomically) every ``budget.checkpoint_every`` steps
    and at the end; an existing checkpoint with the same ``fingerprint`` is resumed, and a
    finished one means nothing is trained. ``amp=None`` enables mixed precision on CUDA only
    (bfloat16 autocast where supported, else float16 autocast with a gradient scaler).
    ``grad_scaler``: a scaler to use instead (no autocast is added); tests pass
    ``torch.amp.GradScaler("cpu")`` to run the fp16 call sequence on the CPU.
    """

    def __init__(self, device: str | torch.device = "auto", *, seed: int = 0,
                 amp: bool | None = None, checkpoint_path: str | Path | None = None,
                 fingerprint: str = "", progress: bool | None = None, log_every: int = 25,
                 description: str = "train", grad_scaler: torch.amp.GradScaler | None = None):
        self.device = resolve_device(device)
        self.seed = seed
        self.amp = self.device.type == "cuda" if amp is None else (amp and self.device.type == "cuda")
        self.grad_scaler = grad_scaler
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.fingerprint = fingerprint
        self.progress = progress
        self.log_every = max(1, log_every)
        self.description = description

    # -- checkpoints --------------------------------------------------------------------
    def save_checkpoint(self, model: GenerativeModel, step: int, done: bool,
                        scaler: torch.amp.GradScaler | None = None,
                        losses: dict[str, float] | None = None, seconds: float = 0.0,
                        history: list[dict[str, float]] | None = None,
                        stopped_by_time: bool = False) -> None:
        if self.checkpoint_path is None:
            return
        state = {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": self.fingerprint,
            "step": step,
            "done": done,
            "model": model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in model.optimizers().items()},
            "schedulers": {k: s.state_dict() for k, s in model.schedulers().items()},
            "scaler": scaler.state_dict() if scaler is not None else None,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "losses": dict(losses or {}),
            "seconds": float(seconds),  # training time over every process that trained it
            "history": list(history or []),  # the logged losses, so a resumed curve is whole
            # a finished training that its time budget ended: rows evaluated later say so too
            "stopped_by_time": bool(stopped_by_time),
        }
        atomic_write(self.checkpoint_path, lambda tmp: torch.save(state, tmp))

    def discard_checkpoint(self) -> None:
        """Forget a saved checkpoint, so that the next fit trains from scratch."""
        if self.checkpoint_path is not None and self.checkpoint_path.exists():
            self.checkpoint_path.unlink()

    def load_checkpoint(self, model: GenerativeModel,
                        scaler: torch.amp.GradScaler | None = None) -> dict | None:
        """Restore model, optimizers and RNG from a matching checkpoint; return it (or None).

        A file that does not load, or whose state does not fit ``model``, raises
        :class:`~genbench.api.errors.CheckpointCorruptError` (``model`` may then be partly
        restored: build it again before training it from scratch)."""
        if self.checkpoint_path is None:
            return None
        try:
            state = load_checkpoint_file(self.checkpoint_path, map_location=self.device)
        except FileNotFoundError:
            return None
        if not is_checkpoint_of(state, self.fingerprint):
            return None
        try:
            load_model_state(model, state["model"])
            for name, opt in model.optimizers().items():
                if name in state["optimizers"]:
                    opt.load_state_dict(state["optimizers"][name])
            saved_schedulers = state.get("schedulers") or {}
            for name, sched in model.schedulers().items():
                if name in saved_schedulers:
                    sched.load_state_dict(saved_schedulers[name])
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            torch.set_rng_state(state["torch_rng"].cpu())
            if self.device.type == "cuda" and state.get("cuda_rng"):
                torch.cuda.set_rng_state_all([t.cpu() for t in state["cuda_rng"]])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            detail = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise CheckpointCorruptError(self.checkpoint_path,
                                         f"its state does not fit the model ({detail[:200]})") from None
        return state

    def load_finished(self, model: GenerativeModel, data: Dataset, budget: Budget) -> TrainResult | None:
        """The trained model without training it: a finished checkpoint with this
        fingerprint is loaded (models that refit instead of checkpointing refit). ``None``
        when there is no finished checkpoint to load."""
        model.to(self.device)
        if overrides_fit(model) and model.refit_instead_of_checkpoint:
            return self.fit(model, data, budget)
        state = self.load_checkpoint(model)
        if state is None or not state["done"]:
            return None
        model.eval()
        return TrainResult("ok", state["step"], state.get("seconds", 0.0), losses=state["losses"],
                           history=list(state.get("history", [])), resumed_from=state["step"],
                           stopped_by_time=bool(state.get("stopped_by_time", False)))

    # -- the loop -----------------------------------------------------------------------
    def fit(self, model: GenerativeModel, data: Dataset, budget: Budget) -> TrainResult:
        """Train ``model`` on ``data``; raises nothing on divergence (see ``status``)."""
        t0 = time.perf_counter()
        model.to(self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        if overrides_fit(model):
            if model.refit_instead_of_checkpoint:
                seed_everything(self.seed)
                model.fit(data, budget)
                model.eval()
                return TrainResult("ok", 0, time.perf_counter() - t0)
            state = self.load_checkpoint(model)
            if state is not None and state["done"]:
                model.eval()
                return TrainResult("ok", state["step"], state.get("seconds", 0.0),
                                   losses=state["losses"], resumed_from=state["step"])
            seed_everything(self.seed)
            model.train()
            model.fit(data, budget)
            model.eval()
            seconds = time.perf_counter() - t0
            self.save_checkpoint(model, 0, done=True, seconds=seconds)  # fit() has no steps
            return TrainResult("ok", 0, seconds)
        if not callable(getattr(model, "train_step", None)):
            raise ConfigError(f"{type(model).__name__} defines neither train_step nor fit")

        amp_dtype, scaler = mixed_precision(self.amp, self.grad_scaler)
        model._grad_scaler = scaler

        per_step = batches_per_step(model)
        total = total_train_steps(budget, len(data), per_step)
        seed_everything(self.seed)
        state = self.load_checkpoint(model, scaler)
        start = state["step"] if state is not None else 0
        losses: dict[str, float] = dict(state["losses"]) if state is not None else {}
        earlier = state.get("seconds", 0.0) if state is not None else 0.0
        if state is not None and state["done"]:
            model._grad_scaler = None
            model.eval()
            return TrainResult("ok", start, earlier, losses=losses, resumed_from=start,
                               history=list(state.get("history", [])),
                               stopped_by_time=bool(state.get("stopped_by_time", False)))

        if isinstance(data, TensorSplit):
            batches = TensorBatches(data.x, budget.batch_size, self.device, self.seed)
        else:
            batches = LoaderBatches(data, budget.batch_size, self.device, self.seed)
        precision = autocast(self.device, amp_dtype)
        history: list[dict[str, float]] = list(state.get("history", [])) if state is not None else []
        bar = self._progress_bar(total, start)
        model.train()
        step = start
        result = TrainResult("ok", start, 0.0, resumed_from=start)
        preview = Preview(model, self.seed)
        # the time budget counts training done by earlier (interrupted) processes too
        deadline = None if budget.max_seconds is None else t0 + budget.max_seconds - earlier
        try:
            it = batches.from_step(start * per_step)
            preview.take()
            skipped_in_a_row = 0
            while step < total:
                batch = self._local_batch(
                    next(it) if per_step == 1 else tuple(next(it) for _ in range(per_step)))
                backoffs = model._amp_backoffs
                with precision:
                    out = model.train_step(batch, step)
                new_losses = self._global_losses({k: float(v) for k, v in out.items()})
                step += 1
                if not all(math.isfinite(v) for v in new_losses.values()):
                    skipped_in_a_row += 1
                    if scaler is not None and scaler_overflowed(model, scaler, backoffs):
                        result.amp_skipped_steps += 1  # the scaler skipped it: keep training
                    else:
                        losses = new_losses
                        # the first of a run of non-finite steps is where it went wrong
                        result.status = "diverged"
                        result.diverged_step = step - skipped_in_a_row + 1
                        result.preview_path = preview.write(self.checkpoint_path, batch)
                        break
                else:
                    skipped_in_a_row = 0
                    losses = new_losses
                if step % self.log_every == 0 or step == total:
                    preview.take()
                    history.append({"step": step, **losses})
                    if bar is not None:
                        bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()}, refresh=False)
                if bar is not None:
                    bar.update(1)
                if budget.checkpoint_every and step % budget.checkpoint_every == 0 and step < total:
                    self.save_checkpoint(model, step, done=False, scaler=scaler, losses=losses,
                                         seconds=earlier + time.perf_counter() - t0,
                                         history=history)
                if self._out_of_time(deadline):
                    result.stopped_by_time = True
                    break
        finally:
            if bar is not None:
                bar.close()
            model._grad_scaler = None
        model.eval()
        result.steps, result.losses, result.history = step, losses, history
        if result.status == "ok":
            model.on_train_end(data)
        result.seconds = earlier + time.perf_counter() - t0
        if result.status == "ok":
            self.save_checkpoint(model, step, done=True, losses=losses, seconds=result.seconds,
                                 history=history, stopped_by_time=result.stopped_by_time)
        return result

    # -- data-parallel hooks: identities here, see genbench.execution.distributed ------------------
    def _local_batch(self, batch):
        """The part of a drawn batch this process trains on (all of it)."""
        return batch

    def _global_losses(self, losses: dict[str, float]) -> dict[str, float]:
        """The step's losses as logged and checked (this process's own)."""
        return losses

    def _out_of_time(self, deadline: float | None) -> bool:
        """Whether the time budget is spent."""
        return deadline is not None and time.perf_counter() > deadline

    def _progress_bar(self, total: int, start: int):
        if self.progress is False:
            return None
        from tqdm.auto import tqdm

        # disable=None: shown on a terminal, silent in logs and CI.
        return tqdm(total=total, initial=start, desc=self.description, unit="step",
                    disable=None if self.progress is None else False, leave=False,
                    dynamic_ncols=True)


def train(model: GenerativeModel, data: Dataset, budget: Budget, *, device: str = "auto",
          seed: int = 0, raise_on_divergence: bool = False, **kwargs: Any) -> TrainResult:
    """Convenience wrapper: ``Trainer(device, seed=seed, **kwargs).fit(model, data, budget)``."""
    result = Trainer(device, seed=seed, **kwargs).fit(model, data, budget)
    if raise_on_divergence and result.status == "diverged":
        raise TrainingDiverged(result.diverged_step or result.steps, result.losses)
    return result
