"""Leaderboards as text: Markdown, a terminal table, a tidy CSV and a booktabs LaTeX table.

Each cell reads ``mean ± ci`` (:func:`format_cell`), the best marked; a heading says what a
table shows and how it is ordered, a legend what ± means and how many samples each metric
used and, for columns that state it, what they measure (:func:`stated`: the likelihood of
a bound). :class:`~genbench.results.boards.Leaderboard`'s ``to_markdown``, ``to_text``,
``to_csv`` and ``to_latex`` call these; the output formats (registered through
``register_formats``) use them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from genbench.results.statistics import CONFIDENCE

if TYPE_CHECKING:
    from genbench.results.boards import Column, Leaderboard


def heading(board: Leaderboard) -> str:
    """What the table shows and how it is ordered, references included."""
    parts = [f"{board.dataset} — suite {board.suite}"]
    if board.primary:
        c = board.column(board.primary)
        way = {True: "higher is better", False: "lower is better"}.get(c.higher_is_better, "")
        parts.append(f"sorted by {board.primary}" + (f" ({way})" if way else ""))
    refs = board.rows.loc[board.rows["reference"], "model"].tolist()
    if refs:
        parts.append(f"reference rows ({', '.join(refs)}) first and unranked")
    return "; ".join(parts)


def legend(board: Leaderboard, columns: list[Column]) -> list[str]:
    """Footnotes: what ± means, the best marking, samples per column, single-seed rows."""
    level = f"{CONFIDENCE:.0%}"
    seeds = board.rows["n"].unique()
    if len(seeds) == 1 and int(seeds[0]) == 1:  # no interval to describe
        lines = ["one seed: values without an interval; the best value in bold"]
    else:
        over = f"{int(seeds[0])} seeds" if len(seeds) == 1 else "the seeds that finished (n)"
        lines = [f"mean ± half-width of the {level} Student-t interval over {over}; best "
                 "value and every value whose interval overlaps it in bold"]
    if (board.rows["n"] == 1).any() and not (len(seeds) == 1):
        lines.append("n = 1: a single seed, shown without an interval")
    samples = {}
    for c in columns:
        counts = board.cells.loc[board.cells["column"] == c.name, "n_samples"].dropna().unique()
        if len(counts):
            samples.setdefault(", ".join(f"{int(x):,}" for x in sorted(counts)), []).append(c.name)
    if samples:
        lines.append("samples per metric: " + "; ".join(
            f"{', '.join(cols)}: {count}" for count, cols in samples.items()))
    measures = stated(columns)
    if measures:
        lines.append(measures)
    return lines + board.notes


def stated(columns: list[Column]) -> str:
    """What the ``columns`` measure, per metric (their :attr:`~genbench.results.boards.Column.stated`
    keys): ``"elbo: likelihood bernoulli"``; where a metric's rows differ in one, that they
    sit in a column each and are ranked apart. Empty when no column states anything."""
    found: dict[tuple[str, str], list[str]] = {}
    for c in columns:
        for key, value in c.stated.items():
            kinds = found.setdefault((c.metric, key), [])
            if str(value) not in kinds:
                kinds.append(str(value))
    return "; ".join(
        f"{metric}: {key} {kinds[0]}" if len(kinds) == 1 else
        f"{metric}: a column per {key} ({' | '.join(kinds)}), each ranked on its own"
        for (metric, key), kinds in found.items())


def display(board: Leaderboard, columns: list[Column] | None = None, *, latex: bool = False,
            short: bool = False, marker: str | None = None,
            means_only: tuple[str, ...] = ()) -> pd.DataFrame:
    """The table as strings: ``mean ± ci`` per cell, the best marked (``**`` or
    ``\\mathbf``), an arrow on every scored column."""
    columns = board.headline_columns() if columns is None else columns
    text = _latex_escape if latex else str
    lookup = {(r["model"], r["column"]): r for _, r in board.cells.iterrows()}
    out = pd.DataFrame({"model": [text(m) for m in board.models]})
    if board.rows["n"].nunique() > 1:
        out["n"] = board.rows["n"].astype(int).tolist()
    if (board.rows["status"] != "ok").any():
        out["status"] = board.rows["status"].tolist()
    labels = [c.name for c in columns]
    if short:  # declared headers; two columns that would share one keep their names
        shorts = [(c.presentation.header or c.base) + c.name[len(c.base):] for c in columns]
        labels = [s if shorts.count(s) == 1 else c.name for s, c in zip(shorts, columns)]
    for c, label in zip(columns, labels):
        arrow = {True: r"$\uparrow$", False: r"$\downarrow$"}.get(c.higher_is_better, "") \
            if latex else c.arrow
        header = text(label) + (f" {arrow}" if arrow else "")
        cells = []
        for model in board.models:
            cell = lookup.get((model, c.name))
            cells.append("–" if cell is None else
                         format_cell(cell["mean"], math.nan if c.base in means_only else
                                     cell["ci"], bool(cell["best"]), latex=latex, marker=marker))
        out[header] = cells
    return out.reset_index(drop=True)


def to_markdown(board: Leaderboard, full: bool = False, metrics: list[str] | None = None) -> str:
    """A Markdown heading, table and notes: the headline columns, every column (``full``)
    or ``metrics``."""
    columns = board.select(full, metrics)
    body = display(board, columns, short=not full and not metrics).to_markdown(
        index=False, disable_numparse=True)
    notes = "".join(f"\n- {n}" for n in legend(board, columns))
    return f"### {heading(board)}\n\n{body}\n{notes}".rstrip() + "\n"


def to_text(board: Leaderboard, width: int = 120) -> str:
    """The main table for a terminal: plain columns, the best marked with ``*``, timings as
    means only (they vary with the machine's load), notes wrapped to ``width``."""
    import textwrap

    columns = board.select()
    timing = tuple(c.base for c in columns if c.presentation.mean_only)
    table = display(board, columns, short=True, marker="*", means_only=timing)
    body = table.to_markdown(index=False, disable_numparse=True, tablefmt="simple")
    lines = [line.replace("in bold", "marked *") for line in legend(board, columns)]
    if timing:
        lines.insert(1, f"{', '.join(timing)}: mean only; the files give the interval")
    notes = "".join("\n" + textwrap.fill(n, width, initial_indent="  ", subsequent_indent="    ")
                    for n in lines)
    return f"{textwrap.fill(heading(board), width)}\n\n{body}\n{notes}".rstrip() + "\n"


def to_csv(board: Leaderboard) -> str:
    """The tidy table: one line per (model, column) with every statistic."""
    return board.tidy().to_csv(index=False)


def to_latex(board: Leaderboard, full: bool = False, metrics: list[str] | None = None) -> str:
    """A booktabs ``tabular`` in a ``table`` float, with a caption naming the protocol."""
    columns = board.select(full, metrics)
    table = display(board, columns, latex=True, short=not full and not metrics)
    spec = "l" + "r" * (len(table.columns) - 1)
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(table.columns) + r" \\", r"\midrule"]
    refs = int(board.rows["reference"].sum())
    for i, row in enumerate(table.itertuples(index=False)):
        lines.append(" & ".join(str(v).replace("–", "--") for v in row) + r" \\")
        if refs and i == refs - 1 and len(table) > refs:
            lines.append(r"\midrule")
    lines += [r"\bottomrule", r"\end{tabular}",
              rf"\caption{{{_latex_escape(caption(board, columns))}}}",
              rf"\label{{tab:{_label(board.suite)}-{_label(board.dataset)}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def caption(board: Leaderboard, columns: list[Column] | None = None) -> str:
    """One sentence of provenance for a paper's caption of a table of ``columns`` (else
    every column): what they measure (:func:`stated`), features, versions, spec."""
    p = board.provenance
    parts = [heading(board) + "."]
    parts.append(f"Mean ± {CONFIDENCE:.0%} t-interval over seeds; best and overlapping in bold.")
    measures = stated(board.columns if columns is None else columns)
    if measures:
        parts.append(measures + ".")
    if p.get("extractors"):
        parts.append("Features: " + ", ".join(f"{k} (sha256 {v[:12]})" if v else k
                                              for k, v in p["extractors"].items()) + ".")
    v = p.get("versions") or {}
    if v:
        parts.append(f"genbench {v.get('genbench', '?')}, torch {v.get('torch', '?')}, "
                     f"torch-fidelity {v.get('torch-fidelity', '?')}.")
    if p.get("spec_hashes"):
        parts.append(f"Spec {', '.join(p['spec_hashes'])}; device {', '.join(p.get('devices', []))}.")
    return " ".join(parts)


# -- formatting ------------------------------------------------------------------------------

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}",
                  "±": r"$\pm$", "–": "--", "—": "---", "↑": r"$\uparrow$", "↓": r"$\downarrow$"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in str(text))


