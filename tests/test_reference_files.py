"""Reference statistics files (``genbench reference build``): the format round trip, numbers
against a file equal to numbers against the split it was built from, the checks that refuse
a file made for another evaluation, ADM reference batches, and the commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import genbench
from genbench import (GenerativeModel, ReferenceFileError, build_reference_file,
                      read_reference_file, reference_indices, write_reference_file)
from genbench.features.job_features import to_uint8_images
from helpers import invoke_cli

METRICS = {"fid": {"max_reference": 100}, "kid": {"max_reference": 100, "subsets": 10,
                                                   "subset_size": 50},
           "prc": {"max_reference": 100}}


class TrainDigits(GenerativeModel):
    """Samples: train-split digits drawn at random (seeded), plus a little noise, so FID,
    KID, precision and recall against the test split are all away from their bounds."""

    def __init__(self, data_info, pool=None):
        super().__init__()
        self.pool = pool

    def sample(self, n, generator=None):
        idx = torch.randint(len(self.pool), (n,), generator=generator)
        noise = 0.1 * torch.rand(n, *self.pool.shape[1:], generator=generator)
        return (self.pool[idx] + noise).clamp(0, 1)


@pytest.fixture
def model(digits):
    return TrainDigits(digits.info(), pool=digits.tensors("train")[0][:300])


def score(model, registries, tmp_path, *, dataset="digits", metrics=METRICS, **kwargs):
    return genbench.evaluate(model, dataset, metrics=metrics, num_samples=120, seed=4,
                             cache_dir=tmp_path / "cache", registries=registries, **kwargs)


# -- the format ------------------------------------------------------------------------------

def test_round_trip_keeps_features_images_and_provenance_and_adds_fid_statistics(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 5)).astype(np.float32)
    b = rng.normal(size=(30, 3)).astype(np.float32)
    images = rng.integers(0, 256, size=(30, 8, 8, 3), dtype=np.uint8)
    path = tmp_path / "ref.npz"
    write_reference_file(path, {"a": torch.from_numpy(a), "b": torch.from_numpy(b)}, fid_layer="a",
                         provenance={"dataset": "x", "split": "train", "n_total": 30},
                         images=images)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.npz"]  # no temporary left over

    raw = np.load(path, allow_pickle=False)
    assert raw["genbench"].shape == () and raw["genbench"].dtype.kind == "U"
    assert json.loads(str(raw["genbench"][()]))["dataset"] == "x"
    assert raw["mu"].dtype == raw["sigma"].dtype == np.float64
    np.testing.assert_allclose(raw["mu"], a.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(raw["sigma"], np.cov(a.astype(np.float64), rowvar=False),
                               rtol=1e-12, atol=1e-14)

    ref = read_reference_file(path)
    assert not ref.foreign and ref.n == 30 and ref.indices is None
    assert ref.features["a"].dtype == torch.float32
    assert np.array_equal(ref.features["a"].numpy(), a) and np.array_equal(ref.features["b"].numpy(), b)
    assert ref.images.shape == (30, 3, 8, 8) and ref.images.dtype == torch.uint8
    assert np.array_equal(ref.images.permute(0, 2, 3, 1).numpy(), images)
    assert ref.provenance["dataset"] == "x" and ref.provenance["n"] == 30
    assert ref.provenance["format"] == "genbench-reference" and ref.provenance["fid_layer"] == "a"
    assert ref.provenance["layers"] == ["a", "b"]
    np.testing.assert_array_equal(ref.mu, raw["mu"])


def test_writing_refuses_layers_of_different_row_counts(tmp_path):
    with pytest.raises(ReferenceFileError, match="different row counts"):
        write_reference_file(tmp_path / "r.npz", {"a": torch.zeros(4, 2), "b": torch.zeros(5, 2)},
                             fid_layer="a", provenance={})
    assert not (tmp_path / "r.npz").exists()


def _genbench_npz(path, n=4, **arrays):
    prov = {"format": "genbench-reference", "format_version": 1, "n": n}
    np.savez(path, genbench=np.array(json.dumps(prov)), **arrays)
    return path


@pytest.mark.parametrize("make, needle", [
    (lambda p: p, "no such file"),
    (lambda p: (p.write_text("not numpy"), p)[1], "not an .npz archive"),
    (lambda p: np.save(p.with_suffix(".npy"), np.zeros(3)) or p.with_suffix(".npy"),
     r"single array \(.npy\)"),
    (lambda p: np.savez(p, mu=np.zeros(2), sigma=np.eye(2)) or p,
     "holds neither genbench's 'genbench' entry nor ADM's 'arr_0' images"),
    (lambda p: _genbench_npz(p, features_a=np.zeros((4, 2), np.float32),
                             features_b=np.zeros((3, 2), np.float32)),
     r"different row counts \(a: 4, b: 3\)"),
    (lambda p: _genbench_npz(p, features_a=np.zeros((4, 2), np.float32), mu=np.zeros(2),
                             sigma=np.eye(3)),
     r"mu has shape \(2,\) and sigma \(3, 3\)"),
    (lambda p: np.savez(p, arr_0=np.zeros((2, 3, 8, 8), np.float32)) or p,
     "'arr_0' must be uint8 images"),
])
def test_unreadable_files_are_reference_file_errors_naming_the_file(tmp_path, make, needle):
    path = make(tmp_path / "ref.npz")
    with pytest.raises(ReferenceFileError, match=needle) as info:
        read_reference_file(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, genbench.ConfigError)  # the CLI exits 2


def test_an_adm_reference_batch_reads_as_a_foreign_file(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, size=(6, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "adm.npz", arr_0=images, mu=np.zeros(4), sigma=np.eye(4),
             mu_s=np.zeros(2), sigma_s=np.eye(2))
    ref = read_reference_file(tmp_path / "adm.npz")
    assert ref.foreign and ref.provenance is None and ref.features is None and ref.n == 6
    assert np.array_equal(ref.images.permute(0, 2, 3, 1).numpy(), images)
    np.testing.assert_array_equal(ref.sigma, np.eye(4))


# -- building, and evaluating against a file -----------------------------------------------

def test_build_extracts_the_subset_an_evaluation_takes_with_provenance(tmp_path, registries, digits):
    ref = build_reference_file(registries, "digits", split="train", out=tmp_path / "r.npz",
                               max_items=40, include_images=True)
    x = digits.tensors("train")[0]
    idx = reference_indices(len(x), 40)
    assert ref.n == 40 and torch.equal(ref.indices, idx)
    prov = ref.provenance
    assert (prov["dataset"], prov["split"], prov["n"], prov["n_total"]) == ("digits", "train", 40, len(x))
    assert prov["subset"] == "randperm-seed0-first-n-sorted" and prov["extractor"] == "digits-cnn"
    assert prov["data_fingerprint"] == digits.info().fingerprint == prov["data_info"]["fingerprint"]
    from genbench_plugins.extractors.digits_cnn import WEIGHTS_SHA256

    assert prov["weights_sha256"] == WEIGHTS_SHA256
    assert sorted(prov["layers"]) == ["logits", "penultimate"] and prov["fid_layer"] == "penultimate"
    assert prov["input_format"] == "uint8" and prov["versions"]["torch"] == torch.__version__
    assert torch.equal(ref.images, to_uint8_images(x[idx]))
    assert ref.features["penultimate"].shape == (40, 64)


def test_feature_metrics_against_a_file_equal_those_against_the_split(tmp_path, registries, model):
    """FID, KID and precision/recall: a file of the whole test split (the metrics take their
    100-item subset of it), and a file of a 200-item subset (100 lie inside it), give the
    numbers the dataset's split gives, bit for bit."""
    direct = score(model, registries, tmp_path)
    assert all(r.status == "ok" for r in direct.metrics), [r.message for r in direct.metrics]
    assert 0 < direct["prc"].values["precision"] < 1 and direct["fid"].values["fid"] > 0
    for max_items in (None, 200):
        path = tmp_path / f"ref-{max_items}.npz"
        build_reference_file(registries, "digits", split="test", out=path, max_items=max_items)
        from_file = score(model, registries, tmp_path, reference_file=path)
        assert from_file.values == direct.values
        assert from_file["fid"].details["reference_cache"] == "file"
        assert from_file["fid"].details["reference_key"] == direct["fid"].details["reference_key"]


