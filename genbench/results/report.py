"""The HTML report: one self-contained page of leaderboards.

Per (suite, dataset) board: its heading, a table of every column (a checkbox hides all but
the headline ones), each cell ``mean ± ci`` with a tooltip of its statistics and the best
cells highlighted, each row's samples thumbnail, the legend, the provenance and the figures.
Clicking a column header sorts the models by it (reference rows stay on top).

Nothing is fetched when the page is opened: CSS and JS are inline and every image is a
``data:`` URI, so the file can be mailed, archived or opened offline. Every string from the
store (model labels, notes, descriptions) is escaped by jinja2's autoescape. The page holds
no timestamp: the same store gives the same bytes.
"""

from __future__ import annotations

import base64
import math
import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from genbench.plan.jobs import board_file, evaluation_dirname, safe_dirname
from genbench.api.paths import atomic_write

if TYPE_CHECKING:
    from genbench.results.boards import Column, Leaderboard
    from genbench.results.store import ResultStore

Boards = Mapping[tuple[str, str], "Leaderboard"]

#: The per-dataset figures looked for beside the leaderboard files, with their captions.
FIGURES = {
    "samples": "Samples of each model (its lowest finished seed)",
    "quality-speed": "Quality against sampling speed",
    "fid-nfe": "FID against the number of function evaluations",
    "losses": "Training losses",
}

#: Height in CSS pixels of a row's samples thumbnail.
THUMBNAIL_PX = 64


def find_figures(boards: Boards, directory: str | Path) -> dict[tuple[str, str], list[Path]]:
    """Per board, the :data:`FIGURES` that exist as ``<directory>/<suite>/<dataset>-<name>.png``."""
    found = {}
    for key, board in boards.items():
        found[key] = [p for name in FIGURES
                      if (p := board_file(directory, board.suite, board.dataset, f"-{name}.png")).is_file()]
    return found


def render_report(boards: Boards, store: ResultStore, *, title: str | None = None,
                  plots: Mapping[tuple[str, str], Sequence[str | Path]] | None = None) -> str:
    """The page (HTML5, self-contained) for ``boards`` from :func:`build_leaderboards`.

    ``plots`` maps a board's key to the images shown under its table, in order (a missing
    file raises ``FileNotFoundError``; keys without a board are ignored); by default the
    :data:`FIGURES` found beside the leaderboard files, ``<store folder>/leaderboards``.
    """
    import jinja2

    if plots is None:
        plots = find_figures(boards, store.path.parent / "leaderboards")
    suites: dict[str, list[dict[str, Any]]] = {}
    for i, (key, board) in enumerate(boards.items()):
        view = _board_view(board, store, f"board-{i}-{safe_dirname(board.dataset)}")
        view["figures"] = [_figure(Path(p)) for p in plots.get(key, ())]
        suites.setdefault(board.suite, []).append(view)
    if title is None:
        title = ("genbench leaderboards — suite " + ", ".join(suites) if suites
                 else "genbench leaderboards")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    return env.from_string(_TEMPLATE).render(title=title, suites=suites, n_boards=len(boards),
                                             thumb_px=THUMBNAIL_PX, css=_CSS, js=_JS)


def write_report(boards: Boards, store: ResultStore, path: str | Path, *,
                 plots: Mapping[tuple[str, str], Sequence[str | Path]] | None = None) -> Path:
    """Write :func:`render_report` to ``path`` atomically; returns the path."""
    path = Path(path)
    text = render_report(boards, store, plots=plots)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path


def write_reports(boards: Boards, store: ResultStore, directory: str | Path) -> list[Path]:
    """One page per suite, ``<directory>/<suite>/index.html``, showing the :data:`FIGURES`
    found beside the boards' files in ``directory``; returns the paths."""
    suites: dict[str, dict] = {}
    for key, board in boards.items():
        suites.setdefault(board.suite, {})[key] = board
    return [write_report(mine, store, Path(directory) / safe_dirname(suite) / "index.html",
                         plots=find_figures(mine, directory)) for suite, mine in suites.items()]


# -- views: what the template shows, as plain values ------------------------------------------

