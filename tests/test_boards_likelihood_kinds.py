"""Likelihoods of different kinds (issue 27): a Bernoulli cross-entropy on [0, 1] pixels and a
Gaussian density never share a board column, so neither is ranked against the other, and
every output says which likelihood a column measured. Boards without one are unchanged."""

import io

import pandas as pd
import pytest

from genbench.results.boards import build_leaderboards
from genbench.results.records import JobRecord, MetricRecord
from genbench.results.rendering import format_cell
from genbench.results.report import render_report
from genbench.results.store import ResultStore

KEY = "elbo.neg_elbo_nats_per_dim"
#: model -> (likelihood, one negative ELBO per seed). Pooled, the Gaussian rows would rank
#: 1 and 2 and take the only best mark; per kind, bern-a and gauss-a are each best.
MIXED = {"bern-a": ("bernoulli", [0.40, 0.41]), "bern-b": ("bernoulli", [0.60, 0.61]),
         "gauss-a": ("gaussian", [-1.20, -1.19]), "gauss-b": ("gaussian", [-0.90, -0.89])}


def job(model, seed, value, kind, fid=None):
    details = {"n_samples": 100} | ({"likelihood": kind} if kind else {})
    metrics = [MetricRecord("elbo", "ok", {"neg_elbo_nats_per_dim": value},
                            higher_is_better={"neg_elbo_nats_per_dim": False},
                            primary="neg_elbo_nats_per_dim", details=details)]
    if fid is not None:
        metrics.insert(0, MetricRecord("fid", "ok", {"fid": fid}, higher_is_better={"fid": False},
                                       primary="fid"))
    return JobRecord(fingerprint=f"{model}{seed}", config_fingerprint=model,
                     job_key=f"digits/{model}/seed{seed}", suite="s", dataset="digits",
                     dataset_name="digits", model=model, model_name=model, model_family="vae",
                     seed=seed, status="ok", provenance={}, metrics=metrics)


def board_of(path, rows, kind_of=lambda kind: kind, fid=False):
    store = ResultStore(path)
    for i, (model, (kind, values)) in enumerate(rows.items()):
        for seed, v in enumerate(values):
            store.write(job(model, seed, v, kind_of(kind), fid=10.0 + i + seed if fid else None))
    return store, build_leaderboards(store)[("s", "digits")]


def test_each_likelihood_gets_its_own_column_ranked_and_marked_on_its_own(tmp_path):
    _, board = board_of(tmp_path / "r.db", MIXED)
    columns = {kind: f"{KEY} [likelihood {kind}]" for kind in ("bernoulli", "gaussian")}
    assert board.metric_columns == list(columns.values())
    for kind, name in columns.items():
        assert board.column(name).protocol["likelihood"] == kind
        mine = [m for m, (k, _) in MIXED.items() if k == kind]
        # a column holds its own kind's rows and nothing else
        assert {m for m in board.models if board.cell(m, name) is not None} == set(mine)
        # ranks within the kind: by mean, lower is better (means computed here)
        order = sorted(mine, key=lambda m: sum(MIXED[m][1]) / 2)
        assert [board.value(m, name, "rank") for m in order] == [1.0, 2.0]
    best = {m for m in board.models if any(board.cell(m, c) is not None and
                                           bool(board.cell(m, c)["best"]) for c in columns.values())}
    assert best == {"bern-a", "gauss-a"}


def test_every_format_names_the_likelihood_and_that_ranks_are_per_kind(tmp_path):
    store, board = board_of(tmp_path / "r.db", MIXED)
    note = "elbo: a column per likelihood (bernoulli | gaussian), each ranked on its own"
    cell = board.cell("bern-a", f"{KEY} [likelihood bernoulli]")
    md = board.to_markdown(full=True)
    assert f"{KEY} [likelihood bernoulli] ↓" in md and f"{KEY} [likelihood gaussian] ↓" in md
    assert f"**{format_cell(cell['mean'], cell['ci'])}**" in md
    assert f"\n- {note}\n" in md
    # the terminal's main table shows the sort column alone: its legend names that kind
    text = board.to_text()
    assert "elbo: likelihood bernoulli" in text and "gaussian" not in text
    tex = board.to_latex(full=True)
    assert (r"elbo.neg\_elbo\_nats\_per\_dim [likelihood bernoulli] $\downarrow$ & "
            r"elbo.neg\_elbo\_nats\_per\_dim [likelihood gaussian] $\downarrow$ \\") in tex
    assert f"{note}.}}" in tex
    page = render_report({("s", "digits"): board}, store, plots={})
    assert "<small>[likelihood bernoulli]</small>" in page
    assert "<small>[likelihood gaussian]</small>" in page
    assert f"<li>{note}</li>" in page and page.count('class="best') == 2
    tidy = pd.read_csv(io.StringIO(board.to_csv()))
    kinds = dict(zip(tidy["model"], tidy["protocol"]))
    assert kinds == {m: f"n_samples=100, likelihood={k}" for m, (k, _) in MIXED.items()}
    assert dict(zip(tidy["model"], tidy["rank"])) == {"bern-a": 1, "bern-b": 2,
                                                      "gauss-a": 1, "gauss-b": 2}


