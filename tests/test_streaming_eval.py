"""Per-sample noise, the on-disk sample store and FID moments accumulated in float64."""

import numpy as np
import pytest
import torch

from genbench import (DataInfo, GenerativeModel, SampleNoise, item_seed, open_sample_store)
from genbench.evaluation.context import EvalContext
from genbench.evaluation.sample_store import SampleStoreError, SampleStoreWriter
from genbench.features.fidelity import fid_statistics
from genbench.registry.manager import default_registries
from genbench_plugins.models.reference import TrainingData


class NoisyImages(GenerativeModel):
    """Draws two noise tensors per call (as a sampler's steps do) through the base class."""

    def __init__(self, data_info: DataInfo):
        super().__init__()
        self.shape = tuple(data_info.shape)

    def sample(self, n, generator=None):
        a = self.rand(n, *self.shape, generator=generator)
        b = self.randn(n, *self.shape, generator=generator)
        return (0.7 * a + 0.1 * b).clamp(0, 1)


class TorchNoise(NoisyImages):
    """Passes the generator to torch itself (third-party code written before SampleNoise)."""

    def sample(self, n, generator=None):
        return torch.rand(n, *self.shape, generator=generator)


IMAGES = DataInfo(name="tiny", kind="image", shape=(1, 4, 4))


def context(model, tmp_path, *, batch_size, num_samples=10, seed=3, folder="s"):
    x = torch.rand(20, *IMAGES.shape)
    return EvalContext(model=model, model_name="m", data_info=IMAGES, train=(x, None),
                       test=(x, None), device=torch.device("cpu"), seed=seed,
                       num_samples=num_samples, cache_dir=tmp_path / "cache",
                       batch_size=batch_size, registries=default_registries(),
                       sample_dir=tmp_path / folder)


def test_a_sample_depends_on_the_seed_and_its_index_alone():
    whole = SampleNoise(5, 0, 6)
    a, b = whole.randn(6, 3), whole.rand(6, 2)
    parts = [SampleNoise(5, 0, 2), SampleNoise(5, 2, 5), SampleNoise(5, 5, 6)]
    assert torch.equal(torch.cat([p.randn(len(p), 3) for p in parts]), a)
    assert torch.equal(torch.cat([p.rand(len(p), 2) for p in parts]), b)
    # row j is item start + j's own generator, seeded by (seed, index)
    own = torch.Generator().manual_seed(item_seed(5, 4))
    assert torch.equal(a[4], torch.randn(3, generator=own))
    assert not torch.equal(SampleNoise(6, 0, 6).randn(6, 3), a)  # another seed, other noise
    assert len({item_seed(s, i) for s in range(30) for i in range(30)}) == 900
    with pytest.raises(ValueError, match="first dimension of a draw must be the sample count 6"):
        whole.randn(3, 6)


def test_samples_do_not_change_with_the_evaluation_batch_size(tmp_path):
    model = NoisyImages(IMAGES)
    one = context(model, tmp_path, batch_size=10, folder="a").sample_store.read()
    three = context(model, tmp_path, batch_size=3, folder="b").sample_store.read()
    assert torch.equal(one, three) and one.shape == (10, 1, 4, 4)
    assert not torch.equal(one, context(model, tmp_path, batch_size=3, seed=4, folder="c").samples)
    # what a sample is: the model's draw for its own index, quantised once to uint8
    x = model.sample(1, SampleNoise(3, 7, 8))
    assert torch.equal(one[7], (x[0] * 255).round().clamp(0, 255) / 255)
    # a metric's own stream is per sample too, and not the shared samples
    ctx = context(model, tmp_path, batch_size=4, folder="d")
    drawn = torch.cat(list(ctx.draw_samples(6, stream=5)))
    assert torch.equal(drawn, torch.cat(list(context(model, tmp_path, batch_size=6,
                                                     folder="e").draw_samples(6, stream=5))))
    assert not torch.allclose(drawn, model.sample(6, SampleNoise(3, 0, 6)))


