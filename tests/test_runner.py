"""The runner and the store: jobs, resume, divergence, failures, leaderboards."""

import sqlite3
from pathlib import Path

import pytest

from genbench import Budget
from genbench.api.errors import ConfigError, SpecError, UnknownNameError
from genbench.results.boards import build_leaderboards
from genbench.execution.runner import SuiteRunner
from helpers import TestPlugin, registries_with, tiny_spec


def _run(spec, out, registries, **kw):
    return SuiteRunner(spec, out, registries, progress=False, echo=lambda s: None, jobs=0, **kw).run()


def test_run_stores_each_job_with_provenance(tmp_path, registries):
    spec = tiny_spec(seeds=[0, 1])
    report = _run(spec, tmp_path, registries)
    assert [r.status for r in report.ran] == ["ok", "ok"]
    rows = report.ran[0]
    assert {m.metric for m in rows.metrics} == {"recon", "speed"}
    results = SuiteRunner(spec, tmp_path, registries).store.results()
    assert len(results) == 2
    prov = results[0]["provenance"]
    for key in ("spec_hash", "config_hash", "seed", "versions", "device", "num_samples",
                "timings", "data_fingerprint", "train"):
        assert key in prov, key
    assert set(prov["versions"]) >= {"genbench", "torch", "torch-fidelity"}
    assert prov["num_samples"] == 64
    run_dir = tmp_path / results[0]["run_dir"]  # relative to the output directory
    assert run_dir.parent == tmp_path / "runs" and run_dir.name.startswith("digits__vae__seed0__")
    eval_dir = run_dir / f"eval-{results[0]['fingerprint'][:8]}"
    for f in (eval_dir / "samples" / "manifest.json", eval_dir / "samples.png",
              run_dir / "checkpoint.pt", run_dir / "losses.csv"):
        assert f.exists(), f
    import torch

    from genbench import open_sample_store
    store = open_sample_store(eval_dir / "samples")  # the shard store: images as uint8
    stored = store.read_stored(0, len(store))
    assert stored.shape == (64, 1, 8, 8) and stored.dtype == torch.uint8
    assert torch.equal(store.read(), stored.float() / 255)
    m = results[0]["metrics"]
    assert 0 < m["recon.mse"] < 0.1 and m["speed.samples_per_s"] > 0


def test_rerun_trains_nothing_and_force_reruns(tmp_path, registries):
    spec = tiny_spec()
    _run(spec, tmp_path, registries)
    before = build_leaderboards(SuiteRunner(spec, tmp_path, registries).store)[("t", "digits")]
    again = _run(spec, tmp_path, registries)
    assert again.ran == [] and again.already_stored == ["digits/vae/seed0"]
    after = build_leaderboards(SuiteRunner(spec, tmp_path, registries).store)[("t", "digits")]
    assert before.to_markdown() == after.to_markdown()
    forced = _run(spec, tmp_path, registries, force=True)
    assert len(forced.ran) == 1
    assert forced.ran[0].provenance["train"]["resumed_from"] == 0  # --force retrains
    con = sqlite3.connect(tmp_path / "results.db")
    assert con.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 1  # replaced, not added


def test_adding_a_metric_reruns_evaluation_but_not_training(tmp_path, registries):
    _run(tiny_spec(metrics=["recon"]), tmp_path, registries)
    report = _run(tiny_spec(metrics=["recon", "speed"]), tmp_path, registries)
    assert report.ran[0].status == "ok"
    assert report.ran[0].provenance["train"]["resumed_from"] == 40  # finished checkpoint reused


