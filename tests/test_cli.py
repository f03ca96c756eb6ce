"""The command line, in-process (click's runner) and as real processes."""

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

import torch

from genbench import (Completion, Executor, GenerativeModel, ModelRef, OutputFormat,
                      __version__, hookimpl)
from genbench.cli.commands import cli
from genbench.results.store import ResultStore
from helpers import invoke_cli, stored_jobs, tiny_spec_toml

SPEC = tiny_spec_toml(metrics=["recon", "speed"])
invoke = invoke_cli


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
    (["--device", "meta"], "device 'meta' is not one genbench runs on"),
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
    printed = r.output.splitlines()
    assert any(line.startswith("vae ") for line in printed) and "recon MSE ↓" in r.output
    assert max(len(line) for line in printed) <= 120
    assert (out / "leaderboards" / "t" / "digits.md").read_text().startswith("### digits — suite t")
    from PIL import Image
    with Image.open(out / "leaderboards" / "t" / "digits-samples.png") as picture:
        assert picture.size[0] > 300  # a strip of 16 samples for the one model
    tidy = pd.read_csv(out / "leaderboards" / "t" / "digits.csv")
    assert {"recon.mse", "speed.samples_per_s"} <= set(tidy["column"])
    assert tidy.loc[tidy["column"] == "recon.mse", "model"].tolist() == ["vae"]

    again = invoke("run", str(spec), "--out", str(out))
    assert again.exit_code == 0
    assert "1 job(s) already in" in again.output
    assert sum(line.startswith("vae ") for line in again.output.splitlines()) == 1

    board = invoke("leaderboard", "--out", str(out))
    assert board.exit_code == 0 and "| vae " in board.output
    csv_out = invoke("leaderboard", "--out", str(out), "--format", "csv").output
    assert pd.read_csv(io.StringIO(csv_out))["dataset"].tolist()[0] == "digits"
    assert invoke("leaderboard", "--out", str(out), "--suite", "zz").output.endswith("suites stored: t\n")
    bad = invoke("leaderboard", "--out", str(out), "--sort", "recon.nope")
    assert bad.exit_code == 2 and "no leaderboard has a column 'recon.nope'; columns: recon.mse" in bad.output
    rows = json.loads(invoke("results", "--out", str(out), "--format", "json").output)
    assert len(rows) == 1 and rows[0]["provenance"]["num_samples"] == 64
    assert rows[0]["metrics"]["recon.mse"] > 0
    csv_rows = invoke("results", "--out", str(out)).output.splitlines()
    assert len(csv_rows) == 2 and "provenance" in csv_rows[0] and "recon.mse" in csv_rows[0]
    missing = invoke("leaderboard", "--out", str(tmp_path / "empty"))
    assert missing.exit_code == 2 and "run `genbench run --out" in missing.output


def test_list_and_plugins():
    models = invoke("list", "models").output
    assert "vae" in models and "reconstruct" in models and "family" in models
    datasets = invoke("list", "datasets").output
    assert "digits" in datasets and "1x8x8" in datasets
    metrics = invoke("list", "metrics").output
    assert "recon" in metrics and "speed" in metrics
    assert json.loads(invoke("plugins").stdout) == []  # no third-party plugins here
    everything = json.loads(invoke("plugins", "--all").stdout)
    assert {"name": "genbench_plugins.models.vae", "hooks": ["register_models"],
            "distribution": "genbench", "version": __version__, "status": "ok"} in everything
    bad = invoke("list", "things")
    assert bad.exit_code == 2


def test_list_and_show_a_plugin_sampler(cli_plugins):
    from helpers import SamplerPlugin

    cli_plugins().register(SamplerPlugin(), name="test-samplers")
    listed = invoke("list", "samplers").stdout
    assert "ddim-test" in listed and "test-samplers" in listed and "deterministic DDIM" in listed
    shown = invoke("show", "sampler", "ddim-test")
    assert shown.exit_code == 0, shown.output
    assert "\nplugin       test-samplers\n" in shown.stdout  # registered directly: no distribution
    assert "helpers:LinearDDIM" in shown.stdout
    assert "num_train_timesteps  1000       int" in shown.stdout


# -- genbench show ------------------------------------------------------------------------

class DecodedGaussian(GenerativeModel):
    """A model on a model: N(0, temperature^2 I) codes decoded by a trained autoencoder."""

    description = "test model: Gaussian codes decoded by a trained autoencoder"
    family = "two-stage"

    def __init__(self, data_info, autoencoder=ModelRef("ae", latent_dim=4)):
        super().__init__()
        self.autoencoder = autoencoder

    def fit(self, data, budget):
        """Nothing of its own to train: the runner trains the autoencoder as its own job."""

    @torch.no_grad()
    def sample(self, n, generator=None, *, temperature: float = 1.0):
        z = temperature * self.randn(n, self.autoencoder.latent_dim, generator=generator)
        return self.autoencoder.decode(z)


