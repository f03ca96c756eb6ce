"""Result plots: the Pareto front, the NFE lines, which files are written, and real PNGs."""

import math
import random

import pandas as pd
import pytest
from PIL import Image

from genbench.results.boards import build_leaderboards
from genbench.results.plots import (loss_curves, metric_table, nfe_curves, pareto_front,
                            quality_column, quality_vs_speed, read_loss_curves, save_plots,
                            without_steps)
from genbench.results.records import JobRecord, MetricRecord
from genbench.results.store import ResultStore


# -- the Pareto front ---------------------------------------------------------------------

POINTS = [(10, 5.0), (100, 3.0), (50, 4.0), (200, 6.0), (20, 2.0), (100, 3.5)]


def test_pareto_front_lower_is_better():
    # Fastest first: 200 (6.0) leads; 100 (3.0) beats it; 100 (3.5) and 50 (4.0) lose to
    # 100 (3.0); 20 (2.0) beats everything faster; 10 (5.0) loses to 20 (2.0).
    assert pareto_front(POINTS, higher_is_better=False) == [4, 1, 3]


def test_pareto_front_higher_is_better():
    # 200 (6.0) is both the fastest and the best: nothing else is on the front.
    assert pareto_front(POINTS, higher_is_better=True) == [3]
    # An equal quality at a higher speed wins; a slower point needs strictly better quality.
    points = [(1, 0.9), (2, 0.8), (3, 0.8), (4, 0.5)]
    assert pareto_front(points, higher_is_better=True) == [0, 2, 3]
    assert pareto_front(points, higher_is_better=False) == [3]


def test_pareto_front_ties_and_missing_values():
    assert pareto_front([(5, 1.0), (5, 1.0), (5, 2.0)], higher_is_better=True) == [2]
    assert pareto_front([(5, 1.0), (5, 1.0), (5, 2.0)], higher_is_better=False) == [0, 1]
    assert pareto_front([(1, math.nan), (math.inf, 1.0), (2, 3.0)], higher_is_better=True) == [2]
    assert pareto_front([], higher_is_better=True) == []


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_pareto_front_matches_the_definition(higher_is_better):
    rng = random.Random(0)
    sign = 1 if higher_is_better else -1
    for _ in range(50):
        pts = [(rng.randint(1, 6), rng.randint(1, 6)) for _ in range(rng.randint(1, 9))]

        def beats(a, b):
            at_least = a[0] >= b[0] and sign * a[1] >= sign * b[1]
            return at_least and (a[0] > b[0] or sign * a[1] > sign * b[1])

        expected = [i for i, p in enumerate(pts) if not any(beats(q, p) for q in pts)]
        assert sorted(pareto_front(pts, higher_is_better)) == expected, pts


# -- FID against NFE ----------------------------------------------------------------------

@pytest.mark.parametrize("label, expected", [
    ("ddpm[eta=0.0,sampler=ddim,steps=10]", "ddpm[eta=0.0,sampler=ddim]"),
    ("ddpm[sampler=ddpm,steps=1000]", "ddpm[sampler=ddpm]"),
    ("ddpm[steps=50]", "ddpm"),
    ("ddpm[channels=32][sampler=ddim,steps=20]", "ddpm[channels=32][sampler=ddim]"),
    ("ddpm[max_steps=5,steps=10]", "ddpm[max_steps=5]"),
    ("two[ae=x[steps=3]][steps=7]", "two[ae=x[steps=3]]"),  # a referenced model's own
    ("vae", "vae"),
])
def test_without_steps(label, expected):
    assert without_steps(label) == expected


def nfe_table():
    rows = []
    for eta in ("0.0", "1.0"):
        for steps, fids in ((10, [9.0, 11.0]), (50, [4.0, 6.0])):
            for seed, fid in enumerate(fids):
                rows.append({"model": f"ddpm[eta={eta},sampler=ddim,steps={steps}]",
                             "model_name": "ddpm", "seed": seed, "fid.fid": fid + float(eta),
                             "speed.nfe": float(steps)})
    rows.append({"model": "ddpm[sampler=ddpm,steps=1000]", "model_name": "ddpm", "seed": 0,
                 "fid.fid": 3.0, "speed.nfe": 1000.0})
    rows.append({"model": "vae", "model_name": "vae", "seed": 0, "fid.fid": 20.0,
                 "speed.nfe": math.nan})  # no NFE: on no line
    return pd.DataFrame(rows)


