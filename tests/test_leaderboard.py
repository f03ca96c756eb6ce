"""Leaderboards from a store filled by hand: statistics, ranks, columns, sorting, exports."""

import math
import statistics

import pytest

from genbench.results.boards import build_leaderboards
from genbench.results.publish import write_formats
from genbench.results.records import JobRecord, MetricRecord
from genbench.results.store import ResultStore


def job(model, seed, mse, fid, family="vae", status="ok", dataset="digits"):
    metrics = [] if status != "ok" else [
        MetricRecord("recon", "ok", {"mse": mse}, higher_is_better={"mse": False}, primary="mse"),
        MetricRecord("fid", "ok", {"fid": fid}, higher_is_better={"fid": False}, primary="fid"),
    ]
    return JobRecord(fingerprint=f"{dataset}{model}{seed}", config_fingerprint=f"{dataset}{model}",
                     job_key=f"{dataset}/{model}/seed{seed}",
                     suite="s", dataset=dataset, dataset_name=dataset, model=model, model_name=model,
                     model_family=family, seed=seed, status=status, provenance={"seed": seed},
                     metrics=metrics)


@pytest.fixture
def store(tmp_path):
    s = ResultStore(tmp_path / "results.db")
    for seed, (m, f) in enumerate([(0.04, 30.0), (0.05, 34.0), (0.06, 29.0)]):
        s.write(job("vae", seed, m, f))
    for seed, (m, f) in enumerate([(0.02, 50.0), (0.03, 52.0)]):
        s.write(job("ae", seed, m, f, family="autoencoder"))
    s.write(job("train-data", 0, float("nan"), 1.0, family="reference"))
    s.write(job("gan", 0, None, None, family="gan", status="diverged"))
    s.write(job("ae", 0, 0.5, 1.0, dataset="ring8"))
    return s


def test_mean_std_interval_over_seeds_and_sorting(store):
    boards = build_leaderboards(store)
    assert list(boards) == [("s", "digits"), ("s", "ring8")]
    board = boards[("s", "digits")]
    vae = [0.04, 0.05, 0.06]
    assert board.value("vae", "recon.mse", "n") == 3
    assert board.value("vae", "recon.mse") == pytest.approx(statistics.mean(vae))
    assert board.value("vae", "recon.mse", "std") == pytest.approx(statistics.stdev(vae))
    # 95% Student-t half-width: t(0.975, 2) = 4.302652729911275 (tables), / sqrt(3)
    assert board.value("vae", "recon.mse", "ci") == pytest.approx(
        4.302652729911275 * statistics.stdev(vae) / 3 ** 0.5)
    assert board.value("ae", "fid.fid", "ci") == pytest.approx(12.706204736174707 * statistics.stdev([50.0, 52.0]) / 2 ** 0.5)
    # one seed: no interval is invented
    assert math.isnan(board.value("train-data", "fid.fid", "ci"))
    # the first metric's primary key sorts; the reference row stays on top; diverged last
    assert board.primary == "recon.mse"
    assert board.models == ["train-data", "ae", "vae", "gan"]
    rows = board.rows.set_index("model")
    assert rows.loc["gan", "status"] == "1 diverged" and rows.loc["gan", "n"] == 0
    assert bool(rows.loc["train-data", "reference"]) and not rows.loc["vae", "reference"]
    by_fid = build_leaderboards(store, primary="fid.fid")[("s", "digits")]
    assert by_fid.models == ["train-data", "vae", "ae", "gan"]
    assert "reference rows (train-data) first and unranked" in by_fid.heading()
    assert "sorted by fid.fid (lower is better)" in by_fid.heading()


def test_ranks_follow_each_metrics_direction_and_references_are_unranked(store):
    board = build_leaderboards(store)[("s", "digits")]
    # recon.mse: lower is better -> ae (0.025) ranks 1; fid.fid: lower is better -> vae (31)
    assert board.value("ae", "recon.mse", "rank") == 1 and board.value("vae", "recon.mse", "rank") == 2
    assert board.value("vae", "fid.fid", "rank") == 1 and board.value("ae", "fid.fid", "rank") == 2
    assert math.isnan(board.value("train-data", "fid.fid", "rank"))  # best FID, but a reference
    s = ResultStore(store.path.parent / "up.db")
    for seed, v in enumerate([0.9, 0.8]):
        s.write(scored("a", seed, {"precision": v}, higher=True))
    for seed, v in enumerate([0.5, 0.6]):
        s.write(scored("b", seed, {"precision": v}, higher=True))
    up = build_leaderboards(s)[("s", "digits")]
    assert up.value("a", "prc.precision", "rank") == 1 and up.models == ["a", "b"]


