"""The command line, in-process (click's runner) and as real processes."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from genbench import __version__
from genbench.cli import cli

SPEC = """
name = "t"
datasets = ["digits"]
models = ["vae"]
metrics = ["recon", "speed"]
seeds = [0]
num_samples = 64
baselines = []
[budget]
steps = 30
"""


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def write_spec(path: Path, text: str = SPEC) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_version_and_help():
    assert invoke("--version").output.strip() == f"genbench, version {__version__}"
    out = invoke("--help").output
    for cmd in ("run", "leaderboard", "results", "list", "plugins"):
        assert cmd in out
    assert "genbench run" in out and "Quick start" in out


@pytest.mark.parametrize("args, needle", [
    (["--models", "nope"], "unknown model 'nope'; valid models:"),
    (["--datasets", "nope"], "unknown dataset 'nope'; valid datasets: "),
    (["--metrics", "nope"], "unknown metric 'nope'; valid metrics:"),
    (["--seeds", "a,b"], "seeds must be comma-separated integers"),
    (["--seeds", "0,0"], "seeds has duplicates"),
    (["--device", "tpu9"], "unknown device 'tpu9'"),
])
def test_usage_errors_exit_2(tmp_path, args, needle):
    spec = write_spec(tmp_path / "s.toml")
    result = invoke("run", str(spec), "--out", str(tmp_path / "o"), *args)
    assert result.exit_code == 2, result.output
    assert needle in result.output


def test_unknown_hyperparameter_and_malformed_spec_exit_2(tmp_path):
    p = write_spec(tmp_path / "p.toml", SPEC.replace('models = ["vae"]', "") + "\n[models.vae]\nlatentdim = 3\n")
    r = invoke("run", str(p), "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "unknown hyper-parameter 'latentdim'" in r.output
    assert "latent_dim=10" in r.output  # valid ones with their defaults
    r = invoke("run", str(tmp_path / "p2.toml"), "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "cannot read spec" in r.output
    broken = write_spec(tmp_path / "b.toml", "datasets = [digits\n")
    r = invoke("run", str(broken), "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and "not valid TOML" in r.output
    r = invoke("run", str(write_spec(tmp_path / "k.toml", "epochs = 3\n" + SPEC)))
    assert r.exit_code == 2 and "unknown key(s) 'epochs'" in r.output


def test_run_leaderboard_results(tmp_path):
    out = tmp_path / "o"
    spec = write_spec(tmp_path / "s.toml")
    r = invoke("run", str(spec), "--out", str(out), "-q")
    assert r.exit_code == 0, r.output
    assert "| vae " in r.output and "recon.mse" in r.output and "speed.samples_per_s" in r.output
    assert (out / "leaderboards" / "t" / "digits.md").read_text().startswith("### digits — suite t")
    from PIL import Image
    with Image.open(out / "leaderboards" / "t" / "digits-samples.png") as picture:
        assert picture.size[0] > 300  # a strip of 16 samples for the one model
    csv_text = (out / "leaderboards" / "t" / "digits.csv").read_text()
    assert csv_text.startswith("model,family,n,status,recon.mse mean,recon.mse std")

    again = invoke("run", str(spec), "--out", str(out))
    assert again.exit_code == 0
    assert "1 job(s) already in" in again.output
    assert again.output.count("| vae ") == 1

    board = invoke("leaderboard", "--out", str(out))
    assert board.exit_code == 0 and "| vae " in board.output
    assert invoke("leaderboard", "--out", str(out), "--format", "csv").output.startswith("model,")
    assert invoke("leaderboard", "--out", str(out), "--suite", "zz").output.endswith("suites stored: t\n")
    bad = invoke("leaderboard", "--out", str(out), "--primary", "recon.nope")
    assert bad.exit_code == 2 and "no leaderboard has a column 'recon.nope'; columns: recon.mse" in bad.output
    rows = json.loads(invoke("results", "--out", str(out), "--format", "json").output)
    assert len(rows) == 1 and rows[0]["provenance"]["num_samples"] == 64
    assert rows[0]["metrics"]["recon.mse"] > 0
    csv_rows = invoke("results", "--out", str(out)).output.splitlines()
    assert len(csv_rows) == 2 and "provenance" in csv_rows[0] and "recon.mse" in csv_rows[0]
    missing = invoke("leaderboard", "--out", str(tmp_path / "empty"))
    assert missing.exit_code == 1 and "run `genbench run --out" in missing.output


def test_list_and_plugins():
    models = invoke("list", "models").output
    assert "vae" in models and "reconstruct" in models and "family" in models
    datasets = invoke("list", "datasets").output
    assert "digits" in datasets and "1x8x8" in datasets
    metrics = invoke("list", "metrics").output
    assert "recon" in metrics and "speed" in metrics
    assert json.loads(invoke("plugins").output) == []  # no third-party plugins here
    everything = json.loads(invoke("plugins", "--all").output)
    assert {"name": "genbench_plugins.models.vae", "hooks": ["register_models"],
            "distribution": "genbench", "version": __version__} in everything
    bad = invoke("list", "things")
    assert bad.exit_code == 2


# -- real processes ----------------------------------------------------------------------

PLUGIN_SOURCE = '''
"""A third-party genbench plugin: probabilistic PCA (Tipping & Bishop 1999), closed form."""
import torch
from genbench import GenerativeModel, hookimpl


class PPCA(GenerativeModel):
    description = "probabilistic PCA (closed-form maximum likelihood)"
    family = "linear"

    def __init__(self, data_info, latent_dim: int = 8):
        super().__init__()
        self.shape, self.q = data_info.shape, latent_dim
        d = data_info.dim
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("W", torch.zeros(d, latent_dim))
        self.register_buffer("sigma2", torch.ones(()))

    def fit(self, data, budget):
        x = torch.stack([item[0] if isinstance(item, tuple) else item for item in data]).flatten(1)
        self.mean.copy_(x.mean(0))
        evals, evecs = torch.linalg.eigh(torch.cov((x - self.mean).T))
        evals, evecs = evals.flip(0), evecs.flip(1)
        self.sigma2.copy_(evals[self.q:].mean())
        scale = (evals[: self.q] - self.sigma2).clamp_min(0).sqrt()
        self.W.copy_(evecs[:, : self.q] * scale)

    def sample(self, n, generator=None):
        z = self.randn(n, self.q, generator=generator)
        eps = self.randn(n, self.mean.numel(), generator=generator)
        x = z @ self.W.T + self.mean + eps * self.sigma2.sqrt()
        return x.reshape(n, *self.shape).clamp(0, 1)

    def encode(self, x):
        return (x.flatten(1) - self.mean) @ self.W

    def reconstruct(self, x):
        M = self.W.T @ self.W + self.sigma2 * torch.eye(self.q)
        z = torch.linalg.solve(M, ((x.flatten(1) - self.mean) @ self.W).T).T
        return (z @ self.W.T + self.mean).reshape(x.shape)


@hookimpl
def register_models(register):
    register("ppca", PPCA)
'''


def make_distribution(root: Path, body: str = PLUGIN_SOURCE) -> Path:
    """A minimal installed distribution (module + dist-info with a genbench entry point)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "genbench_ppca.py").write_text(body)
    info = root / "genbench_ppca-0.3.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: genbench-ppca\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text("[genbench]\nppca = genbench_ppca\n")
    return root