def test_one_likelihood_keeps_the_column_and_states_it_once(tmp_path):
    rows = {m: ("bernoulli", v) for m, (_, v) in MIXED.items()}
    store_one, one = board_of(tmp_path / "one.db", rows, fid=True)
    store_none, none = board_of(tmp_path / "none.db", rows, kind_of=lambda kind: None, fid=True)
    assert one.metric_columns == none.metric_columns == ["fid.fid", KEY]
    pd.testing.assert_frame_equal(one.cells, none.cells)  # ranks and best over every row
    note = "elbo: likelihood bernoulli"
    md = one.to_markdown(full=True)
    assert f"\n- {note}\n" in md
    assert md.replace(f"\n- {note}", "") == none.to_markdown(full=True)
    assert one.to_text() == none.to_text()  # the headline table has no elbo column
    tex = none.to_latex(full=True)
    assert one.to_latex(full=True) == tex.replace("in bold.}", f"in bold. {note}.}}")
    assert one.to_latex(metrics=["fid"]) == none.to_latex(metrics=["fid"])
    tidy_one, tidy_none = one.tidy(), none.tidy()
    elbo = tidy_one["metric"] == "elbo"
    assert (tidy_one.loc[elbo, "protocol"] == "n_samples=100, likelihood=bernoulli").all()
    assert (tidy_none.loc[elbo, "protocol"] == "n_samples=100").all()
    pd.testing.assert_frame_equal(tidy_one.drop(columns="protocol"),
                                  tidy_none.drop(columns="protocol"))
    page = render_report({("s", "digits"): one}, store_one, plots={})
    assert f"<li>{note}</li>" in page and f"in bold. {note}.</p>" in page
    assert "n_samples: 100; likelihood: bernoulli" in page


#: A board without a likelihood, as every output rendered it before likelihoods were stated
#: (checked byte for byte against the code before the change).
NO_KIND_MD = """\
### digits — suite s; sorted by elbo.neg_elbo_nats_per_dim (lower is better)

| model   | elbo.neg_elbo_nats_per_dim ↓   |
|:--------|:-------------------------------|
| a       | **0.41 ± 0.06**                |
| b       | 0.60 ± 0.06                    |

- mean ± half-width of the 95% Student-t interval over 2 seeds; best value and every value whose interval overlaps it in bold
- samples per metric: elbo.neg_elbo_nats_per_dim: 100
"""
NO_KIND_TEX = r"""\begin{table}[t]
\centering
\small
\begin{tabular}{lr}
\toprule
model & elbo.neg\_elbo\_nats\_per\_dim $\downarrow$ \\
\midrule
a & $\mathbf{0.41 \pm 0.06}$ \\
b & $0.60 \pm 0.06$ \\
\bottomrule
\end{tabular}
\caption{digits --- suite s; sorted by elbo.neg\_elbo\_nats\_per\_dim (lower is better). Mean $\pm$ 95\% t-interval over seeds; best and overlapping in bold.}
\label{tab:s-digits}
\end{table}
"""


@pytest.mark.parametrize("fmt, expected", [("md", NO_KIND_MD), ("tex", NO_KIND_TEX)])
def test_a_board_without_a_likelihood_renders_as_before(tmp_path, fmt, expected):
    rows = {"a": (None, [0.40, 0.41]), "b": (None, [0.60, 0.61])}
    _, board = board_of(tmp_path / "r.db", rows)
    assert "likelihood" not in board.column(KEY).protocol
    text = board.to_markdown(full=True) if fmt == "md" else board.to_latex(full=True)
    assert text == expected