def scored(model, seed, values, higher=False, details=None, metric="prc", family="gan"):
    rec = MetricRecord(metric, "ok", values, higher_is_better={k: higher for k in values},
                       primary=next(iter(values)), details=details or {})
    return JobRecord(fingerprint=f"{model}{seed}{metric}{sorted((details or {}).items())}",
                     config_fingerprint=model, job_key=f"digits/{model}/seed{seed}", suite="s",
                     dataset="digits", dataset_name="digits", model=model, model_name=model,
                     model_family=family, seed=seed, status="ok", provenance={}, metrics=[rec])


def test_best_value_and_every_overlapping_interval_are_marked(tmp_path):
    s = ResultStore(tmp_path / "r.db")
    data = {"good": [1.0, 1.1, 0.9], "close": [1.3, 1.2, 1.1], "far": [5.0, 5.1, 4.9],
            "single": [1.05]}
    for model, vals in data.items():
        for seed, v in enumerate(vals):
            s.write(scored(model, seed, {"fid": v}, metric="fid"))
    board = build_leaderboards(s)[("s", "digits")]
    best = dict(zip(board.cells["model"], board.cells["best"]))
    # good: [0.75, 1.25]; close: 1.2 +- 0.25 overlaps; far does not; single (1.05) lies inside
    assert best == {"good": True, "close": True, "far": False, "single": True}
    md = board.to_markdown()
    assert "**1.00 ± 0.25**" in md and "**1.20 ± 0.25**" in md and "5.00 ± 0.25" in md
    assert "**5.00" not in md and "**1.05**" in md and "n = 1: a single seed" in md


def test_rows_from_different_extractors_or_sample_counts_never_share_a_column(tmp_path):
    s = ResultStore(tmp_path / "r.db")
    inception = {"feature_extractor": "inception-v3-compat", "n_generated": 1000, "n_reference": 360}
    dino = {**inception, "feature_extractor": "dinov2-vitb14"}
    fewer = {**inception, "n_generated": 500}
    for seed in (0, 1):
        s.write(scored("a", seed, {"fid": 3.0 + seed}, metric="fid", details=inception))
        s.write(scored("b", seed, {"fid": 1.0 + seed}, metric="fid", details=dino))
        s.write(scored("c", seed, {"fid": 2.0 + seed}, metric="fid", details=fewer))
    board = build_leaderboards(s)[("s", "digits")]
    names = board.metric_columns
    assert len(names) == 3 and all(n.startswith("fid.fid [") for n in names), names
    by_model = {m: [c for c in names if not math.isnan(board.value(m, c))] for m in "abc"}
    assert all(len(v) == 1 for v in by_model.values()) and len({v[0] for v in by_model.values()}) == 3
    assert "dinov2-vitb14" in by_model["b"][0] and "n 500" in by_model["c"][0]
    # each column ranks only its own rows
    assert all(board.value(m, by_model[m][0], "rank") == 1 for m in "abc")


def test_exports_parse_as_their_formats(store, tmp_path, registries):
    import io

    import pandas as pd

    board = build_leaderboards(store)[("s", "digits")]
    md = board.to_markdown(full=True)
    assert md.startswith("### digits — suite s; sorted by recon.mse (lower is better)")
    assert "recon.mse ↓" in md and "| gan " in md and "1 diverged" in md
    tidy = pd.read_csv(io.StringIO(board.to_csv()))
    assert {"suite", "dataset", "model", "column", "mean", "std", "ci", "ci_low", "ci_high", "n",
            "n_samples", "rank", "best"} <= set(tidy.columns)
    vae = tidy[(tidy["model"] == "vae") & (tidy["column"] == "recon.mse")].iloc[0]
    assert vae["mean"] == pytest.approx(0.05) and vae["n"] == 3 and vae["dataset"] == "digits"
    assert len(tidy) == len(board.cells)
    tex = board.to_latex(full=True)
    check_latex_table(tex)
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"recon.mse $\downarrow$" in tex and r"train-data" in tex and r"\caption{" in tex
    assert r"$\mathbf{0.03 \pm 0.06}$" in tex and r"$\mathbf{31 \pm 7}$" in tex  # best: bold
    formats = {n: registries.formats.get(n)() for n in ("md", "csv", "latex")}
    paths = write_formats(build_leaderboards(store), store, tmp_path / "lb", formats)
    assert sorted(p.relative_to(tmp_path / "lb").as_posix() for p in paths) == [
        "s/digits.csv", "s/digits.md", "s/digits.tex", "s/ring8.csv", "s/ring8.md", "s/ring8.tex"]
    for p in paths:
        if p.suffix == ".csv":
            assert len(pd.read_csv(p).columns) > 10


