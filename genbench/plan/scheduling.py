"""Scheduling: which jobs a run needs, and in which order.

Every training a row needs (its own, and the trainings of the models it is built on,
transitively) is one training job, run before the rows and trainings that need it, unless
its checkpoint is already finished. A row whose evaluation is split into shards
(``eval_shards``) needs one sample job per shard, each after the training. Rows only evaluate: an evaluation that fails, or whose
worker dies, never touches another row. A training that diverged is a result: rows of it
are recorded as diverged and rows built on it fail, without running.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from genbench.plan.jobs import Job, Training


@dataclass
class Blocked:
    """A row that cannot run, and why: its training diverged (``status="diverged"``), or a
    model it is built on did (``status="failed"``)."""

    job: Job
    reason: str
    status: str = "failed"
    diverged_step: int | None = None


@dataclass
class Schedule:
    """What to run, every job after the jobs it needs, and what not to run."""

    jobs: list[Job]
    #: Keys of rows whose evaluation is already stored.
    already_stored: list[str]
    blocked: list[Blocked] = field(default_factory=list)


def schedule(rows: list[Job], *, is_stored: Callable[[str], bool],
             training_status: Callable[[Training], str | None], force: bool = False,
             timed: Callable[[Job], bool] = lambda row: False,
             timing_pending: Callable[[str], object] = lambda fingerprint: None) -> Schedule:
    """Jobs for the ``rows`` not yet stored, and the trainings they need.

    ``is_stored(evaluation_fingerprint)`` says whether a row is finished in the store;
    ``training_status(training)`` gives ``"ok"`` when its checkpoint is finished,
    ``"diverged"`` when it diverged before, else ``None`` (never tried, unfinished or
    failed: it is trained). A finished training whose referenced model must be trained
    again (its checkpoint is gone) is trained again after it. With ``force`` every row runs and every training it needs is trained
    again, once.

    A row with metrics timed alone (``timed(row)``) gets a timing job, and so does a stored
    row whose timing is still to do (``timing_pending(evaluation_fingerprint)`` is truthy:
    an earlier run stopped before it): the timing jobs come last, one after another, each after every
    other job has ended, so that each runs alone.
    """
    todo = [r for r in rows if force or not is_stored(r.evaluation.fingerprint)]
    running = {r.key for r in todo}
    stored = [r.key for r in rows if r.key not in running]
    trainings: dict[str, Job] = {}   # training fingerprint -> its training job
    diverged: dict[str, Training] = {}

    provided: dict[str, tuple[str, ...]] = {}  # each training is looked at once

    def provide(training: Training) -> tuple[str, ...]:
        """Keys of the jobs that must run before ``training``'s model can be loaded: its own
        training job, or none when its checkpoint is finished and its references load."""
        fp = training.fingerprint
        if fp not in provided:
            provided[fp] = _provide(training)
        return provided[fp]

    def _provide(training: Training) -> tuple[str, ...]:
        fp = training.fingerprint
        below = tuple(dict.fromkeys(k for _, ref in training.refs for k in provide(ref)))
        status = None if force else training_status(training)
        if status == "diverged":
            diverged[fp] = training
            return ()
        if status == "ok" and not below:
            return ()
        # Never trained, failed, or built on a model that must be trained again (its
        # checkpoint is gone): then this model is refitted on it too.
        trainings[fp] = Job(training.key, training, None, needs=below,
                            retrain=force or status == "ok")
        return (training.key,)

    ready, blocked, sharded = [], [], []
    for row in todo:
        needs = provide(row.training)
        problem = _diverged_below(row.training, diverged)
        if problem is not None:
            blocked.append(replace(problem, job=row))
            continue
        if row.evaluation.shards > 1:  # the samples drawn by several jobs, merged by the row
            shards = [Job(f"{row.key} [samples {a}..{b - 1}]", row.training, row.evaluation,
                          needs=needs, retrain=force, shard=(a, b))
                      for a, b in row.evaluation.shard_ranges()]
            sharded.extend(shards)
            needs = needs + tuple(j.key for j in shards)
        ready.append(replace(row, needs=needs))
    timing = [Job(f"{row.key} [timing]", row.training, row.evaluation,
                  needs=provide(row.training), timing={})
              for row in [*ready, *(r for r in rows if r.key in stored and timed(r)
                                    and timing_pending(r.evaluation.fingerprint))]
              if timed(row) and _diverged_below(row.training, diverged) is None]
    # Only the trainings that a row which runs needs (a blocked row's are dropped).
    by_key = {j.key: j for j in [*trainings.values(), *sharded]}
    needed, queue = set(), [k for row in [*ready, *timing] for k in row.needs]
    while queue:
        key = queue.pop()
        if key not in needed:
            needed.add(key)
            queue += by_key[key].needs
    jobs = _dependency_order([j for j in trainings.values() if j.key in needed] + sharded + ready)
    for job in timing:  # a chain: each after the one before, the first after every other job
        last = jobs[-1] if jobs else None
        jobs.append(replace(job, after=(last.key,) if last is not None and last.timing is not None
                            else tuple(j.key for j in jobs)))
    return Schedule(jobs, stored, blocked)


def concurrent_widths(jobs: list[Job]) -> dict[str, int]:
    """For each job, how many jobs (itself included) could ever run at the same time as
    it: those that neither need it nor are needed by it (or wait for it, ``after``),
    directly or through others, plus one. A job of width 1 runs alone whatever the timing; every set of jobs running at once
    holds no job whose width is below the set's size."""
    order = _dependency_order(jobs)
    index = {j.key: i for i, j in enumerate(order)}
    below = [0] * len(order)  # bitsets over `order`: what each job needs, transitively
    for i, job in enumerate(order):
        for need in (*job.needs, *job.after):
            if need in index:
                below[i] |= below[index[need]] | (1 << index[need])
    above = [0] * len(order)  # what needs each job, transitively
    for i in range(len(order) - 1, -1, -1):
        for need in (*order[i].needs, *order[i].after):
            if need in index:
                above[index[need]] |= above[i] | (1 << i)
    return {job.key: len(order) - (below[i] | above[i]).bit_count() for i, job in enumerate(order)}


