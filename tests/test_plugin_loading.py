"""The built-in plugins load under whatever pluggy is installed (CI's fresh venv takes the
newest release our range allows; its lower-bound step takes the oldest): nothing in
``DEFAULT_PLUGINS`` is left out, and ``genbench list`` shows every built-in.

pluggy 1.7 reads an implementation's parameters from its code, not from a
``__signature__``; a forwarder that hid them made every built-in hook get no arguments."""

import inspect
import json
import os
import subprocess
import sys

import pluggy
import pytest

from genbench import hookimpl
from genbench.api import hookspecs
from genbench.registry.manager import (DEFAULT_PLUGINS, FORWARDERS, REGISTRY_HOOKS, LazyPlugin,
                                       build_registries, call_one_plugin, create_plugin_manager,
                                       hook_parameters)

HOOKS = sorted(name for name, f in vars(hookspecs).items()
               if callable(f) and hasattr(f, "genbench_spec"))


def test_every_default_plugin_registers_something():
    pm = create_plugin_manager(load_entrypoints=False)
    regs = build_registries(pm)
    assert not pm.broken, f"pluggy {pluggy.__version__}: {list(pm.broken.values())}"
    owners = {e.plugin for _, kind in REGISTRY_HOOKS for e in regs.by_kind(kind)}
    assert owners == set(DEFAULT_PLUGINS)


@pytest.mark.parametrize("hook", HOOKS)
def test_forwarders_have_the_hooks_own_parameters(hook):
    """What pluggy introspects (the code's positional parameters) is the hook's own names."""
    forward = FORWARDERS[hook_parameters(hook)](LazyPlugin("m", ()), hook)
    code = forward.__code__
    assert code.co_varnames[:code.co_argcount] == hook_parameters(hook)
    assert list(inspect.signature(forward).parameters) == list(hook_parameters(hook))


def test_a_lazy_plugin_passes_only_what_the_module_implementation_names(tmp_path, monkeypatch):
    (tmp_path / "lazy_mod.py").write_text(
        "from genbench import hookimpl\n"
        "calls = []\n"
        "@hookimpl\n"
        "def register_commands():\n"
        "    calls.append('commands')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = create_plugin_manager(load_entrypoints=False, default_plugins={})
    plugin = LazyPlugin("lazy_mod", ("register_commands",))
    pm.register(plugin, "lazy_mod")
    call_one_plugin(pm, "register_commands", plugin, cli=object())
    assert plugin.module().calls == ["commands"]


def test_one_plugins_hook_is_called_alone():
    seen = []

    class P:
        def __init__(self, tag):
            self.tag = tag

        @hookimpl
        def register_models(self, register):
            seen.append(self.tag)

    pm = create_plugin_manager(load_entrypoints=False, default_plugins={})
    a, b = P("a"), P("b")
    pm.register(a, "a")
    pm.register(b, "b")
    call_one_plugin(pm, "register_models", b, register=None)
    assert seen == ["b"]


LIST = """
import sys
from genbench.cli.commands import main
main(["list", sys.argv[1]])
"""


@pytest.mark.parametrize("kind, expected", [
    ("models", {"vae", "dcgan", "ddpm", "ae"}),
    ("datasets", {"digits", "ring8"}),
    ("metrics", {"fid", "modes", "elbo"}),
    ("samplers", {"ddpm", "ddim"}),
    ("extractors", {"inception-v3-compat", "digits-cnn"}),
])
def test_list_shows_the_builtins_in_a_fresh_process(kind, expected):
    r = subprocess.run([sys.executable, "-c", LIST, kind], capture_output=True, text=True,
                       env=dict(os.environ), timeout=300)
    assert r.returncode == 0, r.stderr
    assert "left out" not in r.stderr, f"pluggy {pluggy.__version__}: {r.stderr}"
    listed = {line.split()[0] for line in r.stdout.splitlines() if line.strip()}
    assert expected <= listed, r.stdout
