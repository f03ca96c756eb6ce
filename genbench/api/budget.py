"""The training budget: how long a model trains."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from genbench.api.errors import ConfigError


@dataclass(frozen=True)
class Budget:
    """How long to train: ``steps`` or ``epochs`` (exactly one), optionally capped in seconds.

    ``checkpoint_every`` saves a checkpoint every that many steps (0: only at the end).
    """

    steps: int | None = None
    epochs: int | None = None
    batch_size: int = 64
    max_seconds: float | None = None
    checkpoint_every: int = 0

    def __post_init__(self):
        if (self.steps is None) == (self.epochs is None):
            raise ConfigError("a training budget needs exactly one of 'steps' or 'epochs'")
        for name, least in (("steps", 1), ("epochs", 1), ("batch_size", 1), ("checkpoint_every", 0)):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < least):
                raise ConfigError(f"budget.{name} must be an integer >= {least}, got {v!r}")
        if self.max_seconds is not None and (
                not isinstance(self.max_seconds, (int, float)) or isinstance(self.max_seconds, bool)
                or not self.max_seconds > 0):
            raise ConfigError(f"budget.max_seconds must be a positive number, got {self.max_seconds!r}")

    def steps_per_epoch(self, n_items: int) -> int:
        # Drop the last partial batch (batch-norm layers fail on a batch of one) unless the
        # whole set is smaller than one batch.
        return max(1, n_items // self.batch_size)

    def total_steps(self, n_items: int) -> int:
        if self.steps is not None:
            return self.steps
        return self.epochs * self.steps_per_epoch(n_items)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def outcome_dict(self) -> dict[str, Any]:
        """The fields that change what is trained (not how often it is checkpointed)."""
        d = self.to_dict()
        d.pop("checkpoint_every", None)
        return d
