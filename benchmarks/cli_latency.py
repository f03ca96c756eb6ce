"""Start-up wall time of the quick commands, each a fresh process, against the interpreter's.

    python benchmarks/cli_latency.py [--repeats N]

* ``genbench --help``: target under 1 s (imports neither torch nor any plugin module);
* ``genbench list models`` / ``list datasets`` / ``list metrics`` / ``list extractors`` /
  ``show dataset digits`` / ``show extractor inception-v3-compat``: target under 3 s (torch,
  which every plugin class subclasses, and the plugin modules of that kind only: no
  torch-fidelity, torchvision, scikit-learn, scipy, pandas or matplotlib).

Each command runs ``--repeats`` times (default 5) after one untimed warm-up run (the file
cache); the median wall time is shown with its ratio to the baseline, ``python -c pass``
measured in the same run, and ``import torch`` alone for scale, then the median CPU time
(user + system) of the process. Output goes to /dev/null. The exit status is 1 when a
target is missed. On a busy machine (other processes on the cores) every wall time, the
baseline's too, grows while the CPU times barely do: compare the ratios and CPU times.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

#: (label, argv, target in seconds or None for a reference line)
COMMANDS: tuple[tuple[str, list[str], float | None], ...] = (
    ("python -c pass", [sys.executable, "-c", "pass"], None),
    ("python -c 'import torch'", [sys.executable, "-c", "import torch"], None),
    ("genbench --help", [sys.executable, "-m", "genbench", "--help"], 1.0),
    ("genbench list models", [sys.executable, "-m", "genbench", "list", "models"], 3.0),
    ("genbench list datasets", [sys.executable, "-m", "genbench", "list", "datasets"], 3.0),
    ("genbench list metrics", [sys.executable, "-m", "genbench", "list", "metrics"], 3.0),
    ("genbench show dataset digits",
     [sys.executable, "-m", "genbench", "show", "dataset", "digits"], 3.0),
    # The extractor classes subclass genbench's own base: listing and describing them never
    # imports torch-fidelity (torchvision, torch's compiler stack).
    ("genbench list extractors", [sys.executable, "-m", "genbench", "list", "extractors"], 3.0),
    ("genbench show extractor inception-v3-compat",
     [sys.executable, "-m", "genbench", "show", "extractor", "inception-v3-compat"], 3.0),
)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str]) -> tuple[float, float]:
    """``(wall, cpu)`` seconds of one run of ``argv`` (output discarded); it must succeed."""
    cpu0, t0 = _children_cpu(), time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0, _children_cpu() - cpu0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    medians = {}
    for label, argv, _ in COMMANDS:
        timed(argv)  # warm-up: the file cache, .pyc files
        runs = [timed(argv) for _ in range(args.repeats)]
        medians[label] = tuple(statistics.median(r[i] for r in runs) for i in (0, 1))
    base = medians[COMMANDS[0][0]][0]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"median of {args.repeats} fresh processes each; {os.cpu_count()} cores, "
          f"load average {load:.1f} at the end")
    print(f"{'command':<30} {'wall s':>7} {'x baseline':>11} {'target s':>9} {'result':>7} "
          f"{'cpu s':>6}")
    missed = 0
    for label, _, target in COMMANDS:
        seconds, cpu = medians[label]
        verdict = "-" if target is None else ("pass" if seconds < target else "FAIL")
        missed += verdict == "FAIL"
        shown_target = "-" if target is None else f"{target:.1f}"
        print(f"{label:<30} {seconds:>7.2f} {seconds / base:>11.1f} {shown_target:>9} "
              f"{verdict:>7} {cpu:>6.2f}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
