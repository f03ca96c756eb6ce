"""Whole suites through the runner: the datasets, the model zoo and the default suite."""

from dataclasses import replace

import pytest

from genbench import Budget
from genbench.results.boards import build_leaderboards
from genbench.execution.runner import SuiteRunner
from genbench.plan.spec import SuiteSpec

AUTOENCODERS = ["ae", "deep-ae", "conv-ae", "denoising-ae", "sparse-ae",
                "vae", "conv-vae", "beta-vae", "aae"]


def run(spec, out, registries):
    runner = SuiteRunner(spec, out, registries, progress=False, echo=lambda s: None, jobs=0)
    return runner, runner.run()


def test_vae_on_every_embedded_and_synthetic_dataset(tmp_path, registries):
    spec = SuiteSpec.from_dict({
        "name": "data", "datasets": ["digits", "stacked-digits", "ring8", "grid25"],
        "models": ["vae"], "metrics": ["recon", "fid"], "baselines": [],
        "budget": {"steps": 40}, "num_samples": 200,
    })
    runner, report = run(spec, tmp_path, registries)
    assert [(r.dataset, r.status) for r in report.ran] == [
        ("digits", "ok"), ("stacked-digits", "ok"), ("ring8", "ok"), ("grid25", "ok")]
    for r in report.ran:
        by_name = {m.metric: m for m in r.metrics}
        assert by_name["recon"].status == "ok" and by_name["recon"].values["mse"] > 0
        assert by_name["fid"].status == "ok", by_name["fid"].message
    extractors = {r.dataset: r.provenance["feature_extractors"] for r in report.ran}
    assert list(extractors["stacked-digits"]) == ["digits-cnn"]
    assert list(extractors["grid25"]) == ["raw"]
    assert {d for _, d in build_leaderboards(runner.store)} == {"digits", "stacked-digits", "ring8", "grid25"}


@pytest.mark.slow
def test_all_nine_autoencoders_on_digits_and_ring8(tmp_path, registries):
    spec = SuiteSpec.from_dict({
        "name": "zoo", "datasets": ["digits", {"name": "ring8", "params": {"n_train": 2000}}],
        "models": AUTOENCODERS, "metrics": ["recon", "speed", "elbo"], "baselines": [],
        "budget": {"steps": 25, "batch_size": 64}, "num_samples": 100,
    })
    runner, report = run(spec, tmp_path, registries)
    ran = {(r.dataset, r.model): r for r in report.ran}
    assert all(r.status == "ok" for r in ran.values()), [(k, r.error) for k, r in ran.items()]
    assert {(p.dataset, p.model) for p in report.impossible} == {
        ("ring8[n_train=2000]", "conv-ae"), ("ring8[n_train=2000]", "conv-vae")}
    assert len(ran) == 9 + 7
    for (dataset, model), r in ran.items():
        metrics = {m.metric: m for m in r.metrics}
        assert metrics["recon"].status == "ok" and metrics["speed"].status == "ok"
        if model in ("vae", "conv-vae", "beta-vae"):
            assert metrics["elbo"].status == "ok"
            assert metrics["elbo"].values["neg_elbo_nats_per_dim"] > 0 or dataset != "digits"
        else:
            assert metrics["elbo"].status == "skipped" and "has no elbo" in metrics["elbo"].message
    board = build_leaderboards(runner.store)[("zoo", "digits")]
    assert sorted(board.models) == sorted(AUTOENCODERS)
    assert {"recon.mse", "speed.samples_per_s", "elbo.neg_elbo_nats_per_dim"} <= set(board.metric_columns)


def test_default_suite_covers_every_family_on_both_datasets(registries):
    """Issue 13: autoencoders, VAEs, GANs and diffusion, each on digits and ring8, 3 seeds."""
    default = SuiteSpec.default()
    families = {registries.models.get(m.name).family for m in default.models}
    assert {"autoencoder", "vae", "gan", "diffusion"} <= families
    assert {d.name for d in default.datasets} == {"digits", "ring8"}
    assert len(default.seeds) == 3
    for family in ("autoencoder", "vae", "gan", "diffusion"):  # a model of it runs on each
        for dataset in ("digits", "ring8"):
            info = registries.datasets.get(dataset).describe()
            assert any(registries.models.get(m.name).family == family
                       and info["kind"] in registries.models.get(m.name).data_kinds
                       for m in default.models), (family, dataset)


def test_default_suite_reports_sample_quality_with_reference_row(tmp_path, registries):
    default = SuiteSpec.default()
    assert {"fid", "isc", "kid", "prc"} <= {m.name for m in default.metrics}
    assert "digits" in {d.name for d in default.datasets}
    spec = replace(default.select(registries, datasets=["digits"], models=["vae"], seeds=[0]),
                   budget=Budget(steps=30), num_samples=200)
    runner, report = run(spec, tmp_path, registries)
    assert [(r.model, r.status) for r in report.ran] == [("vae", "ok"), ("train-data", "ok")]
    board = build_leaderboards(runner.store)[("default", "digits")]
    assert {"fid.fid", "isc.mean", "kid.mean", "prc.precision", "prc.recall"} <= set(board.metric_columns)
    assert board.primary == "fid.fid"
    assert board.models[0] == "train-data"  # the floor is always shown first
    assert board.value("train-data", "fid.fid") < board.value("vae", "fid.fid")
    kid = [m for m in report.ran[0].metrics if m.metric == "kid"][0]
    assert kid.details["kid_subset_size"] == 200 and kid.details["n_generated"] == 200
