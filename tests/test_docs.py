"""The docs match the code: the worked examples in docs/plugins.md run as written (the
complete plugin: tests/test_worked_plugin.py), docs/spec.md documents every key the spec
parser accepts, and every link of the README and docs/ resolves inside the repository."""

import re
import tomllib
import types
from pathlib import Path

import pytest

from genbench.api.budget import Budget
from genbench.api.errors import SpecError
from genbench.plan.spec import SuiteSpec
from helpers import registries_with, run_inline

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "plugins.md"
SPEC_DOC = ROOT / "docs" / "spec.md"
README = ROOT / "README.md"
MARKDOWN = [README, *sorted((ROOT / "docs").glob("*.md"))]


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
    spec.update(name="docs", metrics=["speed"], seeds=[0], num_samples=64, baselines=[],
                budget={"steps": 20})
    report = run_inline(SuiteSpec.from_dict(spec), tmp_path, regs)
    assert [(r.model, r.status) for r in report.ran] == [("code-gaussian", "ok"), ("on-conv-ae", "ok")], \
        [r.error for r in report.ran]
    assert sorted(t.label for t in report.trainings) == [
        "ae[latent_dim=8]", "code-gaussian[autoencoder=ae[latent_dim=8]]",
        "code-gaussian[autoencoder=conv-ae[latent_dim=8]]", "conv-ae[latent_dim=8]"]


def test_feature_extractor_example_registers_lists_and_scores(tmp_path):
    text = DOCS.read_text()
    text = text[text.index("## Feature extractors"):]
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    plugin = types.ModuleType("docs_extractor_plugin")
    exec(compile(code, str(DOCS), "exec"), plugin.__dict__)
    regs = registries_with(plugin)
    assert regs.extractors.entry("pooled-pixels").obj is plugin.PooledPixels
    spec = SuiteSpec.from_dict({
        "name": "docs-extractor", "datasets": ["digits"], "models": ["ae"], "metrics": ["fid"],
        "seeds": [0], "num_samples": 200, "baselines": [], "budget": {"steps": 5},
        "feature_extractor": "pooled-pixels"})
    report = run_inline(spec, tmp_path, regs)
    [row] = report.ran
    assert row.status == "ok", row.error
    [fid] = row.metrics
    assert fid.metric == "fid" and fid.status == "ok", fid.message
    assert fid.details["feature_extractor"] == "pooled-pixels" and fid.values["fid"] > 0


# -- docs/spec.md ------------------------------------------------------------------------

def table_keys(text: str, heading: str) -> list[str]:
    """The backquoted names in the first column of the table under ``heading``."""
    start = text.index(heading + "\n")
    end = text.find("\n## ", start + 1)
    rows = text[start:end if end != -1 else None].splitlines()
    return [m.group(1) for line in rows if (m := re.match(r"\| `([a-z_]+)` \|", line))]


def entry_keys_accepted() -> set[str]:
    """The keys a model or dataset entry may have, as the parser's own errors list them."""
    keys = {"name"}
    for section in ("models", "datasets"):
        spec = {"datasets": ["d"], "models": ["m"]}
        spec[section] = [{"name": "x", "no-such-key": 1}]
        with pytest.raises(SpecError) as err:
            SuiteSpec.from_dict(spec)
        listed = re.search(r"must have a 'name' and may have ([a-z_, ]+);", str(err.value)).group(1)
        keys.update(listed.split(", "))
    return keys


def test_spec_reference_documents_every_key():
    text = SPEC_DOC.read_text(encoding="utf-8")
    top = table_keys(text, "## Top-level keys")
    assert sorted(top) == sorted({*SuiteSpec.KEYS, *getattr(SuiteSpec, "RUN_KEYS", ())})
    assert len(top) == len(set(top))
    assert sorted(table_keys(text, "## Entries: `datasets`, `models`, `metrics`")) == \
        sorted(entry_keys_accepted())
    assert sorted(table_keys(text, "## `budget`")) == sorted(Budget.__dataclass_fields__)


def test_spec_reference_defaults_are_the_parsers():
    text = SPEC_DOC.read_text(encoding="utf-8")
    spec = SuiteSpec.from_dict({"datasets": ["d"], "models": ["m"]})
    for key, shown in (("name", f'`"{spec.name}"`'), ("num_samples", f"`{spec.num_samples}`"),
                       ("eval_batch_size", f"`{spec.eval_batch_size}`"),
                       ("device", f'`"{spec.device}"`'), ("seeds", f"`{list(spec.seeds)}`"),
                       ("download", "`false`" if not spec.download else "`true`")):
        row = next(line for line in text.splitlines() if line.startswith(f"| `{key}` |"))
        assert row.split(" | ")[2] == shown, row
    assert spec.budget == Budget(steps=600, batch_size=64)
    assert "`{ steps = 600, batch_size = 64 }`" in text


# -- README and links --------------------------------------------------------------------

def test_readme_starts_with_install_run_and_test_commands():
    text = README.read_text(encoding="utf-8")
    first_block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert first_block.start() < text.index("\n## ")
    commands = first_block.group(1).splitlines()
    assert commands == ['python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]" '
                        "&& genbench run", "python -m pytest"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert all(command in ci for command in commands), "CI must run the README's commands"


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_documents_the_code_cites_are_in_the_repository():
    """A module of genbench/ or plugins/ that points to a Markdown file (``docs/plugins.md``,
    ``README.md``) points to one that exists: a path from the repository root, or a file name
    found in it."""
    shipped = {p.name for p in ROOT.rglob("*.md") if ".git" not in p.parts}
    missing = []
    for module in sorted([*(ROOT / "genbench").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]):
        for cited in set(re.findall(r"[\w./-]+\.md\b", module.read_text(encoding="utf-8"))):
            if not ((ROOT / cited).is_file() or ("/" not in cited and cited in shipped)):
                missing.append(f"{module.relative_to(ROOT)}: {cited}")
    assert not missing, "modules cite documents that are not in the repository:\n" + "\n".join(missing)


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: p.name)
def test_links_resolve_inside_the_repository(page):
    text = page.read_text(encoding="utf-8")
    assert "DESIGN.md" not in text  # a design note that is not in the repository
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists() and ROOT in file.parents, f"{page.name}: {target}"
        if anchor and file.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", file.read_text(encoding="utf-8"), re.M)
            assert anchor in {slug(h) for h in headings}, f"{page.name}: {target}"
