"""Sample-quality metrics and shared features: equal to torch-fidelity, one feature pass per
set and job, content-keyed cache of real-data features, ``ctx.features(extractor)``."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch_fidelity
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from genbench import Budget, DataInfo, EvalContext
from genbench.features.assets import AssetChecksumError
from genbench.api.errors import AssetMissingError, ConfigError, UnknownNameError
from genbench.api.extractor import torch_fidelity_extractor
from genbench.features.job_features import (
    JobFeatures,
    NonFiniteSamplesError,
    load_extractor,
    reference_indices,
    to_uint8_images,
)
from genbench.features.fidelity import kid_subset_size
from genbench.execution.training import train
from helpers import FixedSamples

REPO = Path(__file__).resolve().parents[1]


def make_ctx(model, data_info, test, registries, cache_dir, *, n, extractor=None,
             weights=None, train=None, batch_size=256, name="model"):
    if isinstance(model, FixedSamples):
        model.cursor = 0
    return EvalContext(model=model, model_name=name, data_info=data_info,
                       train=train if train is not None else test, test=test,
                       device=torch.device("cpu"), seed=0, num_samples=n, cache_dir=Path(cache_dir),
                       feature_extractor=extractor, feature_weights=weights,
                       batch_size=batch_size, registries=registries)


def compute_all(registries, ctx, **options):
    return {m: registries.metrics.get(m)(**options.get(m, {})).compute(ctx)
            for m in ("fid", "isc", "kid", "prc")}


# -- a random-weights extractor known to both torch-fidelity and genbench ----------------

class RandomConvExtractor(FeatureExtractorBase):
    """Seeded random CNN on uint8 3x8x8: 16 tanh features and 10 logits."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        g = torch.Generator().manual_seed(1234)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8 * 4 * 4, 16)
        self.cls = torch.nn.Linear(16, 10)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x):
        assert x.dtype == torch.uint8 and x.shape[1] == 3
        h = torch.nn.functional.max_pool2d(torch.relu(self.conv(x.float() / 255.0)), 2).flatten(1)
        f = torch.tanh(self.fc(h))
        out = {"feat": f, "logits": 3.0 * self.cls(f)}
        return tuple(out[k] for k in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return "feat", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits", "fid": "feat", "kid": "feat", "prc": "feat"}[metric]


RANDOM_NAME = "genbench-test-random"


@pytest.fixture
def random_extractor(registries):
    registries.extractors.register(RANDOM_NAME, RandomConvExtractor, plugin="test")
    torch_fidelity.register_feature_extractor(RANDOM_NAME, RandomConvExtractor)
    try:
        yield RANDOM_NAME
    finally:
        FEATURE_EXTRACTORS_REGISTRY.pop(RANDOM_NAME, None)


class _UInt8Set(torch.utils.data.Dataset):
    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def test_uint8_conversion_follows_the_protocol():
    x = torch.tensor([0.0, 1.0, 0.5, 0.2, -0.3, 1.7, 0.999]).reshape(1, 1, 1, 7)
    out = to_uint8_images(x)
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 1, 7)
    # round(x * 255), clamped: 0.5 * 255 = 127.5 rounds to the even 128; 0.2 * 255 = 51
    assert out[0, :, 0].tolist() == [[0, 255, 128, 51, 0, 255, 255]] * 3
    rgb = torch.rand(2, 3, 4, 4)
    assert torch.equal(to_uint8_images(rgb), (rgb * 255).round().to(torch.uint8))
    with pytest.raises(NonFiniteSamplesError, match="1 of the 2"):
        to_uint8_images(torch.tensor([[[[0.1]]], [[[float("nan")]]]]))
    with pytest.raises(ConfigError, match="1 or 3"):
        to_uint8_images(torch.rand(2, 2, 4, 4))


