"""Data-parallel training: one model's training on N processes (``[train] nproc = N``).

The launch is torchrun's: the process that holds the training job starts N rank processes
(``python -c`` calling :func:`rank_main`), which meet through a file store in a private temporary
folder and form a ``torch.distributed`` group (NCCL on CUDA, rank r on ``cuda:r``; gloo on
the CPU). Each rank builds the model from the same seed (rank 0's state is then broadcast,
so they start equal) and runs the ordinary :class:`~genbench.execution.training.Trainer` loop, which
calls three hooks that :class:`DataParallelTrainer` overrides:

* **data** — every rank draws the same global batch (the same seeded stream) and keeps its
  contiguous ``1/N`` of the rows (:func:`shard`): DistributedSampler's split, per batch. The
  batch size must divide by N (checked before anything starts);
* **losses** — each step's losses are averaged over the ranks, so every rank logs, checks for
  divergence and stops (time budget included) on the same numbers at the same step;
* **checkpoints and logging** — rank 0 alone writes the checkpoint, the loss history and a
  diverged model's preview; the launcher returns rank 0's :class:`TrainResult`.

Models keep their optimizers. :class:`GradientAveraging` registers a step pre-hook on every
optimizer the model holds (``model.optimizers()``): before each ``optimizer.step()`` the
gradients of that optimizer's parameters are averaged over the ranks (one flat all-reduce).
Under the fp16 gradient scaler the average is taken when the scaler unscales, so every rank
sees the same overflow and skips the same steps. A GAN's two optimizers, several updates
per step and models that step optimizers themselves all work unchanged.

What makes the result that of one process with the same global batch (up to floating-point
summation order):

* losses that are means over the batch (the mean of the shards' means is the batch mean);
* batch norm: every ``nn.BatchNorm*`` layer is replaced, sharing its parameters and
  buffers, by :class:`SyncBatchNorm`, which normalises with the statistics of the global
  batch (a differentiable all-reduce, on the CPU too) and updates the running statistics
  as one process would. Checkpoints keep the ordinary layers' keys;
* statistics a model takes of a training batch computed on :func:`global_batch` (the
  diffusion models' standardisation, from the first batch; sparse-ae's mean activations,
  whose penalty trains through it: the gather is differentiable);
* per-sample training noise drawn with :func:`batch_randn` / :func:`batch_rand`: each rank
  draws the noise of the whole global batch (the ranks' random streams stay identical) and
  keeps its rows (:func:`batch_randint` for integers). Every built-in model draws its
  training noise this way (GAN latents, VAE posterior draws, the denoising autoencoder's
  corruption, the AAE's prior draws, diffusion timesteps and noise); noise drawn with
  ``torch.randn_like`` on a shard is valid data-parallel training but not the one-process
  draw.

Layers that look across the batch other than batch norm (minibatch discrimination,
experience replay) see only their shard.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn

from genbench.api.budget import Budget
from genbench.api.errors import ConfigError, GenbenchError
from genbench.api.paths import atomic_write
# the noise helpers too, so that their old paths (genbench.execution.distributed.batch_randn) work
from genbench.api.parallel import (DataParallel, active, batch_rand,  # noqa: F401
                                   batch_randint, batch_randn, current, global_batch, shard)
from genbench.execution.training import Trainer, TrainResult, overrides_fit

#: Seconds the rank processes get to exit after one of them failed, before SIGKILL.
_EXIT_GRACE = 5.0
#: How long a collective waits for a rank that never comes (a hung rank, not a dead one:
#: the launcher notices a dead rank at once and stops the others).
_COLLECTIVE_TIMEOUT = timedelta(minutes=30)
#: Lines of a failed rank's output quoted in the error.
_LOG_TAIL = 25
#: What a rank process runs (this module imported, not run as __main__, so that the rank's
#: place, set with :func:`genbench.api.parallel.active`, is the one the models' helpers read).
# os._exit: a rank leaves without interpreter finalisation and C++ static destructors,
# where gloo's threads can abort a process whose work is already done
_RANK_COMMAND = ("import os, sys; from genbench.execution.distributed import rank_main; "
                 "code = rank_main(sys.argv[1:]); sys.stdout.flush(); sys.stderr.flush(); "
                 "os._exit(code)")


class DataParallelError(GenbenchError):
    """A rank process of a data-parallel training failed or died."""


# -- batch norm over the global batch -------------------------------------------------

class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm with the statistics of the global batch across the data-parallel ranks
    (the mean, then the biased variance around it: two all-reduces through
    ``torch.distributed.nn``, so gradients flow through the statistics to every rank's
    inputs). Eval mode and one process behave as ``nn.BatchNorm*d``. Works with gloo (CPU),
    unlike ``torch.nn.SyncBatchNorm``."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (got {input.dim()}-D)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        dp = current()
        use_batch = self.training or self.running_mean is None
        if not use_batch or dp is None or dp.world_size == 1 or not dist.is_initialized():
            return super().forward(x)
        from torch.distributed.nn import functional as dist_nn

        dims = [0, *range(2, x.dim())]
        view = (1, -1) + (1,) * (x.dim() - 2)
        xf = x.float()
        count = torch.tensor([x.numel() // x.shape[1]], dtype=torch.float32, device=x.device)
        total = dist_nn.all_reduce(torch.cat([xf.sum(dims), count]))
        n = total[-1].detach()
        mean = total[:-1] / n
        centred = xf - mean.view(view)
        var = dist_nn.all_reduce(centred.pow(2).sum(dims)) / n
        if self.training and self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach(), float(n))
        out = centred * torch.rsqrt(var + self.eps).view(view)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out.to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, n: float) -> None:
        self.num_batches_tracked.add_(1)
        factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                  else self.momentum)
        unbiased = var * (n / max(n - 1.0, 1.0))
        self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)


def convert_batch_norm(model: nn.Module) -> int:
    """Replace every ``nn.BatchNorm*d`` in ``model`` by a :class:`SyncBatchNorm` that shares
    its parameters and buffers (the optimizers keep working, checkpoints keep their keys);
    returns how many were replaced."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if (isinstance(child, nn.modules.batchnorm._BatchNorm)
                    and not isinstance(child, (SyncBatchNorm, nn.SyncBatchNorm))):
                sync = SyncBatchNorm(child.num_features, child.eps, child.momentum,
                                     child.affine, child.track_running_stats)
                sync.training = child.training
                sync._parameters = child._parameters  # the same Parameter objects
                sync._buffers = child._buffers
                setattr(parent, name, sync)
                replaced += 1
    return replaced