def test_a_file_too_small_for_the_metric_is_an_error_naming_both_counts(tmp_path, registries, model):
    path = tmp_path / "small.npz"
    build_reference_file(registries, "digits", split="test", out=path, max_items=50)
    out = score(model, registries, tmp_path, metrics={"fid": {"max_reference": 100}},
                reference_file=path)
    assert out["fid"].status == "failed"
    assert "holds 50 of the 360 items of its split; this evaluation needs 100" in out["fid"].message


def test_a_file_of_another_extractor_or_dataset_is_refused_with_the_command_to_rebuild_it(
        tmp_path, registries, model):
    path = tmp_path / "raw.npz"
    build_reference_file(registries, "digits", split="test", extractor="raw", out=path)
    out = score(model, registries, tmp_path, metrics={"fid": {}}, reference_file=path)
    assert out["fid"].status == "failed"
    message = out["fid"].message
    assert message.startswith("ReferenceFileError: ")
    assert "extractor: the file has 'raw', this evaluation 'digits-cnn'" in message
    assert f"genbench reference build digits --split test --extractor digits-cnn -o {path}" in message

    path = tmp_path / "digits.npz"
    build_reference_file(registries, "digits", split="test", out=path)
    other = score(model, registries, tmp_path, metrics={"fid": {}}, reference_file=path,
                  dataset_params={"split_seed": 1})
    assert "data fingerprint: the file has" in other["fid"].message
    assert "extractor:" not in other["fid"].message


