"""Executors on this machine: ``local`` keeps N spawned worker processes (``--jobs N``);
:class:`InlineExecutor` runs each job in the driver's process (``--jobs 0``).

:class:`LocalExecutor` gives each worker its share of the CPU threads and one private pipe,
so the driver always knows which job each worker holds. ``wait()`` watches the busy
workers' pipes and process sentinels: a reply is the job's result or its failure; a sentinel
with no reply means the worker died (killed, crashed, ``os._exit``): its job becomes a
failed :class:`~genbench.api.executor.Completion` and a fresh worker, set up again, takes
its place. A job that runs longer than ``job_timeout`` seconds (counted from when its
worker says it started it, so a fresh worker's start-up is not counted) has its worker
stopped (SIGTERM, then SIGKILL) and replaced, and becomes a failed completion naming the
job and the timeout. A ``sys.exit`` or ``KeyboardInterrupt`` raised by the job's code fails
that job only (a worker ignores SIGINT, so that interrupt is not the user's Ctrl-C).
Messages are plain pickles (not torch's shared-memory reducers), so a result never depends
on the process that produced it staying alive. Workers ignore SIGINT: on
Ctrl-C the driver alone decides, and ``close(cancel=True)`` terminates them; a worker
exits on SIGTERM through Python's shutdown, so that it leaves no semaphore behind.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import torch

from genbench.api.console import install_one_line_warnings
from genbench.api.errors import ConfigError, GenbenchError, WorkerTerminated
from genbench.api.executor import Completion, Executor, ExecutorRequest
from genbench.execution.executor_support import (available_cores, default_workers, describe_failure,
                                                  die_with_parent, exit_reason, idle_cores)

#: Environment variables that size a native thread pool when torch is imported.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: Seconds a worker gets to exit on its own (``close()``) or after SIGTERM (``cancel``).
_EXIT_GRACE = 10.0
_TERMINATE_GRACE = 1.0


class WorkerSetupError(GenbenchError):
    """``setup(context, worker_index)`` raised in a worker, so no job can run there."""


class InlineExecutor(Executor):
    """Runs each job in this process when :meth:`wait` is called (``--jobs 0``: debuggers,
    tests that count calls). A job that crashes the interpreter takes the driver with it;
    one that calls ``sys.exit`` fails, and a ``KeyboardInterrupt`` is the user's Ctrl-C. A
    job timeout does not apply: nothing can stop a job in this process from outside."""

    slots = 1
    description = "each job in the driver's process, one at a time"
    in_process = True

    def __init__(self) -> None:
        self._state: Any = None
        self._queue: deque[tuple[str, Callable, Any]] = deque()

    def start(self, setup, context) -> None:
        self._state = setup(context, 0)

    def submit(self, key, work, job) -> None:
        self._queue.append((key, work, job))

    def wait(self) -> list[Completion]:
        if not self._queue:
            raise RuntimeError("wait() called with no job submitted")
        key, work, job = self._queue.popleft()
        try:
            return [Completion(key, result=work(self._state, job))]
        except (Exception, SystemExit) as exc:  # the driver turns it into a failed record
            failure, trace = describe_failure(exc)
            return [Completion(key, failure=failure, traceback=trace)]

    def close(self, cancel: bool = False) -> None:
        self._queue.clear()


@dataclass
class _Worker:
    """A worker process, the driver's end of its pipe, and the key of the job it holds."""

    process: multiprocessing.process.BaseProcess
    conn: multiprocessing.connection.Connection
    index: int
    key: str | None = None
    #: When it said it started its job (``time.monotonic()``; ``None``: not yet).
    started: float | None = None