# -- gradient averaging ---------------------------------------------------------------

def _params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def average_gradients(params: list[torch.Tensor], world_size: int) -> None:
    """Average ``p.grad`` over the ranks (one flat all-reduce per device and dtype)."""
    groups: dict[tuple, list[torch.Tensor]] = {}
    for p in params:
        if p.grad is not None:
            if p.grad.is_sparse:
                raise ConfigError("data-parallel training averages dense gradients only; "
                                  "this model has a sparse one (e.g. nn.Embedding(sparse=True)): "
                                  "train it with nproc = 1, or make the gradient dense")
            groups.setdefault((p.grad.device, p.grad.dtype), []).append(p.grad)
    for grads in groups.values():
        flat = torch._utils._flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        flat.div_(world_size)
        for g, avg in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads)):
            g.copy_(avg)


class GradientAveraging:
    """While active, every ``optimizer.step()`` of ``model``'s optimizers first averages
    the gradients of that optimizer's parameters over the ranks (a step pre-hook). With a
    gradient ``scaler``, ``scaler.unscale_`` averages first, so the overflow check that
    decides whether a step is skipped sees the same gradients on every rank."""

    def __init__(self, model, world_size: int, scaler: torch.amp.GradScaler | None = None):
        self.optimizers = list(model.optimizers().values())
        self.world_size, self.scaler = world_size, scaler
        self._averaged: set[int] = set()  # optimizers averaged by unscale_, not yet stepped
        self._handles: list = []

    def _before_step(self, optimizer, args, kwargs) -> None:
        if id(optimizer) in self._averaged:
            self._averaged.discard(id(optimizer))
        else:
            average_gradients(_params(optimizer), self.world_size)

    def __enter__(self) -> "GradientAveraging":
        self._handles = [o.register_step_pre_hook(self._before_step) for o in self.optimizers]
        if self.scaler is not None:
            unscale = self.scaler.unscale_

            def averaged_unscale(optimizer):
                average_gradients(_params(optimizer), self.world_size)
                self._averaged.add(id(optimizer))
                return unscale(optimizer)

            self.scaler.unscale_ = averaged_unscale
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        if self.scaler is not None:
            del self.scaler.unscale_


# -- the trainer of one rank ----------------------------------------------------------

