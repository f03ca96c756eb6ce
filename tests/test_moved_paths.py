"""Every old module path (genbench 0.1's flat modules) still imports, warns, and gives the
same objects as the new module, without taking over the new module's identity."""

import importlib
import json
import subprocess
import sys

from genbench._moved import MOVED


CHECK = """
import importlib, json, sys, warnings
for old, new_names in json.loads(sys.argv[1]).items():
    new_names = [new_names] if isinstance(new_names, str) else new_names
    new_name = new_names[0]
    warnings.simplefilter("error")
    new = importlib.import_module(new_name)
    try:
        importlib.import_module(old)
    except DeprecationWarning as exc:
        assert new_name in str(exc), exc
    else:
        raise AssertionError(f"{old}: no DeprecationWarning")
    warnings.simplefilter("ignore")
    alias = importlib.import_module(old)
    public = [k for k in vars(new) if not k.startswith("_")]
    assert public and all(getattr(alias, k) is getattr(new, k) for k in public), old
    for other in map(importlib.import_module, new_names[1:]):
        moved = [k for k in vars(other) if not k.startswith("_") and k not in vars(new)]
        assert all(getattr(alias, k) is getattr(other, k) for k in moved), (old, other)
    assert new.__spec__.name == new_name and alias is not new, old
    importlib.reload(new)
"""


def test_every_old_path_warns_and_gives_the_new_modules_objects():
    """One fresh process (the old paths must not be imported yet) checks every entry."""
    r = subprocess.run([sys.executable, "-c", CHECK, json.dumps(MOVED)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_the_packages_at_old_names_still_give_their_names():
    from genbench.evaluation import EvalContext
    from genbench.evaluation.context import EvalContext as new

    assert EvalContext is new
    assert importlib.import_module("genbench.features").skip_reason is importlib.import_module(
        "genbench.features.job_features").skip_reason
    from genbench.registry import Registry  # noqa: F401