def check_latex_table(tex: str) -> None:
    """Structural checks of a booktabs tabular: balanced environments and braces, the same
    number of cells on every row, no unescaped specials outside math."""
    import re

    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1
    assert tex.count(r"\begin{table}") == tex.count(r"\end{table}") == 1
    spec = re.search(r"\\begin\{tabular\}\{([lrc]+)\}", tex).group(1)
    header = tex.split(r"\toprule", 1)[1].split(r"\midrule")[0]
    body = tex.split(r"\midrule", 1)[1].split(r"\bottomrule")[0]
    for line in [header] + [ln for ln in body.splitlines() if ln.strip() and "rule" not in ln]:
        assert line.strip().endswith("\\\\"), line
        cells = re.split(r"(?<!\\)&", line)
        assert len(cells) == len(spec), line
        for cell in cells:
            text = re.sub(r"\$[^$]*\$", "", cell.replace("\\\\", ""))  # outside math
            assert not re.search(r"(?<!\\)[_%#^&$]", text), cell
        assert "±" not in line and "–" not in line and "↓" not in line
    depth = 0
    for ch in re.sub(r"\\[{}]", "", tex):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0


def test_results_are_replaced_not_duplicated(tmp_path):
    s = ResultStore(tmp_path / "r.db")
    s.write(job("vae", 0, 0.1, 1.0))
    s.write(job("vae", 0, 0.2, 2.0))
    rows = s.results()
    assert len(rows) == 1 and rows[0]["metrics"]["recon.mse"] == 0.2


def test_skipped_metrics_and_nan_export_cleanly(tmp_path):
    import json

    s = ResultStore(tmp_path / "r.db")
    record = job("vae", 0, float("nan"), 1.0)
    record.metrics.append(MetricRecord("elbo", "skipped", message="model 'vae' has no elbo"))
    s.write(record)
    row = s.results()[0]
    assert row["metrics"] == {"recon.mse": None, "fid.fid": 1.0}  # no 'elbo.nan' key
    assert row["metric_status"]["elbo"] == "skipped: model 'vae' has no elbo"
    json.dumps(row, allow_nan=False, default=str)  # strict JSON: no bare NaN


def test_completion_order_does_not_change_the_numbers(tmp_path):
    """Parallel workers store seeds in any order; means and stds are summed in seed order."""
    values = [1e16, 1.0, -1e16, 1.0]  # summed in another order, the mean differs
    boards = []
    for name, order in (("a", [0, 1, 2, 3]), ("b", [3, 1, 0, 2])):
        s = ResultStore(tmp_path / f"{name}.db")
        for seed in order:
            s.write(job("vae", seed, values[seed], values[seed] * 3))
        boards.append(build_leaderboards(s)[("s", "digits")].cells)
    assert boards[0].equals(boards[1])


# -- 2-D sample figures: true modes under every model's samples ----------------------------

GRID25 = [(float(a), float(b)) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)]


def drawn_figures(monkeypatch):
    """Collect every matplotlib Figure saved from now on (they still go to disk)."""
    from matplotlib.figure import Figure

    figures, save = [], Figure.savefig

    def record(self, *args, **kwargs):
        figures.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return figures


def mixture_store(tmp_path):
    """grid25 rows: 'twenty' on 20 centres (modes metric stored 20), 'five' on 5 centres with
    its modes metric failed, 'far' off every mode (stored 0); plus a digits row."""
    import torch

    from genbench.plan.jobs import evaluation_dirname

    s = ResultStore(tmp_path / "results.db")
    centres = torch.tensor(GRID25)
    rows = {"twenty": (centres[:20].repeat(5, 1), 20.0), "five": (centres[5:10].repeat(20, 1), None),
            "far": (centres[:4] + 1.0, 0.0)}
    for model, (x, stored) in rows.items():
        fp = f"grid25{model}"
        folder = tmp_path / "runs" / model / evaluation_dirname(fp)
        folder.mkdir(parents=True)
        torch.save(x, folder / "samples.pt")
        details = {"mode_centres": [list(c) for c in GRID25], "mode_std": 0.05, "within_std": 3.0}
        metric = (MetricRecord("modes", "failed", message="boom") if stored is None else
                  MetricRecord("modes", "ok", {"modes": stored, "hq": 100.0},
                               higher_is_better={"modes": True, "hq": True}, primary="modes",
                               details=details))
        s.write(JobRecord(fingerprint=fp, config_fingerprint=fp, job_key=f"grid25/{model}/seed0",
                          suite="s", dataset="grid25", dataset_name="grid25", model=model,
                          model_name=model, model_family="gan", seed=0, status="ok",
                          provenance={}, metrics=[metric], run_dir=f"runs/{model}"))
    digits = job("vae", 0, 0.04, 30.0)
    digits.run_dir = "runs/vae"  # no samples.pt there: no figure
    s.write(digits)
    return s