def test_diverged_model_is_recorded_and_suite_goes_on(tmp_path):
    regs = registries_with(TestPlugin())
    spec = tiny_spec(models=["diverging-vae", "vae"])
    report = _run(spec, tmp_path, regs)
    status = {r.model: r for r in report.ran}
    assert status["diverging-vae"].status == "diverged"
    assert status["diverging-vae"].diverged_step == 5
    assert "not finite at step 5" in status["diverging-vae"].error
    assert status["vae"].status == "ok"
    board = build_leaderboards(SuiteRunner(spec, tmp_path, regs).store)[("t", "digits")]
    row = board.rows.set_index("model").loc["diverging-vae"]
    assert row["n"] == 0 and "1 diverged" in row["status"]
    assert board.models[0] == "vae"  # a real score ranks above none
    # Diverged is a finished result: a rerun does not retry it.
    assert _run(spec, tmp_path, regs).ran == []


def test_failing_metric_is_recorded_and_others_still_run(tmp_path):
    regs = registries_with(TestPlugin())
    report = _run(tiny_spec(metrics=["broken", "recon"]), tmp_path, regs)
    job = report.ran[0]
    assert job.status == "ok"
    broken, recon = job.metrics
    assert broken.status == "failed" and "broken on purpose" in broken.message
    assert recon.status == "ok" and recon.values["mse"] > 0
    assert report.metric_failures == [("digits/vae/seed0", broken)]


def test_impossible_pairs_are_skipped_with_reason(tmp_path, registries):
    from genbench_plugins.models.vae import VAE

    class ImageOnly(VAE):
        data_kinds = ("vector",)

    regs = registries_with()
    regs.models.register("vector-only", ImageOnly, plugin="test")
    report = _run(tiny_spec(models=["vector-only", "vae"]), tmp_path, regs)
    assert [p.model for p in report.impossible] == ["vector-only"]
    assert "image data is not supported" in report.impossible[0].reason
    assert [r.model for r in report.ran] == ["vae"]


def test_unapplicable_metric_is_skipped_with_reason(tmp_path):
    from genbench_plugins.models.vae import VAE

    class NoRecon(VAE):
        reconstruct = None  # not callable: the capability is gone

    regs = registries_with()
    regs.models.register("norecon", NoRecon, plugin="test")
    job = _run(tiny_spec(models=["norecon", "vae"]), tmp_path, regs).ran[0]
    assert job.model == "norecon"
    recon = job.metrics[0]
    assert recon.status == "skipped" and "has no reconstruct" in recon.message


def test_validation_happens_before_anything_runs(tmp_path, registries):
    with pytest.raises(UnknownNameError, match="unknown model 'nope'; valid models: .*vae"):
        SuiteRunner(tiny_spec(models=["nope"]), tmp_path, registries)
    with pytest.raises(UnknownNameError, match="unknown dataset 'mnistt'"):
        SuiteRunner(tiny_spec(datasets=["mnistt"]), tmp_path, registries)
    with pytest.raises(UnknownNameError, match="unknown metric 'fidd'"):
        SuiteRunner(tiny_spec(metrics=["fidd"]), tmp_path, registries)
    with pytest.raises(ConfigError, match=r"unknown hyper-parameter 'latent'; valid ones .*latent_dim=10"):
        SuiteRunner(tiny_spec(models={"vae": {"latent": 3}}), tmp_path, registries)
    with pytest.raises(ConfigError, match=r"'latent_dim' must be int >= 1 \(default 10\), got 'big'"):
        SuiteRunner(tiny_spec(models={"vae": {"latent_dim": "big"}}), tmp_path, registries)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("spec, message", [
    ({"models": ["vae"]}, "missing required key 'datasets'"),
    ({"datasets": ["digits"], "models": ["vae"], "seed": [1]}, "unknown key(s) 'seed'"),
    ({"datasets": ["digits"], "models": ["vae"], "seeds": "0"}, "'seeds' must be"),
    ({"datasets": ["digits"], "models": ["vae"], "budget": {"steps": 10, "epochs": 1}}, "exactly one"),
    ({"datasets": ["digits"], "models": ["vae"], "budget": {"step": 10}}, "unknown key(s) step"),
    ({"datasets": ["digits"], "models": [{"label": "x"}]}, "must have a 'name'"),
    ({"datasets": ["digits"], "models": ["vae", "vae"]}, "two entries are labelled 'vae'"),
    ({"datasets": ["digits"], "models": ["vae"], "num_samples": 0}, "'num_samples' must be a positive"),
    ({"datasets": ["digits"], "models": ["vae"], "seeds": [2**62]}, "integers from 0 to 2147483647"),
    ({"datasets": ["digits"], "models": ["vae"], "budget": {"steps": 0}}, "budget.steps must be an integer >= 1"),
    ({"datasets": ["digits"], "models": ["vae"], "budget": {"steps": 5, "max_seconds": "5"}},
     "budget.max_seconds must be a positive number"),
    ({"datasets": ["digits"], "models": [{"name": "vae", "label": 3}]}, "label must be a string"),
])
def test_malformed_specs(spec, message):
    from genbench.plan.spec import SuiteSpec

    with pytest.raises(SpecError) as info:
        SuiteSpec.from_dict(spec, source="s.toml")
    assert message in str(info.value) and str(info.value).startswith("s.toml")


