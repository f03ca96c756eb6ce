"""The ``ray`` executor: each job one Ray task on a Ray cluster (``executor = "ray"``).

The driver (the runner, on the machine where ``genbench run`` runs) plans, submits ready
jobs as Ray tasks and stores every result itself: workers never open ``results.db``.
Referenced models run before their dependents because the runner submits a job only once
the jobs it needs have finished. Each task asks for the job's resources: ``num_gpus`` (default
1 when the cluster has GPUs and the run's device is CUDA, else 0: a task given no GPU sees
none, so it runs on the device the driver planned for, which is part of every training's
fingerprint) and ``num_cpus`` (default 1), times ``train.nproc`` for a training job trained
data-parallel. A worker process sets up once per run (the
runner's ``setup``, cached in the process) and sets torch's threads to the task's CPUs.

Artefacts (checkpoints, loss curves, samples) go either

* ``artifacts = "shared"`` (default): straight into the output folder, which every node
  must see on a shared file system, at ``shared_dir`` (default: the folder's own absolute
  path); or
* ``artifacts = "driver"``: into a scratch folder on the worker; the files a job wrote
  travel back in its result and the driver writes them into the output folder, and the
  checkpoints a job reads (its training's, its referenced models') travel with the task.
  Nothing needs to be shared, at the price of moving checkpoints through Ray's object store.

A job whose worker dies (killed, out of memory, a lost node) is submitted again, up to
``max_retries`` times (default 1); then it is a failed completion naming the cause. The
causes of the attempts that died travel with the completion (``Completion.retried``). On
Ctrl-C, :meth:`RayExecutor.close` cancels every unfinished task (a running one is killed);
what finished is stored already, and the next run resumes by fingerprint as with the local
executor. A job that runs longer than ``job_timeout`` seconds (from its submission; a
retry starts again) has its task cancelled, its worker killed, and is a failed completion
naming the timeout. ``address`` picks the cluster: ``None`` (a Ray instance this process already
joined, else ``RAY_ADDRESS``, else a new local one), ``"auto"`` (the cluster this machine is a
node of), ``"ray://host:port"`` (Ray Client) or ``"host:port"`` (a head node's GCS).
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Callable, Literal, get_args

import torch
from annotated_types import Ge

from genbench.api.console import install_one_line_warnings
from genbench.api.errors import ConfigError, WorkerTerminated
from genbench.api.executor import Completion, Executor, ExecutorRequest
from genbench.api.parameters import check_options
from genbench.api.paths import atomic_write
from genbench.execution.executor_support import describe_failure
from genbench.plan.jobs import shard_dirname

#: Seconds one ``ray.wait`` blocks, so that Ctrl-C reaches the driver promptly.
_POLL = 0.5
_ADDRESS = re.compile(r"^(auto|local|ray://[^\s/]+:\d+|[^\s/:]+:\d+)$")
#: Where a job's files go: "shared" (workers write the output folder) or "driver".
Artifacts = Literal["shared", "driver"]
ARTIFACT_MODES = get_args(Artifacts)
#: CPUs or GPUs per job.
Count = Annotated[float, Ge(0)] | None


class ClusterUnavailableError(ConfigError):
    """The Ray cluster named by ``address`` cannot be joined (nothing has run yet)."""


@dataclass(frozen=True)
class RayOptions:
    """``[executor_options]`` of ``executor = "ray"`` (see the module docstring)."""

    #: The cluster: None, "auto", "local", "ray://host:port" or "host:port".
    address: str | None = None
    #: CPUs per job (default 1); GPUs per job (default 1 when the cluster has GPUs and the
    #: run's device is CUDA).
    num_cpus: Count = None
    num_gpus: Count = None
    #: Times a job whose worker died is submitted again.
    max_retries: Annotated[int, Ge(0)] = 1
    #: "shared" (workers write the output folder) or "driver" (files travel in results).
    artifacts: Artifacts = "shared"
    #: The output folder as the workers see it (artifacts = "shared"; default: its path).
    shared_dir: str | None = None

    def __post_init__(self):
        # the declarations, checked here too so that RayOptions built directly is checked
        check_options(type(self), {f: getattr(self, f) for f in self.__dataclass_fields__},
                      "executor 'ray'")
        if self.address is not None and (not isinstance(self.address, str)
                                          or not _ADDRESS.match(self.address)):
            raise ConfigError(f"executor 'ray': address must be auto, local, ray://host:port "
                              f"or host:port, got {self.address!r}")
        if self.shared_dir is not None:
            if not isinstance(self.shared_dir, str) or not os.path.isabs(self.shared_dir):
                raise ConfigError(f"executor 'ray': shared_dir must be an absolute path, "
                                  f"got {self.shared_dir!r}")
            if self.artifacts != "shared":
                raise ConfigError("executor 'ray': shared_dir applies to artifacts = "
                                  "\"shared\" only")
        if self.num_cpus == 0 and not self.num_gpus:
            raise ConfigError("executor 'ray': a job needs CPUs or GPUs; num_cpus and "
                              "num_gpus are both 0")


@dataclass
class _Attempt:
    """A submitted job: what to submit again if its worker dies, and why earlier ones did."""

    key: str
    work: Callable
    job: Any
    inputs: dict[str, bytes] | None
    resources: dict[str, float]
    threads: int
    died: list[str] = field(default_factory=list)
    #: When this attempt was submitted (``time.monotonic()``).
    started: float = 0.0


class RayExecutor(Executor):
    """Runs jobs as Ray tasks; see the module docstring.

    ``slots`` (jobs in flight): ``jobs`` when given, else what the cluster holds at once
    (its CPUs or GPUs over a job's share), at most ``n_jobs``.
    """

    description = "one Ray task per job on a Ray cluster (see genbench.execution.ray_executor)"
    Options = RayOptions
    requires = ("ray",)
    install = 'pip install "genbench[ray]"'
    job_timeouts = True

    def __init__(self, options: RayOptions | None = None, *, device_type: str = "cpu",
                 jobs: int | None = None, threads: int | None = None, n_jobs: int | None = None,
                 out_dir: str | Path = "", job_timeout: float | None = None):
        import ray

        self.options = options or RayOptions()
        self.job_timeout = job_timeout
        self.out_dir = Path(out_dir).absolute() if out_dir else None
        if self.options.artifacts == "driver" and self.out_dir is None:
            raise ConfigError("executor 'ray': artifacts = \"driver\" needs the output folder")
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            self._connect(ray)
        resources = ray.cluster_resources()
        gpus = self.options.num_gpus
        if gpus is None:  # a task asking for none sees none: it runs on the run's device
            gpus = 1.0 if resources.get("GPU", 0) > 0 and device_type == "cuda" else 0.0
        cpus = 1.0 if self.options.num_cpus is None else float(self.options.num_cpus)
        self.resources = {"num_cpus": cpus, "num_gpus": float(gpus)}
        self.threads = threads or max(1, int(cpus))
        if not jobs:  # None, or 0 (in-process, which has no meaning on a cluster)
            fits = [resources.get(name, 0) // need for name, need in
                    (("CPU", cpus), ("GPU", gpus)) if need > 0]
            jobs = int(min(fits)) if fits else 1
        self.slots = max(1, min(jobs, n_jobs) if n_jobs else jobs)
        self._ray = ray
        self._remote = None
        self._payload = None
        self._nproc = 1
        self._running: dict[Any, _Attempt] = {}   # object ref -> its job
        self._ended: list[Completion] = []
        self._closed = False

    @classmethod
    def from_request(cls, request: ExecutorRequest) -> "RayExecutor":
        return cls(request.options, device_type=request.device_type, jobs=request.jobs,
                   threads=request.threads, n_jobs=request.n_jobs, out_dir=request.out_dir,
                   job_timeout=request.job_timeout)

    def _connect(self, ray) -> None:
        address = self.options.address
        try:
            if address == "local" or (address is None and not os.environ.get("RAY_ADDRESS")):
                # a new local instance: its workers import what this process imports
                ray.init(address="local", include_dashboard=False, runtime_env={"env_vars": {
                    "PYTHONPATH": os.pathsep.join(p for p in [os.getcwd(), *sys.path] if p)}})
            else:
                _check_reachable(address or os.environ["RAY_ADDRESS"])
                ray.init(address=address)  # None: RAY_ADDRESS
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = address or os.environ.get("RAY_ADDRESS") or "a new local instance"
            raise ClusterUnavailableError(
                f"cannot start or join the Ray cluster ({where}): "
                f"{' '.join(str(exc).split())[:300]}; start one with `ray start --head`, or "
                f"check --address (auto, ray://HOST:PORT or HOST:PORT)") from exc

    # -- the executor protocol --------------------------------------------------------
    def start(self, setup, context) -> None:
        if self._payload is not None or self._closed:
            raise RuntimeError("start() may be called once, before close()")
        if self.options.artifacts == "shared" and self.options.shared_dir is not None:
            context = replace(context, out_dir=self.options.shared_dir)
        elif hasattr(context, "out_dir") and self.options.artifacts == "shared":
            context = replace(context, out_dir=str(Path(context.out_dir).absolute()))
        self._nproc = getattr(context, "nproc", 1)
        try:
            blob = pickle.dumps((setup, context), pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise TypeError(f"setup and context must pickle to reach the Ray workers: "
                            f"{exc}") from exc
        self._payload = (uuid.uuid4().hex, self._ray.put(blob))
        self._remote = self._ray.remote(max_retries=0)(_ray_task)

    def submit(self, key, work, job) -> None:
        if self._payload is None or self._closed:
            raise RuntimeError("submit() needs a started executor that is not closed")
        if len(self._running) >= self.slots:
            raise RuntimeError(f"all {self.slots} slots are busy: call wait() before "
                               f"submitting job {key!r}")
        scale = self._nproc if getattr(job, "evaluation", True) is None else 1
        resources = {k: v * scale for k, v in self.resources.items()}
        inputs = None
        if self.options.artifacts == "driver":
            try:
                inputs = _checkpoints(self.out_dir, job)
            except OSError as exc:
                self._ended.append(Completion(key, failure=f"cannot read the checkpoints the "
                                                           f"job needs: {exc}"))
                return
        self._send(_Attempt(key, work, job, inputs, resources, self.threads * scale))

    def wait(self) -> list[Completion]:
        while True:
            if self._ended:
                ended, self._ended = self._ended, []
                return ended
            if not self._running:
                raise RuntimeError("wait() called with no job running")
            ready, _ = self._ray.wait(list(self._running), num_returns=1, timeout=_POLL)
            if ready:
                ready, _ = self._ray.wait(list(self._running), num_returns=len(self._running),
                                          timeout=0)
            for ref in ready:
                completion = self._collect(ref, self._running.pop(ref))
                if completion is not None:
                    self._ended.append(completion)
            self._time_out()  # what is still running

    def close(self, cancel: bool = False) -> None:
        """Cancel unfinished tasks (a running one's worker is killed) and, when this
        executor started Ray, shut it down."""
        if self._closed:
            return
        self._closed = True
        for ref in list(self._running):
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # already finished, or its node is gone
                pass
        self._running.clear()
        self._ended.clear()
        if self._owns_ray:
            self._ray.shutdown()

    # -- internals ------------------------------------------------------------------------
    def _time_out(self) -> None:
        """Cancel (killing its worker) every task that ran past the job timeout."""
        if self.job_timeout is None:
            return
        now = time.monotonic()
        for ref, attempt in list(self._running.items()):
            if now - attempt.started >= self.job_timeout:
                del self._running[ref]
                try:
                    self._ray.cancel(ref, force=True)
                except Exception:  # finished meanwhile, or its node is gone
                    pass
                self._ended.append(Completion(
                    attempt.key, retried=tuple(attempt.died),
                    failure=f"job {attempt.key} ran longer than job_timeout = "
                            f"{self.job_timeout:g} s; its task was cancelled"))

    def _send(self, attempt: _Attempt) -> None:
        run_id, blob = self._payload
        ref = self._remote.options(name=attempt.key[:200], **attempt.resources).remote(
            run_id, blob, attempt.threads, attempt.work, attempt.job, attempt.inputs)
        attempt.started = time.monotonic()
        self._running[ref] = attempt

    def _collect(self, ref, attempt: _Attempt) -> Completion | None:
        """The completion of a finished task, or None when its job was submitted again."""
        ray = self._ray
        retried = tuple(attempt.died)
        try:
            reply = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the task wrapper raised: unexpected
            failure, trace = describe_failure(exc.cause if exc.cause is not None else exc)
            return Completion(attempt.key, failure=failure, traceback=trace, retried=retried)
        except ray.exceptions.TaskCancelledError:
            return Completion(attempt.key, failure="cancelled", retried=retried)
        except ray.exceptions.RayError as exc:  # the worker or its node died
            cause = " ".join(str(exc).split())[:300] or type(exc).__name__
            cause = f"{type(exc).__name__}: {cause}"
            if len(attempt.died) < self.options.max_retries:
                attempt.died.append(cause)
                self._send(attempt)
                return None
            return Completion(attempt.key, failure=f"worker process died: {cause}"
                              + (f" (after {len(attempt.died)} retr"
                                 f"{'y' if len(attempt.died) == 1 else 'ies'})"
                                 if attempt.died else ""), retried=retried)
        kind, *rest = reply
        if kind == "result":
            value, outputs = rest
            if outputs:
                try:
                    _write_outputs(self.out_dir, outputs)
                except OSError as exc:
                    return Completion(attempt.key, retried=retried, failure=f"cannot write "
                                      f"the job's files into {self.out_dir}: {exc}")
            return Completion(attempt.key, result=value, retried=retried)
        failure, trace = rest
        if kind == "setup failed":
            failure = f"worker setup failed: {failure}"
        return Completion(attempt.key, failure=failure, traceback=trace, retried=retried)


# -- driver-mode artefacts ------------------------------------------------------------

def _run_dirs(training) -> list[str]:
    """A training's folder and its referenced models' (recursively)."""
    dirs = [training.run_dir]
    for _, ref in training.refs:
        dirs += _run_dirs(ref)
    return dirs


def _checkpoints(out_dir: Path, job) -> dict[str, bytes]:
    """The files ``job`` may read, by path relative to the output folder: its training's
    checkpoint (to evaluate it, or to resume it) and its referenced models'; for a row
    whose samples were drawn by sample jobs (``eval_shards``), their shards."""
    files = {}
    for run_dir in dict.fromkeys(_run_dirs(job.training)):
        rel = f"{run_dir}/checkpoint.pt"
        path = out_dir / rel
        if path.is_file():
            files[rel] = path.read_bytes()
    ev = getattr(job, "evaluation", None)
    if ev is not None and getattr(job, "shard", None) is None and ev.shards > 1:
        samples = out_dir / job.training.run_dir / ev.dirname / "samples"
        for a, b in ev.shard_ranges():
            for path in sorted((samples / shard_dirname(a, b)).glob("*")):
                if path.is_file():
                    files[path.relative_to(out_dir).as_posix()] = path.read_bytes()
    return files


def _safe(rel: str) -> PurePosixPath:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise OSError(f"refusing to write {rel!r} outside the output folder")
    return path


def _write_outputs(out_dir: Path, outputs: dict[str, bytes]) -> None:
    for rel, data in outputs.items():
        atomic_write(out_dir / _safe(rel), lambda tmp, data=data: Path(tmp).write_bytes(data))


# -- the worker side ------------------------------------------------------------------

#: This worker process's set-up state: (run id, CUDA devices) -> state. One run at a time.
_STATE: dict[tuple[str, str], Any] = {}


def _ray_task(run_id: str, blob: bytes, threads: int, work: Callable, job: Any,
              inputs: dict[str, bytes] | None) -> tuple:
    """One job in a Ray worker: ``("result", value, files)``, ``("failed", reason, trace)``
    or ``("setup failed", reason, trace)``, as the local executor's replies."""
    torch.set_num_threads(max(1, int(threads)))
    install_one_line_warnings()  # as the local workers and the command line print them
    key = (run_id, os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    if key not in _STATE:
        try:
            setup, context = pickle.loads(blob)
            state = setup(context, 0)
        except Exception as exc:
            return ("setup failed", *describe_failure(exc))
        _STATE.clear()
        _STATE[key] = state
    state = _STATE[key]
    if inputs is None:
        try:
            return ("result", work(state, job), None)
        except WorkerTerminated:
            raise
        except (Exception, SystemExit) as exc:  # a plugin's sys.exit fails its job only
            return ("failed", *describe_failure(exc))
    scratch = Path(tempfile.mkdtemp(prefix="genbench-ray-"))
    try:
        for rel, data in inputs.items():
            path = scratch / _safe(rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        local = replace(state, context=replace(state.context, out_dir=str(scratch)))
        try:
            value = work(local, job)
        except WorkerTerminated:
            raise
        except (Exception, SystemExit) as exc:  # a plugin's sys.exit fails its job only
            return ("failed", *describe_failure(exc))
        outputs = {}
        for path in sorted(p for p in scratch.rglob("*") if p.is_file()):
            rel = path.relative_to(scratch).as_posix()
            data = path.read_bytes()
            if inputs.get(rel) != data:  # new or changed: it goes back
                outputs[rel] = data
        return ("result", value, outputs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Raise ConnectionError when ``HOST:PORT`` or ``ray://HOST:PORT`` takes no TCP
    connection: ``ray.init`` would otherwise retry for minutes (``auto`` is left to Ray)."""
    import socket

    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" or a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(f"nothing answers at {host}:{port} ({exc.strerror or exc})") from None
