"""TensorBoard event files of the training losses (``genbench run --tensorboard DIR``).

Each training's ``losses.csv`` becomes ``DIR/<its run folder name>/events.out.tfevents.*``
with one scalar ``loss/<name>`` per loss column, so trainings reused from an earlier run are
written too. Needs the optional ``tensorboard`` package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from genbench.api.errors import MissingDependencyError
from genbench.api.paths import ensure_writable_dir
from genbench.results.store import ResultStore

INSTALL_HINT = 'pip install "genbench[tensorboard]"'


def require_tensorboard() -> None:
    """Raise :class:`MissingDependencyError` unless TensorBoard event files can be written."""
    import importlib

    try:  # tensorboard first: torch.utils.tensorboard may be imported already
        importlib.import_module("tensorboard")
        importlib.import_module("torch.utils.tensorboard")
    except ImportError:
        raise MissingDependencyError(
            f"--tensorboard needs the tensorboard package: {INSTALL_HINT}") from None


def check_tensorboard_folder(directory: str | Path) -> None:
    """Raise before anything trains unless event files can be written into ``directory``:
    :class:`MissingDependencyError` without the package, and
    :class:`~genbench.api.errors.OutputNotWritableError` for a folder that takes no file."""
    require_tensorboard()
    ensure_writable_dir(directory, "TensorBoard folder")


def _train_fingerprints(provenance: dict[str, Any]) -> Iterable[str]:
    """The training of a job's provenance and, recursively, of the models it references."""
    if provenance.get("train_fingerprint"):
        yield provenance["train_fingerprint"]
    for ref in (provenance.get("references") or {}).values():
        if isinstance(ref, dict):
            yield from _train_fingerprints(ref)


def training_run_dirs(store: ResultStore, fingerprints: list[str] | None = None) -> list[str]:
    """Run folders (relative to the store's folder) of the trainings behind the jobs with
    these fingerprints (all jobs if None), referenced models' trainings included."""
    jobs = store.jobs()
    if fingerprints is not None:
        jobs = jobs[jobs["fingerprint"].isin(fingerprints)]
    wanted = {f for prov in jobs["provenance"] for f in _train_fingerprints(prov)}
    trainings = store.trainings()
    referenced = trainings.loc[trainings["fingerprint"].isin(wanted), "run_dir"].tolist()
    own = [d for d in jobs["run_dir"] if isinstance(d, str)]
    return list(dict.fromkeys(referenced + own))


def write_tensorboard(store: ResultStore, directory: str | Path,
                      fingerprints: list[str] | None = None) -> list[Path]:
    """Write the losses of the trainings behind these jobs (all if None) as TensorBoard
    event files, one folder per training: ``<directory>/<run folder name>/``. Event files
    an earlier call left there are replaced, so a rerun never shows a curve twice.
    Returns the event files written."""
    import csv
    import math

    require_tensorboard()
    from torch.utils.tensorboard import SummaryWriter

    written = []
    for run_dir in training_run_dirs(store, fingerprints):
        losses = store.path.parent / run_dir / "losses.csv"
        if not losses.is_file():
            continue  # a model with nothing to train, or a training that failed early
        with open(losses, newline="") as f:
            rows = list(csv.DictReader(f))
        folder = Path(directory) / Path(run_dir).name
        for old in folder.glob("events.out.tfevents.*"):
            old.unlink()
        writer = SummaryWriter(log_dir=str(folder))
        try:
            for row in rows:
                step = int(float(row["step"]))
                for name, value in row.items():
                    if name != "step" and value not in (None, ""):
                        value = float(value)
                        if math.isfinite(value):
                            writer.add_scalar(f"loss/{name}", value, step)
        finally:
            writer.close()
        written += sorted(folder.glob("events.out.tfevents.*"))
    return written
