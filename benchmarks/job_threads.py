"""Threads per job: the plan's rule (a lone job gets every core) against hand-given counts.

    python benchmarks/job_threads.py [--cases conv,mlp,busy,suite]

Each case runs a small suite from scratch into a fresh folder (fresh feature cache) with
``--jobs`` at its default, once with the default threads (the plan's rule:
:func:`genbench.plan.scheduling.thread_shares`) and once per hand-given ``--threads``:

* ``conv``: ``ddpm`` on digits (the U-Net), 100 training steps, 200 samples at 250 DDIM
  steps: one training and one row, each alone. Target: the default within 1.15x of the
  best hand-given count.
* ``mlp``: the MLP ``ddpm`` on ring8, 50 training steps, 2,500 samples at 1,000 DDPM
  steps. Target: the default not slower than ``--threads 1`` (what a lone job ran with
  before the rule: ``cores // --jobs``).
* ``busy``: ``conv`` while a busy loop holds one core. Target: the default within 1.3x of
  the best hand-given count.
* ``suite``: the embedded default suite (leaderboards/default/suite.toml), default against
  ``--threads cores // jobs`` (the rule before: every job that share, whether it ran alone
  or not).

Each case first runs once untimed (file caches, lazy imports, extractor weights), then
once per thread setting. Prints each run's wall time and the ratio to the best (or to the
before-rule run).
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

from genbench.execution.executor_support import available_cores, default_workers
from genbench.execution.runner import SuiteRunner
from genbench.plan.spec import SuiteSpec
from genbench.registry.manager import default_registries

ROOT = Path(__file__).resolve().parent.parent

CONV = {"name": "conv", "datasets": ["digits"], "seeds": [0], "num_samples": 200,
        "baselines": [], "metrics": ["fid"], "eval_batch_size": 200,
        "budget": {"steps": 100, "batch_size": 64},
        "models": [{"name": "ddpm", "sampling": [{"sampler": "ddim", "steps": 250}]}]}
MLP = {"name": "mlp", "datasets": ["ring8"], "seeds": [0], "num_samples": 2500,
       "baselines": [], "metrics": ["fid"], "budget": {"steps": 50, "batch_size": 128},
       "models": [{"name": "ddpm", "sampling": [{"sampler": "ddpm", "steps": 1000}]}]}


def timed(spec: SuiteSpec, registries, threads: int | None, folder: Path) -> float:
    runner = SuiteRunner(spec, folder / "out", registries, progress=False, echo=lambda s: None,
                         cache_dir=str(folder / "cache"), threads=threads)
    t0 = time.perf_counter()
    report = runner.run()
    wall = time.perf_counter() - t0
    failed = [r.job_key for r in report.ran if r.status != "ok"]
    if failed:
        raise SystemExit(f"jobs failed: {failed}")
    return wall


def _spin() -> None:
    while True:
        pass


def compare(name: str, spec: SuiteSpec, registries, counts: list[int | None],
            target: str) -> dict[str | int, float]:
    walls: dict[str | int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:  # untimed: file caches, lazy imports, weights
        timed(spec, registries, counts[-1], Path(tmp))
    for threads in counts:
        with tempfile.TemporaryDirectory() as tmp:
            walls[threads or "default"] = timed(spec, registries, threads, Path(tmp))
        print(f"  {name}: threads {threads or 'default':>7}: {walls[threads or 'default']:7.1f} s",
              flush=True)
    best = min(v for k, v in walls.items() if k != "default")
    print(f"  {name}: default / best hand-given = {walls['default'] / best:.2f}x ({target})")
    return walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="conv,mlp,busy,suite")
    cases = parser.parse_args().cases.split(",")
    registries = default_registries()
    cores = available_cores()
    hand = sorted({1, max(1, cores // 2), cores})
    print(f"{cores} cores, {default_workers('cpu')} workers by default")
    if "conv" in cases:
        compare("conv", SuiteSpec.from_dict(CONV), registries, [None, *hand], "target <= 1.15x")
    if "mlp" in cases:
        walls = compare("mlp", SuiteSpec.from_dict(MLP), registries, [None, *hand],
                        "informative")
        print(f"  mlp: default / --threads 1 (before the rule) = "
              f"{walls['default'] / walls[1]:.2f}x (target <= 1.0x)")
    if "busy" in cases:
        spinner = multiprocessing.get_context("spawn").Process(target=_spin, daemon=True)
        spinner.start()
        try:
            compare("busy", SuiteSpec.from_dict(CONV), registries, [None, *hand],
                    "target <= 1.3x")
        finally:
            spinner.terminate()
            spinner.join()
    if "suite" in cases:
        spec = SuiteSpec.from_toml(ROOT / "leaderboards" / "default" / "suite.toml")
        before = max(1, cores // default_workers("cpu"))
        walls = {}
        for threads in (None, before):
            with tempfile.TemporaryDirectory() as tmp:
                walls[threads] = timed(spec, registries, threads, Path(tmp))
            print(f"  suite: threads {threads or 'default':>7}: {walls[threads]:7.1f} s", flush=True)
        print(f"  suite: default / before the rule (--threads {before}) = "
              f"{walls[None] / walls[before]:.2f}x")


if __name__ == "__main__":
    main()
