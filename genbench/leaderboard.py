"""Leaderboards: pandas tables built from the results store, one per dataset.

One row per model (label, so each configuration is its own row), mean and standard
deviation over the seeds that finished, with the number of seeds; reference models
(family "reference") come first, the rest are sorted by the primary metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import GenbenchError
from .jobs import evaluation_dirname, safe_dirname
from .store import ResultStore


@dataclass
class Leaderboard:
    """One suite's table for one dataset: ``stats`` holds numbers (``<col> mean``/``<col>
    std``), ``primary`` the sort column, ``directions`` each column's better direction."""

    suite: str
    dataset: str
    stats: pd.DataFrame
    primary: str | None
    directions: dict[str, bool | None]
    notes: list[str]

    def display(self, latex: bool = False) -> pd.DataFrame:
        """The table as formatted strings: ``mean ± std`` with arrows on scored columns."""
        df = self.stats
        up, down, pm = (r" $\uparrow$", r" $\downarrow$", r" $\pm$ ") if latex else (" ↑", " ↓", " ± ")
        text = _latex_escape if latex else str
        out = pd.DataFrame(index=df.index)
        out["model"] = df["model"].map(text)
        out["n"] = df["n"].astype(int)
        if (df["status"] != "ok").any():
            out["status"] = df["status"]
        for col in self.metric_columns:
            arrow = {True: up, False: down}.get(self.directions.get(col), "")
            out[text(col) + arrow] = [
                _fmt(m, s, n).replace(" ± ", pm)
                for m, s, n in zip(df[f"{col} mean"], df[f"{col} std"], df["n"])]
        return out.reset_index(drop=True)

    @property
    def metric_columns(self) -> list[str]:
        return [c[: -len(" mean")] for c in self.stats.columns if c.endswith(" mean")]

    def to_markdown(self) -> str:
        title = f"### {self.dataset} — suite {self.suite}"
        if self.primary:
            title += f" (sorted by {self.primary})"
        body = self.display().to_markdown(index=False, disable_numparse=True)
        notes = "".join(f"\n- {n}" for n in self.notes)
        return f"{title}\n\n{body}\n{notes}".rstrip() + "\n"

    def to_csv(self) -> str:
        return self.stats.to_csv(index=False)

    def to_html(self) -> str:
        return self.display().to_html(index=False)

    def to_latex(self) -> str:
        return self.display(latex=True).to_latex(index=False, escape=False)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in str(text))


