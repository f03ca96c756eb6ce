"""Result plots from the results store: quality against speed, quality against network
evaluations (NFE), and training loss curves, one PNG each per suite and dataset.

Each plotting function takes plain tables (:func:`metric_table`) or dicts, draws on a bare
matplotlib ``Figure`` (no pyplot, so no backend is touched) and returns the path written,
or None when there is nothing to draw. :func:`save_plots` does all of it for a store, with
the columns the metrics' :attr:`~genbench.Metric.presentation` names: the keys of role
``sampling_speed`` and ``nfe``, and the quality axis.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from genbench.api.metric import KeyPresentation
from genbench.plan.jobs import board_file
from genbench.results.declarations import Declarations
from genbench.results.store import ResultStore

#: Roles of keys that are never a quality axis.
_AXIS_ROLES = ("sampling_speed", "nfe")
_IDENTITY = ("id", "fingerprint", "suite", "dataset", "model", "model_name", "model_family",
             "seed", "run_dir")


# -- tables -------------------------------------------------------------------------------

def metric_table(jobs: pd.DataFrame, values: pd.DataFrame) -> pd.DataFrame:
    """One row per job: its identity columns (those of ``jobs`` among id, fingerprint, suite,
    dataset, model, model_name, model_family, seed, run_dir) and a column per
    ``<metric>.<key>`` from ``values`` (``store.metric_values()``), NaN where missing."""
    table = jobs[[c for c in _IDENTITY if c in jobs]].reset_index(drop=True)
    values = values[values["job_id"].isin(jobs["id"]) & values["key"].notna()]
    if values.empty:
        return table
    values = values.assign(column=values["metric"] + "." + values["key"])
    order = values.sort_values("position", kind="stable").drop_duplicates("column")["column"]
    wide = values.pivot_table(index="job_id", columns="column", values="value", aggfunc="first",
                              dropna=False)
    wide = wide.reindex(columns=list(order))
    return table.merge(wide, left_on="id", right_index=True, how="left")


def quality_column(values: pd.DataFrame, primary: str | None = None,
                   presentations: dict[str, KeyPresentation] | None = None, *,
                   registries=None) -> str | None:
    """The column quality plots use: ``primary`` when measured, else the measured key whose
    presentation declares the lowest ``quality``, else the leaderboard's primary (the first
    metric's primary key) unless its role is an axis (``sampling_speed``, ``nfe``); None if none is
    measured. ``presentations``: ``metric.key`` -> :class:`~genbench.KeyPresentation`
    (default: looked up by metric label in ``registries``, see
    :class:`~genbench.results.declarations.Declarations`; :func:`save_plots` passes the
    board's, so the process's registries are a fallback only for a direct call with
    neither)."""
    values = values[values["key"].notna() & values["value"].notna()]
    values = values.sort_values("position", kind="stable")
    pairs = list(dict.fromkeys(zip(values["metric"], values["key"])))
    if presentations is None:
        declarations = Declarations(registries=registries)
        presentations = {f"{m}.{k}": declarations.presentation(m, k) for m, k in pairs}
    columns = [f"{m}.{k}" for m, k in pairs]
    if primary in columns:
        return primary
    ranked = [(p.quality, c) for c in columns
              if (p := presentations.get(c)) is not None and p.quality is not None]
    if ranked:
        return min(ranked, key=lambda pair: pair[0])[1]
    primaries = values[values["is_primary"].astype(bool)]
    board = [f"{m}.{k}" for m, k in zip(primaries["metric"], primaries["key"])]
    return next((c for c in board if getattr(presentations.get(c), "role", None)
                 not in _AXIS_ROLES), None)


def _summary(table: pd.DataFrame, columns: Sequence[str], by: str = "model") -> pd.DataFrame:
    """Mean and std (ddof 1; 0 for one seed) of ``columns`` per ``by``, in first-seen order."""
    grouped = table.groupby(by, sort=False)[list(columns)]
    mean = grouped.mean()
    std = grouped.std(ddof=1).fillna(0.0)
    out = mean.add_suffix(" mean").join(std.add_suffix(" std"))
    return out.reset_index()


# -- quality against speed ----------------------------------------------------------------

def pareto_front(points: Sequence[tuple[float, float]], higher_is_better: bool) -> list[int]:
    """Indices of the ``(speed, quality)`` points no other point beats: none is at least as
    fast and at least as good, and better in one. Faster is always better; quality is better
    higher when ``higher_is_better``, else lower. Sorted by speed; non-finite points never
    count."""
    sign = 1.0 if higher_is_better else -1.0
    finite = [(i, float(s), sign * float(q)) for i, (s, q) in enumerate(points)
              if math.isfinite(s) and math.isfinite(q)]
    # Fastest first (best quality first among equal speeds): a point is on the front when
    # it is strictly better than every faster point, and not a copy of the one before it.
    finite.sort(key=lambda p: (-p[1], -p[2]))
    front, best, last = [], -math.inf, None
    for i, speed, quality in finite:
        if quality > best or (last is not None and (speed, quality) == last):
            front.append(i)
            best, last = quality, (speed, quality)
    return sorted(front, key=lambda i: (float(points[i][0]), i))


#: A positive quality axis whose largest mean is this many times its smallest is drawn on a
#: log scale, so that the best rows (FID near 0 beside a collapsed model's 20) separate.
LOG_QUALITY_RATIO = 30.0


def quality_vs_speed(table: pd.DataFrame, path: str | Path, *, quality: str,
                     higher_is_better: bool, speed: str,
                     title: str | None = None) -> Path | None:
    """Quality against sampling speed (log x; log y too when the quality is positive and
    spans :data:`LOG_QUALITY_RATIO`) for one dataset: a point per row label of ``table``
    (:func:`metric_table`), mean over seeds with std error bars, and the Pareto front (the
    best quality at least that fast) as a step line through its marked points. Labels are
    placed apart from each other and the points (adjustText). Rows without a positive
    ``speed`` and reference rows (a true ``reference`` column) are left out."""
    fig = quality_speed_figure(table, quality=quality, higher_is_better=higher_is_better,
                               speed=speed, title=title)
    return None if fig is None else _save(fig, path)


def quality_speed_figure(table: pd.DataFrame, *, quality: str, higher_is_better: bool,
                         speed: str, title: str | None = None):
    """The matplotlib ``Figure`` :func:`quality_vs_speed` saves, or ``None`` with no row or
    when ``quality`` is ``speed`` itself (``primary_metric = "speed.samples_per_s"``)."""
    if quality not in table or speed not in table or quality == speed:
        return None
    rows = table[(table[speed] > 0) & table[quality].notna()]
    if "reference" in rows:
        rows = rows[~rows["reference"].astype(bool)]
    if rows.empty:
        return None
    stats = _summary(rows, [speed, quality])
    x, y = stats[f"{speed} mean"].to_numpy(), stats[f"{quality} mean"].to_numpy()
    xstd, ystd = stats[f"{speed} std"].to_numpy(), stats[f"{quality} std"].to_numpy()
    front = pareto_front(list(zip(x, y)), higher_is_better)

    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 5), dpi=100)
    ax = fig.subplots()
    log_y = bool((y > 0).all() and y.max() >= LOG_QUALITY_RATIO * y.min())
    # On a log axis, a lower error bar reaching zero would vanish: stop it just above.
    xerr = np.vstack([np.minimum(xstd, 0.95 * x), xstd])
    yerr = np.vstack([np.minimum(ystd, 0.95 * y), ystd]) if log_y else ystd
    ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", ms=4, color="tab:blue", ecolor="0.6",
                elinewidth=0.8, capsize=2, zorder=2, label="rows (mean ± std over seeds)")
    ax.step(x[front], y[front], where="pre", color="tab:red", lw=1.2, zorder=1,
            label="Pareto front")
    ax.scatter(x[front], y[front], s=70, facecolors="none", edgecolors="tab:red", lw=1.2,
               zorder=3)
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(f"{speed} (log scale, higher is faster)")
    ax.set_ylabel(f"{quality}{' (log scale)' if log_y else ''} "
                  f"({'higher' if higher_is_better else 'lower'} is better)")
    ax.set_title(title or f"{quality} against sampling speed", fontsize=10)
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(fontsize=7)
    fig.tight_layout()  # the final layout first: labels are placed in display space
    # Above the front's line and circles, on a light backing, so that neither hides a label.
    backing = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8}
    texts = [ax.text(xi, yi, str(label), fontsize=6, zorder=4, bbox=backing)
             for label, xi, yi in zip(stats["model"], x, y)]
    from adjustText import adjust_text

    adjust_text(texts, x=x, y=y, ax=ax, arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5})
    return fig


# -- quality against network evaluations --------------------------------------------------

def _split_label(label: str) -> tuple[str, list[str]]:
    """``name[a][b]`` -> ``("name", ["a", "b"])``, brackets nested in a value kept whole."""
    head, parts, depth, start = None, [], 0, 0
    for i, c in enumerate(label):
        if c == "[":
            if depth == 0:
                head = label[:i] if head is None else head
                start = i + 1
            depth += 1
        elif c == "]" and depth > 0:
            depth -= 1
            if depth == 0:
                parts.append(label[start:i])
    if head is None or depth != 0 or not label.endswith("]"):
        return label, []
    return head, parts


def _split_items(bracket: str) -> list[str]:
    """``a=1,b=x[c=2,d=3]`` -> ``["a=1", "b=x[c=2,d=3]"]``: commas at the top level only."""
    items, depth, start = [], 0, 0
    for i, c in enumerate(bracket):
        depth += {"[": 1, "]": -1}.get(c, 0)
        if c == "," and depth == 0:
            items.append(bracket[start:i])
            start = i + 1
    items.append(bracket[start:])
    return [s for s in items if s]


def without_steps(label: str) -> str:
    """A row label without its sampling ``steps=`` setting (in the last bracket, where the
    sampling settings are): ``ddpm[eta=0.0,sampler=ddim,steps=10]`` ->
    ``ddpm[eta=0.0,sampler=ddim]``, ``ddpm[steps=50]`` -> ``ddpm``."""
    head, brackets = _split_label(label)
    if not brackets:
        return label
    last = [s for s in _split_items(brackets[-1]) if not s.startswith("steps=")]
    brackets = brackets[:-1] + ([",".join(last)] if last else [])
    return head + "".join(f"[{b}]" for b in brackets)


def nfe_curves(table: pd.DataFrame, quality: str, nfe: str) -> dict[str, pd.DataFrame]:
    """Per line (a model and sampler: the row label without ``steps=``, see
    :func:`without_steps`), its points sorted by NFE (the column ``nfe``): columns ``model``
    (the row label), ``nfe``, ``mean`` and ``std`` of ``quality`` over seeds (std 0 for one
    seed). Rows without ``nfe`` or ``quality`` are left out; none when ``quality`` is ``nfe``
    itself (a primary metric of role ``nfe``)."""
    if quality not in table or nfe not in table or quality == nfe:
        return {}
    rows = table[(table[nfe] > 0) & table[quality].notna()]
    if rows.empty:
        return {}
    names = rows["model_name"] if "model_name" in rows else pd.Series("", index=rows.index)
    keys = rows.assign(_name=names, _line=[without_steps(m) for m in rows["model"]])
    keys = keys[["model", "_name", "_line"]].drop_duplicates("model")
    stats = _summary(rows, [nfe, quality]).merge(keys, on="model")
    curves = {}
    for (_, line), pts in stats.groupby(["_name", "_line"], sort=False):
        pts = pts.rename(columns={f"{nfe} mean": "nfe", f"{quality} mean": "mean",
                                  f"{quality} std": "std"})
        curves[line] = pts[["model", "nfe", "mean", "std"]].sort_values("nfe").reset_index(drop=True)
    return curves


def fid_vs_nfe(table: pd.DataFrame, path: str | Path, *, quality: str, nfe: str,
               higher_is_better: bool | None = False, title: str | None = None) -> Path | None:
    """``quality`` (FID, say) against network evaluations per sample (the column ``nfe``,
    log x): a line per model and sampler (:func:`nfe_curves`), mean ± std over seeds."""
    curves = nfe_curves(table, quality, nfe)
    if not curves:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 5), dpi=100)
    ax = fig.subplots()
    for line, pts in curves.items():
        ax.errorbar(pts["nfe"], pts["mean"], yerr=pts["std"], marker="o", ms=4, lw=1.2,
                    capsize=2, label=line)
    ax.set_xscale("log")
    ax.set_xlabel("network evaluations per sample (NFE, log scale)")
    better = {True: " (higher is better)", False: " (lower is better)"}.get(higher_is_better, "")
    ax.set_ylabel(quality + better)
    ax.set_title(title or f"{quality} against NFE", fontsize=10)
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(fontsize=7)
    return _save(fig, path)


# -- loss curves --------------------------------------------------------------------------

def read_loss_curves(jobs: pd.DataFrame, root: str | Path) -> dict[str, list[pd.DataFrame]]:
    """Per panel title, the ``losses.csv`` of each training (seed) of ``jobs``, read from
    ``root / run_dir``. A panel per row label; labels that share their trainings (sampling
    settings of one model) share one panel, titled by what their labels have in common.
    Labels without any ``losses.csv`` are left out."""
    root = Path(root)
    dirs: dict[str, list[str]] = {}  # label -> its run directories, in job order
    for model, run_dir in zip(jobs["model"], jobs["run_dir"]):
        if isinstance(run_dir, str) and (root / run_dir / "losses.csv").is_file():
            dirs.setdefault(model, [])
            if run_dir not in dirs[model]:
                dirs[model].append(run_dir)
    # Group labels connected by a shared training: each group is one panel.
    groups: list[tuple[list[str], list[str]]] = []
    for label, run_dirs in dirs.items():
        joined = [g for g in groups if set(g[1]) & set(run_dirs)]
        labels, merged = [label], list(run_dirs)
        for g in joined:
            groups.remove(g)
            labels = g[0] + labels
            merged = g[1] + [d for d in merged if d not in g[1]]
        groups.append((labels, merged))
    curves = {}
    for labels, run_dirs in groups:
        frames = [pd.read_csv(root / d / "losses.csv") for d in run_dirs]
        frames = [f for f in frames if "step" in f and len(f)]
        if frames:
            curves[_common_label(labels)] = frames
    return curves


def _common_label(labels: list[str]) -> str:
    """One label as is; several: their name with the settings they all share, and a count."""
    if len(labels) == 1:
        return labels[0]
    split = [_split_label(label) for label in labels]
    heads = {head for head, _ in split}
    if len(heads) != 1:
        return f"{labels[0]} (+{len(labels) - 1} rows)"
    shared = [s for s in _split_items(",".join(split[0][1]))
              if all(s in _split_items(",".join(b)) for _, b in split[1:])]
    return heads.pop() + (f"[{','.join(shared)}]" if shared else "") + f" ({len(labels)} rows)"


def loss_curves(curves: dict[str, list[pd.DataFrame]], path: str | Path, *,
                title: str | None = None) -> Path | None:
    """A panel per entry of ``curves`` (title -> one ``step,<loss>...`` table per seed): a
    colour per loss name (the same in every panel), a thin line per seed."""
    curves = {k: [f for f in v if "step" in f and len(f)] for k, v in curves.items()}
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return None
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(c for frames in curves.values() for f in frames
                               for c in f.columns if c != "step"))
    colours = {n: f"C{i % 10}" for i, n in enumerate(names)}
    cols = min(3, len(curves))
    rows = -(-len(curves) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows + 0.4), dpi=100)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (panel, frames) in zip(axes, curves.items()):
        drawn = []
        for frame in frames:
            for name in frame.columns:
                if name == "step":
                    continue
                ax.plot(frame["step"], frame[name], lw=0.8, alpha=0.75, color=colours[name],
                        label=None if name in drawn else name)
                drawn.append(name)
        values = np.concatenate([f.drop(columns="step").to_numpy(float).ravel() for f in frames])
        values = values[np.isfinite(values)]
        if len(values) and values.min() > 0 and values.max() / values.min() > 20:
            ax.set_yscale("log")
        ax.set_title(f"{panel} ({len(frames)} seed{'s' if len(frames) > 1 else ''})",
                     fontsize=8)
        ax.set_xlabel("step", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(True, lw=0.3, alpha=0.5)
        ax.legend(fontsize=6)
    for ax in axes[len(curves):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    return path


# -- everything for a store ---------------------------------------------------------------

def save_plots(boards: dict, store: ResultStore, directory: str | Path) -> list[Path]:
    """Per leaderboard (see :func:`genbench.results.boards.build_leaderboards`), write
    ``<directory>/<suite>/<dataset>-quality-speed.png``, ``<dataset>-fid-nfe.png`` (when some
    row measured NFE) and ``<dataset>-losses.png`` (when some training logged losses), from
    the board's jobs that finished ``ok``; the board's sort column is the quality axis
    (:func:`quality_column`), the keys of role ``sampling_speed`` and ``nfe`` the x axes (see
    :attr:`~genbench.KeyPresentation.role`), and the board's reference rows are left out.
    Returns the paths written."""
    values = store.metric_values()
    root = store.path.parent
    written = []
    for (suite_name, dataset), board in boards.items():
        djobs = board.jobs[board.jobs["status"] == "ok"]
        if djobs.empty:
            continue
        dvalues = values[values["job_id"].isin(djobs["id"])]
        table = metric_table(djobs, dvalues)
        table["reference"] = table["model"].map(board.rows.set_index("model")["reference"])
        presentations = {c.base: c.presentation for c in board.columns}
        axes = {role: next((c.base for c in board.columns if c.presentation.role == role), None)
                for role in _AXIS_ROLES}
        quality = quality_column(dvalues, board.primary, presentations)
        direction = next((c.higher_is_better for c in board.columns if c.base == quality), None)
        where = f"{dataset} (suite {suite_name})"
        if quality is not None and axes["sampling_speed"] is not None:
            written.append(quality_vs_speed(
                table, board_file(directory, suite_name, dataset, "-quality-speed.png"), quality=quality,
                higher_is_better=bool(direction), speed=axes["sampling_speed"],
                title=f"{where}: {quality} against speed"))
        if quality is not None and axes["nfe"] is not None:
            written.append(fid_vs_nfe(
                table, board_file(directory, suite_name, dataset, "-fid-nfe.png"), quality=quality,
                nfe=axes["nfe"], higher_is_better=direction,
                title=f"{where}: {quality} against NFE"))
        written.append(loss_curves(read_loss_curves(djobs, root),
                                   board_file(directory, suite_name, dataset, "-losses.png"),
                                   title=f"{where}: training losses"))
    return [p for p in written if p is not None]