class TwoStagePlugin:
    @hookimpl
    def register_models(self, register):
        register("decoded-gaussian", DecodedGaussian)


def table_row(text: str, *cells: str) -> bool:
    """Whether ``text`` has a line of exactly these cells, separated by spaces."""
    return any(line.split() == list(cells) for line in text.splitlines())


def test_show_model_lists_hyperparameters_with_defaults():
    r = invoke("show", "model", "vae")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("model vae\n")
    assert table_row(r.stdout, "latent_dim", "10", "int", ">=", "1")
    assert table_row(r.stdout, "class", "genbench_plugins.models.vae:VAE")
    assert table_row(r.stdout, "plugin", "genbench_plugins.models.vae", "(genbench",
                     f"{__version__})")
    assert "capabilities  sample, train_step, reconstruct, encode, elbo" in r.stdout
    info = json.loads(invoke("show", "model", "vae", "--json").stdout)
    latent_dim = {"name": "latent_dim", "default": 10, "type": "int >= 1", "required": False}
    assert latent_dim in info["hyperparameters"]
    assert info["distribution"] == "genbench" and info["class"] == "genbench_plugins.models.vae:VAE"
    folder = invoke("show", "dataset", "image-folder").stdout
    assert table_row(folder, "path", "<required>", "str", "|", "PathLike")


def test_show_model_ref_and_sampling_settings(cli_plugins):
    cli_plugins().register(TwoStagePlugin(), name="two-stage")
    r = invoke("show", "model", "decoded-gaussian")
    assert r.exit_code == 0, r.output
    hyper, sampling = r.stdout.split("sampling settings:")
    assert table_row(hyper, "autoencoder", "ModelRef('ae',", "latent_dim=4)", "model")
    assert table_row(sampling, "temperature", "1.0", "float")
    info = json.loads(invoke("show", "model", "decoded-gaussian", "--json").stdout)
    assert info["hyperparameters"] == [{"name": "autoencoder", "type": "model", "required": False,
                                        "default": {"name": "ae", "params": {"latent_dim": 4}}}]
    assert info["sampling_settings"] == [{"name": "temperature", "default": 1.0, "type": "float",
                                          "required": False}]
    assert info["capabilities"] == ["sample", "fit"] and info["distribution"] is None


class TaggedExecutor(Executor):
    """Test executor: jobs in the driver's process, with one declared option."""

    description = "test executor: one job at a time, tagged"

    @dataclass(frozen=True)
    class Options:
        tag: str = "x"
        retries: int = 0

    def start(self, setup, context):
        self.state = setup(context, 0)

    def submit(self, key, work, job):
        self.done = [Completion(key, result=work(self.state, job))]

    def wait(self):
        return self.done

    def close(self, cancel=False):
        pass


class TaggedExecutorPlugin:
    @hookimpl
    def register_executors(self, register):
        register("tagged", TaggedExecutor)


def test_list_and_show_executors_with_their_options(cli_plugins):
    cli_plugins().register(TaggedExecutorPlugin(), name="tagged-plugin")
    listed = invoke("list", "executors")
    assert listed.exit_code == 0, listed.output
    assert table_row(listed.stdout, "tagged", "tag,retries", "tagged-plugin", "test", "executor:",
                     "one", "job", "at", "a", "time,", "tagged")
    assert any(line.split()[:2] == ["local", "-"] for line in listed.stdout.splitlines())
    assert any(line.split()[:2] == ["ray", "address,num_cpus,num_gpus,max_retries,artifacts,"
                                           "shared_dir"] for line in listed.stdout.splitlines())
    shown = invoke("show", "executor", "tagged")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith("executor tagged\n")
    assert table_row(shown.stdout, "tag", "'x'", "str")
    assert table_row(shown.stdout, "retries", "0", "int")
    local = invoke("show", "executor", "local")
    assert local.exit_code == 0, local.output
    assert "\noptions:\n(none)" in local.stdout
    assert table_row(local.stdout, "class", "genbench.execution.local_executor:LocalExecutor")
    ray = json.loads(invoke("show", "executor", "ray", "--json").stdout)
    assert ray["requires"] == ["ray"] and "genbench[ray]" in ray["install"]
    (retries,) = [o for o in ray["options"] if o["name"] == "max_retries"]
    assert retries["default"] == 1 and retries["type"].startswith("int") and not retries["required"]
    unknown = invoke("show", "executor", "lcoal")
    assert unknown.exit_code == 2 and "unknown executor 'lcoal'; valid executors:" in unknown.stderr