def test_metrics_equal_a_direct_torch_fidelity_call(registries, random_extractor, tmp_path):
    g = torch.Generator().manual_seed(0)
    gen_u8 = torch.randint(0, 256, (200, 1, 8, 8), dtype=torch.uint8, generator=g)
    ref_u8 = (torch.rand(150, 1, 8, 8, generator=g) ** 2 * 255).round().to(torch.uint8)
    info = DataInfo("toy", "image", (1, 8, 8), fingerprint="toy-v1")
    model = FixedSamples(info, gen_u8.float() / 255.0)   # exactly k / 255: uint8 again is k
    ctx = make_ctx(model, info, (ref_u8.float() / 255.0, None), registries, tmp_path,
                   n=200, extractor=random_extractor)
    ours = compute_all(registries, ctx)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DataLoader worker-count advice
        direct = torch_fidelity.calculate_metrics(
            input1=_UInt8Set(gen_u8.repeat(1, 3, 1, 1)), input2=_UInt8Set(ref_u8.repeat(1, 3, 1, 1)),
            cuda=False, isc=True, fid=True, kid=True, prc=True, feature_extractor=random_extractor,
            batch_size=256, isc_splits=10, samples_shuffle=True, rng_seed=2020, kid_subsets=100,
            kid_subset_size=150, prc_neighborhood=3, cache=False, verbose=False)

        # precision/recall compare equal counts: the first 150 samples against the 150 real
        direct_prc = torch_fidelity.calculate_metrics(
            input1=_UInt8Set(gen_u8[:150].repeat(1, 3, 1, 1)),
            input2=_UInt8Set(ref_u8.repeat(1, 3, 1, 1)), cuda=False, prc=True,
            feature_extractor=random_extractor, batch_size=256, prc_neighborhood=3,
            cache=False, verbose=False)

    pairs = {
        "frechet_inception_distance": ours["fid"].values["fid"],
        "inception_score_mean": ours["isc"].values["mean"],
        "inception_score_std": ours["isc"].values["std"],
        "kernel_inception_distance_mean": ours["kid"].values["mean"],
        "kernel_inception_distance_std": ours["kid"].values["std"],
    }
    for key, value in pairs.items():
        assert value == pytest.approx(direct[key], rel=1e-6, abs=1e-12), key
    for key in ("precision", "recall", "f_score"):
        assert ours["prc"].values[key] == pytest.approx(direct_prc[key], rel=1e-6, abs=1e-12), key
    assert ours["prc"].details["n_used"] == 150
    assert ours["kid"].details["kid_subset_size"] == 150
    assert 0 < direct["frechet_inception_distance"] and 0 < direct["precision"] < 1


def test_digits_cnn_run_by_torch_fidelity_gives_genbench_numbers(registries, digits, tmp_path):
    """The shipped extractor, adapted with torch_fidelity_extractor and run through
    torch-fidelity's own input pipeline and metrics, gives the numbers genbench stores."""
    cls = registries.extractors.get("digits-cnn")
    adapted = torch_fidelity_extractor(cls)
    assert issubclass(adapted, FeatureExtractorBase) and issubclass(adapted, cls)
    assert torch_fidelity_extractor(adapted) is adapted
    name = "genbench-test-digits-cnn"
    torch_fidelity.register_feature_extractor(name, adapted)
    try:
        test_x, gen = digits.split("test").x, digits.split("train").x[:300]
        info = digits.info()
        ctx = make_ctx(FixedSamples(info, gen), info, (test_x, None), registries, tmp_path,
                       n=len(gen), extractor="digits-cnn")
        ours = {m: registries.metrics.get(m)().compute(ctx) for m in ("fid", "isc", "kid")}
        as_u8 = lambda x: _UInt8Set(to_uint8_images(x))  # noqa: E731
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DataLoader worker-count advice
            direct = torch_fidelity.calculate_metrics(
                input1=as_u8(gen), input2=as_u8(test_x), cuda=False, isc=True, fid=True,
                kid=True, feature_extractor=name, batch_size=128, isc_splits=10,
                samples_shuffle=True, rng_seed=2020, kid_subsets=100,
                kid_subset_size=ours["kid"].details["kid_subset_size"], cache=False, verbose=False)
    finally:
        FEATURE_EXTRACTORS_REGISTRY.pop(name, None)
    assert ours["fid"].values["fid"] == pytest.approx(direct["frechet_inception_distance"], rel=1e-5)
    assert ours["isc"].values["mean"] == pytest.approx(direct["inception_score_mean"], rel=1e-5)
    assert ours["kid"].values["mean"] == pytest.approx(direct["kernel_inception_distance_mean"],
                                                       rel=1e-5, abs=1e-9)
    assert direct["inception_score_mean"] > 5  # real digits: confident, varied classes


