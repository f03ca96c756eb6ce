"""The complete plugin of docs/plugins.md, as a user would meet it: its files are taken from
the page's code blocks (``# file: <path>`` on the first line), the package is installed with
pip into a temporary folder (never into the running environment), and the page's commands
run in processes that find the plugin through that folder on PYTHONPATH, the way an
installed plugin is found: by its ``genbench`` entry point."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from genbench.cli.commands import cli
from genbench.registry.manager import ENTRY_POINT_GROUP
from genbench.results.store import ResultStore

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
FILE_LINE = re.compile(r"# file: (\S+)\n")


def doc_files() -> dict[str, str]:
    """``{path: content}`` of the code blocks of "A complete plugin" that name a file."""
    text = DOCS.read_text(encoding="utf-8")
    start = text.index("## A complete plugin\n")
    section = text[start:text.index("\n## ", start + 1)]
    files = {}
    for block in re.findall(r"```[a-z]*\n(.*?)```", section, re.S):
        match = FILE_LINE.match(block)
        if match:
            files[match.group(1)] = block[match.end():]
    return files


@pytest.fixture(scope="module")
def plugin_home(tmp_path_factory) -> Path:
    """The page's files written out, the package installed into ``site/`` beside them."""
    root = tmp_path_factory.mktemp("worked-plugin")
    for name, body in doc_files().items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(body, encoding="utf-8")
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--target", str(root / "site"), "--no-deps",
         "--no-build-isolation", "--no-index", "--no-cache-dir", "--disable-pip-version-check",
         "--quiet", str(root / "genbench-gaussian")],
        capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return root


def genbench(home: Path, *args: str) -> subprocess.CompletedProcess:
    """``genbench ARGS`` in ``home`` with the plugin's folder on PYTHONPATH and entry points
    loaded (the test environment's caches and data roots are inherited)."""
    env = {k: v for k, v in os.environ.items() if k != "GENBENCH_DISABLE_PLUGIN_AUTOLOAD"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(home / "site"), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "genbench", *args], cwd=home, env=env,
                          capture_output=True, text=True, timeout=600)


def test_the_page_holds_a_package_with_a_genbench_entry_point():
    files = doc_files()
    assert set(files) == {"genbench-gaussian/pyproject.toml",
                          "genbench-gaussian/genbench_gaussian.py", "gaussian.toml"}
    project = tomllib.loads(files["genbench-gaussian/pyproject.toml"])["project"]
    assert project["entry-points"][ENTRY_POINT_GROUP] == {"gaussian": "genbench_gaussian"}
    spec = tomllib.loads(files["gaussian.toml"])
    assert spec["models"] == ["gaussian", "vae"] and spec["datasets"] == ["correlated-gaussian"]


def test_installed_plugin_is_listed(plugin_home):
    models = genbench(plugin_home, "list", "models")
    assert models.returncode == 0, models.stderr
    row = next(line for line in models.stdout.splitlines() if line.startswith("gaussian "))
    assert row.split()[:5] == ["gaussian", "gaussian", "image,vector", "sample,fit", "gaussian"]


def test_the_pages_suite_fits_and_ranks_the_plugin_model(plugin_home):
    # one worker process (not one per core): it still finds the plugin as the driver does
    run = genbench(plugin_home, "run", "gaussian.toml", "--out", "gaussian-out", "--jobs", "1")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "correlated-gaussian/gaussian/seed0: fitted" in run.stderr
    out = plugin_home / "gaussian-out"
    rows = {r["model"]: r for r in ResultStore(out / "results.db", readonly=True).results()}
    assert rows["gaussian"]["status"] == "ok" and rows["vae"]["status"] == "ok"
    assert rows["gaussian"]["provenance"]["code"]["model"]["class"] == "genbench_gaussian:Gaussian"
    assert (rows["gaussian"]["provenance"]["code"]["model"]["distribution"],
            rows["gaussian"]["provenance"]["code"]["model"]["version"]) == ("genbench-gaussian", "0.1.0")

    # the leaderboard files rank it first on the plugin's own metric
    tidy = pd.read_csv(out / "leaderboards" / "gaussian-demo" / "correlated-gaussian.csv")
    cov = tidy[tidy["column"] == "moments.cov"].set_index("model")
    assert cov.loc["gaussian", "rank"] == 1 and cov.loc["vae", "rank"] == 2
    assert pd.isna(cov.loc["train-data", "rank"])  # the reference row is not ranked
    # a fitted Gaussian is as close to the test covariance as the training data itself
    assert cov.loc["gaussian", "mean"] < 1.5 * cov.loc["train-data", "mean"] < cov.loc["vae", "mean"]
    board = CliRunner().invoke(cli, ["leaderboard", "--out", str(out), "--metrics", "moments"])
    assert board.exit_code == 0, board.output
    # the board bolds its best covariance (means of 500 samples differ by sampling noise alone)
    assert re.search(r"^\| gaussian +\| [0-9.*]+ +\| \*\*[0-9.]+\*\*", board.stdout, re.M), \
        board.stdout

    # fit's state is in the checkpoint: buffers sized by __init__, finished with 0 steps
    (checkpoint,) = (out / "runs").glob("correlated-gaussian__gaussian__seed0__*/checkpoint.pt")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert state["done"] and state["step"] == 0
    mean, tril = state["model"]["mean"], state["model"]["scale_tril"]
    assert mean.shape == (8,) and tril.shape == (8, 8)
    assert torch.equal(tril, tril.tril()) and bool((tril.diagonal() > 0).all())
    assert list(checkpoint.parent.glob("eval-*/samples/manifest.json"))  # the row's samples beside it


def test_a_value_the_plugin_rejects_stops_the_run_before_training(plugin_home):
    spec = (plugin_home / "gaussian.toml").read_text().replace(
        'models = ["gaussian", "vae"]', 'models = { gaussian = { shrinkage = -1.0 } }')
    (plugin_home / "negative.toml").write_text(spec)
    run = genbench(plugin_home, "run", "negative.toml", "--out", "negative-out")
    assert run.returncode == 2, run.stdout + run.stderr
    assert ("model 'gaussian[shrinkage=-1.0]': hyper-parameter 'shrinkage' must be float >= 0 "
            "(default 0.0001), got -1.0") in run.stderr
    assert "Traceback" not in run.stderr
    assert not (plugin_home / "negative-out" / "runs").exists()


def test_building_the_plugins_classes_in_python_checks_their_declarations(plugin_home):
    """The page's classes declare their options and check none by hand; a direct call is
    checked all the same, naming the class, the option, the value and what is allowed."""
    code = (
        "from genbench import ConfigError, DataInfo\n"
        "from genbench_gaussian import CorrelatedGaussian, Gaussian\n"
        "info = DataInfo(name='v', kind='vector', shape=(3,))\n"
        "print(Gaussian(info, shrinkage=0).shrinkage)\n"
        "for build in (lambda: Gaussian(info, shrinkage=-1.0), lambda: CorrelatedGaussian(dim=1)):\n"
        "    try:\n"
        "        build()\n"
        "    except ConfigError as exc:\n"
        "        print(exc)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(plugin_home / "site"), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-c", code], cwd=plugin_home, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines() == [
        "0",
        "Gaussian: hyper-parameter 'shrinkage' must be float >= 0 (default 0.0001), got -1.0",
        "CorrelatedGaussian: hyper-parameter 'dim' must be int >= 2 (default 8), got 1",
    ]