def test_a_model_that_hands_the_generator_to_torch_still_samples_with_a_warning(tmp_path):
    ctx = context(TorchNoise(IMAGES), tmp_path, batch_size=4)
    with pytest.warns(UserWarning, match="depend on the evaluation's batch size"):
        x = ctx.samples
    assert ctx.noise == "one generator" and x.shape == (10, 1, 4, 4)
    gen = torch.Generator().manual_seed(3 * 1_000_003 + 1)  # ctx.generator(1), batch by batch
    expected = torch.cat([torch.rand(4, 1, 4, 4, generator=gen), torch.rand(4, 1, 4, 4, generator=gen),
                          torch.rand(2, 1, 4, 4, generator=gen)])
    assert torch.equal(x, (expected * 255).round() / 255)


def test_training_data_draws_the_same_items_whatever_the_batches(tmp_path):
    model = TrainingData(IMAGES)
    model.data = torch.arange(7 * 16, dtype=torch.float32).reshape(7, 1, 4, 4) / (7 * 16)
    whole = model.sample(17, SampleNoise(2, 0, 17))
    parts = torch.cat([model.sample(s - a, SampleNoise(2, a, s)) for a, s in ((0, 5), (5, 16), (16, 17))])
    assert torch.equal(whole, parts)
    # whole passes without replacement: each of the 7 items twice in the first 14
    ids = (whole[:, 0, 0, 0] * 7 * 16 / 16).round().long()
    assert sorted(ids[:7].tolist()) == list(range(7)) and sorted(ids[7:14].tolist()) == list(range(7))


def test_the_store_keeps_uint8_images_in_shards_and_reads_any_slice(tmp_path, monkeypatch):
    import genbench.evaluation.sample_store as sample_store

    monkeypatch.setattr(sample_store, "SHARD_BYTES", 3 * 16)  # 3 images a shard
    writer = SampleStoreWriter(tmp_path / "s", shape=(1, 4, 4), kind="image")
    x = torch.rand(8, 1, 4, 4)
    for i in (0, 2, 7):
        writer.append(x[i:{0: 2, 2: 7, 7: 8}[i]])
    store = writer.close()
    assert [n for _, n in store.shards] == [3, 3, 2] and len(store) == 8
    q = (x * 255).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(store.read_stored(0, 8), q)
    assert torch.equal(store.read_stored(2, 7), q[2:7])  # across shards
    assert torch.equal(store.read(1, 2), q[1:2].float() / 255)
    assert torch.equal(torch.cat(list(store.batches(5))), q)
    vectors = SampleStoreWriter(tmp_path / "v", shape=(2,), kind="vector")
    v = torch.randn(5, 2)
    vectors.append(v)
    assert torch.equal(vectors.close().read(), v)  # vectors keep float32 exactly

    (tmp_path / "s" / "shard-00001.npy").write_bytes(b"not an array")
    with pytest.raises(SampleStoreError, match="shard-00001.npy"):
        open_sample_store(tmp_path / "s")
    with pytest.raises(SampleStoreError, match="not a finished sample store"):
        open_sample_store(tmp_path / "nothing")


def test_fid_moments_accumulated_in_chunks_equal_numpy_in_float64():
    rng = np.random.default_rng(0)
    # a large common offset: sums of outer products without a shift would cancel badly
    a = (rng.standard_normal((1000, 6)) @ rng.standard_normal((6, 6)) + 1e3).astype(np.float32)
    stats = fid_statistics(torch.from_numpy(a), chunk=64)
    exact = a.astype(np.float64)
    np.testing.assert_allclose(stats["mu"], exact.mean(0), rtol=1e-14)
    np.testing.assert_allclose(stats["sigma"], np.cov(exact, rowvar=False), rtol=1e-10, atol=1e-10)
    assert stats["mu"].dtype == stats["sigma"].dtype == np.float64


