"""Models built on trained models: ModelRef hyper-parameters, shared and stored trainings."""

import pytest
import torch

from genbench.api.errors import SpecError
from genbench.execution.runner import SuiteRunner
from genbench.results.store import ResultStore
from helpers import CodeGaussian, CountingAE, RunnerPlugin, registries_with, run_inline, tiny_spec

STEPS = 30


def spec_with(models, **kw):
    return tiny_spec(models=models, metrics=["speed"], budget={"steps": STEPS}, **kw)


@pytest.fixture
def regs():
    CountingAE.calls = CodeGaussian.fits = 0
    CodeGaussian.arrived_in_eval_mode = None
    return registries_with(RunnerPlugin())


def test_two_rows_referencing_one_configuration_train_it_once(tmp_path, regs):
    spec = spec_with([{"name": "code-gaussian", "label": "tight", "params": {"jitter": 1e-4}},
                      {"name": "code-gaussian", "label": "loose", "params": {"jitter": 1e-1}}])
    report = run_inline(spec, tmp_path, regs)
    assert CountingAE.calls == STEPS  # the shared autoencoder trained once
    assert CodeGaussian.fits == 2
    trainings = sorted(t.model_name for t in report.trainings)
    assert trainings == ["code-gaussian", "code-gaussian", "counting-ae"]  # the AE: one job
    assert all(r.status == "ok" for r in report.ran), [r.error for r in report.ran]
    ae_fp = next(t.fingerprint for t in report.trainings if t.model_name == "counting-ae")
    assert all(r.provenance["references"]["autoencoder"]["train_fingerprint"] == ae_fp
               for r in report.ran)
    stored = ResultStore(tmp_path / "results.db").trainings()
    assert set(stored["model_name"]) == {"counting-ae", "code-gaussian"}
    assert all((tmp_path / t.run_dir / "checkpoint.pt").exists() for t in report.trainings)

    again = run_inline(spec, tmp_path, regs)  # a rerun trains nothing
    assert again.ran == [] and again.trainings == []
    assert CountingAE.calls == STEPS and CodeGaussian.fits == 2
    new_row = spec_with([{"name": "code-gaussian", "label": "mid", "params": {"jitter": 1e-2}}])
    more = run_inline(new_row, tmp_path, regs)  # a new row on the same model: loaded, not trained
    assert [r.status for r in more.ran] == ["ok"]
    assert [t.model_name for t in more.trainings] == ["code-gaussian"]
    assert CountingAE.calls == STEPS and CodeGaussian.fits == 3


def test_the_referenced_model_arrives_trained_and_in_eval_mode(tmp_path, regs):
    spec = spec_with(["code-gaussian"])
    run_inline(spec, tmp_path, regs)
    assert CodeGaussian.arrived_in_eval_mode is True
    row = ResultStore(tmp_path / "results.db").results()[0]
    model = CodeGaussian(regs.datasets.get("digits")().info(),
                         autoencoder=CountingAE(regs.datasets.get("digits")().info(), latent_dim=4))
    state = torch.load(tmp_path / row["run_dir"] / "checkpoint.pt", weights_only=True)["model"]
    model.load_state_dict(state)
    untrained = CountingAE(regs.datasets.get("digits")().info(), latent_dim=4)
    x = regs.datasets.get("digits")().tensors("test")[0][:64]
    trained_mse = torch.mean((model.autoencoder.reconstruct(x) - x) ** 2)
    assert trained_mse < torch.mean((untrained.reconstruct(x) - x) ** 2)


def test_a_row_and_a_reference_of_one_configuration_share_its_training(tmp_path, regs):
    spec = spec_with([{"name": "counting-ae", "params": {"latent_dim": 4}}, "code-gaussian"])
    report = run_inline(spec, tmp_path, regs)
    assert CountingAE.calls == STEPS
    assert sorted(t.model_name for t in report.trainings) == ["code-gaussian", "counting-ae"]
    ae_row = next(r for r in report.ran if r.model_name == "counting-ae")
    gauss = next(r for r in report.ran if r.model_name == "code-gaussian")
    assert gauss.provenance["references"]["autoencoder"]["train_fingerprint"] == \
        ae_row.provenance["train_fingerprint"]


def test_the_reference_is_part_of_the_training_fingerprint(tmp_path, regs):
    first = run_inline(spec_with(["code-gaussian"]), tmp_path, regs).ran[0]
    other = spec_with([{"name": "code-gaussian",
                        "params": {"autoencoder": {"name": "counting-ae", "params": {"latent_dim": 3}}}}])
    second = run_inline(other, tmp_path, regs).ran[0]
    assert second.model == "code-gaussian[autoencoder=counting-ae[latent_dim=3]]"
    assert first.provenance["train_fingerprint"] != second.provenance["train_fingerprint"]
    assert CountingAE.calls == 2 * STEPS and CodeGaussian.fits == 2
    by_name = spec_with([{"name": "code-gaussian", "params": {"autoencoder": "ae"}}])
    assert run_inline(by_name, tmp_path, regs).ran[0].status == "ok"