def test_an_adm_batch_of_the_test_images_scores_as_the_split_does(tmp_path, registries, model, digits):
    """A foreign file's images are extracted with the job's extractor: ADM's layout of the
    test split (uint8, gray repeated) gives the split's numbers."""
    x = digits.tensors("test")[0]
    nhwc = to_uint8_images(x).permute(0, 2, 3, 1).numpy()
    np.savez(tmp_path / "adm.npz", arr_0=nhwc, mu=np.zeros(4), sigma=np.eye(4))
    direct = score(model, registries, tmp_path)
    adm = score(model, registries, tmp_path, reference_file=tmp_path / "adm.npz")
    assert adm.values == direct.values
    assert adm["fid"].details["reference_cache"] == "file"


# -- the commands ----------------------------------------------------------------------------

def test_reference_build_and_show_commands(tmp_path):
    path = tmp_path / "ref.npz"
    built = invoke_cli("reference", "build", "digits", "--split", "test", "--max-items", "50",
                       "--images", "-o", str(path))
    assert built.exit_code == 0, built.output
    assert f"wrote {path}: digits test, 50 of 360 items, extractor digits-cnn" in built.output
    assert "features_penultimate: (50, 64) float32" in built.output
    assert read_reference_file(path).images.shape == (50, 3, 8, 8)

    shown = invoke_cli("reference", "show", str(path))
    assert shown.exit_code == 0, shown.output
    assert '"extractor": "digits-cnn"' in shown.output and '"n": 50' in shown.output
    assert "arr_0: (50, 8, 8, 3) uint8 images" in shown.output

    np.savez(tmp_path / "adm.npz", arr_0=np.zeros((3, 8, 8, 3), np.uint8))
    foreign = invoke_cli("reference", "show", str(tmp_path / "adm.npz"))
    assert foreign.exit_code == 0 and "foreign file (ADM layout), 3 images" in foreign.output

    # dataset parameters, as a spec's params: TOML values
    ring = invoke_cli("reference", "build", "ring8", "--split", "test", "-p", "n_test=120",
                      "--param", "seed=3", "-o", str(tmp_path / "ring.npz"))
    assert ring.exit_code == 0, ring.output
    assert "ring8 test, 120 of 120 items" in ring.output
    assert read_reference_file(tmp_path / "ring.npz").provenance["dataset_params"] == \
        {"n_test": 120, "seed": 3}


@pytest.mark.parametrize("args, needle", [
    (["build", "nope", "-o", "{tmp}/r.npz"], "unknown dataset 'nope'; valid datasets:"),
    (["build", "digits", "--extractor", "nope", "-o", "{tmp}/r.npz"],
     "unknown feature extractor 'nope'"),
    (["build", "ring8", "--images", "-o", "{tmp}/r.npz"], "need image data"),
    (["show", "{tmp}/missing.npz"], "no such file"),
    (["build", "ring8", "-p", "n_test=0", "-o", "{tmp}/r.npz"], "n_test"),
    (["build", "ring8", "-p", "nonsense", "-o", "{tmp}/r.npz"], "is not NAME=VALUE"),
])
def test_reference_command_errors_exit_2_with_one_line(tmp_path, args, needle):
    result = invoke_cli("reference", *[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and needle in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "r.npz").exists()


def test_preflight_counts_the_items_a_reference_file_holds(tmp_path):
    from genbench.features.reference_files import reference_file_items

    small = tmp_path / "small.npz"
    built = invoke_cli("reference", "build", "digits", "--split", "test", "--max-items", "3",
                       "-o", str(small))
    assert built.exit_code == 0, built.output
    assert reference_file_items(small) == 3
    np.savez(tmp_path / "adm.npz", arr_0=np.zeros((7, 8, 8, 3), np.uint8))
    assert reference_file_items(tmp_path / "adm.npz") == 7
    spec = tmp_path / "s.toml"
    spec.write_text(f'datasets = [{{ name = "digits", reference = "{small}" }}]\n'
                    'models = ["vae"]\nmetrics = ["prdc"]\nbaselines = []\nnum_samples = 20\n'
                    '[budget]\nsteps = 5\n')
    run = invoke_cli("run", str(spec), "--out", str(tmp_path / "out"), "--jobs", "0")
    assert run.exit_code == 2, run.output
    assert (f"the reference file {small} has 3 items, fewer than the 6 it needs" in run.output
            and "rebuild the reference file with more items (--max-items)" in run.output)
    assert not (tmp_path / "out").exists()