def test_fid_equals_the_frechet_distance_definition(registries, tmp_path):
    """raw features of 2D points: FID = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))."""
    from scipy import linalg

    g = torch.Generator().manual_seed(3)
    a = torch.randn(400, 2, generator=g) @ torch.tensor([[1.0, 0.3], [0.0, 0.5]]) + 1.0
    b = torch.randn(300, 2, generator=g) * 0.7
    info = DataInfo("pts", "vector", (2,), fingerprint="pts-v1")
    ctx = make_ctx(FixedSamples(info, a), info, (b, None), registries, tmp_path, n=400)
    result = registries.metrics.get("fid")().compute(ctx)

    a64, b64 = a.double().numpy(), b.double().numpy()
    s1, s2 = np.cov(a64, rowvar=False), np.cov(b64, rowvar=False)
    expected = (np.sum((a64.mean(0) - b64.mean(0)) ** 2) + np.trace(s1) + np.trace(s2)
                - 2 * np.trace(linalg.sqrtm(s1 @ s2).real))
    assert result.values["fid"] == pytest.approx(expected, rel=1e-5)
    assert result.details["feature_extractor"] == "raw" and result.details["weights_sha256"] is None
    isc = registries.metrics.get("isc")()
    assert "no class logits" in isc.skip_reason(ctx)


def count_forward_calls(monkeypatch, cls) -> list[int]:
    """The batch sizes of every forward pass of extractor class ``cls`` from now on."""
    calls = []
    original = cls.forward

    def counting(self, x):
        calls.append(len(x))
        return original(self, x)

    monkeypatch.setattr(cls, "forward", counting)
    return calls


def test_one_feature_pass_per_set_shared_by_all_metrics(registries, digits, tmp_path, monkeypatch):
    cls = registries.extractors.get("digits-cnn")
    calls = count_forward_calls(monkeypatch, cls)
    info = digits.info()
    x_test = digits.tensors("test")[0]
    model = FixedSamples(info, digits.tensors("train")[0][:300])
    ctx = make_ctx(model, info, digits.tensors("test"), registries, tmp_path, n=300, batch_size=512)
    fast_kid = {"kid": {"subsets": 10}}  # KID's kernels dominate the time; the pass count is the point
    results = compute_all(registries, ctx, **fast_kid)
    assert sorted(calls) == [300, len(x_test)]  # generated once, reference once, four metrics
    assert isinstance(ctx.features(), JobFeatures) and ctx.features() is ctx.features("digits-cnn")
    for r in results.values():
        d = r.details
        assert d["feature_extractor"] == "digits-cnn" and d["n_generated"] == 300
        assert d["weights_sha256"] == cls.weights_sha256
    assert results["fid"].details["n_reference"] == len(x_test)
    assert results["kid"].details["kid_subset_size"] == min(1000, 300, len(x_test))

    calls.clear()
    ctx2 = make_ctx(model, info, digits.tensors("test"), registries, tmp_path, n=300, batch_size=512)
    again = compute_all(registries, ctx2, **fast_kid)
    assert calls == [300]                        # reference read from the cache
    assert again["fid"].details["reference_cache"] == "hit"
    assert again["fid"].values == results["fid"].values
    assert again["prc"].values == results["prc"].values


def perturbed_digits_weights(cls, tmp_path) -> str:
    """A copy of digits-cnn's weights with one bias shifted: another sha256, other features."""
    state = torch.load(cls.default_weights_path(), weights_only=True)
    state["head.bias"] = state["head.bias"] + 0.5
    path = tmp_path / "perturbed.pt"
    torch.save(state, path)
    return str(path)