def test_nfe_curves_group_rows_by_sampler_without_steps():
    curves = nfe_curves(nfe_table(), "fid.fid", "speed.nfe")
    assert list(curves) == ["ddpm[eta=0.0,sampler=ddim]", "ddpm[eta=1.0,sampler=ddim]",
                            "ddpm[sampler=ddpm]"]
    eta1 = curves["ddpm[eta=1.0,sampler=ddim]"]
    assert eta1["nfe"].tolist() == [10.0, 50.0]
    assert eta1["mean"].tolist() == [11.0, 6.0]
    assert eta1["std"].tolist() == pytest.approx([math.sqrt(2), math.sqrt(2)])
    assert eta1["model"].tolist() == ["ddpm[eta=1.0,sampler=ddim,steps=10]",
                                      "ddpm[eta=1.0,sampler=ddim,steps=50]"]
    assert curves["ddpm[sampler=ddpm]"]["std"].tolist() == [0.0]  # one seed
    assert nfe_curves(nfe_table().drop(columns="speed.nfe"), "fid.fid", "speed.nfe") == {}


# -- files from a store -------------------------------------------------------------------

def job(model, seed, *, dataset="digits", suite="s", fid=1.0, speed=100.0, nfe=None,
        family="diffusion", status="ok", run_dir=None, config="c"):
    values = {"samples_per_s": speed}
    if nfe is not None:
        values["nfe"] = nfe
    metrics = [] if status != "ok" else [
        MetricRecord("fid", "ok", {"fid": fid}, higher_is_better={"fid": False}, primary="fid"),
        MetricRecord("speed", "ok", values, higher_is_better={"samples_per_s": True}),
    ]
    name = model.split("[")[0]
    return JobRecord(fingerprint=f"{suite}/{dataset}/{model}/{seed}",
                     config_fingerprint=f"{dataset}{model}{config}",
                     job_key=f"{dataset}/{model}/seed{seed}", suite=suite, dataset=dataset,
                     dataset_name=dataset, model=model, model_name=name, model_family=family,
                     seed=seed, status=status, provenance={}, metrics=metrics, run_dir=run_dir)


def write_losses(root, run_dir, n=20, offset=0.0):
    folder = root / run_dir
    folder.mkdir(parents=True)
    steps = [10 * (i + 1) for i in range(n)]
    pd.DataFrame({"step": steps, "d_loss": [1.0 + offset + 1 / s for s in steps],
                  "g_loss": [0.7 - offset for _ in steps]}).to_csv(folder / "losses.csv",
                                                                    index=False)


@pytest.fixture
def store(tmp_path):
    s = ResultStore(tmp_path / "results.db")
    for seed in (0, 1):
        run_dir = f"runs/ddpm-seed{seed}"
        write_losses(tmp_path, run_dir, offset=0.1 * seed)
        for steps, fid, speed in ((10, 9.0, 400.0), (50, 5.0, 80.0)):
            s.write(job(f"ddpm[sampler=ddim,steps={steps}]", seed, fid=fid + seed,
                        speed=speed + seed, nfe=float(steps), run_dir=run_dir))
    s.write(job("train-data", 0, fid=0.1, speed=math.nan, family="reference"))
    s.write(job("gan", 0, fid=7.0, speed=900.0, family="gan", run_dir="runs/gan-seed0"))
    write_losses(tmp_path, "runs/gan-seed0")
    # Another dataset: no NFE, no losses; one that only failed; another suite.
    s.write(job("gan", 0, dataset="ring8", fid=2.0, speed=50.0, family="gan"))
    write_losses(tmp_path, "runs/broken")
    s.write(job("gan", 0, dataset="grid25", status="failed", run_dir="runs/broken"))
    s.write(job("gan", 0, suite="other", fid=2.0, speed=50.0, family="gan"))
    return s


def relative(paths, root):
    return sorted(p.relative_to(root).as_posix() for p in paths)


def test_save_plots_writes_what_applies(store, tmp_path):
    out = tmp_path / "plots"
    paths = save_plots(build_leaderboards(store, suite="s"), store, out)
    assert relative(paths, out) == ["s/digits-fid-nfe.png", "s/digits-losses.png",
                                    "s/digits-quality-speed.png", "s/ring8-quality-speed.png"]
    for path in paths:
        with Image.open(path) as picture:
            picture.verify()
        with Image.open(path) as picture:
            assert picture.format == "PNG" and picture.size[0] >= 400 and picture.size[1] >= 300
    # Every suite, each under its own name; or exactly a run's jobs, under the run's suite.
    assert "other/digits-quality-speed.png" in relative(
        save_plots(build_leaderboards(store), store, out), out)
    mine = [f"s/digits/ddpm[sampler=ddim,steps=10]/{seed}" for seed in (0, 1)]
    run_boards = build_leaderboards(store, suite="run", include=mine)
    assert relative(save_plots(run_boards, store, tmp_path / "run"),
                    tmp_path / "run") == ["run/digits-fid-nfe.png", "run/digits-losses.png",
                                          "run/digits-quality-speed.png"]
    assert save_plots(build_leaderboards(store, suite="nope"), store, out) == []


