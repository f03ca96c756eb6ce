"""Suite wall time by executor: one local worker, two local workers, Ray on two CPUs.

    python benchmarks/executor_scaling.py [--steps 300] [--seeds 0,1] [--cpus 2]

Runs one small suite (digits; ae, vae, conv-ae, aae; FID and reconstruction; two seeds)
three times from scratch, each into a fresh output folder with a fresh feature cache:
``--jobs 1`` (the baseline), ``--jobs 2`` and ``--executor ray`` on a local Ray instance of
``--cpus`` CPUs (one CPU per job). Every job runs on one torch thread in all three, so the
ratios measure how jobs spread over workers, not how threads scale (two threads in one
worker also collapse on a loaded machine, which would flatter the parallel runs). The Ray
instance is started before its run is timed, as a cluster exists before a suite is
submitted to it; its start-up time is printed apart. Prints each run's wall time and its
ratio to ``--jobs 1``, and Ray's ratio to ``--jobs 2`` (target: at most 1.2x). With the
default 300 steps the suite is small enough that starting the workers (each imports torch)
weighs as much as training; ``--steps 2000`` makes it training-bound.
Needs ``pip install "genbench[ray]"``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from genbench.execution.executor_support import available_cores
from genbench.registry.manager import default_registries
from genbench.execution.runner import SuiteRunner
from genbench.plan.spec import SuiteSpec

TARGET = 1.2


def small_suite(steps: int, seeds: list[int], executor: str = "local") -> SuiteSpec:
    return SuiteSpec.from_dict({
        "name": "executor-scaling", "datasets": ["digits"],
        "models": ["ae", "vae", "conv-ae", "aae"], "metrics": ["fid", "recon"],
        "seeds": seeds, "budget": {"steps": steps, "batch_size": 64}, "num_samples": 500,
        "baselines": [], "executor": executor})


def timed_run(spec: SuiteSpec, registries, folder: Path, **kwargs) -> float:
    runner = SuiteRunner(spec, folder / "out", registries, progress=False, echo=lambda s: None,
                         cache_dir=str(folder / "cache"), **kwargs)
    t0 = time.perf_counter()
    report = runner.run()
    wall = time.perf_counter() - t0
    failed = [(r.job_key, r.error) for r in report.ran if r.status != "ok"]
    if failed:
        raise SystemExit(f"jobs failed: {failed}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps per model")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    args = parser.parse_args()
    try:
        import ray
    except ImportError:
        raise SystemExit('this benchmark needs Ray: pip install "genbench[ray]"') from None
    seeds = [int(s) for s in args.seeds.split(",")]
    registries = default_registries()
    walls: dict[str, float] = {}
    for label, kwargs in (("--jobs 1", {"jobs": 1, "threads": 1}),
                          ("--jobs 2", {"jobs": 2, "threads": 1})):
        with tempfile.TemporaryDirectory() as tmp:
            walls[label] = timed_run(small_suite(args.steps, seeds), registries, Path(tmp),
                                     **kwargs)
        print(f"{label:<28} {walls[label]:7.1f} s", flush=True)
    t0 = time.perf_counter()
    # the workers import what this process imports (the benchmark runs from a checkout)
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(
                 p for p in [os.getcwd(), *sys.path] if p)}})
    started = time.perf_counter() - t0
    try:
        label = f"--executor ray ({args.cpus} CPUs)"
        with tempfile.TemporaryDirectory() as tmp:
            walls[label] = timed_run(small_suite(args.steps, seeds, "ray"), registries,
                                     Path(tmp), threads=1)
        print(f"{label:<28} {walls[label]:7.1f} s   (Ray started in {started:.1f} s, "
              "not counted)", flush=True)
    finally:
        ray.shutdown()
    base = walls["--jobs 1"]
    print(f"\nratios to --jobs 1 ({available_cores()} cores available, load average "
          f"{os.getloadavg()[0]:.1f}):")
    for name, wall in walls.items():
        print(f"  {name:<28} {wall / base:5.2f}x")
    ratio = walls[label] / walls["--jobs 2"]
    print(f"Ray at {args.cpus} CPUs vs --jobs 2: {ratio:.2f}x (target <= {TARGET}x: "
          f"{'met' if ratio <= TARGET else 'NOT met'})")


if __name__ == "__main__":
    main()
