"""Metrics timed alone (speed): a suite times them in a final phase, one row at a time with
nothing else running, after every other job; a run stopped before that phase resumes it
without evaluating the rows again."""

import sqlite3

import pytest
import torch

from genbench import GenerativeModel, Metric, hookimpl
from genbench.execution import local_executor
from genbench.execution.executor_support import available_cores
from genbench.execution.runner import SuiteRunner
from genbench.plan.scheduling import concurrent_widths, schedule
from genbench.results.store import ResultStore

from helpers import registries_with, tiny_spec

MODELS = [{"name": "ae", "params": {"hidden": 8}}, {"name": "vae", "params": {"hidden": [8]}}]


def spec(metrics=("recon", "speed"), models=MODELS, seeds=(0,)):
    return tiny_spec(datasets=["ring8"], models=list(models), metrics=list(metrics),
                     seeds=list(seeds), num_samples=20, budget={"steps": 2, "batch_size": 16})


def run(spec_, out, regs, **kwargs):
    lines = []
    report = SuiteRunner(spec_, out, regs, progress=False, echo=lines.append, **kwargs).run()
    return report, lines


def speed_rows(out):
    con = sqlite3.connect(out / "results.db")
    try:
        return con.execute("SELECT j.job_key, m.key, m.value, m.status FROM metric_values m "
                           "JOIN jobs j ON j.id = m.job_id WHERE m.metric = 'speed' "
                           "ORDER BY j.job_key, m.key").fetchall()
    finally:
        con.close()


def test_timing_jobs_come_last_one_after_another_and_each_runs_alone(tmp_path):
    regs = registries_with()
    rows, _, _ = SuiteRunner(spec(seeds=(0, 1)), tmp_path, regs).prepare()
    timed = lambda row: any(regs.metrics.get(m.name).timed_alone for m in row.evaluation.metrics)
    plan = schedule(rows, is_stored=lambda fp: False, training_status=lambda t: None, timed=timed)
    others = [j for j in plan.jobs if j.timing is None]
    timings = [j for j in plan.jobs if j.timing is not None]
    assert len(others) == 8 and len(timings) == 4  # 4 trainings, 4 rows; a timing job per row
    assert plan.jobs[-4:] == timings
    assert set(timings[0].after) == {j.key for j in others}
    assert [t.after for t in timings[1:]] == [(t.key,) for t in timings[:-1]]
    widths = concurrent_widths(plan.jobs)
    assert [widths[t.key] for t in timings] == [1, 1, 1, 1]
    assert all(widths[j.key] > 1 for j in others)
    # a stored row whose timing an earlier run did not reach gets its timing job alone
    stored = {r.evaluation.fingerprint for r in rows}
    pending = {rows[0].evaluation.fingerprint}
    plan = schedule(rows, is_stored=stored.__contains__, training_status=lambda t: "ok",
                    timed=timed, timing_pending=pending.__contains__)
    assert [(j.key, j.needs) for j in plan.jobs] == [(f"{rows[0].key} [timing]", ())]
    # without a metric timed alone, no timing job
    rows, _, _ = SuiteRunner(spec(metrics=("recon",)), tmp_path, regs).prepare()
    plan = schedule(rows, is_stored=lambda fp: False, training_status=lambda t: None, timed=timed)
    assert all(j.timing is None for j in plan.jobs)