def test_repeated_model_with_labels(tmp_path, registries):
    from genbench.plan.spec import SuiteSpec

    spec = SuiteSpec.from_dict({
        "name": "t", "datasets": ["digits"], "metrics": ["recon"], "baselines": [],
        "budget": {"steps": 30}, "num_samples": 32,
        "models": [{"name": "vae", "params": {"latent_dim": 2}},
                   {"name": "vae", "label": "vae-big", "params": {"latent_dim": 16},
                    "budget": {"steps": 60}}],
    })
    report = _run(spec, tmp_path, registries)
    assert sorted(r.model for r in report.ran) == ["vae-big", "vae[latent_dim=2]"]
    steps = {r.model: r.train_steps for r in report.ran}
    assert steps == {"vae-big": 60, "vae[latent_dim=2]": 30}
    merged = SuiteSpec.from_dict({"datasets": ["digits"], "budget": {"steps": 30, "batch_size": 16},
                                  "models": [{"name": "vae", "budget": {"epochs": 2}}]})
    assert merged.models[0].budget == Budget(epochs=2, batch_size=16)  # the suite's batch size kept


def test_changed_configuration_replaces_the_seed_it_reruns(tmp_path, registries):
    _run(tiny_spec(metrics=["recon"]), tmp_path, registries)
    _run(tiny_spec(metrics=["recon", "speed"], budget={"steps": 60}), tmp_path, registries)
    store = SuiteRunner(tiny_spec(), tmp_path, registries).store
    assert store.count() == 1  # one seed, one row: the old configuration's row is gone
    board = build_leaderboards(store)[("t", "digits")]
    assert board.rows["n"].tolist() == [1]
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(runs) == 2  # each configuration keeps its own checkpoint and samples


def test_suites_sharing_an_output_directory(tmp_path, registries):
    report_a = _run(tiny_spec(name="a"), tmp_path, registries)
    report_b = _run(tiny_spec(name="b"), tmp_path, registries)
    assert report_b.ran == [] and report_b.already_stored == ["digits/vae/seed0"]
    store = SuiteRunner(tiny_spec(), tmp_path, registries).store
    mine = build_leaderboards(store, suite="b", include=report_b.fingerprints)
    assert list(mine) == [("b", "digits")] and mine[("b", "digits")].rows["n"].tolist() == [1]
    assert report_a.fingerprints == report_b.fingerprints


def test_metric_options_are_validated_before_training(tmp_path, registries):
    with pytest.raises(ConfigError, match="unknown hyper-parameter 'foo'; valid ones .*: \\(none\\)"):
        SuiteRunner(tiny_spec(metrics={"recon": {"foo": 1}}), tmp_path, registries)
    with pytest.raises(ConfigError, match=r"metric .speed\[batch_size=0\].: hyper-parameter .batch_size. must be int >= 1 \(default 256\), got 0"):
        SuiteRunner(tiny_spec(metrics={"speed": {"batch_size": 0}}), tmp_path, registries)
    with pytest.raises(ConfigError, match=r"model 'vae\[latent_dim=0\]': hyper-parameter 'latent_dim' must be int >= 1 \(default 10\), got 0"):
        SuiteRunner(tiny_spec(models={"vae": {"latent_dim": 0}}), tmp_path, registries).run()
    assert not (tmp_path / "runs").exists()