def _fid_cache_state(registries, data, tmp_path, *, n=200, weights=None, max_reference=10000):
    info = data.info()
    model = FixedSamples(info, data.tensors("train")[0][:n])
    ctx = make_ctx(model, info, data.tensors("test"), registries, tmp_path, n=n, weights=weights)
    return registries.metrics.get("fid")(max_reference=max_reference).compute(ctx).details


def test_reference_cache_is_keyed_by_content(registries, digits, tmp_path):
    first = _fid_cache_state(registries, digits, tmp_path)
    assert first["reference_cache"] == "miss"
    path = tmp_path / "features" / f"test-digits-cnn-{first['reference_key']}.pt"
    mtime = path.stat().st_mtime_ns
    assert _fid_cache_state(registries, digits, tmp_path)["reference_cache"] == "hit"
    assert _fid_cache_state(registries, digits, tmp_path, n=150)["reference_cache"] == "hit"
    assert path.stat().st_mtime_ns == mtime

    # other data (another split of the digits), other weights, another reference count: misses
    other_data = registries.datasets.get("digits")(split_seed=1)
    assert _fid_cache_state(registries, other_data, tmp_path)["reference_cache"] == "miss"
    assert _fid_cache_state(registries, digits, tmp_path, max_reference=100)["reference_cache"] == "miss"
    cls = registries.extractors.get("digits-cnn")
    d = _fid_cache_state(registries, digits, tmp_path, weights=perturbed_digits_weights(cls, tmp_path))
    assert d["reference_cache"] == "miss" and d["weights_verified"] is False
    assert d["weights_sha256"] != cls.weights_sha256
    assert len(list((tmp_path / "features").glob("test-digits-cnn-*.pt"))) == 4


def test_reference_cache_survives_a_process_restart(registries, digits, tmp_path):
    first = _fid_cache_state(registries, digits, tmp_path)
    assert first["reference_cache"] == "miss"
    script = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from genbench import EvalContext
        from genbench.registry.manager import build_registries, create_plugin_manager
        from test_fidelity import FixedSamples, make_ctx
        regs = build_registries(create_plugin_manager(load_entrypoints=False))
        data = regs.datasets.get("digits")()
        info = data.info()
        ctx = make_ctx(FixedSamples(info, data.tensors("train")[0][:200]), info,
                       data.tensors("test"), regs, {str(tmp_path)!r}, n=200)
        r = regs.metrics.get("fid")().compute(ctx)
        print(r.details["reference_cache"], repr(r.values["fid"]))
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    status, fid = out.stdout.split()
    assert status == "hit"
    info = digits.info()
    ctx = make_ctx(FixedSamples(info, digits.tensors("train")[0][:200]), info,
                   digits.tensors("test"), registries, tmp_path, n=200)
    assert float(fid) == registries.metrics.get("fid")().compute(ctx).values["fid"]


# -- ctx.features(): what every feature-space metric reads ---------------------------------

def test_each_split_is_extracted_once_per_job(registries, digits, tmp_path, monkeypatch):
    calls = count_forward_calls(monkeypatch, registries.extractors.get("digits-cnn"))
    info = digits.info()
    (x_train, _), (x_test, _) = digits.tensors("train"), digits.tensors("test")
    ctx = make_ctx(FixedSamples(info, x_train[:100]), info, digits.tensors("test"), registries,
                   tmp_path, n=100, train=digits.tensors("train"), batch_size=4096)
    compute_all(registries, ctx, kid={"subsets": 5})          # four metrics ask for the test split
    for _ in range(2):                                          # and a train-split metric, twice
        feats = ctx.features()
        feats.train(), feats.test(), feats.generated(), feats.test(max_items=10 ** 6)
    assert sorted(calls) == sorted([100, len(x_test), len(x_train)])  # one pass per set
    assert ctx.features().train() is ctx.features().train()


