"""Leaderboards: one table per (suite, dataset), built from the results store.

Each row is a model label (every configuration is its own row) over the seeds that finished;
each cell is a :class:`~genbench.results.statistics.Summary` (mean, std, 95% t-interval, seeds) with
the number of samples the metric used, its rank in the metric's direction and whether it is
among the best (the best mean and every value whose interval overlaps it). Reference rows
(models that declare :attr:`~genbench.GenerativeModel.reference`) sit on top, unranked:
they are the floor a model is read against, not a competitor. Which keys make the main table,
their short headers and the board's kind come from each metric's
:attr:`~genbench.Metric.presentation` (see :mod:`genbench.results.declarations`).

Internally the board is tidy: ``rows`` (one per model), ``cells`` (one per model and
column) and ``columns`` (:class:`Column`, in the suite's metric order). A column is one
metric key under one protocol (:data:`PROTOCOL_KEYS`): rows whose values came from another
feature extractor, sample count, reference set or likelihood get their own column, named
with what differs, and are ranked only there. What a column's values measure
(:data:`STATED_KEYS`: the likelihood of an ELBO, say) is stated in the legend and caption
even when every row shares it.

A board's text (Markdown, a terminal table, a tidy CSV, LaTeX) comes from
:mod:`genbench.results.rendering`, its sample figures from :mod:`genbench.results.sample_figures`;
:mod:`genbench.results.publish` writes a run's files. The HTML report is :mod:`genbench.results.report`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from genbench.api.errors import ConfigError
from genbench.api.metric import DEFAULT_BOARD_KIND, KeyPresentation
from genbench.results import rendering
from genbench.results.declarations import UNDECLARED, Declarations
from genbench.results.statistics import best_marks, ranks, summarize
from genbench.results.store import ResultStore

#: Metric details that define a column's protocol: values differing in one never share it.
#: ``likelihood`` is the kind of likelihood a bound or log-likelihood was computed under
#: (``"bernoulli"``, ``"gaussian"``, ``"exact, dequantised to 256 levels"``): a Bernoulli
#: cross-entropy on [0, 1] pixels and a Gaussian density are not comparable numbers.
PROTOCOL_KEYS = (("protocol", "protocol"), ("feature_extractor", "extractor"),
                 ("weights_sha256", "weights"),
                 ("n_samples", "n"), ("n_reference", "ref"), ("reference_key", "ref set"),
                 ("likelihood", "likelihood"))

#: Protocol keys that say what a value measures, not only how it was measured: a board's
#: legend and caption name them even when every row of a column shares one.
STATED_KEYS = ("likelihood",)


class UnknownColumnError(ConfigError, KeyError):
    """A ``--sort`` / ``--metrics`` column that no leaderboard has."""

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class Column:
    """One metric key under one protocol. ``name`` is ``metric.key`` plus, when rows of the
    board were measured differently, ``[what differs]``."""

    name: str
    metric: str
    key: str
    higher_is_better: bool | None
    primary: bool = False
    protocol: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    description: str = ""
    #: How the metric declares this key is presented.
    presentation: KeyPresentation = field(default=UNDECLARED, compare=False, hash=False)

    @property
    def base(self) -> str:
        return f"{self.metric}.{self.key}"

    @property
    def arrow(self) -> str:
        return {True: "↑", False: "↓"}.get(self.higher_is_better, "")

    @property
    def stated(self) -> dict[str, Any]:
        """Its protocol's :data:`STATED_KEYS` (``{"likelihood": "bernoulli"}``, say)."""
        return {k: self.protocol[k] for k in STATED_KEYS if k in self.protocol}