class LocalExecutor(Executor):
    """Runs jobs in ``workers`` long-lived processes on this machine (``--jobs N``).

    Each worker uses ``threads_per_worker`` torch threads (``--threads``) for every job;
    by default it starts with an equal share of :func:`available_cores` and runs each job
    with the share the runner gives it by the plan of the cores idle when the run starts
    (:attr:`Executor.cores`, :func:`idle_cores`: all of them to a job that runs alone), so N
    workers never oversubscribe the CPU and a lone job leaves no core idle. It takes no
    ``[executor_options]``: ``--jobs`` and ``--threads`` size it. ``job_timeout``: seconds a
    job may run in its worker before the worker is stopped (``None``: no limit).
    """

    description = "worker processes on this machine (--jobs, --threads)"
    job_timeouts = True

    def __init__(self, workers: int, threads_per_worker: int | None = None,
                 job_timeout: float | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if threads_per_worker is not None and threads_per_worker < 1:
            raise ValueError(f"threads_per_worker must be at least 1, got {threads_per_worker}")
        if job_timeout is not None and not job_timeout > 0:
            raise ValueError(f"job_timeout must be a positive number of seconds, got {job_timeout}")
        self.job_timeout = job_timeout
        self.slots = workers
        self.threads_per_worker = threads_per_worker or max(1, available_cores() // workers)
        # given threads are the user's: every job keeps them; else the cores idle now (work
        # outside genbench that holds a core would slow every thread that shares it)
        self.cores = None if threads_per_worker else idle_cores()
        self._mp = multiprocessing.get_context("spawn")  # fork is unsafe once torch runs
        self._setup: bytes | None = None
        self._workers: list[_Worker] = []
        self._ended: list[Completion] = []  # jobs that ended inside submit()
        self._setup_failure: str | None = None
        self._closed = False

    @classmethod
    def from_request(cls, request: ExecutorRequest) -> Executor:
        """Workers as ``--jobs`` says (default: one per core on the CPU, one per GPU on CUDA,
        less for data-parallel trainings), ``--jobs 0`` an :class:`InlineExecutor`."""
        workers = request.jobs
        if workers is None:
            workers = 1 if request.nproc > 1 and request.device_type == "cuda" else \
                max(1, default_workers(request.device_type) // request.nproc)
        elif workers > 1 and request.nproc > 1 and request.device_type == "cuda":
            raise ConfigError(f"train.nproc = {request.nproc} on CUDA trains on GPUs 0 to "
                              f"{request.nproc - 1} of this machine, so only one job may run at "
                              f"a time: use --jobs 1 (or the ray executor, which gives each "
                              f"training its own GPUs)")
        if workers == 0:
            return InlineExecutor()
        return cls(min(workers, max(1, request.n_jobs)), threads_per_worker=request.threads,
                   job_timeout=request.job_timeout)

    def start(self, setup, context) -> None:
        if self._setup is not None or self._closed:
            raise RuntimeError("start() may be called once, before close()")
        try:
            self._setup = pickle.dumps((setup, context), pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise TypeError(f"setup and context must pickle to reach the worker processes "
                            f"(module-level functions, plain dataclasses): {exc}") from exc
        # All at once, so that their slow `import torch` overlaps.
        self._workers = [self._spawn(index) for index in range(self.slots)]

    def submit(self, key, work, job) -> None:
        if self._setup is None or self._closed:
            raise RuntimeError("submit() needs a started executor that is not closed")
        if self._setup_failure is not None:
            raise WorkerSetupError(f"worker setup failed, so no job can run: "
                                   f"{self._setup_failure} (see the first failed job's traceback)")
        worker = next((w for w in self._workers if w.key is None), None)
        if worker is None:
            raise RuntimeError(f"all {self.slots} workers are busy: call wait() before "
                               f"submitting job {key!r}")
        try:
            message = pickle.dumps((key, work, job), pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            failure, trace = describe_failure(exc)
            self._ended.append(Completion(key, failure=f"the job does not pickle: {failure}",
                                          traceback=trace))
            return
        if not worker.process.is_alive():  # died while idle: nothing of ours was lost
            self._bury(worker)
            worker = self._workers[-1]
        try:
            worker.conn.send_bytes(message)
        except OSError:  # died between the check and the send
            self._ended.append(Completion(key, failure=self._bury(worker)))
            return
        worker.key, worker.started = key, None

    def wait(self) -> list[Completion]:
        if self._ended:
            ended, self._ended = self._ended, []
            return ended
        while True:
            busy = [w for w in self._workers if w.key is not None]
            if not busy:
                raise RuntimeError("wait() called with no job running")
            started = [w.started for w in busy if w.started is not None]
            timeout = None
            if self.job_timeout is not None and started:  # until the first job's time is up
                timeout = max(0.0, min(started) + self.job_timeout - time.monotonic())
            ready = set(multiprocessing.connection.wait(
                [w.conn for w in busy] + [w.process.sentinel for w in busy], timeout))
            ended = [self._collect(w) for w in busy
                     if w.conn in ready or w.process.sentinel in ready]
            if self.job_timeout is not None:
                now = time.monotonic()
                ended += [self._time_out(w) for w in busy if w.key is not None
                          and w.started is not None and now - w.started >= self.job_timeout]
            ended = [c for c in ended if c is not None]
            if ended:
                return ended

    def close(self, cancel: bool = False) -> None:
        """Idle workers are asked to exit (``cancel=False``); running jobs, whose results
        nobody would collect, and workers slow to exit are terminated."""
        workers, self._workers, self._closed = self._workers, [], True
        self._ended.clear()
        if not cancel:  # idle workers finish on their own; a busy one's result has no reader
            idle = [w for w in workers if w.key is None]
            for worker in idle:
                with contextlib.suppress(OSError):
                    worker.conn.send_bytes(pickle.dumps(None))
            deadline = time.monotonic() + _EXIT_GRACE
            for worker in idle:
                worker.process.join(max(0.0, deadline - time.monotonic()))
        _stop([w.process for w in workers])
        for worker in workers:
            worker.conn.close()
            worker.process.close()

    def _spawn(self, index: int) -> _Worker:
        driver_end, worker_end = self._mp.Pipe()
        process = self._mp.Process(
            target=_worker_main, name=f"genbench-worker-{index}", daemon=True,
            args=(index, self.threads_per_worker, self._setup, worker_end))
        with _worker_birth(self.threads_per_worker):
            process.start()
        worker_end.close()  # so that the worker's death reads as end-of-file here
        return _Worker(process, driver_end, index)

    def _collect(self, worker: _Worker) -> Completion | None:
        """The completion of a busy worker whose pipe or sentinel is ready; ``None`` when it
        only said that it started its job, which runs on."""
        while True:
            try:
                data = worker.conn.recv_bytes() if worker.conn.poll() else None
            except (EOFError, OSError):
                data = None
            if data != _STARTED:
                break
            worker.started = time.monotonic()
            if not worker.conn.poll() and worker.process.exitcode is None:
                return None
        key, worker.key = worker.key, None
        if data is None:
            return Completion(key, failure=self._bury(worker))
        try:
            kind, *reply = pickle.loads(data)
        except Exception as exc:
            failure, trace = describe_failure(exc)
            return Completion(key, failure=f"the result does not unpickle: {failure}",
                              traceback=trace)
        if kind == "result":
            return Completion(key, result=reply[0])
        failure, trace = reply
        if kind == "setup failed":
            self._setup_failure = failure
            failure = f"worker setup failed: {failure}"
        return Completion(key, failure=failure, traceback=trace)

    def _time_out(self, worker: _Worker) -> Completion:
        """Stop a worker whose job ran past the timeout; the job fails, a fresh worker
        takes its place."""
        key, worker.key = worker.key, None
        _stop([worker.process])
        self._bury(worker)
        return Completion(key, failure=f"job {key} ran longer than job_timeout = "
                                       f"{self.job_timeout:g} s; its worker was stopped")

    def _bury(self, worker: _Worker) -> str:
        """Reap a dead worker, start its replacement (last in the list), say how it died."""
        worker.process.join(_TERMINATE_GRACE)  # its pipe can close just before it exits
        _stop([worker.process])
        reason = exit_reason(worker.process.exitcode)
        worker.conn.close()
        worker.process.close()
        self._workers.remove(worker)
        if self._setup_failure is None:  # a worker that cannot set up is not replaced
            self._workers.append(self._spawn(worker.index))
        return f"worker process died: {reason}"


def _stop(processes: list) -> None:
    """End these processes without hanging: SIGTERM, a short join, then SIGKILL."""
    running = [p for p in processes if p.exitcode is None]
    for process in running:
        process.terminate()
    deadline = time.monotonic() + _TERMINATE_GRACE
    for process in running:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.exitcode is None:
            process.kill()
            process.join()


@contextlib.contextmanager
def _worker_birth(threads: int):
    """What a spawned worker inherits: thread-pool sizes, read when the child imports torch
    (before :func:`_worker_main` runs), and SIGINT ignored, so that a Ctrl-C during that
    import prints no traceback per worker. Only the main thread may touch signals; a
    Ctrl-C in the few milliseconds of a process start is lost."""
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(_THREAD_VARIABLES, str(threads)))
    in_main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT) if in_main else None
    if handler is not None:  # None: installed outside Python, so it could not be restored
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


#: What a worker sends when it starts a job (its timeout counts from then, not from a
#: fresh worker's start-up).
_STARTED = pickle.dumps(("started",))


def _worker_main(index: int, threads: int, setup_payload: bytes,
                 conn: multiprocessing.connection.Connection) -> None:
    """A worker process: set up once, then answer each ``(key, work, job)`` until ``None``.

    Each job is announced with :data:`_STARTED`; replies are ``("result", value)``,
    ``("failed", reason, traceback)`` or, for every job after ``setup`` raised,
    ``("setup failed", reason, traceback)``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver alone handles Ctrl-C
    signal.signal(signal.SIGTERM, _exit_on_terminate)
    die_with_parent()
    install_one_line_warnings()  # as the command line prints them, not file:line + source
    state, broken = None, None
    try:  # any failure here is the setup's: reported with the first job, never respawned
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        setup, context = pickle.loads(setup_payload)
        state = setup(context, index)
    except Exception as exc:
        broken = ("setup failed", *describe_failure(exc))
    while True:
        try:
            message = pickle.loads(conn.recv_bytes())
        except EOFError:  # the driver is gone
            return
        except Exception as exc:  # e.g. the work function is not importable here
            reply = ("failed", *describe_failure(exc))
        else:
            if message is None:
                return
            try:
                conn.send_bytes(_STARTED)
            except OSError:  # the driver is gone
                return
            reply = broken or _run(state, *message[1:])
        try:
            data = pickle.dumps(reply, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            failure, trace = describe_failure(exc)
            data = pickle.dumps(("failed", f"the result does not pickle: {failure}", trace))
        try:
            conn.send_bytes(data)
        except OSError:  # the driver is gone
            return


def _exit_on_terminate(signum: int, frame: Any) -> None:
    """A worker's SIGTERM (``close(cancel=True)``, or anyone's ``kill``): exit through
    Python's shutdown, not at once, so that multiprocessing's finalizers release what the
    worker holds. A named semaphore (tqdm's lock, a DataLoader's queues) left behind makes
    the resource tracker print a two-line "leaked semaphore" warning when the run ends. A
    second SIGTERM, or the driver's SIGKILL after a grace period, ends it at once."""
    signal.signal(signum, signal.SIG_DFL)
    raise WorkerTerminated(128 + signum)


def _run(state: Any, work: Callable[[Any, Any], Any], job: Any) -> tuple:
    """``work(state, job)``'s reply. Only the worker's own :class:`WorkerTerminated` ends the
    worker: a ``sys.exit`` in the job's code fails the job, and so does a
    ``KeyboardInterrupt``, which here can only come from that code (workers ignore SIGINT)."""
    try:
        return ("result", work(state, job))
    except WorkerTerminated:
        raise
    except KeyboardInterrupt as exc:
        failure, trace = describe_failure(exc)
        return ("failed", f"{failure} raised by the job's code (not Ctrl-C, which workers "
                          "ignore)", trace)
    except (Exception, SystemExit) as exc:
        return ("failed", *describe_failure(exc))