class DataParallelTrainer(Trainer):
    """``trainer``'s settings on one rank: shards batches, averages losses and gradients,
    synchronises batch norm and the time budget; rank 0 alone writes."""

    def __init__(self, trainer: Trainer, dp: DataParallel):
        self.__dict__.update(vars(trainer))
        self.dp = dp
        self._shared_checkpoint = self.checkpoint_path
        if dp.rank != 0:  # no checkpoint, no preview, no progress bar
            self.checkpoint_path, self.progress = None, False
        if (self.grad_scaler is None and self.amp and self.device.type == "cuda"
                and not torch.cuda.is_bf16_supported()):
            self.grad_scaler = torch.amp.GradScaler("cuda")  # wrapped by GradientAveraging

    def fit(self, model, data, budget: Budget) -> TrainResult:
        model.to(self.device)
        convert_batch_norm(model)
        for tensor in model.state_dict().values():  # start from rank 0's state exactly
            dist.broadcast(tensor, 0)
        with active(self.dp), GradientAveraging(model, self.dp.world_size, self.grad_scaler):
            return super().fit(model, data, budget)

    def load_checkpoint(self, model, scaler=None):
        """Every rank resumes from the one checkpoint rank 0 writes."""
        own, self.checkpoint_path = self.checkpoint_path, self._shared_checkpoint
        try:
            return super().load_checkpoint(model, scaler)
        finally:
            self.checkpoint_path = own

    def discard_checkpoint(self) -> None:
        if self.dp.rank == 0:
            super().discard_checkpoint()

    def _local_batch(self, batch):
        return shard(batch)

    def _global_losses(self, losses: dict[str, float]) -> dict[str, float]:
        if not losses:
            return losses
        values = torch.tensor(list(losses.values()), dtype=torch.float64)
        return dict(zip(losses, self._reduce(values, dist.ReduceOp.SUM, self.dp.world_size)))

    def _out_of_time(self, deadline: float | None) -> bool:
        if deadline is None:  # the same on every rank: no collective
            return False
        late = torch.tensor([float(time.perf_counter() > deadline)], dtype=torch.float64)
        return self._reduce(late, dist.ReduceOp.MAX)[0] > 0

    def _reduce(self, values: torch.Tensor, op, divide: int = 1) -> list[float]:
        t = values.to(self.device if dist.get_backend() == "nccl" else torch.device("cpu"))
        dist.all_reduce(t, op=op)
        return (t / divide).tolist()


# -- the launcher ---------------------------------------------------------------------

@dataclass
class _Payload:
    """What every rank process reads: how to build its model, trainer and data, the budget,
    and where the group meets and rank 0 leaves its result."""

    build: Callable[[torch.device], tuple[Any, Trainer, Any]]
    budget: Budget
    world_size: int
    device_type: str
    store: str
    result: str
    threads: int


def check_data_parallel(nproc: int, budget: Budget, n_items: int, device: torch.device) -> None:
    """Raise :class:`ConfigError` when ``nproc`` processes cannot train with ``budget`` on
    ``n_items`` items on ``device``'s type."""
    batch = min(budget.batch_size, n_items)
    if batch % nproc:
        raise ConfigError(f"train.nproc = {nproc} needs a batch size divisible by {nproc} (each "
                          f"process takes an equal share of every batch), got {batch}")
    if device.type == "cuda":
        if nproc > torch.cuda.device_count():
            raise ConfigError(f"train.nproc = {nproc} needs {nproc} CUDA devices, "
                              f"{torch.cuda.device_count()} visible")
    elif device.type != "cpu":
        raise ConfigError(f"data-parallel training runs on CUDA (NCCL) or the CPU (gloo), "
                          f"not on {device.type}")