def _board_view(board: Leaderboard, store: ResultStore, anchor: str) -> dict[str, Any]:
    columns = board.select(full=True)
    headline = {c.name for c in board.headline_columns()}
    thumbs = _thumbnails(board, store)
    rows = []
    for r in board.rows.itertuples(index=False):
        rows.append({"model": r.model, "family": r.family, "reference": bool(r.reference),
                     "n": int(r.n), "status": r.status, "thumbnail": thumbs.get(r.model),
                     "cells": [_cell_view(board, r.model, c, c.name in headline)
                               for c in columns]})
    return {
        "anchor": anchor, "dataset": board.dataset, "heading": board.heading(),
        "columns": [_column_view(c, c.name in headline) for c in columns],
        "toggle": 0 < len(headline) < len(columns),
        "references": [r for r in rows if r["reference"]],
        "models": [r for r in rows if not r["reference"]],
        "legend": board.legend(columns), "caption": board.caption(),
        "provenance": _provenance_view(board.provenance),
    }


def _column_view(c: Column, headline: bool) -> dict[str, Any]:
    way = {True: "higher is better", False: "lower is better"}.get(c.higher_is_better,
                                                                   "no better direction")
    tip = [c.name, c.description, way]
    if c.protocol:
        tip.append("; ".join(f"{k}: {v}" for k, v in c.protocol.items()))
    return {"metric": c.metric, "key": c.key, "detail": c.name[len(c.base):].strip(),
            "arrow": c.arrow, "title": " — ".join(t for t in tip if t), "headline": headline,
            # the first click puts the best first; unscored columns ascend
            "first": "desc" if c.higher_is_better else "asc"}


def _cell_view(board: Leaderboard, model: str, c: Column, headline: bool) -> dict[str, Any]:
    from genbench.results.rendering import format_cell
    from genbench.results.statistics import CONFIDENCE

    extra = [] if headline else ["extra"]
    cell = board.cell(model, c.name)
    if cell is None or _nan(cell["mean"]):
        return {"text": "–", "value": "", "title": "no value",
                "class": " ".join(["empty"] + extra)}
    mean, n = float(cell["mean"]), int(cell["n"])
    tip = [f"mean {mean:.6g}"]
    if n > 1:
        tip += [f"std {float(cell['std']):.4g}",
                f"{CONFIDENCE:.0%} interval [{float(cell['ci_low']):.6g}, "
                f"{float(cell['ci_high']):.6g}]"]
    tip.append(f"{n} seed" + ("s" if n != 1 else " (no interval)"))
    if not _nan(cell["n_samples"]):
        tip.append(f"{int(cell['n_samples']):,} samples")
    if not _nan(cell["rank"]):
        tip.append(f"rank {int(cell['rank'])}")
    text = format_cell(mean, float(cell["ci"]), False)
    best = ["best"] if bool(cell["best"]) else []
    return {"text": text, "value": _js_number(mean), "title": ", ".join(tip),
            "class": " ".join(best + extra)}