class BoardList(OutputFormat):
    """Test format: the boards' keys, one line each, written only when asked for."""

    description = "the boards' keys as a text file"
    published = False
    option = "--board-list"

    def write(self, boards, store, directory, *, fingerprints=None):
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "boards.txt"
        path.write_text("".join(f"{suite}/{dataset}\n" for suite, dataset in boards))
        return [path]


class BoardListPlugin:
    option = "--board-list"

    @hookimpl
    def register_formats(self, register):
        register("board-list", type("BoardList", (BoardList,), {"option": self.option}))


def test_an_output_format_declares_its_run_option(cli_plugins, tmp_path):
    cli_plugins().register(BoardListPlugin(), name="board-list-plugin")
    assert "--tensorboard DIR" in invoke("run", "--help").stdout  # declared by its plugin
    helped = invoke("run", "--help").stdout
    assert "--board-list DIR" in helped and "the boards' keys as a text file" in helped
    spec = write_spec(tmp_path / "s.toml", tiny_spec_toml(metrics=["recon"], steps=3))
    r = invoke("run", str(spec), "--out", str(tmp_path / "o"), "-j", "0",
               "--board-list", str(tmp_path / "a"), "--output", f"board-list={tmp_path / 'b'}")
    assert r.exit_code == 2 and "two folders for output format 'board-list'" in r.output
    r = invoke("run", str(spec), "--out", str(tmp_path / "o"), "-j", "0",
               "--board-list", str(tmp_path / "a"))
    assert r.exit_code == 0, r.output
    assert (tmp_path / "a" / "boards.txt").read_text() == "t/digits\n"
    assert f"board-list: 1 file(s) written to {tmp_path / 'a'}" in r.stderr
    r = invoke("run", str(spec), "--out", str(tmp_path / "o"), "-q",
               "--output", f"board-list={tmp_path / 'b'}")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "b" / "boards.txt").read_text() == "t/digits\n"
    for bad in ("board-list", "=b", "board-list="):
        r = invoke("run", str(spec), "--out", str(tmp_path / "o"), "--output", bad)
        assert r.exit_code == 2 and "expected FORMAT=DIR" in r.output, (bad, r.output)
    r = invoke("run", str(spec), "--out", str(tmp_path / "o"), "--output", f"nope={tmp_path}")
    assert r.exit_code == 2 and "unknown output format 'nope'" in r.output, r.output


def test_a_format_option_that_clashes_with_a_run_option_is_refused(cli_plugins):
    plugin = BoardListPlugin()
    plugin.option = "--out"
    cli_plugins().register(plugin, name="board-list-plugin")
    r = invoke("run", "--help")
    assert r.exit_code == 2
    assert "output format 'board-list' declares option '--out'" in r.output, r.output


def test_show_unknown_name_exits_2_listing_valid_ones():
    r = invoke("show", "model", "vea")
    assert r.exit_code == 2
    assert "unknown model 'vea'; valid models: aae, ae, beta-vae," in r.stderr
    assert invoke("show", "widget", "vae").exit_code == 2


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