def fit_data_parallel(build: Callable[[torch.device], tuple[Any, Trainer, Any]],
                      trainer: Trainer, model, data, budget: Budget, nproc: int) -> TrainResult:
    """Train ``model`` as ``trainer.fit(model, data, budget)`` would, on ``nproc`` rank
    processes; then load the result into ``model`` (eval mode) and return rank 0's
    :class:`TrainResult`.

    ``build(device)`` runs in every rank and returns that rank's ``(model, trainer, data)``,
    equal to these (it must pickle: a module-level function or a ``functools.partial`` of
    one). With ``nproc == 1``, or for a model that trains through its own ``fit``, this is
    ``trainer.fit`` in this process.
    """
    if nproc == 1 or overrides_fit(model):
        return trainer.fit(model, data, budget)
    check_data_parallel(nproc, budget, len(data), trainer.device)
    # a damaged checkpoint raises here as in one process; a finished one needs no ranks
    saved = trainer.load_checkpoint(model)
    if saved is not None and saved["done"]:
        return trainer.fit(model, data, budget)
    threads = max(1, torch.get_num_threads() // nproc)
    with tempfile.TemporaryDirectory(prefix="genbench-dp-") as tmp:
        payload = _Payload(build, budget, nproc, trainer.device.type,
                           str(Path(tmp) / "store"), str(Path(tmp) / "result.pkl"), threads)
        payload_path = Path(tmp) / "payload.pkl"
        try:
            payload_path.write_bytes(pickle.dumps(payload, pickle.HIGHEST_PROTOCOL))
        except Exception as exc:
            raise TypeError(f"data-parallel training needs a build function that pickles "
                            f"(a module-level function or a partial of one): {exc}") from exc
        _launch(payload_path, nproc, threads, Path(tmp))
        try:
            result: TrainResult = pickle.loads(Path(payload.result).read_bytes())
        except FileNotFoundError:
            raise DataParallelError("rank 0 exited without leaving its result") from None
    if result.status == "ok":
        trainer.load_checkpoint(model)
    model.eval()
    return result


def _launch(payload: Path, nproc: int, threads: int, tmp: Path) -> None:
    """Run the rank processes to their end; on a failure, stop the others and raise."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               # what the ranks unpickle (plugins, test modules) imports as here
               PYTHONPATH=os.pathsep.join(p for p in [os.getcwd(), *sys.path] if p))
    logs = [tmp / f"rank{r}.log" for r in range(nproc)]
    procs: list[subprocess.Popen] = []
    try:
        for rank, log in enumerate(logs):
            with open(log, "wb") as out:
                procs.append(subprocess.Popen(
                    [sys.executable, "-c", _RANK_COMMAND, str(payload), str(rank)],
                    env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        while True:
            codes = [p.poll() for p in procs]
            # a rank that crashes after its finished marker crashed in teardown: its
            # collectives are over and rank 0's result is written, so nothing is lost
            codes = [0 if c not in (None, 0) and _finished_marker(tmp, r).exists() else c
                     for r, c in enumerate(codes)]
            failed = [r for r, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                rank = failed[0]
                tail = logs[rank].read_text(errors="replace").strip().splitlines()[-_LOG_TAIL:]
                raise DataParallelError(
                    f"rank {rank} of {nproc} {_exit_words(codes[rank])}"
                    + (":\n" + "\n".join(tail) if tail else ""))
            if all(c == 0 for c in codes):
                return
            time.sleep(0.05)
    finally:
        _stop(procs)


def _finished_marker(tmp: Path, rank: int) -> Path:
    return tmp / f"rank{rank}.finished"


def _exit_words(code: int) -> str:
    from genbench.execution.executor_support import exit_reason

    return exit_reason(code)


def _stop(procs: list[subprocess.Popen]) -> None:
    running = [p for p in procs if p.poll() is None]
    for p in running:
        p.terminate()
    deadline = time.monotonic() + _EXIT_GRACE
    for p in running:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _rank_main(payload_path: str, rank: int) -> None:
    """One rank: join the group, build, train; rank 0 writes the result."""
    from genbench.execution.executor_support import die_with_parent

    die_with_parent()
    payload: _Payload = pickle.loads(Path(payload_path).read_bytes())
    torch.set_num_threads(payload.threads)
    torch.set_num_interop_threads(1)
    cuda = payload.device_type == "cuda"
    if cuda:
        torch.cuda.set_device(rank)
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"file://{payload.store}",
                            rank=rank, world_size=payload.world_size,
                            timeout=_COLLECTIVE_TIMEOUT)
    try:
        model, trainer, data = payload.build(device)
        dp = DataParallel(rank, payload.world_size)
        result = DataParallelTrainer(trainer, dp).fit(model, data, payload.budget)
        if rank == 0:
            atomic_write(payload.result, lambda tmp: Path(tmp).write_bytes(
                pickle.dumps(result, pickle.HIGHEST_PROTOCOL)))
        # no rank tears the group down while another still talks to it
        dist.barrier()
        _finished_marker(Path(payload_path).parent, rank).touch()
    finally:
        dist.destroy_process_group()


def rank_main(argv: list[str]) -> int:
    """The entry point of a rank process: ``rank_main([payload_path, rank])``; returns
    its exit status (the traceback of a failure is printed for the launcher to quote)."""
    try:
        _rank_main(argv[0], int(argv[1]))
    except BaseException:
        traceback.print_exc()
        return 1
    return 0