def test_speed_is_timed_after_the_rows_on_every_core_and_a_stopped_run_resumes_it(tmp_path,
                                                                                  monkeypatch):
    # as on an idle machine, whatever else runs beside the tests
    monkeypatch.setattr(local_executor, "idle_cores", available_cores)
    regs = registries_with()
    out = tmp_path / "out"
    report, lines = run(spec(), out, regs, jobs=2)
    assert [r.status for r in report.ran] == ["ok", "ok"]
    # the rows were stored first, then their timings, alone on every core
    stored_at = [i for i, line in enumerate(lines) if line.startswith("[")]
    timed_at = [i for i, line in enumerate(lines) if "[timing]" in line]
    assert len(stored_at) == 2 and len(timed_at) == 2 and max(stored_at) < min(timed_at)
    cores = available_cores()
    for row in report.ran:
        speed = next(m for m in row.metrics if m.metric == "speed")
        assert speed.status == "ok" and speed.values["samples_per_s"] > 0
        assert speed.details["threads"] == cores
        assert row.provenance["timing"]["threads"] == cores
        assert row.provenance["timing"]["phase"] == "final"
    jobs = ResultStore(out / "results.db").jobs()
    assert all(p["timing"]["threads"] == cores for p in jobs["provenance"])
    assert {s for *_, s in speed_rows(out)} == {"ok"}

    # a run stopped after the rows were stored, before their timing jobs ran
    con = sqlite3.connect(out / "results.db")
    with con:
        con.execute("DELETE FROM metric_values WHERE metric = 'speed' AND key != 'samples_per_s'")
        con.execute("UPDATE metric_values SET key = NULL, value = NULL, status = 'pending' "
                    "WHERE metric = 'speed'")
    con.close()
    recon_before = ResultStore(out / "results.db").metric_values().query("metric == 'recon'")["value"].tolist()
    report, lines = run(spec(), out, regs, jobs=0)
    assert report.trainings == [] and report.ran == []  # nothing trained or evaluated again
    assert sum("[timing]" in line for line in lines) == 2
    rows = speed_rows(out)
    assert {s for *_, s in rows} == {"ok"} and all(v > 0 for _, k, v, _ in rows if k == "samples_per_s")
    assert ResultStore(out / "results.db").metric_values().query("metric == 'recon'")["value"].tolist() == recon_before
    # and then there is nothing left to do
    report, lines = run(spec(), out, regs, jobs=0)
    assert not any("[timing]" in line for line in lines)


class BrokenTiming(Metric):
    description = "a timing that raises"
    timed_alone = True
    higher_is_better = {"per_s": True}

    def compute(self, ctx):
        raise RuntimeError("the clock broke")


class BrokenTimingPlugin:
    @hookimpl
    def register_metrics(self, register):
        register("broken-timing", BrokenTiming)


def test_a_failing_timing_fails_only_that_metric(tmp_path):
    regs = registries_with(BrokenTimingPlugin())
    report, lines = run(spec(metrics=("recon", "broken-timing")), tmp_path / "out", regs, jobs=0)
    for row in report.ran:
        assert row.status == "ok"
        recon, broken = row.metrics
        assert recon.status == "ok"
        assert broken.status == "failed" and "the clock broke" in broken.message
    failed = ResultStore(tmp_path / "out" / "results.db").metric_values().query("metric == 'broken-timing'")
    assert set(failed["status"]) == {"failed"}


class TorchNoise(GenerativeModel):
    description = "test model: hands the generator to torch itself"

    def __init__(self, data_info):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def fit(self, data, budget):
        pass

    calls: list[int] = []  # the sizes asked for, in this process (--jobs 0)

    def sample(self, n, generator=None):
        TorchNoise.calls.append(n)
        return torch.rand(n, 2, generator=generator) * self.scale.detach()


class TorchNoisePlugin:
    @hookimpl
    def register_models(self, register):
        register("torch-noise", TorchNoise)


def test_the_timing_draws_noise_as_the_row_did_and_not_the_row_s_samples(tmp_path):
    TorchNoise.calls.clear()
    regs = registries_with(TorchNoisePlugin())
    with pytest.warns(UserWarning, match="passes the generator to torch itself"):
        report, _ = run(spec(metrics=("speed",), models=["torch-noise"]), tmp_path / "out", regs,
                        jobs=0)
    (row,) = report.ran
    assert row.provenance["noise"] == "one generator"
    (speed,) = row.metrics
    assert speed.status == "ok", speed.message
    # the row drew its 20 samples (a first try with per-sample noise, then one generator);
    # the timing job drew only the batches it timed, never the row's samples again
    timed_from = TorchNoise.calls.index(speed.details["batch_size"])
    assert set(TorchNoise.calls[:timed_from]) == {20}
    assert set(TorchNoise.calls[timed_from:]) == {speed.details["batch_size"]}
