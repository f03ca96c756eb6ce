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
