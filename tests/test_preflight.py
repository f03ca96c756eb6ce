"""Everything checkable is checked before training: metrics that apply nowhere, sample and
split counts too small for a metric, batches larger than the training split; and the
once-per-suite summary of the pairs a metric skips."""

import numpy as np
import pytest
from PIL import Image

from genbench.api.errors import USER_ERRORS, ConfigError
from genbench.execution.runner import SuiteRunner
from helpers import RunnerPlugin, registries_with, tiny_spec


def _runner(spec, out, registries, lines=None):
    echo = (lambda s: None) if lines is None else lines.append
    return SuiteRunner(spec, out, registries, progress=False, echo=echo, jobs=0)


def _fails_before_training(spec, out, registries) -> str:
    """The ConfigError ``spec``'s run raises; no checkpoint may have been written, and a new
    output folder is left as it was: not even an empty results.db."""
    new = not out.exists()
    with pytest.raises(ConfigError) as info:
        _runner(spec, out, registries).run()
    assert isinstance(info.value, USER_ERRORS)  # the CLI exits 2
    assert not list(out.rglob("checkpoint.pt")) and not (out / "runs").exists()
    if new:
        assert not out.exists(), list(out.rglob("*"))
    return str(info.value)


@pytest.mark.parametrize("overrides, expected", [
    # an image-only score on vector data: raw coordinates have no class logits
    ({"datasets": ["ring8"], "models": ["vae"], "metrics": ["isc"]},
     ["metric 'isc' applies to no (model, dataset) pair", "on ring8", "no class logits"]),
    # a capability no model of the suite has
    ({"models": ["ae", "deep-ae"], "metrics": ["elbo", "recon"]},
     ["metric 'elbo' applies to no (model, dataset) pair", "for ae, deep-ae (no elbo)"]),
    # mixture modes on a dataset that declares none
    ({"models": ["vae"], "metrics": ["modes"]},
     ["metric 'modes' applies to no", "on digits (needs vector data, got image)"]),
])
def test_a_metric_that_applies_to_no_pair_fails_before_training(tmp_path, registries,
                                                                 overrides, expected):
    message = _fails_before_training(tiny_spec(**overrides), tmp_path / "out", registries)
    for text in expected:
        assert text in message, message


def test_skips_are_summarised_once_per_suite(tmp_path, registries):
    lines = []
    spec = tiny_spec(datasets=["digits", "ring8"], models=["ae", "vae", "deep-ae"], seeds=[0, 1],
                     metrics=["isc", "elbo", "recon", "modes"])
    rows, _, _ = _runner(spec, tmp_path, registries, lines).prepare()
    assert len(rows) == 12  # 2 datasets x 3 models x 2 seeds, yet one line per metric
    assert lines == [
        "isc: skipped on ring8 (feature extractor 'raw' has no class logits, so the Inception "
        "Score is undefined)",
        "elbo: skipped for ae, deep-ae (no elbo)",
        "modes: skipped on digits (needs vector data, got image)",
    ]
    assert not (tmp_path / "runs").exists()


def test_a_narrowed_suite_notes_a_metric_that_applies_nowhere(tmp_path, registries):
    """`--datasets ring8` on a suite whose metrics were chosen for more datasets: a note,
    not an error (the user did not choose `isc` for ring8)."""
    lines = []
    spec = tiny_spec(datasets=["digits", "ring8"], metrics=["isc", "speed"]).select(
        registries, datasets=["ring8"])
    _runner(spec, tmp_path, registries, lines).prepare()
    assert lines == ["isc: skipped on every pair of this selection: on ring8 (feature extractor "
                     "'raw' has no class logits, so the Inception Score is undefined)"]
    explicit = tiny_spec(datasets=["digits", "ring8"], metrics=["isc", "speed"]).select(
        registries, datasets=["ring8"], metrics=["isc", "speed"])
    assert "'isc' applies to no" in _fails_before_training(explicit, tmp_path, registries)


def test_a_narrowed_suite_where_no_metric_applies_fails_before_training(tmp_path, registries):
    """The issue's own case: nothing would be measured, so nothing is trained (exit 2)."""
    spec = tiny_spec(datasets=["digits", "ring8"], models=["ae", "vae"],
                     metrics=["isc", "elbo"]).select(registries, datasets=["ring8"],
                                                     models=["ae"])
    message = _fails_before_training(spec, tmp_path, registries)
    assert "no metric of the suite (isc, elbo) applies to any" in message, message
    assert "isc: skipped" in message and "elbo: skipped" in message


