"""Threads per job follow the plan: a job that runs alone gets every core, jobs that can
run together share them, and no set of jobs that can run at once asks for more than the
cores there are."""

import itertools
import random

import pytest

from genbench.api.executor import ExecutorRequest
from genbench.execution.executor_support import available_cores
from genbench.execution import executor_support, local_executor
from genbench.execution.local_executor import LocalExecutor
from genbench.execution.runner import SuiteRunner
from genbench.plan.jobs import Job
from genbench.plan.scheduling import concurrent_widths, thread_shares
from genbench.registry.manager import build_registries, create_plugin_manager

from helpers import tiny_spec


def jobs_of(needs: dict[str, tuple[str, ...]]) -> list[Job]:
    return [Job(key, None, needs=deps) for key, deps in needs.items()]


def reaches(needs, a, b):
    """Whether job ``a`` needs ``b``, directly or through others (a plain search)."""
    stack, seen = list(needs[a]), set()
    while stack:
        key = stack.pop()
        if key == b:
            return True
        if key not in seen:
            seen.add(key)
            stack += needs[key]
    return False


def random_dag(rng, n):
    keys = [f"j{i}" for i in range(n)]
    return {k: tuple(keys[j] for j in range(i) if rng.random() < 0.25)
            for i, k in enumerate(keys)}


def test_a_training_every_row_needs_runs_alone_and_its_rows_share_the_cores():
    needs = {"train": (), "row a": ("train",), "row b": ("train",), "row c": ("train",)}
    assert concurrent_widths(jobs_of(needs)) == {"train": 1, "row a": 3, "row b": 3, "row c": 3}
    assert thread_shares(jobs_of(needs), cores=16, slots=2) == {
        "train": 16, "row a": 8, "row b": 8, "row c": 8}
    # two trainings run side by side; each row of one can run beside the other's training
    needs = {"t1": (), "t2": (), "r1": ("t1",), "r2": ("t2",)}
    assert concurrent_widths(jobs_of(needs)) == {"t1": 3, "t2": 3, "r1": 3, "r2": 3}
    # fewer jobs than workers: the jobs that exist share every core
    assert thread_shares(jobs_of({"a": (), "b": ()}), cores=16, slots=8) == {"a": 8, "b": 8}
    assert thread_shares(jobs_of({"a": ()}), cores=2, slots=2) == {"a": 2}
    assert thread_shares(jobs_of({"a": (), "b": (), "c": ()}), cores=2, slots=2) == {
        "a": 1, "b": 1, "c": 1}


@pytest.mark.parametrize("seed", range(20))
def test_widths_count_the_jobs_unordered_with_each_and_shares_never_oversubscribe(seed):
    rng = random.Random(seed)
    needs = random_dag(rng, rng.randint(1, 12))
    jobs = jobs_of(needs)
    rng.shuffle(jobs)  # the order the jobs come in does not matter
    widths = concurrent_widths(jobs)
    for a in needs:
        unordered = [b for b in needs if b != a
                     and not reaches(needs, a, b) and not reaches(needs, b, a)]
        assert widths[a] == 1 + len(unordered)
    cores, slots = rng.randint(1, 16), rng.randint(1, 6)
    shares = thread_shares(jobs, cores, slots)
    # every set of jobs that may run at once (pairwise unordered, at most `slots` of them)
    for size in range(1, min(slots, len(needs)) + 1):
        for group in itertools.combinations(needs, size):
            if all(not reaches(needs, a, b) and not reaches(needs, b, a)
                   for a, b in itertools.combinations(group, 2)):
                assert sum(shares[k] for k in group) <= max(cores, size)


@pytest.mark.slow
def test_a_lone_training_and_its_row_run_on_every_core_and_record_it(tmp_path, monkeypatch):
    # as on an idle machine, whatever else runs beside the tests
    monkeypatch.setattr(local_executor, "idle_cores", available_cores)
    regs = build_registries(create_plugin_manager(load_entrypoints=False))
    spec = tiny_spec(datasets=["ring8"], models=[{"name": "ae", "params": {"hidden": 8}}],
                     metrics=["recon"], num_samples=20, budget={"steps": 2, "batch_size": 16})
    # --jobs 2 used to give each of its jobs one core of two, the other idle
    report = SuiteRunner(spec, tmp_path / "alone", regs, progress=False, echo=lambda s: None,
                         jobs=2).run()
    cores = available_cores()
    assert [t.provenance["threads"] for t in report.trainings] == [cores]
    assert [r.provenance["threads"] for r in report.ran] == [cores]


def test_given_threads_are_kept_for_every_job():
    assert LocalExecutor(2, threads_per_worker=1).cores is None
    assert 1 <= LocalExecutor(2).cores <= available_cores()
    request = ExecutorRequest("cpu", n_jobs=1, jobs=4)
    assert LocalExecutor.from_request(request).threads_per_worker == available_cores()


def test_jobs_get_no_more_threads_than_cores_idle_when_the_run_starts(monkeypatch):
    """On 8 CPUs of which 6 are busy, a lone job gets 2 threads, not 8."""
    import psutil

    monkeypatch.setattr(executor_support, "available_cores", lambda: 8)
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: 8)
    for busy_percent, idle in ((0.0, 8), (75.0, 2), (70.0, 2), (100.0, 1), (99.0, 1)):
        monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None, b=busy_percent: b)
        assert executor_support.idle_cores() == idle
    monkeypatch.setattr(executor_support, "available_cores", lambda: 4)  # a cgroup quota
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: 0.0)
    assert executor_support.idle_cores() == 4
