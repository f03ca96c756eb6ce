"""Leaderboards from a store filled by hand: aggregation, sorting, formatting, exports."""

import statistics

import pytest

from genbench.leaderboard import build_leaderboards, write_leaderboards
from genbench.store import JobRecord, MetricRecord, ResultStore


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


def test_mean_std_over_seeds_and_sorting(store):
    boards = build_leaderboards(store)
    assert list(boards) == [("s", "digits"), ("s", "ring8")]
    board = boards[("s", "digits")]
    stats = board.stats.set_index("model")
    assert stats.loc["vae", "n"] == 3
    assert stats.loc["vae", "recon.mse mean"] == pytest.approx(0.05)
    assert stats.loc["vae", "recon.mse std"] == pytest.approx(statistics.stdev([0.04, 0.05, 0.06]))
    assert stats.loc["ae", "fid.fid std"] == pytest.approx(statistics.stdev([50.0, 52.0]))
    # the first metric's primary key sorts; the reference row stays on top; diverged last
    assert board.primary == "recon.mse"
    assert board.stats["model"].tolist() == ["train-data", "ae", "vae", "gan"]
    assert stats.loc["gan", "status"] == "1 diverged" and stats.loc["gan", "n"] == 0
    by_fid = build_leaderboards(store, primary="fid.fid")[("s", "digits")]
    assert by_fid.stats["model"].tolist() == ["train-data", "vae", "ae", "gan"]


def test_formats(store, tmp_path):
    board = build_leaderboards(store)[("s", "digits")]
    md = board.to_markdown()
    assert md.startswith("### digits — suite s (sorted by recon.mse)")
    assert "0.050 ± 0.010" in md  # std to two significant digits, mean to match
    assert "recon.mse ↓" in md and "| gan " in md and "1 diverged" in md
    tex = board.to_latex()
    assert r"0.050 $\pm$ 0.010" in tex and r"recon.mse $\downarrow$" in tex and r"train-data" in tex
    assert "<table" in board.to_html()
    csv = board.to_csv().splitlines()
    assert csv[0].startswith("model,family,n,status,recon.mse mean,recon.mse std,fid.fid mean")
    paths = write_leaderboards(build_leaderboards(store), tmp_path / "lb", formats=("md", "csv", "tex"))
    assert sorted(p.relative_to(tmp_path / "lb").as_posix() for p in paths) == [
        "s/digits.csv", "s/digits.md", "s/digits.tex", "s/ring8.csv", "s/ring8.md", "s/ring8.tex"]


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
        boards.append(build_leaderboards(s)[("s", "digits")].stats)
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

    from genbench.jobs import evaluation_dirname

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

    from genbench.leaderboard import save_sample_figures

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

    from genbench.figures import save_model_comparison

    figures = drawn_figures(monkeypatch)
    g = torch.Generator().manual_seed(0)
    out = save_model_comparison({"a": torch.randn(50, 2, generator=g), "b": torch.randn(50, 2, generator=g)},
                                tmp_path / "swiss.png")
    assert out.exists()
    (fig,) = figures
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"] and not fig.axes[0].patches