@pytest.mark.parametrize("metric, label, num_samples, floor", [
    ("prc", "prc", 1, "4 samples (the k-th nearest other point of each, k = neighborhood = 3)"),
    ({"prdc": {"k": 5}}, "prdc[k=5]", 5, "6 samples"),
    ("fid", "fid", 1, "2 samples (a covariance needs 2 points)"),
    ("kid", "kid", 1, "2 samples"),
    ({"isc": {"splits": 10}}, "isc[splits=10]", 9, "10 samples (one per split, splits = 10)"),
    ("fid-inf", "fid-inf", 2, "3 samples"),
])
def test_num_samples_below_a_metric_floor_fails_before_training(tmp_path, registries, metric,
                                                                 label, num_samples, floor):
    spec = tiny_spec(metrics=metric if isinstance(metric, dict) else [metric],
                     num_samples=num_samples)
    message = _fails_before_training(spec, tmp_path, registries)
    assert message.startswith(f"metric {label!r}: num_samples = {num_samples} is too few, it "
                              f"needs at least {floor}"), message
    assert message.endswith("; raise num_samples")


def test_num_samples_at_the_floor_passes(tmp_path, registries):
    spec = tiny_spec(metrics=["prc", "fid", "kid"], num_samples=4)
    rows, _, _ = _runner(spec, tmp_path, registries).prepare()
    assert len(rows) == 1


def test_several_problems_are_reported_together(tmp_path, registries):
    spec = tiny_spec(models=["ae"], metrics=["elbo", "prc"], num_samples=2)
    message = _fails_before_training(spec, tmp_path, registries)
    assert message.startswith("2 problems found before training:")
    assert "'elbo' applies to no" in message and "metric 'prc': num_samples = 2" in message


def test_batch_larger_than_the_training_split_fails_before_training(tmp_path, registries):
    spec = tiny_spec(budget={"steps": 5, "batch_size": 2000})
    message = _fails_before_training(spec, tmp_path, registries)
    assert message == ("model 'vae' on dataset 'digits': batch_size = 2000 is larger than the "
                       "training split (1437 items); set the budget's batch_size to at most 1437")
    # a model trained by its own fit (a copy of the training set) takes no batches
    rows, _, _ = _runner(tiny_spec(models=["train-data"], metrics=["speed"],
                                   budget={"steps": 5, "batch_size": 2000}), tmp_path, registries).prepare()
    assert len(rows) == 1


def test_batch_of_a_referenced_model_is_checked(tmp_path):
    regs = registries_with(RunnerPlugin())
    spec = tiny_spec(models=[{"name": "code-gaussian", "params": {"autoencoder": {
        "name": "counting-ae", "budget": {"batch_size": 5000}}}}], metrics=["speed"])
    message = _fails_before_training(spec, tmp_path, regs)
    assert message.startswith("model 'counting-ae' on dataset 'digits': batch_size = 5000 is larger")


def _image_folder(path, n):
    rng = np.random.default_rng(0)
    path.mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(path / f"{i}.png")
    return {"name": "image-folder", "params": {"path": str(path), "size": 8, "channels": 1}}


def test_a_small_reference_warns_with_its_counts(tmp_path, registries):
    """38 images give a test split of 4: FID is scored against 4 images, and says so."""
    lines = []
    spec = tiny_spec(datasets=[_image_folder(tmp_path / "faces", 38)], metrics=["fid", "recon"],
                     feature_extractor="digits-cnn", budget={"steps": 5, "batch_size": 16})
    _runner(spec, tmp_path / "out", registries, lines).prepare()
    assert lines == ["warning: metric 'fid' on dataset 'image-folder[channels=1,path="
                     + str(tmp_path / "faces") + ",size=8]': the test split has 4 items, fewer "
                     "than the 100 recommended; its value is noisy and biased at this count"]


def test_a_reference_below_the_floor_fails_before_training(tmp_path, registries):
    spec = tiny_spec(datasets=[_image_folder(tmp_path / "faces", 12)], metrics=["fid", "prdc"],
                     feature_extractor="digits-cnn", budget={"steps": 5, "batch_size": 8})
    message = _fails_before_training(spec, tmp_path / "out", registries)
    assert message.startswith("2 problems found before training:")
    assert "metric 'fid' on dataset 'image-folder[" in message
    assert ("the test split has 1 item, fewer than the 2 it needs (a covariance needs 2 points); "
            "use a larger dataset or test split") in message
    assert "metric 'prdc' on dataset 'image-folder[" in message and "fewer than the 6 it needs" in message


def test_a_cap_below_the_floor_names_the_cap(tmp_path, registries):
    spec = tiny_spec(metrics={"fid": {"max_reference": 1}})
    message = _fails_before_training(spec, tmp_path, registries)
    assert message == ("metric 'fid[max_reference=1]' on dataset 'digits': it reads 1 of the 360 "
                       "test-split items (its cap), fewer than the 2 it needs (a covariance needs 2 "
                       "points); raise the metric's cap")
