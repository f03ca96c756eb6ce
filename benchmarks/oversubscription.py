"""One job beside a busy process: does genbench's default leave the CPU oversubscribed?

    python benchmarks/oversubscription.py [--model conv-vae] [--steps 600] [--repeats 3]

Runs one job (``--model`` on digits, one seed, recon metric) with ``genbench run`` at its
default settings, first on a quiet machine and then beside one busy-looping process, and
prints the median wall time of each and their ratio (target: at most 1.3x). For contrast it
does the same with every core given to the job's one worker (``--threads`` = all cores),
which is what torch does on its own: its threads then wait for the core the busy loop holds.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time

from genbench.execution.executor_support import available_cores


def busy_loop() -> None:
    while True:
        pass


def one_job(model: str, steps: int, extra: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        spec = os.path.join(tmp, "s.toml")
        with open(spec, "w") as f:
            f.write(f'name = "bench"\ndatasets = ["digits"]\nmodels = ["{model}"]\n'
                    f'metrics = ["recon"]\nseeds = [0]\nbaselines = []\nnum_samples = 100\n'
                    f"[budget]\nsteps = {steps}\n")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "genbench", "run", spec, "--out", tmp, "-q", *extra],
                       check=True, capture_output=True, env={**os.environ, "GENBENCH_CACHE": tmp})
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="conv-vae")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cores = available_cores()
    settings = {"default": [], f"--threads {cores}": ["--jobs", "1", "--threads", str(cores)]}
    print(f"{args.model} on digits, {args.steps} steps, {cores} core(s), median of {args.repeats}")
    print(f"{'settings':<16}{'quiet s':>9}{'busy s':>9}{'ratio':>8}")
    for name, extra in settings.items():
        quiet = statistics.median(one_job(args.model, args.steps, extra) for _ in range(args.repeats))
        hog = multiprocessing.Process(target=busy_loop, daemon=True)
        hog.start()
        try:
            busy = statistics.median(one_job(args.model, args.steps, extra) for _ in range(args.repeats))
        finally:
            hog.terminate()
            hog.join()
        target = "   (target <= 1.30x)" if name == "default" else ""
        print(f"{name:<16}{quiet:>9.1f}{busy:>9.1f}{busy / quiet:>7.2f}x{target}")


if __name__ == "__main__":
    main()
