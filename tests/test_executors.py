"""Executors: every submitted job ends exactly once, as a result or a failure that says why.

Worker processes import torch on start (seconds each), so most tests share one pool of two
workers; each leaves it idle. Work functions live at module level: the spawned workers
import this module to unpickle them.
"""

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from genbench.api.executor import Completion
from genbench.execution.executor_support import available_cores, default_workers
from genbench.execution.local_executor import (InlineExecutor, LocalExecutor, WorkerSetupError,
                                         _worker_birth)

_SETUP_CALLS = 0


def setup_worker(context, index):
    global _SETUP_CALLS
    _SETUP_CALLS += 1
    return {"context": context, "index": index}


def failing_setup(context, index):
    raise RuntimeError("no data here")


def square(state, x):
    return x * x


def describe_worker(state, _job):
    return {**state, "pid": os.getpid(), "setup_calls": _SETUP_CALLS,
            "threads": torch.get_num_threads(), "interop": torch.get_num_interop_threads(),
            "omp": os.environ.get("OMP_NUM_THREADS"),
            "ignores_sigint": signal.getsignal(signal.SIGINT) == signal.SIG_IGN}


def fail(state, message):
    raise ValueError(message)


def unpicklable_result(state, _job):
    return threading.Lock()


def refuse_to_load():
    raise RuntimeError("cannot load here")


class LoadsBadly:
    def __reduce__(self):
        return refuse_to_load, ()


def result_that_loads_badly(state, _job):
    return LoadsBadly()


def big_result(state, megabytes):
    return torch.ones(megabytes * 2**18)  # float32: 4 bytes each


def die(state, how):
    time.sleep(0.2)  # let the other worker take jobs meanwhile
    if how == "SIGKILL":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(3)


def sleep(state, seconds):
    time.sleep(seconds)
    return seconds


def run_all(executor, jobs):
    """Submit ``{key: (work, job)}`` keeping at most ``slots`` running, as the runner does;
    check that every key ends exactly once."""
    pending, running, ended = list(jobs.items()), 0, {}
    while pending or running:
        while pending and running < executor.slots:
            key, (work, job) = pending.pop(0)
            executor.submit(key, work, job)
            running += 1
        for completion in executor.wait():
            assert completion.key not in ended, f"{completion.key} ended twice"
            ended[completion.key] = completion
            running -= 1
    assert set(ended) == set(jobs)
    return ended


def describe_workers(executor):
    """One description per worker: jobs submitted together go to distinct idle workers."""
    ended = run_all(executor, {f"describe{i}": (describe_worker, None)
                               for i in range(executor.slots)})
    return sorted((c.result for c in ended.values()), key=lambda d: d["index"])


def assert_gone(pid):
    assert pid not in {p.pid for p in multiprocessing.active_children()}
    with pytest.raises(ProcessLookupError):  # reaped: not even a zombie
        os.kill(pid, 0)


@pytest.fixture(scope="module")
def pool():
    executor = LocalExecutor(workers=2, threads_per_worker=3)
    executor.start(setup_worker, "ctx")
    yield executor
    executor.close()
    assert multiprocessing.active_children() == []


def test_many_jobs_come_back_once_each(pool):
    ended = run_all(pool, {f"job{i}": (square, i) for i in range(20)})
    assert {key: c.result for key, c in ended.items()} == {f"job{i}": i * i for i in range(20)}
    assert all(c.failure is None for c in ended.values())


def test_setup_runs_once_per_worker_and_threads_are_applied(pool):
    run_all(pool, {f"job{i}": (square, i) for i in range(6)})
    first, second = describe_workers(pool)
    assert (first["index"], second["index"]) == (0, 1)
    assert first["pid"] != second["pid"]
    for worker in (first, second):
        assert worker["context"] == "ctx"
        assert worker["setup_calls"] == 1
        assert (worker["threads"], worker["interop"], worker["omp"]) == (3, 1, "3")
        assert worker["ignores_sigint"]


def test_failures_are_completions_and_the_worker_serves_on(pool):
    pids = [w["pid"] for w in describe_workers(pool)]
    ended = run_all(pool, {"raises": (fail, "boom"), "lock": (unpicklable_result, None),
                           "load": (result_that_loads_badly, None),
                           "local": (square, lambda: 0), "ok": (square, 4),
                           "big": (big_result, 32)})
    assert ended["raises"].failure == "ValueError: boom"
    assert 'raise ValueError(message)' in ended["raises"].traceback
    assert ended["lock"].failure.startswith("the result does not pickle: TypeError")
    assert ended["load"].failure == "the result does not unpickle: RuntimeError: cannot load here"
    assert ended["local"].failure.startswith("the job does not pickle")
    assert ended["big"].result.shape == (32 * 2**18,)
    assert ended["ok"] == Completion("ok", result=16)
    assert [w["pid"] for w in describe_workers(pool)] == pids


def test_submitting_beyond_slots_is_refused(pool):
    pool.submit("a", sleep, 0.1)
    pool.submit("b", sleep, 0.1)
    with pytest.raises(RuntimeError, match="all 2 workers are busy"):
        pool.submit("c", sleep, 0.1)
    ended = {c.key for c in pool.wait()}
    while len(ended) < 2:
        ended |= {c.key for c in pool.wait()}
    assert ended == {"a", "b"}


