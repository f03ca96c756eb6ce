"""One public API: plugins import only ``genbench`` itself, every public name resolves and is
documented, and the module paths of genbench 0.1 still import, with a warning."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import genbench

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"


def private_uses(path: Path, public: set[str]) -> list[str]:
    """``path``'s uses of genbench other than its public names, as ``file:line: what``:
    ``import genbench.x`` and ``from genbench.x import ...`` (at any depth, inside functions
    too), ``from genbench import x`` and ``genbench.x`` for an ``x`` not in ``public``."""
    found = []

    def bad(node: ast.AST, what: str) -> None:
        found.append(f"{path.relative_to(path.parents[1])}:{node.lineno}: {what}")

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("genbench."):
                    bad(node, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("genbench."):
                bad(node, f"from {node.module} import ...")
            elif node.module == "genbench":
                for alias in node.names:
                    if alias.name not in public:  # a subpackage, or a name not in __all__
                        bad(node, f"from genbench import {alias.name}")
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "genbench" and node.attr not in public):
            bad(node, f"genbench.{node.attr}")
    return found


def test_plugins_import_only_genbench_public_names():
    files = sorted(PLUGINS.rglob("*.py"))
    assert len(files) > 30  # the scan sees the built-in plugins
    public = set(genbench.__all__)
    found = [use for f in files for use in private_uses(f, public)]
    assert not found, ("plugins must import only genbench's public names (genbench.__all__):\n"
                       + "\n".join(found))


def test_the_scan_finds_every_kind_of_private_use(tmp_path):
    plugin = tmp_path / "pkg" / "plugin.py"
    plugin.parent.mkdir()
    plugin.write_text("import genbench\n"
                      "import genbench.execution.distributed\n"
                      "from genbench import ConfigError, features\n"
                      "from genbench.api.errors import ConfigError\n"
                      "def f():\n"
                      "    from genbench.features.fidelity import fid_statistics\n"
                      "    return genbench.batch_randn, genbench.plan\n")
    assert [u.split(": ", 1)[1] for u in private_uses(plugin, set(genbench.__all__))] == [
        "import genbench.execution.distributed", "from genbench import features",
        "from genbench.api.errors import ...", "from genbench.features.fidelity import ...",
        "genbench.plan"]


def test_every_public_name_resolves_and_is_documented():
    docs = (ROOT / "docs" / "plugins.md").read_text()
    assert len(set(genbench.__all__)) == len(genbench.__all__)
    for name in genbench.__all__:
        assert getattr(genbench, name) is not None, name
        assert name in dir(genbench), name
    undocumented = [n for n in genbench.__all__ if f"`{n}`" not in docs and n != "__version__"]
    assert not undocumented, f"public names missing from docs/plugins.md: {undocumented}"
    with pytest.raises(AttributeError, match="has no attribute 'not_a_name'"):
        genbench.not_a_name  # noqa: B018


def test_the_public_names_are_the_objects_genbench_uses():
    from genbench.api.errors import ConfigError
    from genbench.api.parallel import batch_randn
    from genbench.execution import distributed

    assert genbench.ConfigError is ConfigError
    assert genbench.batch_randn is batch_randn is distributed.batch_randn  # old path kept


def test_importing_genbench_imports_no_torch():
    code = ("import sys, genbench; genbench.__all__; "
            "sys.exit('torch' in sys.modules or 'genbench.api.parallel' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


@pytest.mark.parametrize("old, new, name", [
    ("genbench.distributed", "genbench.execution.distributed", "batch_randn"),
    ("genbench.errors", "genbench.api.errors", "ConfigError"),
    ("genbench.config", "genbench.registry.parameters", "hyperparameters"),
    ("genbench.fidelity", "genbench.features.fidelity", "fid_statistics"),
])
def test_old_module_paths_still_import_with_a_deprecation_warning(monkeypatch, old, new, name):
    monkeypatch.delitem(sys.modules, old, raising=False)  # imported once, it warns no more
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}; import from genbench"):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
    assert getattr(module, name) is getattr(genbench, name)


def test_new_module_paths_import_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.import_module("genbench.api.parallel")
        importlib.import_module("genbench.execution.distributed")


# -- the registered name is the one name ---------------------------------------------------

def test_no_builtin_plugin_restates_its_registered_name(registries):
    """``register("dcgan", DCGAN)`` names the class; no built-in class (or a base of one)
    repeats a registered name in a name attribute (``_label = "dcgan"``, ``name = "ring8"``;
    ``family = "vae"`` is a grouping, not a name)."""
    names = {e.name for kind in ("models", "datasets", "metrics", "samplers", "extractors")
             for e in registries.by_kind(kind)}
    restated = [f"{klass.__module__}.{klass.__qualname__}.{attr} = {value!r}"
                for kind in ("models", "datasets", "metrics", "samplers", "extractors")
                for e in registries.by_kind(kind) for klass in e.obj.__mro__
                if klass.__module__.startswith("genbench_plugins")
                for attr, value in vars(klass).items()
                if attr.strip("_") in ("name", "label") and value in names]
    assert not restated, restated


def datainfo_name_literals(source: str, names: set[str]) -> list[tuple[int, str]]:
    """``(line, name)`` of each ``DataInfo(name="<one of names>")`` (or ``genbench.DataInfo``)
    call in ``source``: a registered name restated as a string literal."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and (
                getattr(node.func, "id", None) == "DataInfo"
                or getattr(node.func, "attr", None) == "DataInfo"):
            for kw in node.keywords:
                if (kw.arg == "name" and isinstance(kw.value, ast.Constant)
                        and kw.value.value in names):
                    found.append((node.lineno, kw.value.value))
    return found


