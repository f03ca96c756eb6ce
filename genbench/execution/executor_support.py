"""What the executors' workers and the data-parallel launcher share: how many cores this
process may use, how a failure and a process's exit are put in words, and dying with the
driver."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import traceback

import torch

#: prctl's option number for "signal me when my parent dies" (linux/prctl.h).
_PR_SET_PDEATHSIG = 1


def available_cores() -> int:
    """CPU cores this process may use: the fewest of the machine's, its affinity mask
    (taskset, a container's cpuset) and its cgroup's CPU quota (``docker --cpus``, a CI
    runner's limit), rounded up. joblib (loky) reads all three; on a 2-core quota over a
    many-core host, counting the host's cores would run one torch thread per host core
    and make every job many times slower."""
    import joblib

    return max(1, joblib.cpu_count())


def idle_cores(sample_seconds: float = 0.1) -> int:
    """Of :func:`available_cores`, how many are idle now (at least 1): the machine's idle
    CPU share over ``sample_seconds``, in whole cores (psutil). A job whose threads outnumber
    the idle cores runs slower than on fewer: every parallel step waits for the thread that
    shares a busy core (measured: a U-Net on 2 threads beside a busy loop took 1.8x its time
    on 1)."""
    import psutil

    busy = psutil.cpu_percent(interval=sample_seconds) / 100.0
    idle = round((1.0 - busy) * (psutil.cpu_count() or 1))
    return max(1, min(available_cores(), idle))


def default_workers(device_type: str) -> int:
    """Workers for ``--jobs`` by default: a core each on the CPU, a GPU each on CUDA."""
    if device_type == "cpu":
        return available_cores()
    if device_type == "cuda":
        return max(1, torch.cuda.device_count())
    return 1  # one shared accelerator (mps)


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """A raised exception as (one-line reason, traceback)."""
    lines = str(exc).strip().splitlines()
    reason = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return reason, "".join(traceback.format_exception(exc, limit=20))


def exit_reason(exitcode: int) -> str:
    """A process's exit code in words ("exited with code 3", "killed by signal SIGKILL (9)")."""
    if exitcode >= 0:
        return f"exited with code {exitcode}"
    try:
        return f"killed by signal {signal.Signals(-exitcode).name} ({-exitcode})"
    except ValueError:  # a real-time signal has no name
        return f"killed by signal {-exitcode}"


def die_with_parent() -> None:
    """On Linux, have the kernel kill this worker when the driver dies (even by SIGKILL),
    so that a busy worker never trains on, orphaned, beside a resumed run. Elsewhere a
    worker notices the closed pipe after its current job."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # the driver died before prctl
        os._exit(0)
