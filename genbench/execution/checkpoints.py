"""Checkpoint files: reading them, whether one is a finished training's, and setting aside
the ones that do not load.

Checkpoints hold state dicts only and are read with ``torch.load(..., weights_only=True)``.
A file that exists but does not load (truncated, overwritten, not a checkpoint at all)
raises :class:`~genbench.api.errors.CheckpointCorruptError` naming the file and what is wrong
with it, never torch's advice to retry with ``weights_only=False``: that is unsafe, and no
help for a damaged file. :func:`set_aside` moves such a file to
``<name>.corrupt-<UTC time>`` beside it (never deleted, so that it can be inspected);
its training then starts again from scratch. torch's zip reader raises ``OSError``
(``EINVAL``) for some truncations: an ``OSError`` counts as damage when the file's bytes
read back whole, and passes through, naming the file, only when they do not (a permission
error, a failing disk).

A model whose buffers take their shape in ``fit`` (registered empty, or as
``torch.nn.parameter.UninitializedBuffer``, in ``__init__``) loads through
:func:`load_model_state`, which gives such buffers the saved tensors.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import Any

import torch

from genbench.api.errors import CheckpointCorruptError

#: The first bytes of every file ``torch.save`` writes (a zip archive).
ZIP_MAGIC = b"PK\x03\x04"

#: The layout of the state a :class:`~genbench.execution.training.Trainer` saves.
CHECKPOINT_FORMAT = 1


def load_checkpoint_file(path: str | os.PathLike, *, map_location: Any = "cpu",
                         mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)``. A missing file raises ``FileNotFoundError``;
    a file whose bytes cannot be read (a permission error, a failing disk) raises its
    ``OSError``, naming the file; a file that does not load raises
    :class:`~genbench.api.errors.CheckpointCorruptError` with a short reason."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except (FileNotFoundError, MemoryError):
        raise
    except OSError as exc:
        # torch's zip reader raises OSError (EINVAL) on some truncated archives: damage when
        # the bytes read back whole (and, memory-mapped, a plain load fails too), a fault of
        # the file system when they do not
        _read_through(path)
        if mmap:
            return load_checkpoint_file(path, map_location=map_location)
        raise CheckpointCorruptError(path, describe_load_failure(path, exc)) from None
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, KeyError, EOFError...
        raise CheckpointCorruptError(path, describe_load_failure(path, exc)) from None


def _read_through(path: Path, chunk: int = 1 << 22) -> None:
    """Read every byte of ``path``; an ``OSError`` on the way is raised again, of the same
    type, naming the file."""
    try:
        with open(path, "rb") as f:
            while f.read(chunk):
                pass
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot read the checkpoint ({exc.strerror or exc})",
                        str(path)) from None


def checkpoint_finished(path: str | Path, fingerprint: str, *, raise_corrupt: bool = False) -> bool:
    """Whether ``path`` holds a finished checkpoint of the training ``fingerprint`` (read
    memory-mapped: its tensors are not loaded). A file that does not load is not one, or
    with ``raise_corrupt`` raises :class:`~genbench.api.errors.CheckpointCorruptError`."""
    return finished_state(path, fingerprint, raise_corrupt=raise_corrupt) is not None


def finished_state(path: str | Path, fingerprint: str, *,
                   raise_corrupt: bool = False) -> dict[str, Any] | None:
    """The state of the finished checkpoint of the training ``fingerprint`` at ``path``
    (memory-mapped: ``step``, ``seconds``, ``losses``...), or ``None`` when there is none;
    a file that does not load is none, or with ``raise_corrupt`` raises
    :class:`~genbench.api.errors.CheckpointCorruptError`."""
    try:
        state = load_checkpoint_file(path, mmap=True)
    except FileNotFoundError:
        return None
    except CheckpointCorruptError:
        if raise_corrupt:
            raise
        return None
    return state if is_checkpoint_of(state, fingerprint) and bool(state.get("done")) else None


def load_model_state(model: torch.nn.Module, saved: dict[str, Any]) -> None:
    """``model.load_state_dict(saved)`` (strict), where a buffer still unshaped in a fresh
    ``model`` (empty, or a ``torch.nn.parameter.UninitializedBuffer``: a model that shapes
    it in ``fit``) whose saved tensor has another shape is given that tensor instead of
    having it copied in. Any other mismatch raises, as ``load_state_dict`` does."""
    modules = dict(model.named_modules())
    for name, current in list(model.named_buffers(remove_duplicate=False)):
        value = saved.get(name)
        if not isinstance(value, torch.Tensor):
            continue
        unshaped = isinstance(current, torch.nn.parameter.UninitializedBuffer) or (
            current.numel() == 0 and value.shape != current.shape)
        if unshaped:
            owner, _, leaf = name.rpartition(".")
            modules[owner]._buffers[leaf] = value.to(current.device)
    model.load_state_dict(saved)


def is_checkpoint_of(state: Any, fingerprint: str) -> bool:
    """Whether a loaded ``state`` is a checkpoint of the training ``fingerprint``."""
    return (isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT
            and state.get("fingerprint") == fingerprint)


def describe_load_failure(path: Path, exc: BaseException) -> str:
    """What is wrong with a file ``torch.load`` failed on, in a few words (torch's own
    message only when it says something about the file, never its weights_only advice)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(len(ZIP_MAGIC))
    except OSError:
        return f"unreadable ({type(exc).__name__})"
    if size == 0:
        return "the file is empty"
    if head != ZIP_MAGIC:
        return f"not a torch checkpoint: {size} bytes that do not start as torch.save writes"
    if isinstance(exc, OSError):
        return (f"a truncated or damaged archive: {size} bytes "
                f"({type(exc).__name__}: {exc.strerror or exc})")
    text = " ".join(str(exc).split())
    if not text or "weights_only" in text or "Weights only" in text:
        return f"damaged data inside the archive: {size} bytes, {type(exc).__name__}"
    first = text.split(". ")[0].rstrip(".")
    return f"{first}: {size} bytes, truncated or damaged"


def set_aside(path: str | os.PathLike) -> Path | None:
    """Move ``path`` to ``<name>.corrupt-<UTC time>`` beside it (``-2``, ``-3``... when that
    name is taken) and return the new path; ``None`` when ``path`` is gone already (another
    process set it aside first). The file is never deleted."""
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for i in itertools.count(1):
        target = path.with_name(f"{path.name}.corrupt-{stamp}" + (f"-{i}" if i > 1 else ""))
        if target.exists():
            continue
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return None
        return target
    raise AssertionError("unreachable")


def recover(exc: CheckpointCorruptError, what: str) -> str:
    """Set the checkpoint of ``exc`` aside, and return the one-line warning that says so;
    ``what`` names the training that is then trained again from scratch."""
    moved = set_aside(exc.path)
    where = f"moved to {moved}" if moved is not None else "already set aside by another process"
    return (f"warning: checkpoint {exc.path} cannot be loaded ({exc.reason}); {where}; "
            f"training {what} again from scratch")