def _provenance_view(p: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    versions = p.get("versions") or {}
    items = [("spec", list(p.get("spec_hashes") or [])),
             ("versions", [f"{k} {v}" for k, v in versions.items()]),
             ("device", list(p.get("devices") or [])),
             ("extractors", [f"{k} (weights sha256 {v})" if v else k
                             for k, v in (p.get("extractors") or {}).items()])]
    return [(name, values) for name, values in items if values]


def _thumbnails(board: Leaderboard, store: ResultStore) -> dict[str, str]:
    """Per model, its lowest finished seed's ``samples.png`` as a data URI, where it exists."""
    jobs = board.jobs
    if jobs.empty or "run_dir" not in jobs:
        return {}
    ok = jobs[(jobs["status"] == "ok") & jobs["run_dir"].notna()].sort_values("seed", kind="stable")
    out = {}
    for model, rows in ok.groupby("model", sort=False):
        row = rows.iloc[0]
        path = (store.path.parent / row["run_dir"] / evaluation_dirname(row["fingerprint"])
                / "samples.png")
        if path.is_file():
            out[model] = _data_uri(path)
    return out


def _figure(path: Path) -> dict[str, str]:
    name = path.stem
    caption = next((text for key, text in FIGURES.items() if name.endswith(f"-{key}")), name)
    return {"src": _data_uri(path), "caption": caption, "name": path.name}


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _js_number(x: float) -> str:
    """``x`` as JavaScript's ``parseFloat`` reads it."""
    return "Infinity" if x == math.inf else "-Infinity" if x == -math.inf else repr(x)


# -- the page ----------------------------------------------------------------------------------

_CSS = """
:root { --ref: #f3f0e6; --best: #dff3e4; --line: #d0d4da; --muted: #5f6b7a; }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2430;
       margin: 0 auto; padding: 1rem 1.5rem 3rem; max-width: 1800px; }
h1 { font-size: 1.5rem; margin: .2rem 0 .8rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 .5rem; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1.6rem 0 .3rem; }
nav ul { margin: 0; padding-left: 1.2rem; }
.heading { color: var(--muted); margin: 0 0 .5rem; }
.wrap { overflow-x: auto; max-width: 100%; }
table.board { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
table.board th, table.board td { padding: 2px 6px; border-bottom: 1px solid var(--line);
                                 white-space: nowrap; text-align: right; vertical-align: middle; }
table.board th { background: #fff; vertical-align: bottom; white-space: normal;
                 min-width: 4.5em; max-width: 12em; overflow-wrap: anywhere; }
table.board th[data-sort] { cursor: pointer; user-select: none; }
table.board th[data-sort]:hover { background: #eef2f7; }
table.board th[aria-sort=ascending]::after { content: " ▴"; }
table.board th[aria-sort=descending]::after { content: " ▾"; }
table.board th small { display: block; font-weight: normal; color: var(--muted); }
table.board .model { text-align: left; white-space: normal; max-width: 22em;
                     overflow-wrap: anywhere; }
table.board td.best { background: var(--best); font-weight: 600; }
table.board td.empty { color: var(--muted); text-align: center; }
table.board tr.reference td { background: var(--ref); }
table.board tbody.references tr:last-child td { border-bottom: 2px solid #9aa3ad; }
.tag { display: inline-block; font-size: 11px; padding: 0 4px; margin-left: 4px;
       border-radius: 3px; background: #e2dcc8; color: #4a4330; }
.tag.status { background: #f6dada; color: #7a1f1f; }
td.thumb { padding: 1px 4px; text-align: center; }
td.thumb img { display: block; height: var(--thumb); width: auto; max-width: 160px;
               image-rendering: pixelated; transition: transform .1s;
               transform-origin: left center; }
td.thumb img:hover { transform: scale(4); position: relative; z-index: 2;
                     box-shadow: 0 2px 10px rgba(0,0,0,.35); }
.headline-toggle:checked ~ .wrap .extra { display: none; }
label.toggle { font-size: 12px; color: var(--muted); }
.legend { font-size: 12px; color: var(--muted); margin: .4rem 0; padding-left: 1.2rem; }
dl.provenance { display: grid; grid-template-columns: max-content 1fr; gap: 0 1rem;
                font-size: 12px; margin: .4rem 0; }
dl.provenance dt { color: var(--muted); }
dl.provenance dd { margin: 0; overflow-wrap: anywhere; font-family: ui-monospace, monospace; }
details { font-size: 12px; margin: .3rem 0; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; margin-top: .6rem; }
figure { margin: 0; max-width: 100%; }
figure img { max-width: 100%; max-height: 520px; height: auto; border: 1px solid var(--line); }
figcaption { font-size: 12px; color: var(--muted); }
"""

# Sorts the models (not the reference rows) by the clicked column's data-value: numbers as
# numbers, empty cells last either way; the first click follows data-first, the next reverses.
_JS = """
(function () {
  function sortBy(table, th) {
    var i = th.cellIndex, numeric = th.dataset.sort === "number";
    var asc = th.dataset.dir ? th.dataset.dir !== "asc" : th.dataset.first !== "desc";
    table.querySelectorAll("th[data-sort]").forEach(function (h) {
      delete h.dataset.dir; h.removeAttribute("aria-sort");
    });
    th.dataset.dir = asc ? "asc" : "desc";
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var body = table.querySelector("tbody.models");
    if (!body) return;
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[i].dataset.value || "", y = b.cells[i].dataset.value || "";
      if (x === "" || y === "") return (x === "") - (y === "");
      var d = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      return asc ? d : -d;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table.board").forEach(function (table) {
    table.querySelectorAll("th[data-sort]").forEach(function (th) {
      th.addEventListener("click", function () { sortBy(table, th); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(table, th); }
      });
    });
  });
})();
"""

_TEMPLATE = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="genbench">
<title>{{ title }}</title>
<style>{{ css | safe }}</style>
</head>
<body>
<h1>{{ title }}</h1>
{% if not suites %}
<p>No leaderboards: no jobs are stored yet.</p>
{% endif %}
{% if n_boards > 1 %}
<nav><ul>
{% for suite, views in suites.items() %}
{% for b in views %}
  <li><a href="#{{ b.anchor }}">{{ suite }} / {{ b.dataset }}</a></li>
{% endfor %}
{% endfor %}
</ul></nav>
{% endif %}
{% for suite, views in suites.items() %}
<section class="suite">
<h2>Suite {{ suite }}</h2>
{% for b in views %}
<section class="dataset" id="{{ b.anchor }}">
<h3>{{ b.dataset }}</h3>
<p class="heading">{{ b.heading }}</p>
{% if b.toggle %}
<input type="checkbox" class="headline-toggle" id="{{ b.anchor }}-headline">
<label class="toggle" for="{{ b.anchor }}-headline">headline columns only</label>
{% endif %}
<div class="wrap">
<table class="board" style="--thumb: {{ thumb_px }}px">
<thead><tr>
  <th class="thumb" title="samples of the lowest finished seed; hover to enlarge">samples</th>
  <th class="model" data-sort="text" data-first="asc" tabindex="0"
      title="model (each configuration is its own row)">model</th>
  <th data-sort="number" data-first="desc" tabindex="0" title="seeds that finished">n</th>
{% for c in b.columns %}
  <th data-sort="number" data-first="{{ c.first }}" tabindex="0" title="{{ c.title }}"
      {%- if not c.headline %} class="extra"{% endif %}>{{ c.metric }}.<wbr>{{ c.key }}
      {%- if c.arrow %} {{ c.arrow }}{% endif %}
      {%- if c.detail %}<small>{{ c.detail }}</small>{% endif %}</th>
{% endfor %}
</tr></thead>
{% for group, rows in [("references", b.references), ("models", b.models)] %}
{% if rows or group == "models" %}
<tbody class="{{ group }}">
{% for r in rows %}
<tr class="{{ 'reference' if r.reference else 'entry' }}" data-model="{{ r.model }}">
  <td class="thumb">
    {%- if r.thumbnail %}<img src="{{ r.thumbnail }}" alt="samples of {{ r.model }}">{% endif -%}
  </td>
  <td class="model" data-value="{{ r.model }}" title="family {{ r.family }}">{{ r.model }}
    {%- if r.reference %}<span class="tag">reference</span>{% endif %}
    {%- if r.status != "ok" %}<span class="tag status">{{ r.status }}</span>{% endif -%}
  </td>
  <td data-value="{{ r.n }}">{{ r.n }}</td>
{% for cell in r.cells %}
  <td data-value="{{ cell.value }}" title="{{ cell.title }}"
      {%- if cell.class %} class="{{ cell.class }}"{% endif %}>{{ cell.text }}</td>
{% endfor %}
</tr>
{% endfor %}
</tbody>
{% endif %}
{% endfor %}
</table>
</div>
<ul class="legend">
{% for line in b.legend %}
  <li>{{ line }}</li>
{% endfor %}
  <li>{% if b.references %}reference rows (shaded) stay on top, unranked; {% endif -%}
    click a column header to sort the models by it, again to reverse</li>
</ul>
{% if b.provenance %}
<dl class="provenance">
{% for name, values in b.provenance %}
  <dt>{{ name }}</dt><dd>{{ values | join(", ") }}</dd>
{% endfor %}
</dl>
{% endif %}
<details><summary>caption</summary><p>{{ b.caption }}</p></details>
{% if b.figures %}
<div class="figures">
{% for f in b.figures %}
<figure><img src="{{ f.src }}" alt="{{ f.caption }}">
  <figcaption>{{ f.caption }} ({{ f.name }})</figcaption></figure>
{% endfor %}
</div>
{% endif %}
</section>
{% endfor %}
</section>
{% endfor %}
<script>{{ js | safe }}</script>
</body>
</html>
"""