def _fmt(mean: float, std: float, n: int) -> str:
    """``mean ± std`` with the std to two significant digits and the mean to match."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if n < 2 or std is None or math.isnan(std) or math.isinf(mean):
        return _num(mean)
    if std == 0:
        return f"{_num(mean)} ± 0"
    decimals = 1 - math.floor(math.log10(std))
    if decimals <= 6 and abs(mean) < 1e6:
        if decimals < 0:  # e.g. 3891 ± 134: integers, the std still to two digits
            return f"{mean:.0f} ± {round(std, decimals):.0f}"
        return f"{mean:.{decimals}f} ± {std:.{decimals}f}"
    return f"{_num(mean)} ± {_num(std)}"


def _num(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if float(x).is_integer() and abs(x) < 1e12:  # counts: parameters, NFE
        return f"{int(x)}"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.3e}"
    return f"{x:.4g}"


class UnknownColumnError(GenbenchError, KeyError):
    """A ``--primary`` column that no leaderboard has."""

    def __str__(self) -> str:
        return self.args[0]


def build_leaderboards(store: ResultStore, *, suite: str | None = None,
                       fingerprints: list[str] | None = None,
                       primary: str | None = None) -> dict[tuple[str, str], Leaderboard]:
    """Leaderboards keyed by ``(suite, dataset label)``.

    ``fingerprints`` selects exactly those jobs (a run's own, including jobs another suite
    stored first) and files them under ``suite``; otherwise every stored job (of ``suite``
    if given) counts, under the suite that stored it.
    """
    jobs = store.jobs()
    if fingerprints is not None:
        jobs = jobs[jobs["fingerprint"].isin(fingerprints)]
        if suite is not None:
            jobs = jobs.assign(suite=suite)
    elif suite is not None:
        jobs = jobs[jobs["suite"] == suite]
    if jobs.empty:
        return {}
    values = store.metric_values()
    values = values[values["job_id"].isin(jobs["id"]) & values["key"].notna()]
    values = values.assign(column=values["metric"] + "." + values["key"])
    boards = {}
    for (suite_name, dataset), djobs in jobs.groupby(["suite", "dataset"], sort=False):
        dvals = values[values["job_id"].isin(djobs["id"])]
        boards[(suite_name, dataset)] = _board(suite_name, dataset, djobs, dvals, primary)
    if primary is not None and not any(primary in b.metric_columns for b in boards.values()):
        columns = sorted({c for b in boards.values() for c in b.metric_columns})
        raise UnknownColumnError(f"no leaderboard has a column {primary!r}; columns: {', '.join(columns)}")
    return boards


def _board(suite: str, dataset: str, jobs: pd.DataFrame, values: pd.DataFrame,
           primary: str | None) -> Leaderboard:
    # metric order of the suite, then each metric's own key order
    order = values.sort_values("position", kind="stable").drop_duplicates("column")["column"].tolist()
    directions: dict[str, bool | None] = {}
    primaries: list[str] = []
    for col, grp in values.groupby("column", sort=False):
        hib = grp["higher_is_better"].dropna()
        directions[col] = None if hib.empty else bool(hib.iloc[0])
        if grp["is_primary"].any():
            primaries.append(col)
    wide = (values.pivot_table(index="job_id", columns="column", values="value", aggfunc="first")
            if not values.empty else pd.DataFrame())
    rows = []
    notes: list[str] = []
    for model, mjobs in jobs.groupby("model", sort=False):
        # Seeds of an earlier configuration under the same label (a rerun of some seeds
        # with changed settings) are never averaged with the current one.
        latest = mjobs.loc[mjobs["id"].idxmax(), "config_fingerprint"]
        stale = mjobs[mjobs["config_fingerprint"] != latest]
        if len(stale):
            notes.append(f"{model}: {len(stale)} result(s) of an earlier configuration left out "
                         f"(seeds {', '.join(map(str, sorted(stale['seed'])))}); rerun the suite "
                         "to bring them up to date")
            mjobs = mjobs[mjobs["config_fingerprint"] == latest]
        ok = mjobs[mjobs["status"] == "ok"]
        row = {"model": model, "family": mjobs["model_family"].iloc[0], "n": len(ok)}
        counts = mjobs["status"].value_counts()
        row["status"] = "ok" if len(ok) == len(mjobs) else ", ".join(
            f"{c} {s}" for s, c in counts.items())
        # In seed order, so that parallel runs (jobs stored in completion order) sum alike.
        ids = [i for i in ok.sort_values("seed", kind="stable")["id"] if i in wide.index]
        for col in order:
            col_vals = wide.loc[ids, col].dropna() if col in wide else []
            arr = np.asarray(col_vals, dtype=float)
            row[f"{col} mean"] = float(arr.mean()) if arr.size else np.nan
            row[f"{col} std"] = float(arr.std(ddof=1)) if arr.size > 1 else np.nan
        rows.append(row)
        for err in mjobs.loc[mjobs["status"] == "failed", "error"].dropna().unique():
            notes.append(f"{model}: failed: {err}")
    stats = pd.DataFrame(rows)
    chosen = primary if primary in order else next((c for c in order if c in primaries), None)
    stats["_ref"] = stats["family"] != "reference"
    sort_cols, ascending = ["_ref"], [True]
    if chosen is not None:
        stats["_key"] = stats[f"{chosen} mean"]
        sort_cols.append("_key")
        ascending.append(not directions.get(chosen, False))
    stats = stats.sort_values(sort_cols, ascending=ascending, na_position="last", kind="stable")
    stats = stats.drop(columns=[c for c in ("_ref", "_key") if c in stats]).reset_index(drop=True)
    return Leaderboard(suite, dataset, stats, chosen, directions, notes)


FORMATS = {"md": "to_markdown", "csv": "to_csv", "html": "to_html", "tex": "to_latex"}


def save_sample_figures(boards: dict[tuple[str, str], Leaderboard], store: ResultStore,
                        directory: str | Path, fingerprints: list[str] | None = None) -> list[Path]:
    """Beside each board, ``<dataset>-samples.png``: each model's samples (its lowest
    finished seed), in the board's order. Returns the paths written.

    On a 2-D mixture measured by the ``modes`` metric (whose details record the true centres),
    every panel draws the centres and their 3-std circles under the samples, on shared axes,
    with that job's stored mode count in its title (counted from the samples if it has none)."""
    import torch

    from .figures import save_model_comparison

    jobs = store.jobs()
    if fingerprints is not None:
        jobs = jobs[jobs["fingerprint"].isin(fingerprints)]
    jobs = jobs[jobs["status"] == "ok"].sort_values("seed")
    declared = _declared_modes(store.metric_values())
    written = []
    for board in boards.values():
        mine = jobs[jobs["dataset"] == board.dataset]
        if fingerprints is None:
            mine = mine[mine["suite"] == board.suite]
        samples, counts, modes = {}, {}, None
        for model in board.stats["model"]:
            rows = mine[mine["model"] == model]
            path = None
            if len(rows):  # run directories are stored relative to results.db's folder
                row = rows.iloc[0]
                path = (store.path.parent / row["run_dir"] / evaluation_dirname(row["fingerprint"])
                        / "samples.pt")
            if path is not None and path.exists():
                samples[model] = torch.load(path, weights_only=True)
                if row["fingerprint"] in declared:
                    found = declared[row["fingerprint"]]
                    modes = modes or found
                    if found["count"] is not None:
                        counts[model] = found["count"]
        extra = {} if modes is None else {
            "modes": torch.tensor(modes["centres"]), "mode_std": modes["std"],
            "within": modes["within"], "mode_counts": counts}
        out = save_model_comparison(
            samples, Path(directory) / safe_dirname(board.suite) / f"{safe_dirname(board.dataset)}-samples.png",
            **extra)
        if out is not None:
            written.append(out)
    return written


