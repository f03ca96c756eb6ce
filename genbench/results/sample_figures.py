"""Sample figures beside the leaderboards: per board, every model's samples side by side.

On a 2-D mixture the panels draw the mixture's modes, read from what a metric declaring a
``mode_count`` key recorded (see :attr:`~genbench.KeyPresentation.role`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from genbench.plan.jobs import board_file, evaluation_dirname

if TYPE_CHECKING:
    from genbench.results.boards import Leaderboard
    from genbench.results.store import ResultStore


def save_sample_figures(boards: dict[tuple[str, str], Leaderboard], store: ResultStore,
                        directory: str | Path) -> list[Path]:
    """Beside each board, ``<dataset>-samples.png``: each model's samples (its lowest
    finished seed), in the board's order. Returns the paths written.

    On a 2-D mixture measured by a key of role ``mode_count`` (see
    :attr:`~genbench.KeyPresentation.role`: its metric's details record the true centres),
    every panel draws the centres and their 3-std circles under the samples, on shared axes,
    with that job's stored mode count in its title (counted from the samples if it has none)."""
    import torch

    from genbench.results.figures import save_model_comparison

    values = store.metric_values()
    written = []
    for board in boards.values():
        declared = _declared_modes(values, board)
        mine = board.jobs[board.jobs["status"] == "ok"].sort_values("seed", kind="stable")
        samples, counts, modes = {}, {}, None
        for model in board.models:
            rows = mine[mine["model"] == model]
            path = None
            if len(rows):  # run directories are stored relative to results.db's folder
                row = rows.iloc[0]
                path = store.path.parent / row["run_dir"] / evaluation_dirname(row["fingerprint"])
            shown = None if path is None else _shown_samples(path)
            if shown is not None:
                samples[model] = shown
                if row["fingerprint"] in declared:
                    found = declared[row["fingerprint"]]
                    modes = modes or found
                    if found["count"] is not None:
                        counts[model] = found["count"]
        extra = {} if modes is None else dict(
            modes=torch.tensor(modes["centres"]), mode_std=modes["std"],
            within=modes["within"], mode_counts=counts)
        out = save_model_comparison(
            samples, board_file(directory, board.suite, board.dataset, "-samples.png"), **extra)
        if out is not None:
            written.append(out)
    return written


def _declared_modes(values: pd.DataFrame, board: Leaderboard) -> dict[str, dict]:
    """Per job fingerprint, the mixture a ``mode_count`` key of ``board`` measured (from its
    metric's recorded ``mode_centres``, ``mode_std``, ``within_std``) and the modes it
    counted (None if none)."""
    counted = {(c.metric, c.key) for c in board.columns if c.presentation.role == "mode_count"}
    mine = [(m, k) in counted for m, k in zip(values["metric"], values["key"])]
    out = {}
    for r in values[mine].itertuples():
        d = r.details
        if isinstance(d, dict) and d.get("mode_centres") and d.get("mode_std"):
            count = None if pd.isna(r.value) else float(r.value)
            out[r.fingerprint] = {"centres": d["mode_centres"], "std": float(d["mode_std"]),
                                  "within": float(d.get("within_std", 3.0)), "count": count}
    return out


#: Image samples a figure shows per model, at most (vectors: all of them).
SHOWN_IMAGES = 64


def _shown_samples(eval_dir: Path):
    """The samples an evaluation folder keeps (its ``samples/`` store; ``samples.pt`` of
    genbench before the store), as float32: the first :data:`SHOWN_IMAGES` images or every
    vector; ``None`` when it keeps none."""
    import torch

    from genbench.evaluation.sample_store import SampleStoreError, open_sample_store

    try:
        store = open_sample_store(eval_dir / "samples")
    except SampleStoreError:
        legacy = eval_dir / "samples.pt"
        return torch.load(legacy, weights_only=True) if legacy.exists() else None
    return shown_samples(store)


def shown_samples(store) -> "torch.Tensor":
    """What a figure of a :class:`~genbench.evaluation.sample_store.SampleStore` shows, as
    float32: its first :data:`SHOWN_IMAGES` images, or every vector."""
    return store.read(0, len(store) if store.kind == "vector" else min(len(store), SHOWN_IMAGES))
