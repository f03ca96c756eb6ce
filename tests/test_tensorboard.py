"""``genbench run --tensorboard DIR``: losses.csv as TensorBoard event files, and a clear
error, before any training, when the tensorboard package is missing."""

import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from genbench.results.store import ResultStore
from helpers import invoke_cli, tiny_spec_toml

SPEC = tiny_spec_toml(models=["ae"])


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in the event files of ``folder``: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def assert_matches_losses(folder: Path, losses_csv: Path):
    expected = pd.read_csv(losses_csv)
    got = scalars(folder)
    names = [c for c in expected.columns if c != "step"]
    assert sorted(got) == sorted(f"loss/{n}" for n in names)
    for name in names:
        steps, values = zip(*got[f"loss/{name}"])
        assert list(steps) == expected["step"].tolist()
        assert list(values) == pytest.approx(expected[name].tolist(), rel=1e-6)


def test_event_files_hold_every_training_s_losses(tmp_path):
    pytest.importorskip("tensorboard")
    from helpers import RunnerPlugin, registries_with, run_inline, tiny_spec

    from genbench.results.tensorboard import write_tensorboard

    # code-gaussian is fitted on the codes of a counting-ae: a training no row evaluates.
    spec = tiny_spec(models=["vae", "code-gaussian"], metrics=["recon"],
                     budget={"steps": 30, "batch_size": 64})
    report = run_inline(spec, tmp_path / "o", registries_with(RunnerPlugin()))
    assert [r.status for r in report.ran] == ["ok", "ok"], [r.error for r in report.ran]
    store = ResultStore(tmp_path / "o" / "results.db")
    trainings = store.trainings().set_index("label")["run_dir"]
    with_losses = {label: d for label, d in trainings.items()
                   if (tmp_path / "o" / d / "losses.csv").is_file()}
    assert {"vae", "counting-ae[latent_dim=4]"} <= set(with_losses)

    events = write_tensorboard(store, tmp_path / "tb")
    folders = sorted({p.parent.name for p in events})
    assert folders == sorted(Path(d).name for d in with_losses.values())
    for d in with_losses.values():
        assert_matches_losses(tmp_path / "tb" / Path(d).name, tmp_path / "o" / d / "losses.csv")

    # Written again: replaced, so no curve is shown twice.
    again = write_tensorboard(store, tmp_path / "tb")
    assert len(again) == len(events)
    assert len(list((tmp_path / "tb").glob("*/events.out.tfevents.*"))) == len(events)

    # One job: its training only.
    vae = store.jobs().set_index("model").loc["vae", "fingerprint"]
    only = write_tensorboard(store, tmp_path / "tb-vae", fingerprints=[vae])
    assert [p.parent.name for p in only] == [Path(with_losses["vae"]).name]


invoke = invoke_cli


def test_run_writes_event_files_for_new_and_reused_trainings(tmp_path):
    pytest.importorskip("tensorboard")
    spec = tmp_path / "s.toml"
    spec.write_text(textwrap.dedent(SPEC))
    out, tb = tmp_path / "o", tmp_path / "tb"
    r = invoke("run", str(spec), "--out", str(out), "-q", "--tensorboard", str(tb))
    assert r.exit_code == 0, r.output
    (run_dir,) = [p for p in (out / "runs").iterdir() if (p / "losses.csv").exists()]
    assert_matches_losses(tb / run_dir.name, run_dir / "losses.csv")
    # A second run trains nothing; its trainings' losses are still written where asked.
    r = invoke("run", str(spec), "--out", str(out), "-q", "--tensorboard", str(tmp_path / "tb2"))
    assert r.exit_code == 0, r.output
    assert_matches_losses(tmp_path / "tb2" / run_dir.name, run_dir / "losses.csv")


def test_missing_tensorboard_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` now fails
    spec = tmp_path / "s.toml"
    spec.write_text(textwrap.dedent(SPEC))
    r = invoke("run", str(spec), "--out", str(tmp_path / "o"), "--tensorboard", str(tmp_path / "tb"))
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and 'pip install "genbench[tensorboard]"' in lines[0], r.output
    assert not (tmp_path / "o").exists() and not (tmp_path / "tb").exists()


def test_an_unwritable_tensorboard_folder_fails_before_training(tmp_path):
    pytest.importorskip("tensorboard")
    spec = tmp_path / "s.toml"
    spec.write_text(textwrap.dedent(SPEC))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    r = invoke("run", str(spec), "--out", str(tmp_path / "o"), "--tensorboard", str(blocker / "tb"))
    assert r.exit_code == 2, r.output
    assert "TensorBoard folder" in r.output and "is a file" in r.output, r.output
    assert not (tmp_path / "o").exists()