def _declared_modes(values: pd.DataFrame) -> dict[str, dict]:
    """Per job fingerprint, the mixture the ``modes`` metric measured (from its recorded
    ``mode_centres``, ``mode_std``, ``within_std``) and the modes it counted (None if none)."""
    out = {}
    for r in values[values["key"] == "modes"].itertuples():
        d = r.details
        if isinstance(d, dict) and d.get("mode_centres") and d.get("mode_std"):
            count = None if pd.isna(r.value) else float(r.value)
            out[r.fingerprint] = {"centres": d["mode_centres"], "std": float(d["mode_std"]),
                                  "within": float(d.get("within_std", 3.0)), "count": count}
    return out


def write_leaderboards(boards: dict[tuple[str, str], Leaderboard], directory: str | Path,
                       formats: tuple[str, ...] = ("md", "csv")) -> list[Path]:
    """Write each board as ``<directory>/<suite>/<dataset>.<ext>``; returns the paths."""
    written = []
    for board in boards.values():
        folder = Path(directory) / safe_dirname(board.suite)
        folder.mkdir(parents=True, exist_ok=True)
        for fmt in formats:
            path = folder / f"{safe_dirname(board.dataset)}.{fmt}"
            path.write_text(getattr(board, FORMATS[fmt])())
            written.append(path)
    return written
