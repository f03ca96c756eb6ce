"""The library under the command line: ``genbench.run`` plans, trains, evaluates, stores and
publishes what ``genbench run`` does and returns the boards; ``genbench.evaluate`` scores a
model in memory as a suite's row is scored; an output format added by a plugin's
``register_formats`` is printed by ``genbench leaderboard`` and written by a run."""

from __future__ import annotations

import json
import re
import types
from pathlib import Path

import pytest

import genbench
from genbench.api.errors import UnknownNameError
from helpers import invoke_cli, registries_with, tiny_spec_toml

PUBLISHED = ("t/digits.md", "t/digits.csv", "t/digits.tex", "t/index.html")
DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def docs_format_plugin() -> types.ModuleType:
    """The output-format plugin of docs/plugins.md ("Output formats"), as written there."""
    text = DOCS.read_text(encoding="utf-8")
    start = text.index("### Output formats")
    section = text[start:text.index("\n### ", start + 1)]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    plugin = types.ModuleType("docs_format_plugin")
    exec(compile(code, str(DOCS), "exec"), plugin.__dict__)
    return plugin


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(tiny_spec_toml(models=("vae",), metrics=("recon",), steps=20))
    return path


def test_a_plugin_format_is_printed_and_published(tmp_path, spec, cli_plugins):
    cli_plugins().register(docs_format_plugin(), name="jsonl-format")
    out = tmp_path / "out"
    r = invoke_cli("run", str(spec), "--out", str(out), "-q", "--jobs", "0")
    assert r.exit_code == 0, r.output
    written = (out / "leaderboards" / "t" / "digits.jsonl").read_text()
    cells = [json.loads(line) for line in written.splitlines()]
    assert {c["column"] for c in cells} >= {"recon.mse"} and {c["model"] for c in cells} == {"vae"}
    printed = invoke_cli("leaderboard", "--out", str(out), "--format", "jsonl")
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == written
    unknown = invoke_cli("leaderboard", "--out", str(out), "--format", "yaml")
    assert unknown.exit_code == 2
    assert "unknown output format 'yaml'; valid output formats: csv, html, jsonl, latex, md" \
        in unknown.output  # tensorboard writes files only: not offered


def test_library_run_returns_the_boards_and_writes_what_the_cli_writes(tmp_path, spec, registries):
    lines = []
    result = genbench.run(spec, out=tmp_path / "lib", jobs=0, progress=False, echo=lines.append,
                          registries=registries)
    assert result.ok and result.spec.name == "t" and list(result.boards) == [("t", "digits")]
    board = result.boards[("t", "digits")]
    assert board.models == ["vae"] and board.value("vae", "recon.mse") > 0
    assert [r.status for r in result.report.ran] == ["ok"] and any("vae" in s for s in lines)
    lib = tmp_path / "lib" / "leaderboards"
    assert {p.relative_to(lib).as_posix() for p in result.files} >= set(PUBLISHED)
    r = invoke_cli("run", str(spec), "--out", str(tmp_path / "cli"), "-q", "--jobs", "0")
    assert r.exit_code == 0, r.output
    assert r.stdout == board.to_text() + "\n"
    for name in PUBLISHED:
        assert (lib / name).read_bytes() == (tmp_path / "cli" / "leaderboards" / name).read_bytes(), name
    again = genbench.run(spec, out=tmp_path / "lib", jobs=0, progress=False, echo=lines.append,
                         registries=registries)
    assert again.report.ran == [] and again.boards[("t", "digits")].value("vae", "recon.mse") \
        == board.value("vae", "recon.mse")  # stored jobs are not run again


def test_library_run_checks_the_formats_it_is_asked_for_before_training(tmp_path, spec):
    with pytest.raises(UnknownNameError, match="unknown output format 'yaml'; valid output "
                                               "formats: csv, html, jsonl, latex, md, tensorboard"):
        genbench.run(spec, out=tmp_path / "o", outputs={"yaml": tmp_path / "y"},
                     registries=registries_with(docs_format_plugin()))
    assert not (tmp_path / "o").exists()