def test_train_features_are_the_extractors_features_of_the_train_split(registries, digits, tmp_path):
    info, cls = digits.info(), registries.extractors.get("digits-cnn")
    x_train = digits.tensors("train")[0]
    ctx = make_ctx(FixedSamples(info, x_train[:20]), info, digits.tensors("test"), registries,
                   tmp_path, n=20, train=digits.tensors("train"), batch_size=64)
    got = ctx.features().train()
    direct = load_extractor("digits-cnn", cls, info).features(x_train, batch_size=64)
    assert (got.split, got.n, got.n_total, got.indices, got.cache) == \
        ("train", len(x_train), len(x_train), None, "miss")
    assert set(got.features) == {"penultimate", "logits"} == set(direct)
    for layer in direct:
        assert got[layer].device.type == "cpu" and torch.equal(got[layer], direct[layer])
    assert got["penultimate"].shape == (len(x_train), 64)
    assert ctx.features().layer("fid") == "penultimate" and ctx.features().layer("isc") == "logits"

    subset = ctx.features().train(max_items=100)   # a fixed seeded subset, in split order
    idx = reference_indices(len(x_train), 100)
    assert torch.equal(subset.indices, idx) and subset.n == 100 and bool((idx.diff() > 0).all())
    direct_subset = load_extractor("digits-cnn", cls, info).features(x_train[idx], batch_size=64)
    assert torch.equal(subset["penultimate"], direct_subset["penultimate"])
    assert len({got.key, subset.key, ctx.features().test().key}) == 3

    # a train split as large as the test split (whose features are now cached) is still its own
    x_test = digits.tensors("test")[0]
    same_size = make_ctx(FixedSamples(info, x_train[:20]), info, digits.tensors("test"), registries,
                         tmp_path, n=20, train=(x_train[:len(x_test)], None), batch_size=64)
    assert torch.equal(same_size.features().train()["logits"],
                       load_extractor("digits-cnn", cls, info).features(x_train[:len(x_test)], 64)["logits"])


def test_second_job_reads_real_features_from_the_disk_cache(registries, digits, tmp_path, monkeypatch):
    calls = count_forward_calls(monkeypatch, registries.extractors.get("digits-cnn"))
    info = digits.info()
    x_train = digits.tensors("train")[0]

    def job(seed):
        ctx = make_ctx(FixedSamples(info, x_train[:50]), info, digits.tensors("test"), registries,
                       tmp_path, n=50, train=digits.tensors("train"))
        ctx.seed = seed
        feats = ctx.features()
        return feats.train(), feats.test(max_items=100)

    first = job(0)
    assert [s.cache for s in first] == ["miss", "miss"]
    calls.clear()
    second = job(7)                               # another job seed: the same subset, a hit
    assert [s.cache for s in second] == ["hit", "hit"] and calls == []
    for a, b in zip(first, second):
        assert a.key == b.key and torch.equal(a["penultimate"], b["penultimate"])
    assert torch.equal(first[1].indices, second[1].indices)


def test_split_cache_misses_on_other_data_or_weights(registries, digits, tmp_path):
    import dataclasses

    info, cls = digits.info(), registries.extractors.get("digits-cnn")

    def test_split(data_info, weights=None):
        ctx = make_ctx(FixedSamples(data_info, digits.tensors("train")[0][:10]), data_info,
                       digits.tensors("test"), registries, tmp_path, n=10, weights=weights)
        return ctx.features().test()

    first = test_split(info)
    assert first.cache == "miss" and test_split(info).cache == "hit"
    other_data = dataclasses.replace(info, fingerprint=info.fingerprint + "-changed")
    assert test_split(other_data).cache == "miss"

    same_bytes = tmp_path / "elsewhere" / "digits_cnn.pt"   # keyed by the file's sha256, not its path
    same_bytes.parent.mkdir()
    same_bytes.write_bytes(cls.default_weights_path().read_bytes())
    assert test_split(info, str(same_bytes)).key == first.key
    changed = test_split(info, perturbed_digits_weights(cls, tmp_path))
    assert changed.cache == "miss" and changed.key != first.key