def test_mixture_figures_draw_the_modes_on_shared_axes_with_mode_counts(tmp_path, monkeypatch):
    from matplotlib.patches import Circle

    from genbench.results.sample_figures import save_sample_figures

    figures = drawn_figures(monkeypatch)
    store = mixture_store(tmp_path)
    boards = build_leaderboards(store)
    written = save_sample_figures(boards, store, tmp_path / "lb")
    assert sorted(p.name for p in written) == ["grid25-samples.png"]  # digits: no samples.pt
    (fig,) = figures
    axes = [ax for ax in fig.axes if ax.axison]
    titles = {ax.get_title().split("\n")[0]: ax.get_title().split("\n")[1] for ax in axes}
    # stored counts where the metric ran; counted from the samples where it failed
    assert titles == {"twenty": "modes 20/25", "five": "modes 5/25", "far": "modes 0/25"}
    for ax in axes:
        assert ax.get_xlim() == axes[0].get_xlim() and ax.get_ylim() == axes[0].get_ylim()
        lo, hi = ax.get_xlim()
        assert lo < -4.15 and hi > 4.15  # every circle (radius 0.15 around +-4) is inside
        circles = [p for p in ax.patches if isinstance(p, Circle)]
        assert len(circles) == 25 and all(c.radius == pytest.approx(0.15) for c in circles)
        assert sorted(tuple(c.center) for c in circles) == sorted(GRID25)
        # the centres and circles lie under the samples
        samples_layer = max(c.get_zorder() for c in ax.collections)
        assert all(c.get_zorder() < samples_layer for c in circles)


def test_comparison_without_modes_is_unchanged(tmp_path, monkeypatch):
    import torch

    from genbench.results.figures import save_model_comparison

    figures = drawn_figures(monkeypatch)
    g = torch.Generator().manual_seed(0)
    out = save_model_comparison({"a": torch.randn(50, 2, generator=g), "b": torch.randn(50, 2, generator=g)},
                                tmp_path / "swiss.png")
    assert out.exists()
    (fig,) = figures
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"] and not fig.axes[0].patches


def test_a_plugin_metric_that_sorts_the_board_leads_its_main_table(tmp_path):
    """A metric outside the headline groups (a plugin's) still shows in the main table when
    it is the sort column."""
    s = ResultStore(tmp_path / "r.db")
    for seed, (cov, other) in enumerate([(0.1, 3.0), (0.2, 4.0)]):
        s.write(scored("gauss", seed, {"cov": cov, "other": other}, metric="moments"))
    board = build_leaderboards(s, primary="moments.cov")[("s", "digits")]
    assert [c.name for c in board.headline_columns()][0] == "moments.cov"
    assert "moments.cov" in board.to_text()
    by_other = build_leaderboards(s, primary="moments.other")[("s", "digits")]
    assert [c.name for c in by_other.headline_columns()] == ["moments.other"]


def test_a_board_whose_primary_key_was_never_stored_sorts_by_its_first_scored_column(tmp_path):
    """coverage declares classes_covered primary but stores modes/mode_kl on stacked digits:
    the board still sorts, by the first scored column, and says so."""
    s = ResultStore(tmp_path / "r.db")
    for model, modes in (("a", [900.0, 910.0]), ("b", [990.0, 995.0])):
        for seed, m in enumerate(modes):
            rec = MetricRecord("coverage", "ok", {"modes": m, "mode_kl": 1000.0 / m},
                               higher_is_better={"modes": True, "mode_kl": False},
                               primary="classes_covered")
            s.write(JobRecord(fingerprint=f"{model}{seed}", config_fingerprint=model,
                              job_key=f"stacked/{model}/seed{seed}", suite="s", dataset="stacked",
                              dataset_name="stacked", model=model, model_name=model,
                              model_family="gan", seed=seed, status="ok", provenance={},
                              metrics=[rec]))
    board = build_leaderboards(s)[("s", "stacked")]
    assert board.primary == "coverage.modes" and board.models == ["b", "a"]
    assert "sorted by coverage.modes (higher is better)" in board.heading()
