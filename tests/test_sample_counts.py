"""Balanced sample counts (precision/recall and memorisation compare equal numbers of real and
generated points, recorded) and models that cannot sample finite values (every sample-based
metric fails with that reason; the others still run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from genbench import DataInfo, EvalContext, hookimpl
from genbench.features.job_features import NonFiniteSamplesError, reference_indices
from genbench_plugins.models.vae import VAE
from helpers import FixedSamples, registries_with, run_inline, tiny_spec


def vector_ctx(registries, samples, test, tmp_path, name="toy"):
    info = DataInfo(name, "vector", (samples.shape[1],), fingerprint=f"{name}-{len(test)}-{len(samples)}")
    return EvalContext(model=FixedSamples(info, samples), model_name="m", data_info=info,
                       train=(test, None), test=(test, None), device=torch.device("cpu"), seed=0,
                       num_samples=len(samples), cache_dir=Path(tmp_path), registries=registries)


def improved_precision_recall(real, fake, k=3):
    """Kynkaanniemi et al. 2019: a point is in a set's manifold when it lies within the k-NN
    radius (k-th nearest other point) of some point of the set."""
    def radii(x):
        d = cdist(x, x)
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself
    d_fake_real = cdist(fake, real)
    precision = np.mean((d_fake_real <= radii(real)[None, :]).any(axis=1))
    recall = np.mean((d_fake_real.T <= radii(fake)[None, :]).any(axis=1))
    return precision, recall


# -- balanced counts --------------------------------------------------------------------

@pytest.mark.parametrize("n_gen, n_test", [(500, 700), (800, 300)])
def test_precision_recall_use_equal_counts(registries, tmp_path, n_gen, n_test):
    g = torch.Generator().manual_seed(n_gen)
    real = torch.randn(n_test, 6, generator=g)
    fake = 1.2 * torch.randn(n_gen, 6, generator=g) + 0.2
    ctx = vector_ctx(registries, fake, real, tmp_path)
    out = registries.metrics.get("prc")().compute(ctx)
    n = min(n_gen, n_test)
    d = out.details
    assert d["n_used"] == d["n_reference"] == n
    assert d["n_generated"] == n_gen and d["n_reference_total"] == n_test
    # the first n samples against the test split's fixed seeded subset of n
    idx = reference_indices(n_test, n)
    ref = real if idx is None else real[idx]
    p, r = improved_precision_recall(ref.double().numpy(), fake[:n].double().numpy())
    assert out.values["precision"] == pytest.approx(p, abs=2 / n)  # a float32 tie at most
    assert out.values["recall"] == pytest.approx(r, abs=2 / n)
    # FID still reads every sample and the whole reference
    fid = registries.metrics.get("fid")().compute(ctx)
    assert fid.details["n_generated"] == n_gen and fid.details["n_reference"] == n_test


@pytest.mark.parametrize("n_gen, max_reference", [(500, 10_000), (500, 600), (900, 650), (50, 700)])
def test_shared_equal_counts_are_the_same_points_without_another_pass(registries, tmp_path, n_gen,
                                                                      max_reference, monkeypatch):
    """The reference features FID reads, cut to the subset ``equal_count_features``
    extracts on its own: the same items, the same numbers, one pass over the test split."""
    from genbench_plugins.metrics.inputs import equal_count_features, shared_equal_count_features

    g = torch.Generator().manual_seed(n_gen)
    real, fake = torch.randn(700, 5, generator=g), torch.randn(n_gen, 5, generator=g)
    ctx = vector_ctx(registries, fake, real, tmp_path)
    extractor = ctx.features().extractor
    passes, extract = [], extractor._outputs

    def counted(batches, total):  # every pass over a set, into memory or into files
        batches = list(batches)
        passes.append(sum(len(b) for b in batches))
        return extract(batches, total)

    monkeypatch.setattr(extractor, "_outputs", counted)
    gen, ref, details = shared_equal_count_features(ctx, "prc", max_reference)
    assert sorted(passes) == sorted([n_gen, min(700, max_reference)])  # one pass per set
    gen2, ref2, details2 = equal_count_features(ctx, "prc", max_reference)
    assert torch.equal(gen, gen2) and torch.equal(ref, ref2)
    for key in ("n_used", "n_generated", "n_reference_total", "feature_layer"):
        assert details[key] == details2[key], key


def test_memorization_records_equal_counts(registries, tmp_path):
    g = torch.Generator().manual_seed(1)
    train, test, fake = (torch.randn(n, 3, generator=g) for n in (900, 250, 600))
    info = DataInfo("mem", "vector", (3,), fingerprint="mem-counts")
    ctx = EvalContext(model=FixedSamples(info, fake), model_name="m", data_info=info,
                      train=(train, None), test=(test, None), device=torch.device("cpu"), seed=0,
                      num_samples=600, cache_dir=tmp_path, registries=registries)
    d = registries.metrics.get("memorization")().compute(ctx).details
    assert d["n_used"] == 250 and d["n_generated"] == 600 and d["n_reference_total"] == 250
    assert d["n_train"] == 900 and sum(r["n_generated"] for r in d["ct_cells"]) == 250


# -- non-finite samples -----------------------------------------------------------------

class NaNVAE(VAE):
    """A VAE that trains normally and samples NaN (or one infinite sample per batch)."""

    description = "test model: samples are not finite"
    only_one = False

    @torch.no_grad()
    def sample(self, n, generator=None, *, temperature: float = 1.0):
        x = super().sample(n, generator, temperature=temperature)
        if type(self).only_one:
            x[0] = float("inf")
            return x
        return torch.full_like(x, float("nan"))


class OneInfVAE(NaNVAE):
    description = "test model: one infinite sample per batch"
    only_one = True


class NonFinitePlugin:
    @hookimpl
    def register_models(self, register):
        register("nan-vae", NaNVAE)
        register("inf-vae", OneInfVAE)


SAMPLE_METRICS = ["fid", "kid", "prc", "prdc", "memorization", "fid-inf", "vendi", "speed"]


def test_non_finite_samples_fail_every_sample_metric_with_the_reason(tmp_path):
    regs = registries_with(NonFinitePlugin())
    spec = tiny_spec(models=["nan-vae", "inf-vae"], metrics=["recon", "elbo", *SAMPLE_METRICS],
                     budget={"steps": 5, "batch_size": 64})
    report = run_inline(spec, tmp_path, regs)
    jobs = {r.model: r for r in report.ran}
    for model, bad in (("nan-vae", 64), ("inf-vae", 1)):
        job = jobs[model]
        assert job.status == "ok", job.error  # the row stands; its metrics say what failed
        reason = f"{bad} of the 64 samples contain NaN or infinite values"
        assert reason in job.provenance["sample_failure"]
        by_name = {m.metric: m for m in job.metrics}
        for name in SAMPLE_METRICS:
            m = by_name[name]
            assert m.status == "failed" and m.values == {}, name
            assert m.message.startswith("NonFiniteSamplesError: ") and reason in m.message
        for name in ("recon", "elbo"):  # no samples needed: they still run
            assert by_name[name].status == "ok" and by_name[name].values, name
    # the store keeps the failures with their reason, and no number
    rows = report_rows(spec, tmp_path, regs)
    fid = rows[(rows["model"] == "nan-vae") & (rows["metric"] == "fid")]
    assert fid["status"].tolist() == ["failed"] and fid["value"].isna().all()
    assert "NonFiniteSamplesError" in fid["message"].iloc[0]


def report_rows(spec, out, regs):
    from genbench.execution.runner import SuiteRunner

    return SuiteRunner(spec, out, regs).store.metric_values()


def test_context_refuses_non_finite_samples_every_time(registries):
    info = DataInfo("toy", "vector", (2,))
    x = torch.randn(10, 2)
    x[3, 1] = float("nan")
    model = FixedSamples(info, x)
    ctx = EvalContext(model=model, model_name="m", data_info=info, train=(x, None), test=(x, None),
                      device=torch.device("cpu"), seed=0, num_samples=10, cache_dir=Path("unused"),
                      registries=registries)
    for _ in range(2):
        with pytest.raises(NonFiniteSamplesError, match="1 of the 10 samples"):
            ctx.samples
    assert model.cursor == 10  # generated once
    assert "cannot sample finite values" in ctx.sample_failure
    finite = EvalContext(model=FixedSamples(info, torch.randn(10, 2)), model_name="m", data_info=info,
                         train=(x, None), test=(x, None), device=torch.device("cpu"), seed=0,
                         num_samples=10, cache_dir=Path("unused"), registries=registries)
    assert finite.sample_failure is None and finite.samples.shape == (10, 2)
