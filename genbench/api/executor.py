"""The executor contract: where jobs run. The runner (the driver) plans, submits and
stores; an executor only runs ``work(state, job)`` somewhere and hands back what came out.

An executor is a subclass of :class:`Executor` registered by name through the
``register_executors`` hook (the built-ins: ``local`` worker processes and ``ray`` tasks). A
spec picks one with ``executor = "NAME"`` and passes it ``[executor_options]``, which
:meth:`Executor.make_options` validates against the class's declared :attr:`Executor.Options`
before anything trains. The protocol is deliberately small:

* ``start(setup, context)`` once: every worker calls ``state = setup(context, worker_index)``
  before its first job (threads, device, caches live in that state);
* ``submit(key, work, job)`` whenever fewer than :attr:`Executor.slots` jobs are running;
* ``wait()`` blocks until at least one submitted job has ended and returns a
  :class:`Completion` for each ended job: its result, or why it produced none (the work
  raised, or the worker process died);
* ``close(cancel=False)`` at the end, or on Ctrl-C with ``cancel=True`` (running jobs are
  stopped; nothing is waited for).

Everything passed to a worker (``setup``, ``context``, ``work``, ``job``) and everything it
returns must pickle: module-level functions and plain dataclasses.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib.util
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

from genbench.api.errors import ConfigError, MissingDependencyError
from genbench.api.parameters import check_options


@dataclass
class Completion:
    """One ended job: ``result`` when the work returned, else ``failure`` says why not."""

    key: str
    result: Any = None
    #: ``None`` on success; otherwise a one-line reason ("worker process died: killed by
    #: signal SIGKILL", "RuntimeError: ...").
    failure: str | None = None
    #: The traceback of a work function that raised, when there is one.
    traceback: str | None = None
    #: Why earlier attempts of this job ended without a result (their workers died), when
    #: the executor ran it again.
    retried: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExecutorRequest:
    """What the runner knows when it builds an executor for a run."""

    #: The run's device type ("cpu", "cuda", "mps").
    device_type: str
    #: Jobs to run now (an executor need not keep more workers than that).
    n_jobs: int
    #: ``--jobs`` and ``--threads`` (``None``: the executor's default).
    jobs: int | None = None
    threads: int | None = None
    #: The executor's options, validated (an instance of its ``Options`` class).
    options: Any = None
    #: The output folder (absolute), for executors whose workers write elsewhere.
    out_dir: str = ""
    #: Processes each training job runs (``train.nproc``), so the default number of
    #: workers leaves them their cores or GPUs.
    nproc: int = 1
    #: Seconds a job may run before it is ended and recorded as failed (``job_timeout``;
    #: ``None``: no limit). Executors that can end a job declare :attr:`Executor.job_timeouts`.
    job_timeout: float | None = None


@dataclass(frozen=True)
class NoOptions:
    """The options of an executor that takes none."""


class Executor(abc.ABC):
    """Runs jobs; see the module docstring for the protocol.

    A registered executor class declares, besides the four methods: a one-line
    ``description``; ``Options``, a dataclass whose fields are its accepted
    ``[executor_options]``, declared like hyper-parameters (``num_cpus: Annotated[float,
    Ge(0)] | None = None``, checked by :meth:`make_options`), and whose ``__post_init__``
    rejects what a declaration cannot say with a :class:`~genbench.api.errors.ConfigError`; the importable modules it ``requires`` and
    the command that ``install``\\ s them (checked before anything trains); and
    :meth:`from_request`, which builds it for a run.
    """

    #: How many jobs may run at once.
    slots: int = 1
    #: What ``genbench`` says of it, in one line.
    description: ClassVar[str] = ""
    #: The accepted ``[executor_options]`` (see the class docstring).
    Options: ClassVar[type] = NoOptions
    #: Modules it imports when built, and the command that installs them.
    requires: ClassVar[tuple[str, ...]] = ()
    install: ClassVar[str] = ""
    #: True when jobs run in the driver's own process, so they may share what the driver
    #: has built (its datasets) instead of building it again.
    in_process: ClassVar[bool] = False
    #: True when it ends a job that runs longer than :attr:`ExecutorRequest.job_timeout`
    #: (its completion a failure naming the job and the timeout); otherwise the runner warns
    #: that the timeout does not apply.
    job_timeouts: ClassVar[bool] = False
    #: The CPU cores its workers share on this machine, when it decides their threads per
    #: job: the runner then gives each job a share by the plan (all of them to a job that
    #: runs alone) and the worker runs it with that many torch threads. ``None``: every
    #: worker keeps the threads it was started with.
    cores: int | None = None

    @classmethod
    def from_request(cls, request: ExecutorRequest) -> "Executor":
        """The executor for a run (override to size it or to take its options)."""
        return cls()

    @classmethod
    def make_options(cls, name: str, options: Mapping[str, Any] | None) -> Any:
        """``options`` as an instance of :attr:`Options`; :class:`ConfigError` names an
        unknown key (and ``Options`` a bad value) of executor ``name``."""
        options = dict(options or {})
        valid = [f.name for f in dataclasses.fields(cls.Options)]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ConfigError(f"executor {name!r}: unknown option(s) {', '.join(unknown)}; "
                              f"valid options: {', '.join(valid) or '(none)'}")
        return cls.Options(**check_options(cls.Options, options, f"executor {name!r}"))

    @classmethod
    def check_installed(cls, name: str) -> None:
        """Raise :class:`MissingDependencyError` saying how to install what is missing."""
        missing = [m for m in cls.requires if importlib.util.find_spec(m) is None]
        if missing:
            raise MissingDependencyError(
                f"executor {name!r} needs {', '.join(missing)}, which is not installed; "
                f"install it with: {cls.install or 'pip install ' + ' '.join(missing)}")

    @abc.abstractmethod
    def start(self, setup: Callable[[Any, int], Any], context: Any) -> None:
        """Prepare the workers; each calls ``setup(context, worker_index)`` once."""

    @abc.abstractmethod
    def submit(self, key: str, work: Callable[[Any, Any], Any], job: Any) -> None:
        """Start ``work(state, job)`` (the caller keeps at most :attr:`slots` running)."""

    @abc.abstractmethod
    def wait(self) -> list[Completion]:
        """Block until at least one submitted job has ended; return every ended job."""

    @abc.abstractmethod
    def close(self, cancel: bool = False) -> None:
        """Release the workers; ``cancel=True`` stops running jobs instead of waiting."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(cancel=exc_type is not None)


def incomplete(cls: type[Executor]) -> str | None:
    """Why the :class:`Executor` subclass ``cls`` cannot be registered (methods of the
    protocol left abstract, ``Options`` not a dataclass), else ``None``."""
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        return f"it does not define {', '.join(missing)}"
    if not (isinstance(cls.Options, type) and dataclasses.is_dataclass(cls.Options)):
        return f"its Options ({cls.Options!r}) is not a dataclass"
    return None