def test_an_evaluation_split_into_shards_gives_the_numbers_of_one_job(tmp_path):
    from helpers import run_inline, tiny_spec

    from genbench.results.store import ResultStore

    regs = default_registries()
    common = dict(metrics=["fid", "kid", "prdc", "recon"], num_samples=150, eval_batch_size=32,
                  budget={"steps": 20, "batch_size": 64})
    one = run_inline(tiny_spec(**common), tmp_path / "one", regs)
    three = run_inline(tiny_spec(**common, eval_shards=3), tmp_path / "three", regs)
    (a,), (b,) = one.ran, three.ran
    assert a.status == b.status == "ok", (a.error, b.error)
    assert a.fingerprint == b.fingerprint  # the shard count is not part of the evaluation
    samples = tmp_path / "three" / b.run_dir / f"eval-{b.fingerprint[:8]}" / "samples"
    parts = sorted(p.name for p in samples.glob("part-*"))
    # cut at multiples of the batch size (32), so every batch is one a single job draws
    assert parts == ["part-000000000-000000064", "part-000000064-000000096",
                     "part-000000096-000000150"]
    assert all((samples / p / "features-digits-cnn" / "features.json").exists() for p in parts)
    merged = open_sample_store(samples)
    assert torch.equal(merged.read_stored(0, 150), open_sample_store(
        tmp_path / "one" / a.run_dir / f"eval-{a.fingerprint[:8]}" / "samples").read_stored(0, 150))
    va = {(m.metric, k): v for m in a.metrics for k, v in m.values.items()}
    vb = {(m.metric, k): v for m in b.metrics for k, v in m.values.items()}
    assert va.keys() == vb.keys() and ("fid", "fid") in va
    assert va == vb  # to the bit: the same samples, embedded in the same batches
    stored = ResultStore(tmp_path / "three" / "results.db").results()
    assert len(stored) == 1  # the shards are not rows

    # an interrupted run resumes: the row is not stored, its finished shards are kept
    import shutil

    from genbench.execution.runner import SuiteRunner

    shutil.copytree(tmp_path / "three" / "runs", tmp_path / "resumed" / "runs")
    said = []
    again = SuiteRunner(tiny_spec(**common, eval_shards=3), tmp_path / "resumed", regs,
                        progress=False, echo=said.append, jobs=0).run()
    assert sum("kept from an earlier run" in line for line in said) == 3, said
    (c,) = again.ran
    assert {(m.metric, k): v for m in c.metrics for k, v in m.values.items()} == vb


def test_a_sample_count_that_cannot_fit_is_refused_before_training(tmp_path, monkeypatch):
    import collections
    import shutil

    from helpers import invoke_cli, tiny_spec_toml

    from genbench.execution import preflight

    # a machine with 10 GB free on every disk and 8 GB of memory, whatever this one has
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**11, 9 * 10**10, 10**10))
    monkeypatch.setattr(preflight, "_physical_memory", lambda: 8 * 10**9)
    spec = tmp_path / "s.toml"
    spec.write_text(tiny_spec_toml(metrics=("fid",), num_samples=1_000_000_000))
    result = invoke_cli("run", str(spec), "--out", str(tmp_path / "out"), "--jobs", "0")
    assert result.exit_code == 2, result.output
    # 10^9 digits of 1x8x8 uint8: 64 GB of samples; features of 6,144 floats each
    assert "about 64.0 GB on disk" in result.output and "10.0 GB free; lower num_samples" in result.output
    assert "the features of 1,000,000,000 samples take about 24,576.0 GB on disk" in result.output
    assert "TMPDIR" in result.output
    assert "about 24,576.0 GB of memory for their features (this machine has 8.0 GB)" in result.output
    assert not (tmp_path / "out").exists()


def test_the_estimates_are_what_the_store_and_features_take(tmp_path):
    from genbench.execution.preflight import evaluation_sizes

    info = DataInfo("x", "image", (3, 64, 64))
    disk, memory = evaluation_sizes(info, 50_000)
    writer = SampleStoreWriter(tmp_path / "s", shape=(3, 64, 64), kind="image")
    writer.append(torch.rand(10, 3, 64, 64))
    writer.close()
    on_disk = sum(p.stat().st_size for p in (tmp_path / "s").glob("*.npy"))
    assert disk == 50_000 * 3 * 64 * 64 and on_disk == pytest.approx(disk / 5000, rel=0.02)
    # at least the features of the widest shipped extractor (Inception: pool and logits)
    assert memory >= 50_000 * 4 * (2048 + 1008)


