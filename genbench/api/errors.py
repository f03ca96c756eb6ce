"""Exception types. Every error a user can cause has its own type and an actionable message."""

from __future__ import annotations

from typing import Iterable


class GenbenchError(Exception):
    """Base class of every error genbench raises on purpose."""


class PluginError(GenbenchError):
    """A plugin failed to load or registered something invalid."""


class RegistrationError(PluginError, ValueError):
    """A ``register(name, obj)`` call was rejected (bad name, wrong base class, duplicate)."""


class UnknownNameError(GenbenchError, KeyError):
    """A model, dataset, metric or extractor name that no plugin registered.

    ``broken`` names plugins that failed to load: the name may have been one of theirs.
    """

    def __init__(self, kind: str, name: str, valid: list[str], broken: Iterable[str] = ()):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        self.broken = sorted(broken)
        choices = ", ".join(self.valid) or "(none registered)"
        message = f"unknown {kind} {name!r}; valid {kind}s: {choices}"
        if self.broken:
            quoted = ", ".join(f'"{b}"' for b in self.broken)
            message += (f"; note: plugin {quoted} failed to load (see above), the name may "
                        "have been its" if len(self.broken) == 1 else
                        f"; note: plugins {quoted} failed to load (see above), the name may "
                        "have been one of theirs")
        super().__init__(message)

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


class AssetInvalidError(AssetMissingError):
    """A weights file is present but not usable as it is (an older format, missing entries)."""


class MissingDependencyError(GenbenchError, ImportError):
    """An optional package a plugin needs is not installed; the message says how to install it."""


class TrainingDiverged(GenbenchError):
    """A loss became NaN or infinite during training."""

    def __init__(self, step: int, losses: dict[str, float]):
        self.step, self.losses = step, dict(losses)
        shown = ", ".join(f"{k}={v}" for k, v in losses.items())
        super().__init__(f"training diverged at step {step}: {shown}")


class StoreCorruptError(GenbenchError):
    """``results.db`` is not a SQLite database or fails its integrity check; genbench never
    overwrites it."""


class OutputInUseError(GenbenchError):
    """Another genbench process is writing to the same output folder (``--no-wait``)."""


class OutputNotWritableError(ConfigError):
    """The output folder cannot be created or written."""


class CheckpointCorruptError(GenbenchError):
    """A checkpoint file exists but cannot be loaded (truncated, garbage, wrong format).

    ``path`` is the file and ``reason`` what is wrong with it; the run sets such a file
    aside (see :mod:`genbench.execution.checkpoints`) and trains again from scratch."""

    def __init__(self, path, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"checkpoint {path} cannot be loaded: {reason}")

    def __reduce__(self):  # picklable across worker processes despite the two arguments
        return type(self), (self.path, self.reason)


class WorkerTerminated(SystemExit):
    """Raised in a worker process told to stop (SIGTERM: Ctrl-C in the driver, a job past its
    timeout) so that it exits through Python's shutdown. Unlike the ``SystemExit`` of a
    plugin's ``sys.exit``, which fails only its job or metric, it is never caught."""


#: Errors the user can fix before running (names, values, files, permissions, missing data,
#: weights or packages, a folder in use): the CLI exits 2 on these, 1 on failures during a run.
USER_ERRORS: tuple[type[BaseException], ...] = (
    UnknownNameError, ConfigError, SpecError, DataUnavailableError, AssetMissingError,
    MissingDependencyError, StoreCorruptError, OutputInUseError, PluginError)
