"""Results are keyed by the code that made them: editing or upgrading a plugin retrains."""

import importlib.util
import sys
import textwrap

import pytest

from genbench import hookimpl
from genbench.registry.identity import _distributions_of_top_level, code_identity, source_modules
from helpers import registries_with, run_inline, tiny_spec

MODEL_SOURCE = '''
from genbench_plugins.models.vae import VAE


class EditedVAE(VAE):
    """A VAE defined in a file the test edits."""

    description = "test model: {note}"
'''


def load_plugin(path, module_name, note):
    path.write_text(textwrap.dedent(MODEL_SOURCE.format(note=note)))
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)

    class Plugin:
        @hookimpl
        def register_models(self, register):
            register("edited-vae", module.EditedVAE)

    return registries_with(Plugin())


def test_editing_a_models_module_retrains_it(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    source = tmp_path / "edited_plugin.py"
    spec = tiny_spec(models=["edited-vae"], metrics=["recon"])
    first = run_inline(spec, tmp_path / "o", load_plugin(source, "edited_plugin", "first"))
    same = run_inline(spec, tmp_path / "o", load_plugin(source, "edited_plugin", "first"))
    assert same.ran == []  # unchanged code: nothing runs again
    edited = run_inline(spec, tmp_path / "o", load_plugin(source, "edited_plugin", "edited"))
    row = edited.ran[0]
    assert row.provenance["train"]["resumed_from"] == 0  # trained again, from scratch
    assert row.provenance["train_fingerprint"] != first.ran[0].provenance["train_fingerprint"]
    assert row.run_dir != first.ran[0].run_dir
    code = row.provenance["code"]["model"]
    assert code["class"] == "edited_plugin:EditedVAE"
    assert set(code["sources"]) == {"edited_plugin", "genbench_plugins.models.vae",
                                    "genbench_plugins.models.layers"}
    sys.modules.pop("edited_plugin", None)


def test_sources_follow_imported_modules_of_the_same_package(tmp_path, monkeypatch):
    package = tmp_path / "pkg_with_helpers"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "numerics.py").write_text("SCALE = 2\n")
    (package / "blocks.py").write_text("from . import numerics\n\ndef block():\n    return numerics.SCALE\n")
    (package / "model.py").write_text("from .blocks import block\n\nclass Model:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from pkg_with_helpers.model import Model

    try:
        assert source_modules(Model) == ["pkg_with_helpers.model", "pkg_with_helpers.blocks",
                                         "pkg_with_helpers.numerics"]
    finally:
        for name in [m for m in sys.modules if m.startswith("pkg_with_helpers")]:
            sys.modules.pop(name)


def test_sources_cover_bases_and_shared_layers(registries):
    conv_vae = registries.models.get("conv-vae")
    modules = source_modules(conv_vae)
    assert modules[0] == conv_vae.__module__
    assert "genbench_plugins.models.layers" in modules
    assert not any(m.startswith(("genbench.", "torch")) or m == "genbench" for m in modules)


def test_a_plugin_version_is_part_of_the_identity(tmp_path, monkeypatch):
    """Upgrading the distribution that ships a model changes its identity, so it retrains."""
    package = tmp_path / "site" / "versioned_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("class Model:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))

    def identity(version):
        info = tmp_path / "site" / "versioned_plugin-0.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: versioned-plugin\nVersion: {version}\n")
        (info / "top_level.txt").write_text("versioned_plugin\n")
        _distributions_of_top_level.cache_clear()
        import versioned_plugin

        return code_identity(versioned_plugin.Model)

    try:
        old, new = identity("1.0"), identity("1.1")
    finally:
        _distributions_of_top_level.cache_clear()
        sys.modules.pop("versioned_plugin", None)
    assert (old["distribution"], old["version"]) == ("versioned-plugin", "1.0")
    assert new["version"] == "1.1" and old != new


def test_builtin_models_are_shipped_by_genbench(registries):
    import genbench

    identity = code_identity(registries.models.get("vae"))
    assert (identity["distribution"], identity["version"]) == ("genbench", genbench.__version__)
    assert all(len(h) == 64 for h in identity["sources"].values())


@pytest.mark.parametrize("section", ["metric", "dataset"])
def test_metric_and_dataset_code_are_part_of_the_evaluation(tmp_path, registries, section, monkeypatch):
    import genbench.plan.jobs as jobs

    spec = tiny_spec(metrics=["recon"])
    first = run_inline(spec, tmp_path, registries).ran[0]
    real = jobs.code_identity
    kind = {"metric": registries.metrics.get("recon"), "dataset": registries.datasets.get("digits")}[section]
    monkeypatch.setattr(jobs, "code_identity",
                        lambda cls: {**real(cls), "sources": {"edited": "0" * 64}} if cls is kind else real(cls))
    again = run_inline(spec, tmp_path, registries)
    assert len(again.ran) == 1 and again.ran[0].fingerprint != first.fingerprint
    if section == "metric":  # a metric's code changes the evaluation, never the training
        assert again.ran[0].provenance["train"]["resumed_from"] == 40
