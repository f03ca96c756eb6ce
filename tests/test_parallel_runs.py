"""Suites on worker processes: the same numbers as one worker (models built on models
included), and dead workers.

(Ctrl-C and a killed driver are tested through the command line in test_cli.py.)"""

import sqlite3

import pytest

from genbench.execution.runner import SuiteRunner
from genbench.results.store import ResultStore
from helpers import RunnerPlugin, registries_with, tiny_spec


def run_with(jobs, spec, out, regs, threads=1):
    return SuiteRunner(spec, out, regs, progress=False, echo=lambda s: None, jobs=jobs,
                       threads=threads).run()


def values(out):
    """Every stored metric value but timings, by row."""
    rows = ResultStore(out / "results.db").results()
    return {r["job_key"]: {k: v for k, v in r["metrics"].items() if not k.startswith("speed.")}
            for r in rows}


@pytest.mark.slow
def test_two_workers_store_what_one_worker_stores_and_a_killed_worker_is_a_failed_record(tmp_path):
    regs = registries_with(RunnerPlugin())
    spec = tiny_spec(models=["vae", "killed-vae", "code-gaussian",
                             {"name": "dying-sampler-vae", "sampling": [{}, {"die": True}]}],
                     metrics=["recon", "fid", "speed"], seeds=[0, 1], budget={"steps": 30})
    one = run_with(1, spec, tmp_path / "one", regs)
    two = run_with(2, spec, tmp_path / "two", regs)
    for report in (one, two):
        status = {r.job_key: (r.status, r.error) for r in report.ran}
        assert len(report.ran) == 10
        for key, (state, error) in status.items():
            if key.startswith(("digits/killed-vae", "digits/dying-sampler-vae[die=True]")):
                assert state == "failed" and "killed by signal SIGKILL" in error, error
            else:  # the other setting of the dying sampler shares its checkpoint: unharmed
                assert state == "ok", (key, error)
    assert values(tmp_path / "one") == values(tmp_path / "two")
    keys = [k for (k,) in sqlite3.connect(tmp_path / "two" / "results.db").execute(
        "SELECT job_key FROM jobs")]
    assert len(keys) == 10
    assert len({r.job_key for r in two.ran}) == 10  # each row stored once, no retries
    trained = [t.fingerprint for t in two.trainings]
    assert len(trained) == len(set(trained)) == 10  # one job per training: 5 (the referenced
    # autoencoder included; the two settings of the dying sampler share one) x 2 seeds
    ok = [r for r in two.ran if r.status == "ok"][0]
    assert ok.provenance["threads"] == 1