def test_workers_ignore_ctrl_c(pool):
    pids = [w["pid"] for w in describe_workers(pool)]
    for pid in pids:
        os.kill(pid, signal.SIGINT)
    assert run_all(pool, {"after": (square, 3)})["after"].result == 9
    assert [w["pid"] for w in describe_workers(pool)] == pids


@pytest.mark.parametrize("how, failure", [
    ("SIGKILL", "worker process died: killed by signal SIGKILL (9)"),
    ("exit", "worker process died: exited with code 3"),
])
def test_a_dead_worker_fails_its_job_and_is_replaced(pool, how, failure):
    before = {w["pid"] for w in describe_workers(pool)}
    jobs = {f"job{i}": (square, i) for i in range(6)}
    jobs["job2"] = (die, how)
    ended = run_all(pool, jobs)
    assert ended["job2"] == Completion("job2", failure=failure)
    assert {k: c.result for k, c in ended.items() if k != "job2"} == {
        f"job{i}": i * i for i in range(6) if i != 2}
    after = describe_workers(pool)
    assert len(before & {w["pid"] for w in after}) == 1  # one survivor, one replacement
    assert [w["setup_calls"] for w in after] == [1, 1]  # the replacement set up afresh


def wait_for(condition, what: str, timeout: float = 120.0) -> None:
    """Poll ``condition`` until it holds; the deadline bounds a hang, never a speed."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {timeout:.0f} s"
        time.sleep(0.02)


def long_job(state, paths):
    """Touch ``started``, then work for ten minutes and touch ``finished``."""
    started, finished = map(Path, paths)
    started.touch()
    time.sleep(600)
    finished.touch()


def test_cancel_stops_a_running_job_at_once(tmp_path):
    """``close(cancel=True)`` ends a running job's worker instead of waiting for the job."""
    executor = LocalExecutor(workers=1)
    executor.start(setup_worker, None)
    (worker,) = describe_workers(executor)
    started, finished = tmp_path / "started", tmp_path / "finished"
    executor.submit("long", long_job, (str(started), str(finished)))
    wait_for(started.exists, "started job")
    closer = threading.Thread(target=executor.close, kwargs={"cancel": True})
    closer.start()
    closer.join(timeout=120)  # far less than the job's 600 s
    if closer.is_alive():  # close waits for the job: end it, so that the test ends
        os.kill(worker["pid"], signal.SIGKILL)
        closer.join()
        pytest.fail("close(cancel=True) waited for the running job")
    assert_gone(worker["pid"])
    assert not finished.exists()
    executor.close(cancel=True)  # twice is harmless


def test_setup_failure_fails_the_job_then_submit_fails_fast():
    others = {p.pid for p in multiprocessing.active_children()}  # the shared pool's
    with LocalExecutor(workers=1) as executor:
        executor.start(failing_setup, None)
        executor.submit("a", square, 2)
        (completion,) = executor.wait()
        assert completion.failure == "worker setup failed: RuntimeError: no data here"
        assert "failing_setup" in completion.traceback
        with pytest.raises(WorkerSetupError, match="no data here"):
            executor.submit("b", square, 3)
        (pid,) = {p.pid for p in multiprocessing.active_children()} - others
    assert_gone(pid)  # __exit__ closed it: the idle worker was told to exit, and did


def test_arguments_are_checked_before_any_process_starts():
    with pytest.raises(ValueError, match="workers must be at least 1"):
        LocalExecutor(workers=0)
    assert LocalExecutor(workers=2).threads_per_worker == max(1, available_cores() // 2)
    with pytest.raises(RuntimeError, match="started"):
        LocalExecutor(workers=1).submit("a", square, 1)
    with pytest.raises(TypeError, match="must pickle"):
        LocalExecutor(workers=1).start(lambda context, index: None, None)


def test_worker_birth_restores_the_driver_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    handler = signal.getsignal(signal.SIGINT)
    with _worker_birth(2):
        assert (os.environ["OMP_NUM_THREADS"], os.environ["MKL_NUM_THREADS"]) == ("2", "2")
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    assert os.environ["OMP_NUM_THREADS"] == "5"
    assert "MKL_NUM_THREADS" not in os.environ
    assert signal.getsignal(signal.SIGINT) == handler


def test_default_workers():
    assert available_cores() >= 1
    assert default_workers("cpu") == available_cores()
    assert default_workers("cuda") == max(1, torch.cuda.device_count())


def test_cores_are_the_process_limit_not_the_hosts():
    """Workers and threads follow joblib's count of usable cores (affinity mask, cgroup CPU
    quota, ``LOKY_MAX_CPU_COUNT``), not ``os.cpu_count()``: here limited to one core."""
    code = ("import os; from genbench.execution.executor_support import available_cores, "
            "default_workers; from genbench.execution.local_executor import LocalExecutor; "
            "print(os.cpu_count(), available_cores(), default_workers('cpu'), "
            "LocalExecutor(workers=2).threads_per_worker)")
    env = {**os.environ, "LOKY_MAX_CPU_COUNT": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert [int(v) for v in out[1:]] == [1, 1, 1] and int(out[0]) >= 1


def test_inline_executor_returns_results_and_failures():
    with InlineExecutor() as executor:
        executor.start(setup_worker, "ctx")
        executor.submit("ok", describe_worker, None)
        executor.submit("bad", fail, "boom")
        (ok,) = executor.wait()
        (bad,) = executor.wait()
    assert ok.result["context"] == "ctx" and ok.result["pid"] == os.getpid()
    assert bad.failure == "ValueError: boom"
    assert "raise ValueError(message)" in bad.traceback
