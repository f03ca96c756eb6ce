"""Default-suite wall time: one worker process against the default number of workers.

    python benchmarks/suite_time.py [--seeds 0,1,2] [--steps 600] [--jobs N]

Runs the embedded default suite twice from scratch, each into a fresh output folder with a
fresh feature cache: first with ``--jobs 1`` (the baseline, one worker holding every
core), then at the default (one worker per available core, one thread each; ``--jobs``
overrides it). Prints each run's wall time, their ratio (target: the default at most 0.6x
of ``--jobs 1`` on a 2-core machine, and at most 180 s on 2 CPU cores), where the time went
(training, sampling and metrics summed over the jobs, as each worker measured them) and,
for the default run, the same per model family and per model: what to trim when a new
model pushes the suite past its budget.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from genbench.execution.executor_support import available_cores, default_workers
from genbench.registry.manager import default_registries
from genbench.execution.runner import SuiteRunner
from genbench.plan.spec import SuiteSpec
from genbench.execution.devices import resolve_device


def timed_run(spec: SuiteSpec, registries, jobs: int | None, folder: Path) -> dict[str, float]:
    """Run ``spec`` into ``folder``; the wall time and the per-job time breakdown."""
    runner = SuiteRunner(spec, folder / "out", registries, progress=False, echo=lambda s: None,
                         cache_dir=str(folder / "cache"), jobs=jobs)
    t0 = time.perf_counter()
    report = runner.run()
    wall = time.perf_counter() - t0
    failed = [r.job_key for r in report.ran if r.status != "ok"]
    if failed:
        raise SystemExit(f"jobs failed: {failed}")
    parts = {"wall": wall, "train": 0.0, "sample": 0.0, "metrics": 0.0, "rows": 0.0}
    for record in report.ran:
        timings = record.provenance.get("timings", {})
        if record.provenance.get("train", {}).get("resumed_from", 0) == 0:  # trained here
            parts["train"] += record.train_seconds or 0.0
        parts["sample"] += timings.get("sample_seconds", 0.0)
        parts["metrics"] += sum(timings.get("metrics", {}).values())
        parts["rows"] += record.total_seconds or 0.0
    parts["n"] = len(report.ran)
    families: dict[tuple[str, str], float] = defaultdict(float)  # (family, model) -> seconds
    row_label = {record.run_dir: record.model for record in report.ran}  # training -> its rows
    for t in report.trainings:
        families[(registries.models.get(t.model_name).family,
                  row_label.get(t.run_dir, t.label))] += t.train_seconds or 0.0
    for record in report.ran:
        families[(record.model_family, record.model)] += record.total_seconds or 0.0
    parts["by_model"] = dict(families)
    return parts



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default: the suite's)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the suite's)")
    parser.add_argument("--jobs", type=int, default=None, help="workers of the second run")
    args = parser.parse_args()

    registries = default_registries()
    spec = SuiteSpec.default()
    if args.seeds:
        spec = replace(spec, seeds=tuple(int(s) for s in args.seeds.split(",")))
    if args.steps:
        spec = replace(spec, budget=replace(spec.budget, steps=args.steps, epochs=None),
                       models=tuple(replace(m, budget=None) for m in spec.models))
    device = resolve_device(spec.device)
    default = args.jobs if args.jobs is not None else default_workers(device.type)
    results = {}
    threads = max(1, available_cores() // default)
    for label, jobs in (("--jobs 1", 1), (f"--jobs {default} (default)" if args.jobs is None
                                          else f"--jobs {default}", args.jobs)):
        with tempfile.TemporaryDirectory() as tmp:
            results[label] = timed_run(spec, registries, jobs, Path(tmp))

    base = results["--jobs 1"]["wall"]
    print(f"default suite: {len(spec.seeds)} seed(s), {spec.budget.steps} steps, "
          f"device {device}, {available_cores()} available core(s); --jobs 1 gives its worker "
          f"{available_cores()} thread(s), --jobs {default} gives each worker {threads}")
    print(f"{'run':<22}{'rows':>5}{'wall s':>9}{'ratio':>8}{'train s':>9}{'sample s':>9}"
          f"{'metrics s':>10}{'rows s':>8}")
    for label, r in results.items():
        print(f"{label:<22}{r['n']:>5}{r['wall']:>9.1f}{r['wall'] / base:>7.2f}x"
              f"{r['train']:>9.1f}{r['sample']:>9.1f}{r['metrics']:>10.1f}{r['rows']:>8.1f}")
    print("train: training jobs; sample, metrics: inside the rows; rows: row jobs (loading the "
          "checkpoint, sampling, metrics); seconds summed as each worker measured them. "
          "Target for the default: <= 0.6x of --jobs 1 and <= 180 s wall on 2 CPU cores")
    default_run = results[list(results)[-1]]
    by_model = default_run["by_model"]
    by_family: dict[str, float] = defaultdict(float)
    for (family, _), seconds in by_model.items():
        by_family[family] += seconds
    total = sum(by_model.values()) or 1.0
    print(f"\nwhere the default run's {total:.0f} worker-seconds went (training + rows), by family:")
    for family, seconds in sorted(by_family.items(), key=lambda kv: -kv[1]):
        print(f"  {family:<20}{seconds:>8.1f} s {seconds / total:>6.1%}")
    print("by model:")
    for (family, model), seconds in sorted(by_model.items(), key=lambda kv: -kv[1]):
        print(f"  {model:<28} {family:<14}{seconds:>8.1f} s {seconds / total:>6.1%}")


if __name__ == "__main__":
    main()
