"""``genbench run``'s exit status, row by row as README.md's "Exit status" table gives it,
and ``genbench results --failed``'s ("exits with status 1 when it lists anything").

Runs are in this process (``--jobs 0``) with a few training steps, except the dead worker,
which needs a worker process to die."""

import re
from pathlib import Path

import pytest

from genbench import hookimpl
from genbench.results.store import ResultStore
from genbench_plugins.models.vae import VAE
from helpers import BrokenMetric, DivergingVAE, ExplodingVAE, KilledVAE, invoke_cli, tiny_spec_toml

README = Path(__file__).resolve().parents[1] / "README.md"




class InterruptedVAE(VAE):
    """A VAE whose third training step gets a Ctrl-C while ``InterruptedVAE.pending``."""

    description = "test model: Ctrl-C while it trains"
    pending = False

    def train_step(self, batch, step):
        if step == 2 and InterruptedVAE.pending:
            InterruptedVAE.pending = False
            raise KeyboardInterrupt
        return super().train_step(batch, step)


class ExitCodePlugin:
    @hookimpl
    def register_models(self, register):
        register("diverging-vae", DivergingVAE)
        register("exploding-vae", ExplodingVAE)
        register("killed-vae", KilledVAE)
        register("interrupted-vae", InterruptedVAE)

    @hookimpl
    def register_metrics(self, register):
        register("broken", BrokenMetric)


@pytest.fixture
def genbench_cli(cli_plugins):
    """``genbench ARGS`` in this process, with this module's models and metric."""
    cli_plugins().register(ExitCodePlugin(), name="exit-code-plugin")
    return invoke_cli


def run(genbench_cli, tmp_path, *models, metrics=("recon",), jobs=0):
    """``genbench run`` of a 6-step suite of ``models`` on digits into ``tmp_path/o``."""
    spec = tmp_path / "s.toml"
    spec.write_text(tiny_spec_toml(models=models, metrics=metrics, steps=6))
    return genbench_cli("run", str(spec), "--out", str(tmp_path / "o"), "--jobs", str(jobs),
                    "--quiet")


def statuses(out: Path) -> dict[str, str]:
    jobs = ResultStore(out / "results.db").jobs()
    return dict(zip(jobs["job_key"], jobs["status"]))


def test_the_readme_table_has_the_statuses_tested_here():
    """A status added to the table needs its test here."""
    text = README.read_text(encoding="utf-8")
    table = text[text.index("### Exit status"):].split("\n\n")[1]
    assert re.findall(r"^\| (\d+) \|", table, re.M) == ["0", "1", "2", "130"]
    assert "`genbench results --failed` exits with status 1 when it lists\nanything" in text


# -- 0: every job and metric ran (a diverged model is a result, not an error) --------------

def test_a_clean_run_exits_0(genbench_cli, tmp_path):
    r = run(genbench_cli, tmp_path, "vae")
    assert r.exit_code == 0, r.output
    assert statuses(tmp_path / "o") == {"digits/vae/seed0": "ok"}
    listed = genbench_cli("results", "--failed", "--out", str(tmp_path / "o"))
    assert listed.exit_code == 0 and listed.stdout.startswith("no failed or diverged jobs")


def test_a_diverged_model_exits_0_and_results_failed_lists_it_with_1(genbench_cli, tmp_path):
    r = run(genbench_cli, tmp_path, "vae", "diverging-vae")
    assert r.exit_code == 0, r.output
    assert statuses(tmp_path / "o") == {"digits/vae/seed0": "ok",
                                        "digits/diverging-vae/seed0": "diverged"}
    # The README: `results --failed` exits 1 when it lists anything, a diverged job included.
    listed = genbench_cli("results", "--failed", "--out", str(tmp_path / "o"))
    assert listed.exit_code == 1, listed.output
    (entry,) = listed.stdout.split("\n\n")
    assert entry.startswith("diverged job digits/diverging-vae/seed0")
    assert "loss not finite at step 5" in entry


# -- 1: a job, a metric or a worker failed (the rest still ran), or a bug -------------------