def genbench_process(args, env_extra=None, **kw):
    env = {k: v for k, v in os.environ.items() if k != "GENBENCH_DISABLE_PLUGIN_AUTOLOAD"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "genbench", *args], env=env,
                          capture_output=True, text=True, timeout=300, **kw)


def test_third_party_plugin_in_list_and_run(tmp_path):
    site = make_distribution(tmp_path / "site")
    env = {"PYTHONPATH": str(site)}
    listed = genbench_process(["list", "models"], env)
    assert listed.returncode == 0, listed.stderr
    assert "ppca" in listed.stdout and "probabilistic PCA" in listed.stdout
    plugins = json.loads(genbench_process(["plugins"], env).stdout)
    assert plugins == [{"name": "ppca", "hooks": ["register_models"],
                        "distribution": "genbench-ppca", "version": "0.3.0"}]
    spec = write_spec(tmp_path / "s.toml", SPEC.replace('models = ["vae"]', 'models = ["ppca", "vae"]'))
    run = genbench_process(["run", str(spec), "--out", str(tmp_path / "o")], env)
    assert run.returncode == 0, run.stderr
    assert "| ppca " in run.stdout and "| vae " in run.stdout
    # PPCA with 8 of 64 components reconstructs digits far better than the mean image
    assert "digits/ppca/seed0" in run.stderr

    disabled = genbench_process(["list", "models"], {**env, "GENBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert "ppca" not in disabled.stdout
    only_other = genbench_process(["list", "models"], {**env, "GENBENCH_LOAD_PLUGINS": "something-else"})
    assert "ppca" not in only_other.stdout
    assert "GENBENCH_LOAD_PLUGINS names something-else, but no installed" in only_other.stderr
    only_it = genbench_process(["list", "models"], {**env, "GENBENCH_LOAD_PLUGINS": "genbench-ppca"})
    assert "ppca" in only_it.stdout


def test_broken_third_party_plugin_is_named(tmp_path):
    site = make_distribution(tmp_path / "site", body="import does_not_exist_anywhere\n")
    r = genbench_process(["list", "models"], {"PYTHONPATH": str(site)})
    assert r.returncode == 1
    assert 'Error loading plugin "ppca" (from genbench-ppca): ModuleNotFoundError' in r.stderr
    assert "Traceback" not in r.stderr


def test_killed_run_resumes_with_every_job_stored_once(tmp_path):
    out = tmp_path / "o"
    spec = write_spec(tmp_path / "s.toml", SPEC.replace("seeds = [0]", "seeds = [0, 1, 2, 3]")
                      .replace("steps = 30", "steps = 200\ncheckpoint_every = 50"))
    db = out / "results.db"
    env = {k: v for k, v in os.environ.items()}
    proc = subprocess.Popen([sys.executable, "-m", "genbench", "run", str(spec), "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stored():
        if not db.exists():
            return []
        try:
            with sqlite3.connect(db) as con:
                return con.execute("SELECT job_key, created_at, id FROM jobs").fetchall()
        except sqlite3.OperationalError:
            return []

    deadline = time.time() + 240
    while len(stored()) < 1 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    before = stored()
    assert 1 <= len(before) < 4, "the run should be killed part-way"

    rerun = genbench_process(["run", str(spec), "--out", str(out)])
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(before)} job(s) already in" in rerun.stderr
    after = stored()
    keys = [k for k, _, _ in after]
    assert sorted(keys) == [f"digits/vae/seed{s}" for s in range(4)]  # each exactly once
    assert set(before) <= set(after)  # finished jobs were neither redone nor lost