def test_a_damaged_or_foreign_cache_file_is_recomputed(registries, digits, tmp_path):
    info = digits.info()

    def test_split():
        ctx = make_ctx(FixedSamples(info, digits.tensors("train")[0][:10]), info,
                       digits.tensors("test"), registries, tmp_path, n=10)
        return ctx.features().test()

    first = test_split()
    data = first.path.read_bytes()
    first.path.write_bytes(data[:len(data) // 2])                     # truncated
    again = test_split()
    assert again.cache == "miss" and torch.equal(again["logits"], first["logits"])
    assert test_split().cache == "hit"                                 # rewritten whole
    torch.save({"key": first.key, "n": first.n,                        # right key, wrong rows
                "features": {k: v[:5] for k, v in first.features.items()}}, first.path)
    assert test_split().cache == "miss"
    torch.save({"something": "else"}, first.path)                      # foreign
    assert test_split().cache == "miss" and test_split().cache == "hit"


def test_features_of_another_extractor(registries, digits, random_extractor, tmp_path):
    info = digits.info()
    x_train, x_test = digits.tensors("train")[0], digits.tensors("test")[0]
    state = torch.load(registries.extractors.get("digits-cnn").default_weights_path(), weights_only=True)
    copy = tmp_path / "digits_cnn.pt"
    torch.save(state, copy)
    ctx = make_ctx(FixedSamples(info, x_train[:30]), info, digits.tensors("test"), registries,
                   tmp_path, n=30, weights=str(copy))           # run's extractor: the dataset's
    assert ctx.features().name == "digits-cnn" and ctx.features().extractor.weights_path == copy

    raw = ctx.features("raw")
    assert ctx.features("raw") is raw and raw.layer("fid") == "raw"
    assert torch.equal(raw.generated()["raw"], ctx.samples.flatten(1))
    assert torch.equal(raw.test()["raw"], x_test.flatten(1))
    with pytest.raises(ConfigError, match="no layer for isc"):
        raw.layer("isc")

    rnd = ctx.features(random_extractor)
    assert rnd.extractor.weights_path is None    # --feature-weights belong to the run's extractor
    direct = load_extractor(random_extractor, RandomConvExtractor, info).features(ctx.samples)
    assert torch.equal(rnd.generated()["feat"], direct["feat"]) and rnd.layer("fid") == "feat"
    assert rnd.test().key != ctx.features().test().key
    with pytest.raises(UnknownNameError, match="digits-cnn"):
        ctx.features("nope")
    with pytest.raises(ConfigError, match="unknown split"):
        raw.split("validation")


def test_features_need_an_extractor_and_the_runs_registries(registries, tmp_path):
    info = DataInfo("cifar-like", "image", (3, 32, 32))
    x = torch.rand(4, 3, 32, 32)
    ctx = make_ctx(FixedSamples(info, x), info, (x, None), registries, tmp_path, n=4)
    with pytest.raises(ConfigError, match="declares no feature extractor"):
        ctx.features()
    with pytest.raises(ConfigError, match="'digits-cnn' does not apply"):
        ctx.features("digits-cnn")
    with pytest.raises(TypeError, match="registries"):
        EvalContext(model=FixedSamples(info, x), model_name="m", data_info=info, train=(x, None),
                    test=(x, None), device=torch.device("cpu"), seed=0, num_samples=4,
                    cache_dir=tmp_path)


def test_kid_subset_size_adapts_to_small_sets(registries, random_extractor, tmp_path):
    assert kid_subset_size(5000, 10000) == 1000 and kid_subset_size(50, 30) == 30
    info = DataInfo("toy", "image", (1, 8, 8), fingerprint="toy-small")
    g = torch.Generator().manual_seed(1)
    ctx = make_ctx(FixedSamples(info, torch.rand(50, 1, 8, 8, generator=g)), info,
                   (torch.rand(30, 1, 8, 8, generator=g), None), registries, tmp_path, n=50,
                   extractor=random_extractor)
    r = registries.metrics.get("kid")().compute(ctx)
    assert r.details["kid_subset_size"] == 30 and r.details["n_reference"] == 30
    assert math.isfinite(r.values["mean"])


# -- inception-v3-compat offline ----------------------------------------------------------

def test_missing_inception_weights_is_a_clear_error(registries, digits, tmp_path, no_network):
    info = digits.info()
    ctx = make_ctx(FixedSamples(info, digits.tensors("train")[0][:20]), info, digits.tensors("test"),
                   registries, tmp_path, n=20, extractor="inception-v3-compat")
    metric = registries.metrics.get("fid")()
    assert metric.skip_reason(ctx) is None
    with pytest.raises(AssetMissingError) as err:
        metric.compute(ctx)
    msg = str(err.value)
    expected_path = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints" / \
        "weights-inception-2015-12-05-6726825d.pth"
    assert not isinstance(err.value, AssetChecksumError)
    assert "weights-inception-2015-12-05-6726825d.pth" in msg
    assert "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2" in msg
    assert ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
            "weights-inception-2015-12-05-6726825d.pth") in msg
    assert str(expected_path) in msg and "genbench assets add inception-v3-compat" in msg
    assert not expected_path.exists()


def test_inception_weights_checked_and_explicit_path_honoured(registries, digits, tmp_path, no_network):
    cls = registries.extractors.get("inception-v3-compat")
    wrong = cls.default_weights_path()
    wrong.parent.mkdir(parents=True)
    wrong.write_bytes(b"not the weights")
    with pytest.raises(AssetChecksumError, match="expected 6726825d0af5"):
        load_extractor("inception-v3-compat", cls, digits.info())
    with pytest.raises(AssetMissingError, match="does not exist"):
        load_extractor("inception-v3-compat", cls, digits.info(), weights=tmp_path / "nope.pth")


# -- preflight: fail before training --------------------------------------------------------

FIDELITY_METRICS = ("fid", "isc", "kid", "prc")
MNIST_INFO = DataInfo(name="mnist", kind="image", shape=(1, 28, 28), num_classes=10,
                      feature_extractor="inception-v3-compat")


def preflight_all(registries, info, extractor=None, weights=None):
    for m in FIDELITY_METRICS:
        registries.metrics.get(m)().preflight(info, feature_extractor=extractor,
                                              feature_weights=weights, registries=registries)


@pytest.mark.parametrize("metric", FIDELITY_METRICS)
def test_preflight_fails_fast_without_inception_weights(registries, no_network, metric):
    expected_path = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints" / \
        "weights-inception-2015-12-05-6726825d.pth"
    with pytest.raises(AssetMissingError) as err:
        registries.metrics.get(metric)().preflight(
            MNIST_INFO, feature_extractor="inception-v3-compat", feature_weights=None,
            registries=registries)
    msg = str(err.value)
    assert not isinstance(err.value, AssetChecksumError)
    assert str(expected_path) in msg
    assert "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2" in msg
    assert "genbench assets add inception-v3-compat" in msg and "--feature-weights" in msg
    assert not expected_path.exists()


def test_preflight_uses_the_dataset_default_and_an_explicit_weights_path(registries, tmp_path,
                                                                         no_network):
    with pytest.raises(AssetMissingError, match="inception-v3-compat"):
        preflight_all(registries, MNIST_INFO)  # no override: the dataset's default extractor
    with pytest.raises(AssetMissingError, match="does not exist"):
        preflight_all(registries, MNIST_INFO, "inception-v3-compat", str(tmp_path / "nope.pth"))


def test_preflight_passes_for_digits_cnn_on_digits_and_raw_on_ring8(registries, digits):
    preflight_all(registries, digits.info())  # the default: digits-cnn, shipped weights
    preflight_all(registries, digits.info(), "digits-cnn")
    ring8 = registries.datasets.get("ring8")().info()
    preflight_all(registries, ring8)  # vectors default to raw (no weights; isc is a skip)
    preflight_all(registries, ring8, "raw")


def test_preflight_leaves_skips_to_evaluation(registries, no_network):
    """An extractor that does not apply to the data is a recorded skip, not a preflight error,
    even when its weights are missing."""
    cifar_like = DataInfo(name="cifar10", kind="image", shape=(3, 32, 32), num_classes=10)
    preflight_all(registries, cifar_like, "digits-cnn")
    preflight_all(registries, cifar_like)  # no extractor chosen at all
    vectors = DataInfo(name="ring8", kind="vector", shape=(2,))
    preflight_all(registries, vectors, "inception-v3-compat")


def test_preflight_unknown_extractor_lists_the_valid_ones(registries):
    with pytest.raises(UnknownNameError, match="unknown feature extractor 'inceptoin'.*digits-cnn"):
        preflight_all(registries, MNIST_INFO, "inceptoin")


def test_preflight_checks_the_checksum_and_hashes_once(registries, monkeypatch, no_network):
    from genbench.api import paths

    class CountingMemo(dict):
        stores = 0

        def __setitem__(self, key, value):
            CountingMemo.stores += 1
            super().__setitem__(key, value)

    monkeypatch.setattr(paths, "_SHA256_MEMO", CountingMemo())
    wrong = registries.extractors.get("inception-v3-compat").default_weights_path()
    wrong.parent.mkdir(parents=True)
    wrong.write_bytes(b"not the weights")
    for m in FIDELITY_METRICS:
        with pytest.raises(AssetChecksumError, match="expected 6726825d0af5"):
            registries.metrics.get(m)().preflight(MNIST_INFO, feature_extractor=None,
                                                  feature_weights=None, registries=registries)
    assert CountingMemo.stores == 1


# -- reference models on digits ----------------------------------------------------------

def test_train_data_beats_vae_beats_uniform_noise_on_digits(registries, digits, tmp_path):
    """FID and KID in digits-cnn's scaled features: the training data's KID against the test
    split is within 3 std of 0, a model's is below 1 (the kernel's intended regime), and both
    metrics order train-data < vae < uniform-noise."""
    info, split = digits.info(), digits.split("train")
    fid, kid = {}, {}
    for name, budget in [("train-data", Budget(steps=1)), ("vae", Budget(steps=1000)),
                         ("uniform-noise", Budget(steps=1))]:
        model = registries.models.get(name)(info)
        train(model, split, budget, device="cpu", seed=0, progress=False)
        ctx = make_ctx(model, info, digits.tensors("test"), registries, tmp_path, n=1000,
                       train=digits.tensors("train"), name=name)
        fid[name] = registries.metrics.get("fid")().compute(ctx).values["fid"]
        kid[name] = registries.metrics.get("kid")().compute(ctx).values
    assert fid["train-data"] < 0.4, fid   # about 16 in the unscaled features
    assert fid["train-data"] < 0.5 * fid["vae"] and fid["vae"] < 0.9 * fid["uniform-noise"], fid
    assert abs(kid["train-data"]["mean"]) < 3 * kid["train-data"]["std"], kid
    assert 0 < kid["vae"]["mean"] < 1 and kid["vae"]["mean"] > 3 * kid["vae"]["std"], kid
    assert kid["vae"]["mean"] < kid["uniform-noise"]["mean"], kid


@pytest.mark.parametrize("n, splits, shuffle", [(1000, 10, True), (997, 7, True), (50, 1, False)])
def test_inception_score_split_by_split_equals_torch_fidelity_to_the_bit(n, splits, shuffle):
    from torch_fidelity.metric_isc import isc_features_to_metric

    from genbench.features.fidelity import isc_from_logits

    logits = torch.randn(n, 30, generator=torch.Generator().manual_seed(n)) * 3
    theirs = isc_features_to_metric(logits, splits, shuffle, 2020)
    assert isc_from_logits(logits, splits, shuffle, 2020) == (
        theirs["inception_score_mean"], theirs["inception_score_std"])
    if shuffle:  # the permutation matters: another seed gives other splits
        assert isc_from_logits(logits, splits, shuffle, 7) != isc_from_logits(logits, splits, shuffle, 2020)