def test_feature_weights_need_a_named_extractor(tmp_path, registries):
    with pytest.raises(SpecError, match="feature_weights is set but feature_extractor is not"):
        SuiteRunner(tiny_spec(feature_weights="w.pt"), tmp_path, registries)


def test_missing_extractor_weights_fail_before_training(tmp_path, registries):
    from genbench.api.errors import AssetMissingError

    spec = tiny_spec(metrics=["fid"], feature_extractor="inception-v3-compat")
    with pytest.raises(AssetMissingError, match="genbench assets add inception-v3-compat"):
        SuiteRunner(spec, tmp_path, registries, progress=False).run()
    assert not (tmp_path / "runs").exists()


def test_a_partial_rerun_never_averages_two_configurations(tmp_path, registries):
    _run(tiny_spec(seeds=[0, 1]), tmp_path, registries)
    _run(tiny_spec(seeds=[0], budget={"steps": 60}), tmp_path, registries)
    store = SuiteRunner(tiny_spec(), tmp_path, registries).store
    assert store.count() == 2  # seed 1 of the old configuration is still stored...
    board = build_leaderboards(store)[("t", "digits")]
    assert board.rows["n"].tolist() == [1]  # ...but not counted with the new one
    assert board.notes == ["vae: 1 result(s) of an earlier configuration left out (seeds 1); "
                           "rerun the suite to bring them up to date"]
    assert "earlier configuration" in board.to_markdown()


def test_primary_metric_is_checked_before_training(tmp_path, registries):
    with pytest.raises(SpecError, match="primary_metric 'recon_mse' must be '<metric>.<key>'"):
        SuiteRunner(tiny_spec(primary_metric="recon_mse"), tmp_path, registries)
    with pytest.raises(SpecError, match="one of the suite's metrics: recon, speed"):
        SuiteRunner(tiny_spec(primary_metric="fid.fid"), tmp_path, registries)


def test_published_default_spec_is_the_embedded_one():
    root = Path(__file__).resolve().parents[1]
    assert ((root / "leaderboards" / "default" / "suite.toml").read_text()
            == (root / "genbench" / "suites" / "default.toml").read_text())


def test_an_unfinished_checkpoint_is_trained_again(tmp_path, registries):
    """A stored training whose checkpoint is not finished (a retrain stopped part-way) is
    trained again, not trusted."""
    import torch

    from genbench.execution.training import Trainer

    first = _run(tiny_spec(metrics=["recon"]), tmp_path, registries).ran[0]
    path = tmp_path / first.run_dir / "checkpoint.pt"
    model = registries.models.get("vae")(registries.datasets.get("digits")().info())
    Trainer("cpu", checkpoint_path=path, fingerprint=first.provenance["train_fingerprint"],
            progress=False).save_checkpoint(model, 20, done=False)
    assert torch.load(path, weights_only=True)["done"] is False
    again = _run(tiny_spec(metrics=["recon", "speed"]), tmp_path, registries)
    assert [t.status for t in again.trainings] == ["ok"]
    assert again.ran[0].provenance["train"]["resumed_from"] == 20  # resumed, then finished
    assert torch.load(path, weights_only=True)["done"] is True


def test_a_changed_weights_file_changes_the_evaluation(tmp_path, registries):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"first")
    spec = tiny_spec(metrics=["recon"], feature_extractor="digits-cnn", feature_weights=str(weights))
    before = SuiteRunner(spec, tmp_path / "o", registries).prepare()[0][0]
    weights.write_bytes(b"second")
    after = SuiteRunner(spec, tmp_path / "o", registries).prepare()[0][0]
    assert before.training == after.training
    assert before.evaluation.fingerprint != after.evaluation.fingerprint