@dataclass
class Leaderboard:
    """One suite's table for one dataset (see the module docstring)."""

    suite: str
    dataset: str
    rows: pd.DataFrame        # model, family, reference, n, status; in display order
    cells: pd.DataFrame       # model, column, mean, std, ci, ci_low, ci_high, n, n_samples, rank, best
    columns: list[Column]
    primary: str | None
    notes: list[str]
    provenance: dict[str, Any]
    jobs: pd.DataFrame        # the stored jobs the board summarises (one per model and seed)

    # -- lookups ---------------------------------------------------------------------------

    @property
    def models(self) -> list[str]:
        return self.rows["model"].tolist()

    @property
    def metric_columns(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise UnknownColumnError(f"{self.dataset}: no column {name!r}; columns: "
                                 f"{', '.join(self.metric_columns)}")

    def cell(self, model: str, column: str) -> pd.Series | None:
        hit = self.cells[(self.cells["model"] == model) & (self.cells["column"] == column)]
        return None if hit.empty else hit.iloc[0]

    def value(self, model: str, column: str, stat: str = "mean") -> float:
        """One statistic (``mean``, ``std``, ``ci``, ``n``, ``n_samples``, ``rank``) of a cell."""
        c = self.cell(model, column)
        return math.nan if c is None else float(c[stat])

    def wide(self, stat: str = "mean") -> pd.DataFrame:
        """Rows x columns of one statistic, in display order."""
        table = self.cells.pivot(index="model", columns="column", values=stat)
        return table.reindex(index=self.models, columns=self.metric_columns)

    @property
    def kind(self) -> str:
        """The kind the first measured key claims (``board_kind`` of its presentation: a
        2-D mixture board, say), else :data:`~genbench.api.metric.DEFAULT_BOARD_KIND`."""
        return next((c.presentation.board_kind for c in self.columns
                     if c.presentation.board_kind), DEFAULT_BOARD_KIND)

    def headline_columns(self) -> list[Column]:
        """The main table's columns: per headline place of this kind of board (see
        :class:`~genbench.Headline`), the measured keys of the lowest choice, led by the sort
        column when it is none of them (a plugin's metric, say); every column when no
        headline metric ran."""
        kind = self.kind
        places: dict[int, list[tuple[int, Column]]] = {}
        for c in self.columns:
            place = c.presentation.headline(kind)
            if place is not None:
                places.setdefault(place.order, []).append((place.choice, c))
        out = []
        for order in sorted(places):
            first = min(choice for choice, _ in places[order])
            out.extend(c for choice, c in places[order] if choice == first)
        sort = [c for c in self.columns if self.primary in (c.base, c.name) and c not in out]
        return (sort + out) or list(self.columns)

    def select(self, full: bool = False, metrics: list[str] | None = None) -> list[Column]:
        """The columns to show: ``metrics`` (metric names, ``metric.key`` or column names),
        else every column (``full``), else the headline ones."""
        if metrics:
            chosen = [c for c in self.columns
                      if c.metric in metrics or c.base in metrics or c.name in metrics]
            return chosen
        return list(self.columns) if full else self.headline_columns()

    # -- text (see genbench.results.rendering) -------------------------------------------

    def heading(self) -> str:
        """What the table shows and how it is ordered, references included."""
        return rendering.heading(self)

    def legend(self, columns: list[Column]) -> list[str]:
        """Footnotes: what ± means, the best marking, samples per column, what the columns
        measure (:data:`STATED_KEYS`), single-seed rows."""
        return rendering.legend(self, columns)

    def caption(self, columns: list[Column] | None = None) -> str:
        """One sentence of provenance for a paper's caption (of a table of ``columns``,
        else every column)."""
        return rendering.caption(self, columns)

    def display(self, columns: list[Column] | None = None, *, latex: bool = False,
                short: bool = False, marker: str | None = None,
                means_only: tuple[str, ...] = ()) -> pd.DataFrame:
        """The table as strings (see :func:`genbench.results.rendering.display`)."""
        return rendering.display(self, columns, latex=latex, short=short, marker=marker,
                                 means_only=means_only)

    def to_markdown(self, full: bool = False, metrics: list[str] | None = None) -> str:
        """The headline table (or every column, or ``metrics``) in Markdown."""
        return rendering.to_markdown(self, full, metrics)

    def to_text(self, width: int = 120) -> str:
        """The main table for a terminal, notes wrapped to ``width``."""
        return rendering.to_text(self, width)

    def to_csv(self) -> str:
        """The tidy table: one line per (model, column) with every statistic."""
        return rendering.to_csv(self)

    def to_latex(self, full: bool = False, metrics: list[str] | None = None) -> str:
        """A booktabs ``tabular`` in a ``table`` float, with a caption naming the protocol."""
        return rendering.to_latex(self, full, metrics)

    def tidy(self) -> pd.DataFrame:
        """``cells`` with the suite, dataset, row and column facts joined on."""
        rows = self.rows.set_index("model")
        meta = pd.DataFrame([{"column": c.name, "metric": c.metric, "key": c.key,
                              "higher_is_better": c.higher_is_better,
                              "protocol": ", ".join(f"{k}={v}" for k, v in c.protocol.items())}
                             for c in self.columns])
        df = self.cells.merge(meta, on="column", how="left") if len(meta) else self.cells.copy()
        df.insert(0, "suite", self.suite)
        df.insert(1, "dataset", self.dataset)
        df.insert(3, "family", df["model"].map(rows["family"]))
        df.insert(4, "reference", df["model"].map(rows["reference"]))
        df.insert(5, "seeds_finished", df["model"].map(rows["n"]))
        order = ["suite", "dataset", "model", "family", "reference", "seeds_finished", "column",
                 "metric", "key", "higher_is_better", "protocol", "mean", "std", "ci", "ci_low",
                 "ci_high", "n", "n_samples", "rank", "best"]
        return df[[c for c in order if c in df.columns]]


# -- building --------------------------------------------------------------------------------

def select_jobs(store: ResultStore, *, suite: str | None = None,
                include: list[str] | None = None) -> pd.DataFrame:
    """The jobs a suite's boards summarise: every stored job of ``suite`` plus the jobs whose
    fingerprints are in ``include`` (a run's own, which another suite may have stored first),
    filed under ``suite``; without ``suite``, every job under the suite that stored it. Of
    several jobs of one (suite, dataset, model, seed), only the latest counts."""
    jobs = store.jobs()
    if suite is not None:
        mine = jobs["suite"] == suite
        if include is not None:
            mine |= jobs["fingerprint"].isin(include)
        jobs = jobs[mine].assign(suite=suite)
    jobs = jobs.sort_values("id")
    return jobs.drop_duplicates(["suite", "dataset", "model", "seed"], keep="last")


def build_leaderboards(store: ResultStore, *, suite: str | None = None,
                       include: list[str] | None = None, primary: str | None = None,
                       descriptions: dict[str, str] | None = None, registries=None
                       ) -> dict[tuple[str, str], Leaderboard]:
    """Leaderboards keyed by ``(suite, dataset label)`` over :func:`select_jobs`.

    ``primary`` sorts by that column (``metric.key`` or a column name), else by the suite's
    first primary metric; ``descriptions`` (metric name -> text) become column tooltips.
    ``registries`` declare how metric keys are presented and which models are reference
    rows (:class:`~genbench.results.declarations.Declarations`): a run's publish step and
    ``genbench leaderboard`` pass theirs; only a direct call on a store without them (a
    notebook reading ``results.db``) falls back to the process's.
    """
    jobs = select_jobs(store, suite=suite, include=include)
    if jobs.empty:
        return {}
    values = store.metric_values()
    values = values[values["job_id"].isin(jobs["id"]) & values["key"].notna()]
    boards = {}
    for (suite_name, dataset), djobs in jobs.groupby(["suite", "dataset"], sort=False):
        dvals = values[values["job_id"].isin(djobs["id"])]
        boards[(suite_name, dataset)] = _board(suite_name, dataset, djobs, dvals, primary,
                                               descriptions or {}, registries)
    if primary is not None and not any(_find(b, primary) for b in boards.values()):
        columns = sorted({c for b in boards.values() for c in b.metric_columns})
        raise UnknownColumnError(f"no leaderboard has a column {primary!r}; columns: {', '.join(columns)}")
    return boards


def _find(board: Leaderboard, name: str) -> str | None:
    """The column ``name`` means on this board: an exact name, else the first of that base."""
    for c in board.columns:
        if c.name == name:
            return c.name
    return next((c.name for c in board.columns if c.base == name), None)


def _n_samples(details: Any, num_samples: Any) -> float:
    if isinstance(details, dict):
        for key in ("n_used", "n_samples", "n_generated"):
            if isinstance(details.get(key), (int, float)):
                return float(details[key])
    return float(num_samples) if pd.notna(num_samples) else math.nan


def _protocol(details: Any, n_samples: float) -> dict[str, Any]:
    d = details if isinstance(details, dict) else {}
    return {"protocol": d.get("protocol"), "feature_extractor": d.get("feature_extractor"),
            "weights_sha256": (d.get("weights_sha256") or "")[:12] or None,
            "n_samples": None if math.isnan(n_samples) else int(n_samples),
            "n_reference": d.get("n_reference", d.get("n_reference_total")),
            "reference_key": d.get("reference_key"),
            "likelihood": d.get("likelihood")}


def _columns(values: pd.DataFrame, descriptions: dict[str, str],
             declarations: Declarations) -> tuple[list[Column], pd.Series]:
    """The board's columns in the suite's order and, per metric value row, its column name."""
    values = values.sort_values(["position"], kind="stable")
    names = pd.Series(index=values.index, dtype=object)
    columns: list[Column] = []
    for (metric, key), grp in values.groupby(["metric", "key"], sort=False):
        hib = grp["higher_is_better"].dropna()
        direction = None if hib.empty else bool(hib.iloc[0])
        protocols = [tuple(p.items()) for p in grp["_protocol"]]
        distinct = list(dict.fromkeys(protocols))
        differing = [k for k, _ in PROTOCOL_KEYS
                     if len({dict(p).get(k) for p in distinct}) > 1]
        for proto in distinct:
            pdict = dict(proto)
            name = f"{metric}.{key}"
            # a named protocol is always in the header; what else differs, when anything does
            shown = [] if pdict.get("protocol") is None else [str(pdict["protocol"])]
            others = [k for k in differing if k != "protocol"]
            if others:
                shown += [f"{label} {pdict.get(k)}" for k, label in PROTOCOL_KEYS if k in others
                          and k != "reference_key"] or ["ref set " + str(pdict.get("reference_key"))[:8]]
            elif differing and not shown:  # with a protocol and without one
                shown = ["no protocol"]
            if shown:
                name += f" [{', '.join(shown)}]"
            columns.append(Column(name, metric, key, direction, bool(grp["is_primary"].any()),
                                  {k: v for k, v in pdict.items() if v is not None},
                                  descriptions.get(metric, ""),
                                  declarations.presentation(metric, key)))
            mask = [p == proto for p in protocols]
            names.loc[grp.index[mask]] = name
    return columns, names


def _board(suite: str, dataset: str, jobs: pd.DataFrame, values: pd.DataFrame,
           primary: str | None, descriptions: dict[str, str], registries) -> Leaderboard:
    notes: list[str] = []
    kept = []
    for model, mjobs in jobs.groupby("model", sort=False):
        # Seeds of an earlier configuration under the same label (a rerun of some seeds
        # with changed settings) are never averaged with the current one.
        latest = mjobs.loc[mjobs["id"].idxmax(), "config_fingerprint"]
        stale = mjobs[mjobs["config_fingerprint"] != latest]
        if len(stale):
            notes.append(f"{model}: {len(stale)} result(s) of an earlier configuration left out "
                         f"(seeds {', '.join(map(str, sorted(stale['seed'])))}); rerun the suite "
                         "to bring them up to date")
        kept.append(mjobs[mjobs["config_fingerprint"] == latest])
    jobs = pd.concat(kept)
    values = values[values["job_id"].isin(jobs["id"])].copy()
    num_samples = jobs.set_index("id")["num_samples"]
    values["_n_samples"] = [_n_samples(d, num_samples.get(j)) for d, j in
                            zip(values["details"], values["job_id"])]
    values["_protocol"] = [_protocol(d, n) for d, n in zip(values["details"], values["_n_samples"])]
    declarations = Declarations(jobs.sort_values("id", kind="stable"), registries)
    columns, names = (_columns(values, descriptions, declarations) if len(values)
                      else ([], pd.Series(dtype=object)))
    values["column"] = names

    rows, cells = [], []
    for model, mjobs in jobs.groupby("model", sort=False):
        ok = mjobs[mjobs["status"] == "ok"].sort_values("seed", kind="stable")
        counts = mjobs["status"].value_counts()
        rows.append({"model": model, "family": mjobs["model_family"].iloc[0],
                     "reference": declarations.reference(mjobs["model_name"].iloc[0]),
                     "n": len(ok), "status": "ok" if len(ok) == len(mjobs) else ", ".join(
                         f"{c} {s}" for s, c in counts.items())})
        mvals = values[values["job_id"].isin(ok["id"])]
        seed_of = ok.set_index("id")["seed"]
        for c in columns:
            cv = mvals[mvals["column"] == c.name]
            if cv.empty:
                continue
            # In seed order, so that parallel runs (jobs stored in completion order) sum alike.
            cv = cv.assign(_seed=cv["job_id"].map(seed_of)).sort_values("_seed", kind="stable")
            s = summarize(cv["value"].astype(float).to_numpy())
            samples = cv["_n_samples"].dropna().unique()
            cells.append({"model": model, "column": c.name, "summary": s, "mean": s.mean,
                          "std": s.std, "ci": s.ci, "ci_low": s.low if s.n > 1 else math.nan,
                          "ci_high": s.high if s.n > 1 else math.nan, "n": s.n,
                          "n_samples": float(samples[0]) if len(samples) == 1 else math.nan})
        for err in mjobs.loc[mjobs["status"] == "failed", "error"].dropna().unique():
            notes.append(f"{model}: failed: {err}")
    rows_df = pd.DataFrame(rows)
    cells_df = pd.DataFrame(cells, columns=["model", "column", "summary", "mean", "std", "ci",
                                            "ci_low", "ci_high", "n", "n_samples"])
    _rank(cells_df, columns, set(rows_df.loc[rows_df["reference"], "model"]))

    board = Leaderboard(suite, dataset, rows_df, cells_df.drop(columns="summary"), columns,
                        None, notes, _provenance(jobs), jobs)
    chosen = _find(board, primary) if primary else None
    if chosen is None:
        chosen = next((c.name for c in columns if c.primary), None)
    if chosen is None:  # no metric's declared primary key was stored (a metric that names
        # its keys per dataset, say): the first scored column, so the order is still explained
        chosen = next((c.name for c in columns if c.higher_is_better is not None), None)
    board.primary = chosen
    board.rows = _sorted_rows(board)
    return board


def _rank(cells: pd.DataFrame, columns: list[Column], references: set[str]) -> None:
    """Fill ``rank`` and ``best`` per scored column, references left out (rank NaN)."""
    cells["rank"] = math.nan
    cells["best"] = False
    for c in columns:
        if c.higher_is_better is None:
            continue
        idx = cells.index[(cells["column"] == c.name) & ~cells["model"].isin(references)]
        if not len(idx):
            continue
        cells.loc[idx, "rank"] = ranks(cells.loc[idx, "mean"].tolist(), c.higher_is_better)
        cells.loc[idx, "best"] = best_marks(cells.loc[idx, "summary"].tolist(), c.higher_is_better)


def _sorted_rows(board: Leaderboard) -> pd.DataFrame:
    rows = board.rows.copy()
    rows["_other"] = ~rows["reference"]
    keys, ascending = ["_other"], [True]
    if board.primary is not None:
        means = board.cells[board.cells["column"] == board.primary].set_index("model")["mean"]
        rows["_key"] = rows["model"].map(means)
        keys.append("_key")
        ascending.append(not board.column(board.primary).higher_is_better)
    rows = rows.sort_values(keys, ascending=ascending, na_position="last", kind="stable")
    return rows.drop(columns=[c for c in ("_other", "_key") if c in rows]).reset_index(drop=True)


def _provenance(jobs: pd.DataFrame) -> dict[str, Any]:
    """What a caption or report names: spec hashes, versions, devices, extractors + sha256."""
    provs = [p for p in jobs["provenance"] if isinstance(p, dict)]
    extractors: dict[str, str] = {}
    for p in provs:
        extractors.update(p.get("feature_extractors") or {})
    versions = next((p["versions"] for p in reversed(provs) if p.get("versions")), {})
    return {"spec_hashes": sorted({p["spec_hash"] for p in provs if p.get("spec_hash")}),
            "versions": versions,
            "devices": sorted({str(d) for d in jobs["device"].dropna()}),
            "extractors": extractors}
