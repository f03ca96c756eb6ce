"""Exception types. Every error a user can cause has its own type and an actionable message."""

from __future__ import annotations


class GenbenchError(Exception):
    """Base class of every error genbench raises on purpose."""


class PluginError(GenbenchError):
    """A plugin failed to load or registered something invalid."""


class RegistrationError(PluginError, ValueError):
    """A ``register(name, obj)`` call was rejected (bad name, wrong base class, duplicate)."""


class UnknownNameError(GenbenchError, KeyError):
    """A model, dataset, metric or extractor name that no plugin registered."""

    def __init__(self, kind: str, name: str, valid: list[str]):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        choices = ", ".join(self.valid) or "(none registered)"
        super().__init__(f"unknown {kind} {name!r}; valid {kind}s: {choices}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class ConfigError(GenbenchError, ValueError):
    """Invalid hyper-parameters or options for a model, dataset or metric."""


class SpecError(GenbenchError, ValueError):
    """A malformed suite spec."""


class DataUnavailableError(GenbenchError):
    """A dataset's files are missing and downloading was not allowed or not possible."""


class AssetMissingError(GenbenchError):
    """A weights file (or another asset) is not where genbench looks for it."""


class TrainingDiverged(GenbenchError):
    """A loss became NaN or infinite during training."""

    def __init__(self, step: int, losses: dict[str, float]):
        self.step, self.losses = step, dict(losses)
        shown = ", ".join(f"{k}={v}" for k, v in losses.items())
        super().__init__(f"training diverged at step {step}: {shown}")