def test_evaluate_scores_a_model_in_memory_as_the_suite_did(tmp_path, registries):
    from genbench.api.budget import Budget
    from genbench.execution.training import Trainer

    spec = {"name": "t", "datasets": ["digits"], "models": ["vae"], "metrics": ["recon", "fid"],
            "seeds": [3], "num_samples": 96, "baselines": [], "budget": {"steps": 20}}
    result = genbench.run(spec, out=tmp_path, jobs=0, progress=False, echo=lambda s: None,
                          registries=registries)
    (row,) = result.report.ran
    stored = {f"{m.metric}.{k}": v for m in row.metrics for k, v in m.values.items()}
    assert {"recon.mse", "fid.fid"} <= set(stored)

    digits = registries.datasets.get("digits")()
    model = registries.models.get("vae")(digits.info())
    trainer = Trainer("cpu", seed=3, checkpoint_path=tmp_path / row.run_dir / "checkpoint.pt",
                      fingerprint=row.provenance["train_fingerprint"])
    assert trainer.load_finished(model, digits.split("train"), Budget(steps=20)) is not None
    scored = genbench.evaluate(model, "digits", metrics=["recon", "fid"], num_samples=96, seed=3,
                               registries=registries)
    assert scored.values == stored
    assert scored["fid"].status == "ok" and scored.samples.shape == (96, *digits.info().shape)
    assert [m.metric for m in genbench.evaluate(model, digits, metrics={"recon": {}}, seed=3,
                                                num_samples=8, registries=registries).metrics] \
        == ["recon"]


def test_evaluate_fills_and_checks_sampling_settings_as_a_suite_does(tmp_path, registries,
                                                                    monkeypatch):
    """A ddpm trained by a suite and scored by ``evaluate`` with the row's sampling settings
    (the others filled from the model's defaults, as the suite fills them) gives the stored
    values; its default settings run too; a misspelt setting is a ConfigError listing the
    valid ones, before any sample is drawn. Run, publish (boards, plots) and evaluate given
    registries never reach for the process-wide ones."""
    import genbench.registry.manager as manager
    from genbench.api.budget import Budget
    from genbench.api.errors import ConfigError
    from genbench.execution.training import Trainer

    def refuse(*args, **kwargs):
        raise AssertionError("the process-wide registries must not be used")

    monkeypatch.setattr(manager, "default_registries", refuse)

    params = {"timesteps": 50, "hidden": 16, "depth": 1}
    spec = {"name": "t", "datasets": ["ring8"], "metrics": ["modes"], "seeds": [1],
            "num_samples": 64, "baselines": [], "budget": {"steps": 10},
            "models": [{"name": "ddpm", "params": params,
                        "sampling": {"sampler": "ddim", "steps": 5}}]}
    result = genbench.run(spec, out=tmp_path, jobs=0, progress=False, echo=lambda s: None,
                          registries=registries)
    (row,) = result.report.ran
    assert row.status == "ok", row.error
    stored = {f"{m.metric}.{k}": v for m in row.metrics for k, v in m.values.items()}

    ring8 = registries.datasets.get("ring8")()
    model = registries.models.get("ddpm")(ring8.info(), **params)
    trainer = Trainer("cpu", seed=1, checkpoint_path=tmp_path / row.run_dir / "checkpoint.pt",
                      fingerprint=row.provenance["train_fingerprint"])
    assert trainer.load_finished(model, ring8.split("train"), Budget(steps=10)) is not None
    scored = genbench.evaluate(model, ring8, metrics=["modes"], num_samples=64, seed=1,
                               sampling={"sampler": "ddim", "steps": 5}, registries=registries)
    assert stored and scored.values == stored
    by_default = genbench.evaluate(model, ring8, metrics=["modes"], num_samples=16, seed=1,
                                   registries=registries)  # sampler "ddpm", all 50 steps
    assert by_default["modes"].status == "ok", by_default["modes"].message
    with pytest.raises(ConfigError, match=r"model 'model': unknown sampling setting 'step'; "
                                          r"valid ones \(with defaults\): sampler='ddpm', "
                                          r"steps=None, eta=0.0, spacing='uniform'"):
        genbench.evaluate(model, ring8, metrics=["modes"], sampling={"step": 5},
                          registries=registries)
    with pytest.raises(ConfigError, match=r"sampling setting 'steps' must be int >= 1 \| None"):
        genbench.evaluate(model, ring8, metrics=["modes"], sampling={"steps": 0},
                          registries=registries)