def test_cycle_and_unknown_reference_are_spec_errors(tmp_path, regs):
    with pytest.raises(SpecError, match="model references form a cycle: cycle-a -> cycle-b -> cycle-a"):
        SuiteRunner(spec_with(["cycle-a"]), tmp_path, regs)
    bad = spec_with([{"name": "code-gaussian", "params": {"autoencoder": "nope"}}])
    with pytest.raises(SpecError, match="hyper-parameter 'autoencoder': unknown model 'nope'; "
                                        "valid models: .*counting-ae"):
        SuiteRunner(bad, tmp_path, regs)
    wrong = spec_with([{"name": "code-gaussian", "params": {"autoencoder": 3}}])
    with pytest.raises(SpecError, match="takes a model: a name such as"):
        SuiteRunner(wrong, tmp_path, regs)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("model, needle", [
    ('"cycle-a"', "model references form a cycle: cycle-a -> cycle-b -> cycle-a"),
    ('{ name = "code-gaussian", params = { autoencoder = "nope" } }', "unknown model 'nope'"),
])
def test_reference_errors_exit_2(tmp_path, monkeypatch, regs, model, needle):
    from click.testing import CliRunner

    import genbench.registry.manager
    from genbench.cli.commands import cli

    monkeypatch.setattr(genbench.registry.manager, "default_registries", lambda: regs)
    spec = tmp_path / "s.toml"
    spec.write_text(f'datasets = ["digits"]\nmodels = [{model}]\n')
    result = CliRunner().invoke(cli, ["run", str(spec), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert needle in result.output


def test_a_referenced_models_budget_is_checked_against_nproc_before_training(tmp_path, monkeypatch,
                                                                          regs):
    """A referenced model trains with its own budget: a batch size that train.nproc does not
    divide is refused when the spec is read, as the referencing model's is (exit status 2,
    nothing trained or created), not when its training starts."""
    from click.testing import CliRunner

    import genbench.registry.manager
    from genbench.api.errors import ConfigError
    from genbench.cli.commands import cli

    ref = {"name": "counting-ae", "budget": {"batch_size": 33}}
    spec = spec_with([{"name": "code-gaussian", "params": {"autoencoder": ref}}], train={"nproc": 2})
    needle = ("-> autoencoder=counting-ae budget: batch_size 33 must be a multiple of "
              "train.nproc = 2")
    with pytest.raises(ConfigError, match=needle):
        SuiteRunner(spec, tmp_path, regs)
    assert not (tmp_path / "runs").exists() and CountingAE.calls == 0
    spec = spec_with([{"name": "code-gaussian", "params": {"autoencoder": {**ref, "budget": {
        "batch_size": 32}}}}], train={"nproc": 2})
    SuiteRunner(spec, tmp_path, regs)  # an even batch size passes

    monkeypatch.setattr(genbench.registry.manager, "default_registries", lambda: regs)
    toml = tmp_path / "s.toml"
    toml.write_text('datasets = ["digits"]\n[train]\nnproc = 2\n[[models]]\nname = "code-gaussian"\n'
                    '[models.params.autoencoder]\nname = "counting-ae"\nbudget = { batch_size = 33 }\n')
    result = CliRunner().invoke(cli, ["run", str(toml), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert needle in result.output and not (tmp_path / "o" / "runs").exists()
    assert CountingAE.calls == 0


def test_a_diverged_reference_fails_the_rows_built_on_it(tmp_path):
    from helpers import TestPlugin

    regs = registries_with(TestPlugin(), RunnerPlugin())
    spec = spec_with([{"name": "code-gaussian", "params": {"autoencoder": "diverging-vae"}}, "vae"])
    report = run_inline(spec, tmp_path, regs)
    status = {r.model_name: r for r in report.ran}
    assert status["vae"].status == "ok"
    assert status["code-gaussian"].status == "failed"
    assert "referenced model 'diverging-vae'" in status["code-gaussian"].error
    assert "diverged" in status["code-gaussian"].error


def test_a_reference_that_failed_is_retried_by_the_next_run(tmp_path, regs):
    from helpers import FlakyAE

    spec = spec_with([{"name": "code-gaussian", "params": {"autoencoder": "flaky-ae"}}])
    FlakyAE.failures = 1
    first = run_inline(spec, tmp_path, regs).ran[0]
    assert first.status == "failed" and "referenced model 'flaky-ae'" in first.error
    assert "transient fault" in first.error
    second = run_inline(spec, tmp_path, regs)  # no --force needed
    assert [r.status for r in second.ran] == ["ok"]
    assert ResultStore(tmp_path / "results.db").training_status(
        second.ran[0].provenance["references"]["autoencoder"]["train_fingerprint"]) == "ok"


def test_a_lost_reference_checkpoint_retrains_it_and_what_is_built_on_it(tmp_path, regs):
    first = run_inline(spec_with(["code-gaussian"]), tmp_path, regs).ran[0]
    ae = first.provenance["references"]["autoencoder"]["train_fingerprint"]
    (ae_dir,) = [t for t in ResultStore(tmp_path / "results.db").trainings().itertuples()
                 if t.fingerprint == ae]
    (tmp_path / ae_dir.run_dir / "checkpoint.pt").unlink()
    again = run_inline(tiny_spec(models=["code-gaussian"], metrics=["speed"], num_samples=32,
                                 budget={"steps": STEPS}), tmp_path, regs)
    assert [r.status for r in again.ran] == ["ok"]
    assert CountingAE.calls == 2 * STEPS and CodeGaussian.fits == 2  # both fitted again