class _Fitless(GenerativeModel):
    """Nothing to train; samples per-sample noise, with a fault from item ``FAULT`` on."""

    refit_instead_of_checkpoint = True
    FAULT = 64

    def __init__(self, data_info):
        super().__init__()
        self.shape = tuple(data_info.shape)

    def fit(self, data, budget):
        pass

    def sample(self, n, generator=None):
        return self.rand(n, *self.shape, generator=generator)


class NaNLate(_Fitless):
    def sample(self, n, generator=None):
        x = super().sample(n, generator)
        first = generator.start if isinstance(generator, SampleNoise) else 0
        x[max(0, self.FAULT - first):] = float("nan")  # the items from FAULT on
        return x


class BrokenLate(_Fitless):
    def sample(self, n, generator=None):
        if isinstance(generator, SampleNoise) and generator.stop > self.FAULT:
            raise RuntimeError("sampler broke at item 64")
        return super().sample(n, generator)


class TorchNoiseFitless(_Fitless):
    def sample(self, n, generator=None):
        return torch.rand(n, *self.shape, generator=generator)


class ShardPlugin:
    from genbench import hookimpl

    @hookimpl
    def register_models(self, register):
        register("nan-late", NaNLate)
        register("broken-late", BrokenLate)
        register("torch-noise", TorchNoiseFitless)


def _sharded(tmp_path, model, name, **kw):
    from helpers import registries_with, run_inline, tiny_spec

    spec = tiny_spec(models=[model], metrics=["fid"], num_samples=96, eval_batch_size=32,
                     eval_shards=3, **kw)
    return run_inline(spec, tmp_path / name, registries_with(ShardPlugin()))


def test_a_shard_that_fails_or_holds_nan_fails_its_row_naming_it(tmp_path):
    (broken,) = _sharded(tmp_path, "broken-late", "broken").ran
    assert broken.status == "failed"
    assert "its samples 64..95" in broken.error and "sampler broke at item 64" in broken.error
    (nan,) = _sharded(tmp_path, "nan-late", "nan").ran
    assert nan.status == "ok" and nan.provenance["sample_failure"].startswith(
        "32 of the 96 samples contain NaN")  # counted over every shard
    assert nan.metrics[0].status == "failed"


def test_a_model_drawing_from_torch_itself_is_refused_in_shards(tmp_path, recwarn):
    (row,) = _sharded(tmp_path, "torch-noise", "torch").ran
    assert not recwarn.list  # every shard refuses it, the first one too
    assert row.status == "failed" and "cannot be split into shards" in row.error
    assert "set eval_shards = 1" in row.error


def test_a_damaged_shard_is_drawn_again_and_force_redraws_all(tmp_path):
    import shutil

    from helpers import registries_with, tiny_spec

    from genbench.execution.runner import SuiteRunner

    (first,) = _sharded(tmp_path, "train-data", "one").ran
    assert first.status == "ok"
    folder = tmp_path / "one" / first.run_dir / f"eval-{first.fingerprint[:8]}" / "samples"
    shutil.copytree(tmp_path / "one" / "runs", tmp_path / "two" / "runs")
    again = tmp_path / "two" / first.run_dir / folder.parent.name / "samples"
    (again / "part-000000032-000000064" / "shard-00000.npy").unlink()  # damaged
    spec = tiny_spec(models=["train-data"], metrics=["fid"], num_samples=96, eval_batch_size=32,
                     eval_shards=3)
    said = []
    (row,) = SuiteRunner(spec, tmp_path / "two", registries_with(ShardPlugin()), progress=False,
                         echo=said.append, jobs=0).run().ran
    kept = [line for line in said if "kept from an earlier run" in line]
    assert row.status == "ok" and len(kept) == 2 and not any("32..63" in k for k in kept), said
    said.clear()
    SuiteRunner(spec, tmp_path / "two", registries_with(ShardPlugin()), progress=False,
                echo=said.append, jobs=0, force=True).run()
    assert not any("kept from an earlier run" in line for line in said)
    assert sum("drawn in" in line for line in said) == 3
