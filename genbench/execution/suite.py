"""A suite from its spec to published leaderboards: the library call under ``genbench run``.

:func:`run_and_publish` (``genbench.run(spec, out=...)``) plans, trains, evaluates and stores
through :class:`~genbench.execution.runner.SuiteRunner`, then, under the output folder's lock,
publishes the suite's boards (:func:`genbench.results.publish.publish`) and returns them.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from genbench.api.errors import ConfigError
from genbench.api.paths import DEFAULT_OUT
from genbench.plan.spec import SuiteSpec
from genbench.results.boards import Leaderboard
from genbench.results.publish import Publication, check_outputs, publish
from genbench.execution.runner import SuiteReport, SuiteRunner


@dataclass
class RunResult:
    """What :func:`run_and_publish` did: the boards it published, the run's report, and the
    files written."""

    #: ``{(suite, dataset): Leaderboard}`` of the suite, every stored row of it.
    boards: dict[tuple[str, str], Leaderboard]
    #: Jobs run, already stored, skipped; failures (:class:`~genbench.execution.runner.SuiteReport`).
    report: SuiteReport
    #: The suite as it ran (narrowed and overridden by the call's arguments).
    spec: SuiteSpec
    #: The files written into ``<out>/leaderboards``.
    files: list[Path] = field(default_factory=list)
    #: The files of each format asked for in ``outputs``, by name.
    outputs: dict[str, list[Path]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every job and every metric succeeded (a diverged model is a result, not a failure)."""
        return not self.report.failed and not self.report.metric_failures


def metric_descriptions(registries) -> dict[str, str]:
    """Each registered metric's description, by name (the boards' column tooltips)."""
    return {name: getattr(registries.metrics.get(name), "description", "") or ""
            for name in registries.metrics.names()}


def load_spec(spec: SuiteSpec | Mapping[str, Any] | str | Path | None) -> SuiteSpec:
    """``spec`` as a :class:`SuiteSpec`: a TOML file's path, a mapping, a spec, or ``None``
    for the embedded default suite."""
    if spec is None:
        return SuiteSpec.default()
    if isinstance(spec, SuiteSpec):
        return spec
    if isinstance(spec, Mapping):
        return SuiteSpec.from_dict(dict(spec))
    if isinstance(spec, (str, Path)):
        return SuiteSpec.from_toml(spec)
    raise ConfigError(f"spec must be a TOML file's path, a mapping or a SuiteSpec, got "
                      f"{type(spec).__name__}")


def _takes_address(executor_cls: type) -> bool:
    """Whether the executor's ``Options`` declare an ``address`` (what ``--address`` sets)."""
    return any(f.name == "address" for f in dataclasses.fields(executor_cls.Options))


def publish_run(runner: SuiteRunner, report: SuiteReport, *,
                outputs: Mapping[str, str | Path] | None = None) -> Publication:
    """Publish ``runner``'s suite after ``report``: every stored row of the suite (and the
    run's own rows, which another suite may have stored first) into
    ``<out>/leaderboards``, and each format of ``outputs`` into its folder."""
    return publish(runner.store, runner.out_dir / "leaderboards", runner.registries.formats,
                   registries=runner.registries, suite=runner.spec.name, include=report.fingerprints,
                   primary=runner.spec.primary_metric,
                   descriptions=metric_descriptions(runner.registries), outputs=outputs)


def run_and_publish(spec: SuiteSpec | Mapping[str, Any] | str | Path | None = None, *,
                    out: str | Path = DEFAULT_OUT, models: Iterable[str] | None = None,
                    datasets: Iterable[str] | None = None, metrics: Iterable[str] | None = None,
                    seeds: Iterable[int] | None = None, device: str | None = None,
                    data_root: str | None = None, download: bool | None = None,
                    extractor: str | None = None, feature_weights: str | None = None,
                    force: bool = False, jobs: int | None = None, threads: int | None = None,
                    executor: str | None = None, address: str | None = None,
                    nproc: int | None = None, job_timeout: float | None = None,
                    outputs: Mapping[str, str | Path] | None = None,
                    wait: bool = True, progress: bool | None = None,
                    echo: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
                    registries=None) -> RunResult:
    """Run the suite ``spec`` into ``out`` and publish its leaderboards; returns them.

    ``spec``: a TOML file's path, a mapping as the TOML reads, a :class:`SuiteSpec`, or
    ``None`` for the embedded default suite. ``models``, ``datasets``, ``metrics``, ``seeds``
    narrow it (a registered name not in the spec runs with its defaults); ``device``,
    ``data_root``, ``download``, ``extractor``, ``feature_weights``, ``executor``
    (``address``: its Ray cluster), ``nproc`` and ``job_timeout`` override the spec's. ``jobs``, ``threads``,
    ``force``, ``wait`` and ``progress`` are :class:`~genbench.execution.runner.SuiteRunner`'s.
    ``outputs`` maps the formats to write beside the published ones to their folders
    (``{"tensorboard": "tb"}``); they are checked before anything trains. ``echo`` receives
    each progress line. ``registries``: default, every installed plugin's.

    Finished jobs are not run again, so a call after an interruption resumes. A failed job
    or metric is recorded, not raised: see :attr:`RunResult.ok`.
    """
    if registries is None:
        from genbench.registry.manager import default_registries

        registries = default_registries()
    outputs = dict(outputs or {})
    check_outputs(registries.formats, outputs)  # before any training, not after all of them
    suite = load_spec(spec)
    # Another executor than the spec's starts from no options: the spec's are not its own.
    base_options = suite.executor_options if executor in (None, suite.executor) else {}
    chosen = executor or suite.executor
    if address is not None and not _takes_address(registries.executors.get(chosen)):
        takers = [e.name for e in registries.executors if _takes_address(e.obj)]
        raise ConfigError(f"--address names a cluster, but this run's executor {chosen!r} "
                          f"takes no address option; add "
                          f"{' or '.join(f'--executor {n}' for n in takers) or 'an executor that does'}")
    suite = suite.select(
        registries, models=_listed(models), datasets=_listed(datasets),
        metrics=_listed(metrics), seeds=_listed(seeds), device=device,
        feature_extractor=extractor, feature_weights=feature_weights, download=download,
        data_root=data_root, executor=executor, nproc=nproc, job_timeout=job_timeout,
        executor_options=base_options if address is None else {**base_options, "address": address})
    runner = SuiteRunner(suite, out, registries, force=force, jobs=jobs, threads=threads,
                         progress=progress, wait=wait, echo=echo)
    report = runner.run(publish=functools.partial(publish_run, runner, outputs=outputs))
    published: Publication = report.published
    return RunResult(published.boards, report, suite, published.files, published.outputs)


def _listed(values: Iterable[Any] | None) -> list[Any] | None:
    if isinstance(values, str):  # one name
        return [values]
    return None if values is None else list(values) or None
