"""Sampling settings: one training evaluated under several settings, each its own row."""

import pytest
import torch

from genbench import open_sample_store
from genbench.registry.parameters import sampling_settings
from genbench.api.errors import ConfigError
from genbench.execution.runner import SuiteRunner
from genbench.plan.spec import SuiteSpec
from helpers import CountingVAE, RunnerPlugin, registries_with, run_inline, tiny_spec

STEPS = 40


def spec_with(models, metrics=("recon", "speed"), **kw):
    return tiny_spec(models=models, metrics=list(metrics), budget={"steps": STEPS}, **kw)


def test_two_settings_are_two_rows_from_one_training(tmp_path):
    regs = registries_with(RunnerPlugin())
    CountingVAE.calls = 0
    spec = spec_with([{"name": "counting-vae",
                       "sampling": [{"temperature": 1.0}, {"temperature": 0.25}]}])
    report = run_inline(spec, tmp_path, regs)
    assert CountingVAE.calls == STEPS  # one training for both rows
    rows = {r.model: r for r in report.ran}
    assert sorted(rows) == ["counting-vae[temperature=0.25]", "counting-vae[temperature=1.0]"]
    cold, warm = rows["counting-vae[temperature=0.25]"], rows["counting-vae[temperature=1.0]"]
    assert cold.run_dir == warm.run_dir  # one checkpoint folder...
    assert cold.fingerprint != warm.fingerprint  # ...two evaluations
    assert cold.provenance["sampling"] == {"temperature": 0.25}
    assert [t.model_name for t in report.trainings] == ["counting-vae"]  # one training job
    assert cold.provenance["train_fingerprint"] == warm.provenance["train_fingerprint"]
    samples = {m: open_sample_store(tmp_path / r.run_dir / f"eval-{r.fingerprint[:8]}" / "samples").read()
               for m, r in rows.items()}
    # Colder samples sit closer to the decoder's mean image: less spread between samples.
    assert samples[cold.model].std(0).mean() < samples[warm.model].std(0).mean()
    again = run_inline(spec, tmp_path, regs)
    assert again.ran == [] and CountingVAE.calls == STEPS


def test_default_setting_reproduces_the_plain_model(tmp_path, registries):
    """temperature = 1 is the VAE's plain sampler: same samples as before the setting existed."""
    model = registries.models.get("vae")(registries.datasets.get("digits")().info())
    a = model.sample(8, torch.Generator().manual_seed(3))
    b = model.decode(model.randn(8, model.latent_dim, generator=torch.Generator().manual_seed(3)))
    assert torch.equal(a, b)
    assert sampling_settings(type(model)) == {"temperature": 1.0}


def test_nfe_follows_the_setting_and_speed_samples_through_it(tmp_path):
    regs = registries_with(RunnerPlugin())
    spec = spec_with([{"name": "refined-vae", "sampling": [{}, {"refine": 2}]}], metrics=["speed"])
    report = run_inline(spec, tmp_path, regs)
    nfe = {r.model: dict(r.metrics[0].values)["nfe"] for r in report.ran}
    assert nfe == {"refined-vae": 1.0, "refined-vae[refine=2]": 5.0}


def test_label_and_several_settings():
    spec = SuiteSpec.from_dict({"datasets": ["digits"], "models": [
        {"name": "vae", "label": "v", "sampling": [{"temperature": 0.5}, {"temperature": 1.0}]},
        {"name": "vae", "label": "w", "sampling": {"temperature": 0.7}},
        {"name": "vae", "params": {"latent_dim": 4}, "sampling": {"temperature": 0.7}}]})
    assert [e.label for e in spec.models] == [
        "v[temperature=0.5]", "v[temperature=1.0]", "w", "vae[latent_dim=4][temperature=0.7]"]


@pytest.mark.parametrize("sampling, message", [
    ({"temp": 0.5}, "unknown sampling setting 'temp'; valid ones (with defaults): temperature=1.0"),
    ({"temperature": "hot"}, "sampling setting 'temperature' must be float > 0 (default 1.0), got 'hot'"),
])
def test_settings_are_validated_when_the_spec_is_read(tmp_path, registries, sampling, message):
    with pytest.raises(ConfigError) as info:
        SuiteRunner(spec_with([{"name": "vae", "sampling": sampling}]), tmp_path, registries)
    assert message in str(info.value)
    assert not (tmp_path / "runs").exists()


def test_bad_setting_exits_2_on_the_command_line(tmp_path):
    from click.testing import CliRunner

    from genbench.cli.commands import cli

    spec = tmp_path / "s.toml"
    spec.write_text('datasets = ["digits"]\n[[models]]\nname = "vae"\nsampling = { steps = 5 }\n')
    result = CliRunner().invoke(cli, ["run", str(spec), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "unknown sampling setting 'steps'" in result.output and "temperature=1.0" in result.output


def test_relabelling_does_not_retrain(tmp_path):
    regs = registries_with(RunnerPlugin())
    CountingVAE.calls = 0
    run_inline(spec_with([{"name": "counting-vae", "label": "first"}]), tmp_path, regs)
    report = run_inline(spec_with([{"name": "counting-vae", "label": "renamed"}]), tmp_path, regs)
    assert CountingVAE.calls == STEPS
    assert report.ran[0].model == "renamed"
    assert report.ran[0].provenance["train"]["resumed_from"] == STEPS


def test_models_option_keeps_working(registries):
    spec = spec_with([{"name": "vae", "sampling": [{}, {"temperature": 0.5}]}, "ae"])
    picked = spec.select(registries, models=["vae"])
    assert [e.label for e in picked.models] == ["vae", "vae[temperature=0.5]"]
    assert [e.label for e in spec.select(registries, models=["vae[temperature=0.5]"]).models] == [
        "vae[temperature=0.5]"]


def test_a_setting_needs_a_default_and_generator_is_not_one():
    from genbench_plugins.models.vae import VAE

    class NoDefault(VAE):
        def sample(self, n, generator=None, *, steps):
            return super().sample(n, generator)

    class KeywordGenerator(VAE):
        def sample(self, n, *, generator=None, temperature: float = 1.0):
            return super().sample(n, generator, temperature=temperature)

    with pytest.raises(ConfigError, match="NoDefault.sample: sampling setting.*steps need a default"):
        sampling_settings(NoDefault)
    assert sampling_settings(KeywordGenerator) == {"temperature": 1.0}
