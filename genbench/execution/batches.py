"""Training batches: shuffled, seeded per epoch, resumable from any step; and how many
``train_step`` calls a budget allows."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from genbench.api.budget import Budget
from genbench.api.errors import ConfigError
from genbench.api.model import GenerativeModel


class TensorBatches:
    """Shuffled batches of an in-memory split, indexed on the device: no per-item collation."""

    def __init__(self, x: torch.Tensor, batch_size: int, device: torch.device, seed: int):
        self.x = x.to(device, non_blocking=True)
        self.batch_size, self.seed = batch_size, seed
        self.per_epoch = max(1, len(x) // batch_size)

    def from_step(self, step: int):
        epoch, offset = divmod(step, self.per_epoch)
        n = len(self.x)
        while True:
            g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            perm = torch.randperm(n, generator=g).to(self.x.device)
            bs = min(self.batch_size, n)
            for i in range(offset, self.per_epoch):
                yield self.x[perm[i * bs:(i + 1) * bs]]
            epoch, offset = epoch + 1, 0


class LoaderBatches:
    """Shuffled batches streamed through a DataLoader (folders and other lazy sets)."""

    def __init__(self, data: Dataset, batch_size: int, device: torch.device, seed: int,
                 num_workers: int | None = None):
        self.data, self.batch_size, self.device, self.seed = data, batch_size, device, seed
        self.per_epoch = max(1, len(data) // batch_size)
        if num_workers is None and len(data) > 4 * batch_size:
            # Within this job's share of the cores (its torch threads, set by the executor):
            # loader processes beside several jobs' threads would oversubscribe the CPU.
            num_workers = min(4, torch.get_num_threads() - 1)
        self.num_workers = max(0, num_workers or 0)

    def from_step(self, step: int):
        epoch, offset = divmod(step, self.per_epoch)
        while True:
            g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            loader = DataLoader(
                self.data, batch_size=min(self.batch_size, len(self.data)), shuffle=True,
                generator=g, drop_last=len(self.data) >= self.batch_size,
                num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
                persistent_workers=False,
            )
            for i, batch in enumerate(loader):
                if i < offset:
                    continue
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                yield x.to(self.device, non_blocking=True).float()
            epoch, offset = epoch + 1, 0


def total_train_steps(budget: Budget, n_items: int, batches_per_step: int = 1) -> int:
    """``train_step`` calls a budget allows: ``budget.steps``, or for an epoch budget the
    calls that pass over the data ``epochs`` times when each call takes ``batches_per_step``
    batches (at least one call)."""
    if budget.steps is not None:
        return budget.steps
    return max(1, budget.total_steps(n_items) // batches_per_step)


def batches_per_step(model: GenerativeModel) -> int:
    """The batches each of ``model``'s ``train_step`` calls takes (its ``batches_per_step``)."""
    k = getattr(model, "batches_per_step", 1)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"{type(model).__name__}.batches_per_step must be a positive integer, "
                          f"got {k!r}")
    return k
