"""What the fast commands do not import or load: ``genbench --help`` no torch, ``list`` and
``show`` no torch-fidelity, torchvision, scikit-learn, scipy, pandas or matplotlib (extractors
included), and describing a
dataset never builds it. Structural checks; the timings are in benchmarks/cli_latency.py."""

import importlib
import json
import os
import subprocess
import sys

import pytest

from genbench.api.errors import ConfigError, UnknownNameError
from genbench.registry.manager import (DEFAULT_PLUGINS, LazyPlugin, build_registries,
                                     create_plugin_manager)

#: Modules none of the listing commands needs.
HEAVY = ("torch_fidelity", "torchvision", "sklearn", "scipy", "pandas", "matplotlib")

IMPORTS_AFTER = """
import json, sys
from genbench.cli.commands import main
imported = {}
for args in json.loads(sys.argv[1]):
    try:
        main(args)
    except SystemExit as exc:
        assert not exc.code, (args, exc.code)
    imported[" ".join(args)] = sorted(m for m in sys.modules if m.split(".")[0] in %r)
print(json.dumps(imported))
""" % (("torch",) + HEAVY,)


def imported_after(*commands: list[str]) -> dict[str, list[str]]:
    """Run ``commands`` one after the other in a fresh process; the heavy modules imported
    after each (cumulatively)."""
    r = subprocess.run([sys.executable, "-c", IMPORTS_AFTER, json.dumps(commands)],
                       env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


def tops(modules: list[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_help_and_version_import_no_torch():
    imported = imported_after(["--help"], ["--version"], ["list", "--help"])
    assert imported == {"--help": [], "--version": [], "list --help": []}


def test_the_result_store_imports_no_torch():
    """``genbench results`` and ``genbench leaderboard`` read the store: its record types
    (MetricRecord included) are plain data, so importing it imports no torch."""
    code = ("import sys, genbench.results.store, genbench; genbench.MetricRecord; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_list_and_show_import_no_torch_fidelity_sklearn_scipy_pandas_or_matplotlib():
    commands = [["list", "datasets"], ["show", "dataset", "digits"], ["list", "models"],
                ["show", "model", "vae"], ["list", "metrics"], ["list", "samplers"],
                ["list", "extractors"], ["show", "extractor", "inception-v3-compat"],
                ["show", "extractor", "digits-cnn"]]
    imported = imported_after(*commands)
    assert tops(imported["list datasets"]) == {"torch"}  # dataset classes subclass torch's
    for command, modules in imported.items():
        assert tops(modules) == {"torch"}, (command, modules)


def test_describe_never_builds_or_loads(registries, monkeypatch):
    """Every registered dataset describes itself with ``__init__``, ``info`` and ``split``
    refused; what the built-ins describe is what their data says."""
    def refuse(*args, **kwargs):
        raise AssertionError("describe() built or loaded the dataset")

    expected = {}
    for name in ("digits", "stacked-digits", "ring8", "grid25", "swissroll"):
        info = registries.datasets.get(name)().info()
        expected[name] = {"kind": info.kind, "shape": info.shape, "classes": info.num_classes,
                          "modes": None if info.modes is None else len(info.modes)}
    expected["stacked-digits"]["modes"] = 1000  # label triples: modes, not declared centres
    for entry in registries.datasets:
        for attr in ("__init__", "info", "split"):
            monkeypatch.setattr(entry.obj, attr, refuse)
    described = {e.name: e.obj.describe() for e in registries.datasets}
    for name, want in expected.items():
        assert {**described[name], "shape": tuple(described[name]["shape"])} == want, name
    assert all(set(d) <= {"kind", "shape", "classes", "modes"} for d in described.values())


def test_the_default_describe_knows_nothing_and_list_says_so(cli_plugins):
    from click.testing import CliRunner

    from genbench import BenchmarkDataset, hookimpl
    from genbench.cli.commands import cli

    class Undescribed(BenchmarkDataset):
        description = "test dataset: describes nothing"

        def __init__(self):
            raise ConfigError("must not be built to be listed")

    class Plugin:
        @hookimpl
        def register_datasets(self, register):
            register("undescribed", Undescribed)

    cli_plugins().register(Plugin(), name="undescribed-plugin")
    listed = CliRunner().invoke(cli, ["list", "datasets"], catch_exceptions=False)
    row = next(line.split() for line in listed.stdout.splitlines() if line.startswith("undescribed"))
    assert row[:5] == ["undescribed", "?", "?", "?", "?"] and row[5] == "undescribed-plugin"
    digits = next(line.split() for line in listed.stdout.splitlines() if line.startswith("digits"))
    assert digits[:5] == ["digits", "image", "1x8x8", "10", "-"]  # "-": no modes
    shown = CliRunner().invoke(cli, ["show", "dataset", "undescribed"], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert "not described (known only once the data is loaded)" in shown.stdout


def test_default_plugins_declare_exactly_their_modules_hooks():
    """The hooks DEFAULT_PLUGINS declares (so that a module is imported only when one of
    them is called) are the hooks each module implements."""
    for name, declared in DEFAULT_PLUGINS.items():
        module = importlib.import_module(name)
        implemented = sorted(h for h in dir(module)
                             if h.startswith("register_") and hasattr(getattr(module, h), "genbench_impl"))
        assert sorted(declared) == implemented, name


def test_lazy_plugins_import_on_first_use_and_fail_like_any_plugin():
    pm = create_plugin_manager(load_entrypoints=False, default_plugins={
        "genbench_plugins.nope": ("register_models",),
        "genbench_plugins.samplers.ddim": ("register_models",),  # has register_samplers only
        "genbench_plugins.models.vae": ("register_models",),
    })
    assert isinstance(pm.get_plugin("genbench_plugins.models.vae"), LazyPlugin)
    assert not pm.broken  # nothing imported yet
    regs = build_registries(pm, ["models"])
    assert regs.models.names() == ["beta-vae", "conv-vae", "vae"]
    assert regs.models.entry("vae").plugin == "genbench_plugins.models.vae"
    assert len(regs.datasets) == 0 and len(regs.extractors) == 0  # not asked for
    assert pm.broken["genbench_plugins.nope"].error.startswith(
        'plugin "genbench_plugins.nope" failed in register_models: ModuleNotFoundError')
    assert "AttributeError" in pm.broken["genbench_plugins.samplers.ddim"].error


def test_unknown_registry_kind_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match="valid registry kinds: datasets, executors, extractors"):
        build_registries(create_plugin_manager(load_entrypoints=False), ["widgets"])
