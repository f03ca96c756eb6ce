"""``genbench eval`` on two folders of PNGs vs torch-fidelity's own ``calculate_metrics``.

    python benchmarks/eval_vs_torch_fidelity.py [--n 2000] [--repeats 3]

Writes two folders of ``--n`` 8x8 gray PNGs into a temporary folder: seven-segment digits
drawn by two differently seeded and differently parametrised generators (the samples are
shifted, thicker and noisier than the reference, so FID is clearly non-zero). Both tools
then score the first folder against the second with the shipped ``digits-cnn`` extractor
(the same weights file, the one genbench resolves; no network): genbench through
``genbench.score_samples(folder, reference=other_folder, ...)`` (the ``sample-set`` dataset
serves the second folder), torch-fidelity through ``calculate_metrics(input1=folder,
input2=other_folder, ...)``, which reads the PNGs itself. The settings are the same on both
sides: FID, KID (100 subsets of 1,000, seed 2020) and IS (10 splits, seed 2020) on every
image, extraction in batches of 256 on the CPU.

Prints both tools' values and their differences, and the median wall time of ``--repeats``
interleaved repeats, after one untimed call of each (imports, and genbench's reference
features cached for the warm runs): genbench cold (a new output folder, an empty feature
cache, the PNGs touched so that no file hash is remembered), genbench warm (a new output
folder, the reference's features cached), torch-fidelity (its own cache off), the ratios
genbench / torch-fidelity (target: cold within 1.1x), and how much of genbench's time the
job itself took (reading, extraction, metrics: ``total_seconds`` of its row). Exits 1 when a
value differs by more than ``--rtol`` (default 1e-6) relative.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch_fidelity
from PIL import Image
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

import genbench
from genbench.api.extractor import torch_fidelity_extractor
from genbench.features.assets import resolve_weights
from genbench.registry.manager import default_registries

EXTRACTOR = "digits-cnn"
BATCH = 256
SEED = 2020
KID_SUBSETS, KID_SUBSET_SIZE, ISC_SPLITS = 100, 1000, 10
METRICS = ("fid", "kid", "isc")
#: (genbench metric, its value key, torch-fidelity's key).
VALUES = (("fid", "fid", "frechet_inception_distance"),
          ("kid", "mean", "kernel_inception_distance_mean"),
          ("kid", "std", "kernel_inception_distance_std"),
          ("isc", "mean", "inception_score_mean"),
          ("isc", "std", "inception_score_std"))

# Seven-segment digits on an 8x8 canvas: segment -> (row slice, column slice).
_SEGMENTS = {"a": (slice(1, 2), slice(2, 6)), "b": (slice(1, 4), slice(5, 6)),
             "c": (slice(4, 7), slice(5, 6)), "d": (slice(6, 7), slice(2, 6)),
             "e": (slice(4, 7), slice(2, 3)), "f": (slice(1, 4), slice(2, 3)),
             "g": (slice(3, 5), slice(2, 6))}
_DIGITS = ("abcdef", "bc", "abdeg", "abcdg", "bcfg", "acdfg", "acdefg", "abc", "abcdefg", "abcdfg")


def digit_images(n: int, seed: int, *, shift: int, thick: float, noise: float) -> np.ndarray:
    """``n`` uint8 8x8 images of random digits: strokes of random brightness, shifted by up
    to ``shift`` pixels, a ``thick`` share of them drawn one pixel wider, gaussian noise of
    standard deviation ``noise`` (in 0..255)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 8, 8), np.float64)
    for i, digit in enumerate(rng.integers(0, 10, n)):
        canvas = np.zeros((8, 8))
        for seg in _DIGITS[digit]:
            rows, cols = _SEGMENTS[seg]
            canvas[rows, cols] = rng.uniform(150, 255)
        if rng.random() < thick:
            canvas = np.maximum(canvas, np.roll(canvas, 1, axis=1))
        dy, dx = rng.integers(-shift, shift + 1, 2)
        out[i] = np.roll(canvas, (dy, dx), axis=(0, 1))
    out += rng.normal(0.0, noise, out.shape)
    return out.clip(0, 255).round().astype(np.uint8)


def write_pngs(images: np.ndarray, folder: Path) -> None:
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:06d}.png")


def genbench_values(samples: Path, reference: Path, out: Path, weights: Path):
    """``({(metric, key): value}, the row's JobRecord, the reference features' cache state)``
    of one ``genbench.score_samples`` call into the new folder ``out``."""
    result = genbench.score_samples(
        samples, reference=reference, metrics=list(METRICS), out=out,
        extractor=EXTRACTOR, feature_weights=str(weights), seed=0, device="cpu",
        eval_batch_size=BATCH, progress=False, echo=lambda s: None)
    if not result.ok:
        failures = result.report.failed or result.report.metric_failures
        raise SystemExit(f"genbench eval failed: {failures}")
    (job,) = result.report.ran
    values = {(m.metric, key): value for m in job.metrics for key, value in m.values.items()}
    (fid,) = [m for m in job.metrics if m.metric == "fid"]
    return values, job, fid.details["reference_cache"]


