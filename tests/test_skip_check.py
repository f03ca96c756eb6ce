"""CI's check of skipped tests (tests/skip_check.py, .ci/allowed-skips.txt): a skip the list
does not allow fails the session, in a pytest run of its own on a tiny test tree."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from skip_check import ENV, read_allowed

TESTS = Path(__file__).parent
ROOT = TESTS.parent

TREE = {
    "conftest.py": "from skip_check import configure\n\n"
                   "def pytest_configure(config):\n    configure(config)\n",
    "test_a.py": "import pytest\n\n"
                 "def test_runs():\n    pass\n\n"
                 "def test_no_browser():\n    pytest.skip('chromium is not installed')\n\n"
                 "@pytest.mark.skipif(True, reason='permission bits do not stop root')\n"
                 "def test_as_root():\n    pass\n\n"
                 "@pytest.mark.parametrize('x', [1, 2])\n"
                 "def test_param(x):\n    pytest.skip('no gpu')\n\n"
                 "def test_expected_failure():\n    pytest.xfail('known bug')\n",
    "test_b.py": "import pytest\n\npytest.importorskip('genbench_no_such_module')\n",
    "pytest.ini": "[pytest]\n",
}


def run(tmp_path, allowed: str | None):
    for name, text in TREE.items():
        (tmp_path / name).write_text(text)
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    env.pop(ENV, None)
    if allowed is not None:
        (tmp_path / "allowed.txt").write_text(allowed)
        env[ENV] = str(tmp_path / "allowed.txt")
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path),
                           str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_skip_not_on_the_list_fails_the_session_and_is_named(tmp_path):
    result = run(tmp_path, "# comment\n\ntest_a.py::test_as_root  permission bits\n")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "skips CI does not allow" in out
    named = set(re.findall(r"^(test_[ab]\.py\S*): ", out, re.M))
    assert named == {"test_a.py::test_no_browser", "test_a.py::test_param[1]",
                     "test_a.py::test_param[2]", "test_b.py"}, out
    assert "test_a.py::test_no_browser: chromium is not installed" in out
    assert str(tmp_path / "allowed.txt") in out


def test_allowed_skips_pass_and_without_the_variable_nothing_is_checked(tmp_path):
    allowed = ("test_a.py::test_as_root  permission bits\n"
               "test_a.py::test_no_browser no chromium in this image\n"
               "test_a.py::test_param[[]*] no gpu\n"
               "test_b.py optional module\n")
    result = run(tmp_path, allowed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skips CI does not allow" not in result.stdout
    result = run(tmp_path, None)
    assert result.returncode == 0 and "skips CI does not allow" not in result.stdout


def test_an_entry_needs_a_reason(tmp_path):
    result = run(tmp_path, "test_a.py::test_as_root  permission bits\ntest_b.py\n")
    assert result.returncode == 4  # a usage error, before any test runs
    assert f"{tmp_path / 'allowed.txt'}:2: 'test_b.py' has no reason" in result.stderr


def test_the_suites_conftest_applies_the_check(tmp_path):
    """tests/conftest.py reads the list: a bad one stops the repository's own pytest."""
    allowed = tmp_path / "allowed.txt"
    allowed.write_text("tests/test_x.py::test_y\n")
    env = {**os.environ, ENV: str(allowed)}
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                             "--collect-only", "-q", "tests/test_skip_check.py"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 4, result.stdout + result.stderr
    assert f"{allowed}:1: 'tests/test_x.py::test_y' has no reason" in result.stderr


def test_the_repositorys_list_names_existing_tests_with_reasons():
    entries = read_allowed(ROOT / ".ci" / "allowed-skips.txt")
    assert entries
    for pattern, reason in entries:
        path, _, name = pattern.partition("::")
        assert (ROOT / path).is_file(), pattern
        assert f"def {name.split('[')[0]}(" in (ROOT / path).read_text(), pattern
        assert len(reason.split()) >= 3, pattern