def make_distribution(root: Path, body: str = PLUGIN_SOURCE, name: str = "ppca") -> Path:
    """A minimal installed distribution genbench-NAME (module genbench_NAME + dist-info with
    a genbench entry point NAME) in folder ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"genbench_{name}.py").write_text(body)
    info = root / f"genbench_{name}-0.3.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: genbench-{name}\nVersion: 0.3.0\n")
    (info / "entry_points.txt").write_text(f"[genbench]\n{name} = genbench_{name}\n")
    return root


# Another plugin installed beside the one a test loads, as on a plugin author's machine:
# written for an older genbench (its only hook is misspelt), it would be listed as broken
# and warned about by every command. Tests load only their own plugin (GENBENCH_LOAD_PLUGINS),
# so it must change nothing they see.
BYSTANDER_PLUGIN = ("from genbench import hookimpl\n\n\n"
                    "@hookimpl\ndef register_model(register):\n    pass\n")
ONLY_PPCA = {"GENBENCH_LOAD_PLUGINS": "genbench-ppca"}


def plugin_site(root: Path, body: str = PLUGIN_SOURCE) -> Path:
    """Folder ``root`` with genbench-ppca (``body``) and the bystander installed in it."""
    make_distribution(root, BYSTANDER_PLUGIN, name="bystander")
    return make_distribution(root, body)


def genbench_process(args, env_extra=None, **kw):
    env = {k: v for k, v in os.environ.items() if k != "GENBENCH_DISABLE_PLUGIN_AUTOLOAD"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "genbench", *args], env=env,
                          capture_output=True, text=True, timeout=300, **kw)


def test_third_party_plugin_in_list_and_run(tmp_path):
    site = plugin_site(tmp_path / "site")
    env = {"PYTHONPATH": str(site), **ONLY_PPCA}
    listed = genbench_process(["list", "models"], env)
    assert listed.returncode == 0, listed.stderr
    assert "ppca" in listed.stdout and "probabilistic PCA" in listed.stdout
    plugins = json.loads(genbench_process(["plugins"], env).stdout)
    assert plugins == [{"name": "ppca", "hooks": ["register_models"],
                        "distribution": "genbench-ppca", "version": "0.3.0", "status": "ok"}]
    spec = write_spec(tmp_path / "s.toml", SPEC.replace('models = ["vae"]', 'models = ["ppca", "vae"]'))
    run = genbench_process(["run", str(spec), "--out", str(tmp_path / "o")], env)
    assert run.returncode == 0, run.stderr
    models = [line.split()[0] for line in run.stdout.splitlines() if line.strip()]
    assert "ppca" in models and "vae" in models
    # PPCA with 8 of 64 components reconstructs digits far better than the mean image
    assert "digits/ppca/seed0" in run.stderr

    disabled = genbench_process(["list", "models"], {**env, "GENBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert "ppca" not in disabled.stdout
    only_other = genbench_process(["list", "models"], {**env, "GENBENCH_LOAD_PLUGINS": "something-else"})
    assert "ppca" not in only_other.stdout
    assert "GENBENCH_LOAD_PLUGINS names something-else, but no installed" in only_other.stderr
    only_it = genbench_process(["list", "models"], {**env, "GENBENCH_LOAD_PLUGINS": "genbench-ppca"})
    assert "ppca" in only_it.stdout


BROKEN_PLUGIN = "import does_not_exist_anywhere\n"
BROKEN_ERROR = ('Error loading plugin "ppca" (from genbench-ppca): ModuleNotFoundError: '
                "No module named 'does_not_exist_anywhere'")


def test_broken_third_party_plugin_leaves_every_command_working(tmp_path):
    site = plugin_site(tmp_path / "site", body=BROKEN_PLUGIN)
    r = genbench_process(["list", "models"], {"PYTHONPATH": str(site), **ONLY_PPCA})
    assert r.returncode == 0, r.stderr
    assert "vae" in r.stdout and "ppca" not in r.stdout
    assert r.stderr.splitlines() == [f'warning: plugin "ppca" left out: {BROKEN_ERROR}']


def test_broken_plugin_is_listed_and_named_by_unknown_names(tmp_path, monkeypatch, cli_plugins):
    monkeypatch.syspath_prepend(plugin_site(tmp_path / "site", body=BROKEN_PLUGIN))
    monkeypatch.delenv("GENBENCH_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.setenv("GENBENCH_LOAD_PLUGINS", ONLY_PPCA["GENBENCH_LOAD_PLUGINS"])
    listed = invoke("plugins")
    assert json.loads(listed.stdout) == [
        {"name": "ppca", "hooks": [], "distribution": "genbench-ppca", "version": "0.3.0",
         "status": "broken", "error": BROKEN_ERROR}]
    assert listed.stderr.splitlines() == [f'warning: plugin "ppca" left out: {BROKEN_ERROR}']
    unknown = invoke("show", "model", "ppca")
    assert unknown.exit_code == 2
    assert ('note: plugin "ppca" failed to load (see above), the name may have been its'
            in unknown.stderr)
    assert 'left out' not in unknown.stderr  # reported once per process, not per lookup


class CommandPlugins:
    """One plugin adds a command and then fails; another tries to replace ``list``."""

    class Failing:
        @hookimpl
        def register_commands(self, cli):
            cli.command(name="hello")(lambda: None)
            raise RuntimeError("half-way")

    class Hijacking:
        @hookimpl
        def register_commands(self, cli):
            cli.command(name="list")(lambda: None)


def test_plugin_commands_that_fail_are_taken_back(cli_plugins):
    pm = cli_plugins()
    pm.register(CommandPlugins.Failing(), name="failing")
    pm.register(CommandPlugins.Hijacking(), name="hijacking")
    r = invoke("plugins")
    errors = {p["name"]: p["error"] for p in json.loads(r.stdout)}
    assert errors == {
        "failing": 'plugin "failing" failed in register_commands: RuntimeError: half-way',
        "hijacking": 'plugin "hijacking" redefines or removes the command(s) list, defined by '
                     "genbench or an earlier plugin; uninstall or disable one of them"}
    assert "hello" not in cli.commands
    assert "vae" in invoke("list", "models").stdout


HELD_PLUGIN = '''
"""A VAE whose training of seed 3 holds before step HOLD_AT (its checkpoints up to step
100 written) until the file GATE exists; it touches HELD when it starts holding."""
import os
import time
from pathlib import Path

import torch
from genbench import hookimpl
from genbench_plugins.models.vae import VAE

HOLD_SEED, HOLD_AT = 3, 120
GATE, HELD = Path({gate!r}), Path({held!r})


class HeldVAE(VAE):
    description = "test model: seed 3 holds at step 120 until a file exists"

    def __init__(self, data_info, **kwargs):
        super().__init__(data_info, **kwargs)
        self.seed = torch.initial_seed()  # each training is seeded just before its model is built

    def train_step(self, batch, step):
        if step == HOLD_AT and self.seed == HOLD_SEED and not GATE.exists():
            HELD.touch()
            parent = os.getppid()
            deadline = time.monotonic() + 600  # bounds a hang only
            while not GATE.exists() and os.getppid() == parent and time.monotonic() < deadline:
                time.sleep(0.05)
        return super().train_step(batch, step)


@hookimpl
def register_models(register):
    register("held-vae", HeldVAE)
'''


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill -9 the driver", "ctrl-c"])
def test_interrupted_run_resumes_with_every_job_stored_once(tmp_path, how):
    """SIGKILL of the driver alone (its workers die with it), or Ctrl-C in a terminal (SIGINT
    to the whole process group), while seed 3 trains (held past its step-100 checkpoint) and
    at least one row is stored: finished jobs stay, the rerun does only the rest, and seed 3
    resumes from its last checkpoint. Events, not timings, decide when to interrupt."""
    gate, held = tmp_path / "gate", tmp_path / "held"
    site = make_distribution(tmp_path / "site", HELD_PLUGIN.format(gate=str(gate), held=str(held)),
                             name="held")
    env = {k: v for k, v in os.environ.items() if k != "GENBENCH_DISABLE_PLUGIN_AUTOLOAD"}
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")])),
               GENBENCH_LOAD_PLUGINS="genbench-held")
    out = tmp_path / "o"
    spec = write_spec(tmp_path / "s.toml", SPEC.replace("seeds = [0]", "seeds = [0, 1, 2, 3]")
                      .replace('models = ["vae"]', 'models = ["held-vae"]')
                      .replace("steps = 30", "steps = 150\ncheckpoint_every = 50"))
    db = out / "results.db"
    # Two workers, whatever the cores: one holds seed 3, the other trains and evaluates the rest.
    args = ["run", str(spec), "--out", str(out), "--jobs", "2"]
    # A terminal's Ctrl-C reaches a process whose SIGINT is at its default; a test run
    # started in the background by a non-interactive shell inherits SIGINT ignored.
    proc = subprocess.Popen([sys.executable, "-m", "genbench", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300  # bounds a hang, not a speed
    while not (held.exists() and stored_jobs(db)) and proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()  # its workers die with it
            pytest.fail(f"no stored row and held seed 3 after 300 s:\n{proc.communicate()[1]}")
        time.sleep(0.02)
    if proc.poll() is not None:
        pytest.fail(f"the run ended ({proc.returncode}) before seed 3 held and a row was "
                    f"stored:\n{proc.communicate()[1]}")
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    if how == "ctrl-c":
        assert proc.returncode == 130, err
        assert "interrupted" in err and "run the same command again to resume" in err
    before = stored_jobs(db)
    assert 1 <= len(before) < 4 and "digits/held-vae/seed3" not in {k for k, _, _ in before}

    gate.touch()
    rerun = subprocess.run([sys.executable, "-m", "genbench", *args], env=env,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(before)} job(s) already in" in rerun.stderr
    after = stored_jobs(db)
    keys = [k for k, _, _ in after]
    assert sorted(keys) == [f"digits/held-vae/seed{s}" for s in range(4)]  # each exactly once
    assert set(before) <= set(after)  # finished jobs were neither redone nor lost
    # Seed 3, interrupted at step 120, resumed from its last checkpoint (every 50 steps).
    resumed = {t["seed"]: t["provenance"]["train"]["resumed_from"]
               for t in ResultStore(db).trainings().to_dict("records")}
    assert resumed[3] == 100