def thread_shares(jobs: list[Job], cores: int, slots: int) -> dict[str, int]:
    """The torch threads of each job when ``slots`` jobs share ``cores`` cores: an equal
    share among the jobs that could run beside it (all cores for a job that runs alone).
    It follows from the plan, never from when jobs finish, so the thread count (which moves
    the last bits of a convolution) is the same on every run of the same plan; and since no
    set of ``k`` jobs running at once holds a job of width below ``k``, their threads never
    add up to more than ``cores``."""
    return {key: max(1, cores // max(1, min(slots, width)))
            for key, width in concurrent_widths(jobs).items()}


def _diverged_below(training: Training, diverged: dict[str, Training]) -> Blocked | None:
    """Why a row of ``training`` cannot run when it, or a model below it, diverged before."""
    if training.fingerprint in diverged:
        return Blocked(None, f"training {training.fingerprint[:8]} of {training.label!r} "
                             "diverged in an earlier run", "diverged")
    for _, ref in training.refs:
        below = _diverged_below(ref, diverged)
        if below is not None:
            return Blocked(None, f"referenced model {ref.label!r} (training {ref.fingerprint[:8]}) "
                                 "diverged in an earlier run; change its configuration or use --force")
    return None


def _dependency_order(jobs: list[Job]) -> list[Job]:
    """``jobs`` with every job after the jobs it needs (stable otherwise)."""
    by_key = {j.key: j for j in jobs}
    done: set[str] = set()
    ordered: list[Job] = []

    def visit(job: Job) -> None:
        if job.key in done:
            return
        done.add(job.key)
        for need in (*job.needs, *job.after):
            if need in by_key:
                visit(by_key[need])
        ordered.append(job)

    for job in jobs:
        visit(job)
    return ordered
