"""Scoring what was made elsewhere: ``genbench eval`` on sample files, the ``sample-files`` and
``exported`` models in a suite, and file parameters identified by their content."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Annotated

import numpy as np
import pytest
import torch
from PIL import Image

import genbench
from genbench import ConfigError, InputFile
from genbench.registry.manager import default_registries
from genbench.registry.parameters import effective_params, validate_config
from helpers import FixedSamples, invoke_cli

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")

N = 200  # more than one evaluation batch (64 below), fewer than the test split's 360


@pytest.fixture(scope="module")
def digits_test_uint8() -> np.ndarray:
    """The digits test split as uint8 NHWC images (the ADM layout), first N."""
    x, _ = default_registries().datasets.get("digits")().tensors("test")
    return (x[:N] * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def stored_rows(out: Path) -> list[tuple]:
    with sqlite3.connect(out / "results.db") as db:
        return db.execute("SELECT model, status FROM jobs ORDER BY model").fetchall()


def metric_values(out: Path, metric: str, key: str) -> list[tuple[str, float]]:
    """``(model label, value)`` of every stored row, in the order they were stored."""
    with sqlite3.connect(out / "results.db") as db:
        return db.execute("SELECT j.model, v.value FROM jobs j JOIN metric_values v "
                          "ON v.job_id = j.id WHERE v.metric = ? AND v.key = ? ORDER BY j.id",
                          (metric, key)).fetchall()


def test_eval_npz_and_png_folder_score_every_sample_once(tmp_path, digits_test_uint8):
    """An .npz (ADM layout) and a PNG folder of the same pixels give the same FID as the same
    images scored in memory, with evaluation batches smaller than the set (a replay of the
    first batch would change it)."""
    npz = tmp_path / "gen.npz"
    np.savez(npz, arr_0=digits_test_uint8)
    folder = tmp_path / "gen_png"
    folder.mkdir()
    for i, img in enumerate(digits_test_uint8):
        Image.fromarray(img[:, :, 0], mode="L").save(folder / f"{i:04d}.png")

    out = tmp_path / "out"
    for path in (npz, folder):
        result = genbench.score_samples(path, reference="digits", metrics=["fid", "kid"],
                                        out=out, eval_batch_size=64, echo=lambda s: None)
        assert result.ok
    rows = stored_rows(out)
    assert sorted(r[0] for r in rows) == ["gen.npz", "gen_png"] and {r[1] for r in rows} == {"ok"}

    in_memory = torch.from_numpy(digits_test_uint8).permute(0, 3, 1, 2).float() / 255
    model = FixedSamples(None, in_memory)
    direct = genbench.evaluate(model, "digits", metrics=["fid"], num_samples=N, batch_size=64)
    fids = dict(metric_values(out, "fid", "fid"))
    assert fids["gen.npz"] == pytest.approx(direct["fid"].values["fid"], rel=1e-9, abs=1e-9)
    assert fids["gen_png"] == fids["gen.npz"]


def test_eval_cli_prints_stores_and_new_content_is_a_new_row(tmp_path, digits_test_uint8):
    npz = tmp_path / "gen.npz"
    np.savez(npz, arr_0=digits_test_uint8)
    out = tmp_path / "out"
    res = invoke_cli("eval", str(npz), "--reference", "digits", "--metrics", "fid",
                     "--out", str(out), "-q")
    assert res.exit_code == 0, res.output
    assert "gen.npz" in res.output
    first = stored_rows(out)
    (first_fid,) = [v for _, v in metric_values(out, "fid", "fid")]
    # the same content again: already stored
    res = invoke_cli("eval", str(npz), "--reference", "digits", "--metrics", "fid",
                     "--out", str(out), "-q")
    assert res.exit_code == 0 and stored_rows(out) == first
    # new content under the same path: a new evaluation, not the stale row
    noise = np.random.default_rng(0).integers(0, 256, digits_test_uint8.shape, dtype=np.uint8)
    np.savez(npz, arr_0=noise)
    res = invoke_cli("eval", str(npz), "--reference", "digits", "--metrics", "fid",
                     "--out", str(out), "-q")
    assert res.exit_code == 0, res.output
    fids = [v for _, v in metric_values(out, "fid", "fid")]
    assert len(fids) == 1 and fids[0] > first_fid + 1.0  # the row now holds the new content's
    board = invoke_cli("leaderboard", "--out", str(out))
    assert board.exit_code == 0 and "gen.npz" in board.output


def test_eval_every_metric_by_default_says_why_one_does_not_apply(tmp_path, digits_test_uint8):
    npz = tmp_path / "gen.npz"
    np.savez(npz, arr_0=digits_test_uint8)
    result = genbench.score_samples(npz, reference="digits", out=tmp_path / "out",
                                    num_samples=64, echo=lambda s: None)
    assert result.ok
    with sqlite3.connect(tmp_path / "out" / "results.db") as db:
        status = {m: (s, msg) for m, s, msg in db.execute(
            "SELECT metric, status, message FROM metric_values")}
    assert set(status) == set(default_registries().metrics.names())
    assert status["fid"][0] == status["kid"][0] == "ok"
    assert status["recon"] == ("skipped", "model 'gen.npz' has no reconstruct")
    assert "reads its samples from files" in status["speed"][1]
    assert status["modes"][0] == "skipped" and "vector" in status["modes"][1]


@pytest.mark.parametrize("case, expected", [
    ("too-many", "holds 200 samples"),
    ("vector-reference", "shape"),
    ("train-split", "genbench reference build digits --split train"),
    ("unknown-dataset", "digits"),
])
def test_eval_bad_input_exits_2_and_stores_nothing(tmp_path, digits_test_uint8, case, expected):
    npz = tmp_path / "gen.npz"
    np.savez(npz, arr_0=digits_test_uint8)
    out = tmp_path / "out"
    args = {"too-many": ["--reference", "digits", "-n", "500"],
            "vector-reference": ["--reference", "ring8"],
            "train-split": ["--reference", "digits:train"],
            "unknown-dataset": ["--reference", "no-such-set"]}[case]
    res = invoke_cli("eval", str(npz), *args, "--metrics", "fid", "--out", str(out))
    assert res.exit_code == 2, res.output
    assert expected in res.output
    assert not (out / "results.db").exists() or stored_rows(out) == []


class TinyGenerator(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 64)

    def forward(self, z):
        return torch.tanh(self.fc(z)).view(-1, 1, 8, 8)


def test_exported_generator_samples_what_the_network_gives(tmp_path):
    torch.manual_seed(0)
    net = TinyGenerator().eval()
    scripted = tmp_path / "g.pt"
    torch.jit.save(torch.jit.script(net), scripted)
    exported = tmp_path / "g.pt2"
    batch = torch.export.Dim("batch", min=2)
    torch.export.save(torch.export.export(net, (torch.randn(4, 4),),
                                          dynamic_shapes={"z": {0: batch}}), exported)
    info = default_registries().datasets.get("digits")().info()
    cls = default_registries().models.get("exported")
    for path in (scripted, exported):
        model = cls(info, path=str(path), latent_dim=4)
        got = model.sample(16, torch.Generator().manual_seed(3))
        with torch.no_grad():
            want = (net(torch.randn(16, 4, generator=torch.Generator().manual_seed(3))) + 1) / 2
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="shape"):
        cls(default_registries().datasets.get("ring8")().info(), path=str(scripted),
            latent_dim=4).sample(4)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="torch.jit.save"):
        cls(info, path=str(bad), latent_dim=4)


def test_a_spec_mixes_samples_exported_and_trained_rows(tmp_path, digits_test_uint8):
    npz = tmp_path / "gen.npz"
    np.savez(npz, arr_0=digits_test_uint8)
    torch.manual_seed(0)
    net = TinyGenerator().eval()
    scripted, exported = tmp_path / "g.pt", tmp_path / "g.pt2"
    torch.jit.save(torch.jit.script(net), scripted)
    torch.export.save(torch.export.export(net, (torch.randn(4, 4),), dynamic_shapes={
        "z": {0: torch.export.Dim("batch", min=2)}}), exported)
    spec = {
        "name": "mixed", "datasets": ["digits"], "seeds": [0], "num_samples": 128,
        "baselines": [], "metrics": ["fid"], "budget": {"steps": 5},
        "models": [{"name": "sample-files", "label": "files", "params": {"path": str(npz)}},
                   {"name": "exported", "label": "net",
                    "params": {"path": str(scripted), "latent_dim": 4}},
                   {"name": "exported", "label": "net-export",
                    "params": {"path": str(exported), "latent_dim": 4}},
                   "ae"],
    }
    result = genbench.run(spec, out=tmp_path / "out", echo=lambda s: None)
    assert result.ok
    assert sorted(r[0] for r in stored_rows(tmp_path / "out")) == ["ae", "files", "net", "net-export"]
    # a missing file is refused before anything trains
    spec["models"][0]["params"]["path"] = str(tmp_path / "missing.npz")
    with pytest.raises(ConfigError, match="an existing file"):
        genbench.run(spec, out=tmp_path / "out2", echo=lambda s: None)
    assert not (tmp_path / "out2" / "results.db").exists()


def test_input_file_parameter_is_checked_described_and_hashed_by_content(tmp_path):
    class Reader(genbench.GenerativeModel):
        def __init__(self, data_info, path: Annotated[str, InputFile((".bin",))] = "x.bin"):
            super().__init__()

        def sample(self, n, generator=None):
            return torch.zeros(n, 2)

    f = tmp_path / "a.bin"
    f.write_bytes(b"one")
    with pytest.raises(ConfigError, match=r"must be str naming an existing file \(\.bin\)"):
        validate_config(Reader, {"path": str(tmp_path / "nope.bin")}, "model 'r'")
    other = tmp_path / "a.txt"
    other.write_bytes(b"one")
    with pytest.raises(ConfigError, match="an existing file"):
        validate_config(Reader, {"path": str(other)}, "model 'r'")
    before = effective_params(Reader, {"path": str(f)})
    f.write_bytes(b"two")
    after = effective_params(Reader, {"path": str(f)})
    assert before["path"]["path"] == after["path"]["path"] == str(f)
    assert before["path"]["sha256"] != after["path"]["sha256"]


def test_eval_against_a_reference_file_equals_eval_against_the_split(tmp_path, digits_test_uint8):
    """`genbench reference build` then `genbench eval --reference FILE`: the same FID and KID
    as against the dataset, the row records the file, and the sample set's provenance."""
    npz = tmp_path / "gen.npz"
    np.savez(npz, arr_0=digits_test_uint8[:, :, ::-1])  # mirrored digits: a real distance
    ref = tmp_path / "digits-test.npz"
    res = invoke_cli("reference", "build", "digits", "--split", "test", "-o", str(ref))
    assert res.exit_code == 0, res.output
    for reference, out in ((str(ref), "with-file"), ("digits", "with-split")):
        res = invoke_cli("eval", str(npz), "--reference", reference, "--metrics", "fid,kid",
                         "--out", str(tmp_path / out), "-q")
        assert res.exit_code == 0, res.output
    for key in (("fid", "fid"), ("kid", "mean")):
        (a,), (b,) = (metric_values(tmp_path / out, *key) for out in ("with-file", "with-split"))
        assert a[1] == pytest.approx(b[1], rel=1e-12, abs=1e-12) and a[1] > 0.05
    with sqlite3.connect(tmp_path / "with-file" / "results.db") as db:
        (prov,) = db.execute("SELECT provenance FROM jobs").fetchone()
    import json

    prov = json.loads(prov)
    assert prov["reference_file"] == str(ref)
    source = prov["model_source"]
    assert source["count"] == N and source["format"] == "npz" and source["sha256"]