def fidelity_values(samples: Path, reference: Path, weights: Path) -> dict:
    """torch-fidelity's metrics of the two folders, read and extracted by torch-fidelity."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = torch_fidelity.calculate_metrics(
            input1=str(samples), input2=str(reference), cuda=False, fid=True, kid=True, isc=True,
            feature_extractor=EXTRACTOR, feature_extractor_weights_path=str(weights),
            digit_channels=1, batch_size=BATCH, kid_subsets=KID_SUBSETS,
            kid_subset_size=KID_SUBSET_SIZE, isc_splits=ISC_SPLITS, rng_seed=SEED,
            samples_find_deep=True, cache=False, verbose=False)
    return out


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def touch(folder: Path) -> None:
    """New mtimes: genbench remembers file hashes per path and mtime within a process."""
    for path in folder.iterdir():
        os.utime(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="images per folder (at least 1000, "
                    "KID's subset size)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rtol", type=float, default=1e-6)
    args = ap.parse_args()
    if args.n < KID_SUBSET_SIZE:
        ap.error(f"--n must be at least {KID_SUBSET_SIZE} (KID's subset size), got {args.n}")
    if args.repeats < 1:
        ap.error(f"--repeats must be at least 1, got {args.repeats}")

    cls = default_registries().extractors.get(EXTRACTOR)
    weights, _, _ = resolve_weights(EXTRACTOR, cls)
    if EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor(EXTRACTOR, torch_fidelity_extractor(cls))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        samples, reference = tmp / "samples", tmp / "reference"
        write_pngs(digit_images(args.n, 1, shift=1, thick=0.5, noise=24.0), samples)
        write_pngs(digit_images(args.n, 2, shift=0, thick=0.0, noise=12.0), reference)

        warm_cache = tmp / "cache-warm"
        os.environ["GENBENCH_CACHE"] = str(warm_cache)
        ours, _, _ = genbench_values(samples, reference, tmp / "out-first", weights)
        theirs = fidelity_values(samples, reference, weights)
        runs: dict[str, list] = {"cold": [], "warm": [], "direct": []}
        for r in range(args.repeats):
            touch(samples)
            touch(reference)
            os.environ["GENBENCH_CACHE"] = str(tmp / f"cache-cold-{r}")
            runs["cold"].append(timed(genbench_values, samples, reference, tmp / f"out-cold-{r}",
                                      weights))
            os.environ["GENBENCH_CACHE"] = str(warm_cache)
            runs["warm"].append(timed(genbench_values, samples, reference, tmp / f"out-warm-{r}",
                                      weights))
            runs["direct"].append(timed(fidelity_values, samples, reference, weights))

    print(f"{EXTRACTOR}: {args.n} 8x8 gray PNGs vs {args.n} reference PNGs, batch {BATCH}, "
          f"KID {KID_SUBSETS} subsets of {KID_SUBSET_SIZE}, IS {ISC_SPLITS} splits, CPU, "
          f"torch threads {torch.get_num_threads()}, {os.cpu_count()} cores")
    print(f"{'value':<10} {'genbench':>16} {'torch-fidelity':>16} {'abs diff':>10} "
          f"{'rel diff':>10}")
    worst = 0.0
    for metric, key, theirs_key in VALUES:
        a, b = ours[(metric, key)], float(theirs[theirs_key])
        rel = abs(a - b) / max(abs(b), 1e-300)
        worst = max(worst, rel)
        print(f"{metric + ' ' + key:<10} {a:16.10g} {b:16.10g} {abs(a - b):10.3g} {rel:10.3g}")
    # every timed run must have given the same numbers as the first one
    for name, expected in (("cold", "miss"), ("warm", "hit")):
        for _, (values, _, cache) in runs[name]:
            if values != ours:
                print(f"genbench gave other values in a repeat: {values} vs {ours}",
                      file=sys.stderr)
                worst = math.inf
            if cache != expected:
                raise SystemExit(f"a {name} genbench run found its reference features "
                                 f"{cache!r} in the cache, expected {expected!r}")
    for _, values in runs["direct"]:
        if any(float(values[k]) != float(theirs[k]) for _, _, k in VALUES):
            print(f"torch-fidelity gave other values in a repeat: {values} vs {theirs}",
                  file=sys.stderr)
            worst = math.inf

    med = statistics.median
    direct = [t for t, _ in runs["direct"]]
    print(f"wall time, median of {args.repeats} (min), seconds:")
    for label, name in (("genbench eval, cold", "cold"), ("genbench eval, warm", "warm")):
        times = [t for t, _ in runs[name]]
        job = [j.total_seconds for _, (_, j, _) in runs[name]]
        print(f"  {label:<33} {med(times):7.3f} ({min(times):.3f})   ratio to torch-fidelity "
              f"{med(times) / med(direct):.3f} ({min(times) / min(direct):.3f});   the job "
              f"itself {med(job):.3f}, around it {med([t - j for t, j in zip(times, job)]):.3f}")
        stages = [j.provenance.get("timings", {}) for _, (_, j, _) in runs[name]]
        # the first metric to run extracts the features of both sets
        parts = {"reading the samples": [t.get("sample_seconds", math.nan) for t in stages]}
        for metric in METRICS:
            parts[metric] = [t.get("metrics", {}).get(metric, math.nan) for t in stages]
        print("    in the job: " + ", ".join(f"{k} {med(v):.3f}" for k, v in parts.items()))
    print(f"  {'torch-fidelity calculate_metrics':<33} {med(direct):7.3f} ({min(direct):.3f})")
    print("targets: values equal to 1e-6 relative; genbench cold / torch-fidelity <= 1.1")
    if worst > args.rtol:
        print(f"FAIL: largest relative difference {worst:.3g} > {args.rtol:g}", file=sys.stderr)
        return 1
    print(f"OK: largest relative difference {worst:.3g} <= {args.rtol:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
