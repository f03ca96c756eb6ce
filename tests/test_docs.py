"""The worked examples in docs/plugins.md run as written."""

import re
import tomllib
import types
from pathlib import Path

from genbench.spec import SuiteSpec
from helpers import registries_with, run_inline

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def section(title: str) -> str:
    text = DOCS.read_text()
    start = text.index(title)
    end = text.find("\n### ", start + len(title))
    return text[start:end if end != -1 else None]


def test_models_built_on_models_example_runs(tmp_path):
    text = section("### Models built on models")
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    spec_text = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    plugin = types.ModuleType("docs_example_plugin")
    exec(compile(code, str(DOCS), "exec"), plugin.__dict__)
    regs = registries_with(plugin)
    spec = tomllib.loads(spec_text)
    spec.update(name="docs", metrics=["recon"], seeds=[0], num_samples=64, baselines=[],
                budget={"steps": 20})
    report = run_inline(SuiteSpec.from_dict(spec), tmp_path, regs)
    assert [(r.model, r.status) for r in report.ran] == [("code-gaussian", "ok"), ("on-conv-ae", "ok")], \
        [r.error for r in report.ran]
    assert sorted(t.label for t in report.trainings) == [
        "ae[latent_dim=8]", "code-gaussian[autoencoder=ae[latent_dim=8]]",
        "code-gaussian[autoencoder=conv-ae[latent_dim=8]]", "conv-ae[latent_dim=8]"]