class ChannelsLast(genbench.GenerativeModel):
    """Digits in the wrong layout: (n, 8, 8, 1) for 1x8x8 data."""

    def __init__(self, data_info, flat: bool = False):
        super().__init__()
        self.flat = flat

    def sample(self, n, generator=None):
        x = torch.rand(n, 1, 8, 8, generator=generator)
        return x.reshape(n, 64) if self.flat else x.permute(0, 2, 3, 1)


def test_samples_in_another_layout_are_refused_flat_ones_reshaped():
    from genbench.evaluation.context import SampleShapeError

    with pytest.raises(SampleShapeError, match=r"\(16, 8, 8, 1\).*channels first"):
        genbench.evaluate(ChannelsLast(None), "digits", metrics=["fid"], num_samples=16)
    flat = genbench.evaluate(ChannelsLast(None, flat=True), "digits", metrics=["fid"],
                             num_samples=16)
    assert flat.samples.shape == (16, 1, 8, 8)


def test_eval_against_another_sample_set_on_disk(tmp_path, digits_test_uint8):
    """Two sample sets, as torch-fidelity compares two folders: the same pixels as .npz and
    as PNGs give FID 0 (up to the square root's rounding), mirrored ones do not."""
    folder = tmp_path / "real"
    folder.mkdir()
    for i, img in enumerate(digits_test_uint8):
        Image.fromarray(img[:, :, 0], mode="L").save(folder / f"{i:04d}.png")
    same, mirrored = tmp_path / "same.npz", tmp_path / "mirrored.npz"
    np.savez(same, arr_0=digits_test_uint8)
    np.savez(mirrored, arr_0=digits_test_uint8[:, :, ::-1])
    out = tmp_path / "out"
    for path in (same, mirrored):
        res = invoke_cli("eval", str(path), "--reference", str(folder), "--extractor",
                         "digits-cnn", "--metrics", "fid", "--out", str(out), "-q")
        assert res.exit_code == 0, res.output
    fids = dict(metric_values(out, "fid", "fid"))
    assert abs(fids["same.npz"]) < 1e-6 and fids["mirrored.npz"] > 0.05
    with sqlite3.connect(out / "results.db") as db:
        assert {d for (d,) in db.execute("SELECT dataset FROM jobs")} == {"real"}
