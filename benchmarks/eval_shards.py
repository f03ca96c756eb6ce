"""One evaluation drawn by two sample jobs against one: the same numbers, less wall time.

    python benchmarks/eval_shards.py [--samples 4000] [--steps 300] [--jobs 2]

Trains one ``ddpm`` on ring8 (``--steps``, not timed), then evaluates it twice from that
checkpoint, each time into a copy of the trained output folder, with ``--jobs`` local
workers of one torch thread each: with ``eval_shards = 1`` (the baseline: one job draws all
``--samples`` samples with the 1,000-step ancestral sampler, so one worker runs and the
other waits) and with ``eval_shards = 2`` (two sample jobs draw half each, the row merges
them). Prints both wall times, their ratio (target: below 1, about 0.55 on two idle cores),
and every metric value of both rows with the largest relative difference (target: 0, per-
sample noise makes the samples identical; the features of the shards are concatenated).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from genbench.execution.runner import SuiteRunner
from genbench.plan.spec import SuiteSpec
from genbench.registry.manager import default_registries


def spec(samples: int, steps: int, shards: int, metrics=("fid", "prdc", "modes")) -> SuiteSpec:
    return SuiteSpec.from_dict({
        "name": "eval-shards", "datasets": ["ring8"], "models": ["ddpm"],
        "metrics": list(metrics), "seeds": [0], "num_samples": samples,
        "budget": {"steps": steps, "batch_size": 128}, "baselines": [], "eval_shards": shards})


def run(s: SuiteSpec, out: Path, cache: Path, jobs: int):
    runner = SuiteRunner(s, out, default_registries(), progress=False, echo=lambda m: None,
                         cache_dir=str(cache), jobs=jobs, threads=1)
    t0 = time.perf_counter()
    report = runner.run()
    wall = time.perf_counter() - t0
    failed = [(r.job_key, r.error) for r in report.ran if r.status != "ok"]
    if failed:
        raise SystemExit(f"jobs failed: {failed}")
    return wall, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # train only: a suite without metrics still trains its model
        run(spec(2, args.steps, 1, metrics=()), tmp / "trained", tmp / "cache", 1)
        walls, values = {}, {}
        for shards in (1, 2):
            out = tmp / f"shards{shards}"
            shutil.copytree(tmp / "trained", out)
            wall, report = run(spec(args.samples, args.steps, shards), out, tmp / "cache", args.jobs)
            (row,) = report.ran
            walls[shards] = wall
            values[shards] = {f"{m.metric}.{k}": v for m in row.metrics for k, v in m.values.items()}
            print(f"eval_shards = {shards}: {wall:7.1f} s", flush=True)
    ratio = walls[2] / walls[1]
    print(f"ratio 2 shards / 1: {ratio:.2f} (target below 1)")
    worst = 0.0
    for key in sorted(values[1]):
        a, b = values[1][key], values[2].get(key)
        diff = abs(a - b) / max(abs(a), 1e-12) if b is not None else float("inf")
        worst = max(worst, diff)
        print(f"  {key:<24} {a:>14.6g} {b:>14.6g}  rel. diff {diff:.1e}")
    print(f"largest relative difference: {worst:.1e} (target 0)")


if __name__ == "__main__":
    main()