@pytest.mark.parametrize("models, metrics, jobs, error", [
    (("exploding-vae", "vae"), ("recon",), 0, "RuntimeError: exploded on purpose at step 2"),
    (("vae",), ("broken", "recon"), 0, "this metric is broken on purpose"),
    (("killed-vae",), ("recon",), 1, "worker process died: killed by signal SIGKILL"),
], ids=["failed job", "failed metric", "killed worker"])
def test_a_failure_during_the_run_exits_1_and_the_rest_is_stored(genbench_cli, tmp_path, models,
                                                                 metrics, jobs, error):
    r = run(genbench_cli, tmp_path, *models, metrics=metrics, jobs=jobs)
    assert r.exit_code == 1, r.output
    assert "failed; see the notes above and `genbench results --failed`" in r.stderr
    out = tmp_path / "o"
    expected = {f"digits/{m}/seed0": "ok" if m == "vae" else "failed" for m in models}
    assert statuses(out) == expected  # a failed metric leaves its row ok...
    values = {row["job_key"]: row["metrics"] for row in ResultStore(out / "results.db").results()}
    if "vae" in models:  # ...with the other metrics' values
        assert values["digits/vae/seed0"]["recon.mse"] > 0
    listed = genbench_cli("results", "--failed", "--out", str(out))
    assert listed.exit_code == 1 and error in listed.stdout, listed.output


def test_an_unexpected_error_in_genbench_exits_1(genbench_cli, tmp_path, monkeypatch):
    from genbench.execution import suite

    def bug(*args, **kwargs):
        return {}["missing"]

    monkeypatch.setattr(suite, "run_and_publish", bug)
    r = run(genbench_cli, tmp_path, "vae")
    assert r.exit_code == 1
    assert r.stderr.startswith("Error: KeyError: 'missing'\n")


# -- 2: an error to fix before running; nothing is created ---------------------------------

def unknown_model(spec: str) -> str:
    return spec.replace('models = ["vae"]', 'models = ["nope"]')


def bad_value(spec: str) -> str:
    return spec.replace('models = ["vae"]', "") + "\n[models.vae]\nlatent_dim = 0\n"


def malformed(spec: str) -> str:
    return "datasets = [digits\n"


def unknown_key(spec: str) -> str:
    return "epochs = 3\n" + spec


def missing_data(spec: str) -> str:
    return spec.replace('"digits"', '"mnist"')


@pytest.mark.parametrize("edit, message", [
    (unknown_model, "unknown model 'nope'; valid models:"),
    (bad_value, "hyper-parameter 'latent_dim' must be int >= 1 (default 10), got 0"),
    (malformed, "not valid TOML"),
    (unknown_key, "unknown key(s) 'epochs'"),
    (missing_data, "mnist: files not found in "),
    (None, "cannot read spec"),
], ids=lambda v: getattr(v, "__name__", None))
def test_an_error_to_fix_before_running_exits_2_and_creates_nothing(genbench_cli, tmp_path, edit,
                                                                    message):
    spec = tmp_path / "s.toml"
    if edit is not None:  # None: the spec file is missing
        spec.write_text(edit(tiny_spec_toml(steps=6)))
    out = tmp_path / "o"
    r = genbench_cli("run", str(spec), "--out", str(out), "--jobs", "0")
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("Error: ") and message in r.stderr, r.stderr
    assert "Traceback" not in r.output
    assert not out.exists()


# -- 130: interrupted; finished jobs are stored, the same command resumes -------------------

def test_ctrl_c_exits_130_and_the_same_command_resumes(genbench_cli, tmp_path, monkeypatch):
    monkeypatch.setattr(InterruptedVAE, "pending", True)
    r = run(genbench_cli, tmp_path, "vae", "interrupted-vae")
    assert r.exit_code == 130, r.output
    assert "run the same command again to resume" in r.stderr
    assert not InterruptedVAE.pending  # the interrupt came from its training, not elsewhere
    again = run(genbench_cli, tmp_path, "vae", "interrupted-vae")
    assert again.exit_code == 0, again.output
    assert statuses(tmp_path / "o") == {"digits/vae/seed0": "ok",
                                        "digits/interrupted-vae/seed0": "ok"}