def _label(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in str(text))


def format_cell(mean: float, ci: float, best: bool = False, *, latex: bool = False,
                marker: str | None = None) -> str:
    """``mean ± ci`` (see :func:`_fmt`), or the mean alone without an interval; when ``best``,
    bold (Markdown or LaTeX) or followed by ``marker``."""
    text = _fmt(mean, ci)
    if text == "–":
        return "--" if latex else text
    if marker is not None:
        return text + (marker if best else " " * len(marker))
    if latex:
        inner = text.replace(" ± ", r" \pm ")
        return rf"$\mathbf{{{inner}}}$" if best else f"${inner}$"
    return f"**{text}**" if best else text


def _fmt(mean: float, spread: float) -> str:
    """``mean ± spread``: the spread to two significant digits when its first digit is 1 or 2,
    else one (the Particle Data Group's convention), the mean to the same decimal place;
    thousands and millions as ``k`` / ``M``, tiny values with a shared exponent."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if spread is None or math.isnan(spread) or math.isinf(mean) or math.isinf(spread):
        return _num(mean)
    if spread == 0:
        return f"{_num(mean)} ± 0"
    big = max(abs(mean), spread)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if big >= max(scale, 1e4):
            m, sp = _pm(mean / scale, spread / scale)
            return f"{m}{suffix} ± {sp}{suffix}"
    if big < 1e-3:
        exponent = math.floor(math.log10(big))
        m, sp = _pm(mean / 10 ** exponent, spread / 10 ** exponent)
        return f"({m} ± {sp})e{exponent}"
    return " ± ".join(_pm(mean, spread))


def _pm(mean: float, spread: float) -> tuple[str, str]:
    """``mean`` and ``spread`` as strings rounded to the spread's significant digits."""
    digits = 2 if f"{spread:e}"[0] in "12" else 1
    decimals = digits - 1 - math.floor(math.log10(spread))
    rounded = round(spread, decimals)
    if rounded and math.floor(math.log10(rounded)) > math.floor(math.log10(spread)):
        decimals -= 1  # 0.96 -> 1.0: one digit fewer after the point
    decimals = max(decimals, 0)
    return f"{mean:.{decimals}f}", f"{spread:.{decimals}f}"


def _num(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if float(x).is_integer() and abs(x) < 1e12:  # counts: parameters, NFE
        return f"{int(x)}"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= max(scale, 1e4):
            return f"{x / scale:.3g}{suffix}"
    if x != 0 and abs(x) < 1e-3:
        return f"{x:.3e}"
    return f"{x:.4g}"