def test_a_label_of_an_earlier_configuration_is_left_out(store, tmp_path):
    store.write(job("gan", 1, fid=7.0, speed=900.0, family="gan", config="new",
                    run_dir="runs/gan-seed1"))
    write_losses(tmp_path, "runs/gan-seed1")
    jobs = store.jobs()
    boards = build_leaderboards(store, suite="s")
    kept = pd.concat([b.jobs for b in boards.values()])
    gan = kept[(kept["model"] == "gan") & (kept["dataset"] == "digits")]
    assert gan["seed"].tolist() == [1]
    assert len(kept) == len(jobs[jobs["suite"] == "s"]) - 1


def test_loss_panels_share_trainings_and_skip_models_without_losses(store, tmp_path):
    jobs = store.jobs()
    curves = read_loss_curves(jobs[jobs["dataset"] == "digits"], tmp_path)
    # Two sampling settings of one training: one panel, titled by what the labels share.
    assert list(curves) == ["ddpm[sampler=ddim] (2 rows)", "gan"]
    assert [len(frames) for frames in curves.values()] == [2, 1]
    assert list(curves["gan"][0].columns) == ["step", "d_loss", "g_loss"]
    assert loss_curves({}, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_quality_vs_speed_needs_speeds(store, tmp_path):
    table = metric_table(store.jobs(), store.metric_values())
    assert quality_vs_speed(table[table["model_family"] == "reference"], tmp_path / "r.png",
                            quality="fid.fid", higher_is_better=False,
                            speed="speed.samples_per_s") is None
    assert quality_vs_speed(table.drop(columns="speed.samples_per_s"), tmp_path / "r.png",
                            quality="fid.fid", higher_is_better=False,
                            speed="speed.samples_per_s") is None
    assert not (tmp_path / "r.png").exists()


def test_quality_column_prefers_modes_then_fid_then_the_board_primary(store):
    values = store.metric_values()
    assert quality_column(values) == "fid.fid"
    assert quality_column(values, primary="speed.samples_per_s") == "speed.samples_per_s"
    speed_only = values[values["metric"] != "fid"].assign(is_primary=1)
    assert quality_column(speed_only) is None  # a speed is never the default quality
    modes = values.assign(metric=values["metric"].replace("fid", "modes"),
                          key=values["key"].replace("fid", "modes"))
    assert quality_column(modes) == "modes.modes"


# -- a real stored run --------------------------------------------------------------------

def test_plots_of_a_real_run(tmp_path, registries, no_network):
    from helpers import run_inline, tiny_spec

    spec = tiny_spec(models=["ae"], seeds=[0, 1], metrics=["fid", "speed"],
                     budget={"steps": 30, "batch_size": 64})
    report = run_inline(spec, tmp_path / "o", registries)
    assert [r.status for r in report.ran] == ["ok", "ok"]
    store = ResultStore(tmp_path / "o" / "results.db")
    paths = save_plots(build_leaderboards(store, suite="t", include=report.fingerprints), store,
                       tmp_path / "plots")
    assert relative(paths, tmp_path / "plots") == ["t/digits-losses.png",
                                                   "t/digits-quality-speed.png"]
    curves = read_loss_curves(store.jobs(), store.path.parent)
    assert list(curves) == ["ae"] and len(curves["ae"]) == 2  # a line per seed
    assert curves["ae"][0]["step"].iloc[-1] <= 30


def test_crowded_quality_speed_labels_do_not_overlap_and_fid_goes_log():
    """The default suite's digits rows: four autoencoders sit within a factor 2 of speed
    and FID 1.1-1.2; every label must stay readable, apart from the others."""
    from genbench.results.plots import quality_speed_figure

    rows = {"conv-ae": (6e4, 0.26), "ae": (1.4e6, 0.6), "denoising-ae": (1.39e6, 1.14),
            "deep-ae": (6e5, 1.17), "sparse-ae": (7e5, 1.1), "aae": (2.7e5, 1.13),
            "dcgan[channels=32]": (8e4, 0.87), "ddpm-ddim20": (6.3e2, 0.78),
            "beta-vae": (1.3e6, 20.3), "conv-vae": (6.5e4, 5.6), "gan": (3.2e5, 2.5),
            "vae": (1.35e6, 6.2)}
    table = pd.DataFrame([{"model": m, "seed": s, "model_family": "ae",
                           "speed.samples_per_s": v * (1 + 0.01 * s), "fid.fid": q * (1 + 0.02 * s)}
                          for m, (v, q) in rows.items() for s in (0, 1)])
    fig = quality_speed_figure(table, quality="fid.fid", higher_is_better=False,
                               speed="speed.samples_per_s")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xscale() == "log"
    boxes = {t.get_text(): t.get_window_extent() for t in ax.texts}  # the figure's renderer
    assert set(boxes) == set(rows)
    names = sorted(boxes)
    overlapping = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]
                   if boxes[a].overlaps(boxes[b])]
    assert overlapping == []
    # a quality that is not positive, or spans little, stays linear
    table["fid.fid"] = table["fid.fid"] - 1.0
    linear = quality_speed_figure(table, quality="fid.fid", higher_is_better=False,
                                  speed="speed.samples_per_s")
    assert linear.axes[0].get_yscale() == "linear"