def test_no_builtin_dataset_writes_its_registered_name_into_datainfo(registries):
    """A built-in's ``DataInfo`` name is ``registered_name(self)``, not a literal repeating
    ``register("digits", Digits)``."""
    names = {e.name for kind in ("models", "datasets", "metrics", "samplers", "extractors")
             for e in registries.by_kind(kind)}
    assert datainfo_name_literals('DataInfo(name="digits", kind="image", shape=(1, 8, 8))\n'
                                  'genbench.DataInfo(kind="vector", name="ring8")\n'
                                  'DataInfo(name=registered_name(self), kind="image")\n'
                                  'DataInfo(name="my-own", kind="vector")', names) \
        == [(1, "digits"), (2, "ring8")]
    restated = [f"{path.relative_to(ROOT)}:{line}: DataInfo(name={name!r})"
                for path in sorted(PLUGINS.rglob("*.py"))
                for line, name in datainfo_name_literals(path.read_text(), names)]
    assert not restated, restated
    assert registries.datasets.get("digits")().info().name == "digits"


def test_a_plugin_reads_its_name_from_its_registration(registries, tmp_path):
    from genbench.registry.manager import build_registries, create_plugin_manager
    from genbench_plugins.models.gans import DCGAN

    info = registries.datasets.get("ring8")().info()
    assert info.name == "ring8"
    assert genbench.registered_name(registries.models.get("wgan-gp")) == "wgan-gp"
    with pytest.raises(genbench.ConfigError, match="^dcgan needs image data"):
        DCGAN(info)

    class Unregistered(DCGAN):  # a subclass answers its registered base's name
        pass

    assert genbench.registered_name(Unregistered(registries.datasets.get("digits")().info())) == "dcgan"
    assert genbench.registered_name(object) == "object"  # a class outside any registry
    # a registry sent to a worker process (pickled) names the classes there too
    import pickle

    payload = tmp_path / "registries.pkl"
    payload.write_bytes(pickle.dumps(build_registries(create_plugin_manager(load_entrypoints=False))))
    code = ("import pickle, sys, genbench; regs = pickle.loads(open(sys.argv[1], 'rb').read()); "
            "print(regs.datasets.get('grid25')().info().name, "
            "genbench.registered_name(regs.models.get('conv-vae')))")
    out = subprocess.run([sys.executable, "-c", code, str(payload)], cwd=ROOT, capture_output=True,
                         text=True, env={**__import__("os").environ,
                                         "GENBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert out.stdout.split() == ["grid25", "conv-vae"], out.stderr
