"""The tree shows the layers, and imports point one way.

``genbench/`` holds one package per layer, lowest first in :data:`LAYERS`. A module may
import from its own layer and the ones below, never from a layer above; no two modules
import each other, directly or through others. Imports only for type annotations (under
``if TYPE_CHECKING:``) are not dependencies and are not counted. The top-level package
(``genbench/__init__.py``: the public API) may import from any layer, and no layer imports
it."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "genbench"
LAYERS = ("api", "registry", "features", "evaluation", "plan", "results", "execution", "cli")
FACADE = {"genbench", "genbench._moved", "genbench.__main__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(path: Path) -> set[str]:
    """The genbench modules ``path`` imports (at any depth, TYPE_CHECKING blocks excluded)."""
    found: set[str] = set()
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]

    def resolve(name: str) -> str:
        while name and name not in MODULES:  # an attribute of a module: genbench.api.data.X
            name = name.rpartition(".")[0]
        return name

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(resolve(a.name) for a in child.names if a.name.startswith("genbench."))
                found.update("genbench" for a in child.names if a.name == "genbench")
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - child.level + 1]
                                    + ([base] if base else []))
                if base == "genbench" or base.startswith("genbench."):
                    for alias in child.names:
                        full = resolve(f"{base}.{alias.name}")
                        found.add(full if full and full != "genbench" else base)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    found.discard(me)
    found.discard("")
    return found


GRAPH = {name: imports(path) for name, path in MODULES.items()}


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_is_in_a_layer():
    stray = [m for m in MODULES if layer(m) is None and m not in FACADE
             and not m.startswith("genbench.suites")]
    assert not stray, f"modules outside the layer packages {LAYERS}: {stray}"


def test_imports_point_down():
    upward = [f"{m} ({LAYERS[layer(m)]}) imports {d}"
              for m, deps in GRAPH.items() if layer(m) is not None
              for d in sorted(deps)
              if d in FACADE or (layer(d) is not None and layer(d) > layer(m))]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    graph = {m: {d for d in deps if d in GRAPH and d not in FACADE} for m, deps in GRAPH.items()
             if m not in FACADE}
    cycles, state = [], {}

    def walk(m: str, stack: list[str]) -> None:
        state[m] = "open"
        for d in sorted(graph.get(m, ())):
            if state.get(d) == "open":
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                walk(d, stack + [d])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            walk(m, [m])
    assert not cycles, "\n".join(cycles)


def test_the_checker_sees_an_upward_import_and_a_cycle(tmp_path):
    """The checks above would catch a violation (they are not vacuous)."""
    fake = tmp_path / "genbench" / "api" / "bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from genbench.execution.runner import SuiteRunner\n"
                    "from typing import TYPE_CHECKING\n"
                    "if TYPE_CHECKING:\n    from genbench.cli import cli\n")
    global ROOT
    old, ROOT = ROOT, tmp_path
    try:
        MODULES["genbench.api.bad"] = fake
        assert imports(fake) == {"genbench.execution.runner"}
    finally:
        ROOT = old
        del MODULES["genbench.api.bad"]
    assert layer("genbench.execution.runner") > layer("genbench.api.bad")
