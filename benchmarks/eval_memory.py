"""Peak memory of one evaluation as the sample count grows: flat, not proportional to N.

    python benchmarks/eval_memory.py [--sizes 5000 20000 50000] [--metrics fid kid isc prc]

Scores ``N`` generated 3x64x64 images (a fixed random convolutional generator) against a
2,000-image test split with ``genbench.evaluate``, once per ``N`` in a fresh process, and
prints each process's peak resident memory (``ru_maxrss``). The baseline, measured in the
same run, is a process that imports everything (torch-fidelity and scipy included) and
builds the model and data but evaluates nothing; the ``eval`` column is the peak above it.
Beside it: what the samples alone take as float32 (what an evaluation that kept them in
memory would hold) and the generated features (2,048 + 1,008 floats per sample), which
genbench writes to files that FID, KID, IS and precision/recall read a block at a time.

The extractor is a small convolutional network with random weights and Inception's layer
widths (2,048 pooled features, 1,008 logits), registered by this script, so that 50,000
images take a minute on two cores: the benchmark measures what genbench holds, not
Inception's time. Target: flat in N, under 2 GB at 50,000. Measured on 2026-12-08 (2-core
CPU): peaks 1.27, 1.19 and 1.20 GB at 5,000, 20,000 and 50,000 (baseline 0.68 GB); the
peak of one size varies by about 0.1 GB from run to run. Before the features went to files
(2026-12-07): 1.14, 1.43 and 1.69 GB, 12.5 KB more per sample.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from torch import nn

SHAPE = (3, 64, 64)
TEST_ITEMS = 2000
POOL, LOGITS = 2048, 1008


def build():
    """Registries with the benchmark's extractor, the dataset and the model."""
    from genbench import (BenchmarkDataset, DataInfo, FeatureExtractor, GenerativeModel,
                          TensorSplit, hookimpl)
    from genbench.registry.manager import build_registries, create_plugin_manager

    class SmallConvFeatures(FeatureExtractor):
        """Random conv net with Inception's output widths: uint8 3xHxW in, 2048 + 1008 out."""

        def __init__(self, name, features_list, **kwargs):
            super().__init__(name, features_list)
            gen = torch.Generator().manual_seed(0)
            self.body = nn.Sequential(nn.Conv2d(3, 64, 4, 4), nn.ReLU(), nn.Conv2d(64, POOL, 4, 4),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.head = nn.Linear(POOL, LOGITS)
            for p in self.parameters():
                p.data = torch.randn(p.shape, generator=gen) * 0.05

        def forward(self, x):
            pool = self.body(x.float() / 255.0)
            return pool, self.head(pool)

        @staticmethod
        def get_provided_features_list():
            return ("pool", "logits")

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return {"fid": "pool", "kid": "pool", "prc": "pool", "isc": "logits"}[metric]

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return torch.zeros(1, *SHAPE, dtype=torch.uint8)

    class Images(BenchmarkDataset):
        def info(self):
            return DataInfo("bench-images", "image", SHAPE, fingerprint="bench-images-v1")

        def split(self, name):
            gen = torch.Generator().manual_seed({"train": 1, "test": 2}[name])
            return TensorSplit(torch.rand(TEST_ITEMS, *SHAPE, generator=gen))

    class ConvGenerator(GenerativeModel):
        def __init__(self, data_info):
            super().__init__()
            self.net = nn.Sequential(nn.ConvTranspose2d(16, 3, 8, 8), nn.Sigmoid())

        def sample(self, n, generator=None):
            return self.net(self.randn(n, 16, 8, 8, generator=generator))

    class Plugin:
        @hookimpl
        def register_feature_extractors(self, register):
            register("bench-conv", SmallConvFeatures)

    pm = create_plugin_manager(load_entrypoints=False)
    pm.register(Plugin())
    torch.manual_seed(0)  # the same generator in every process, so the values printed agree
    return build_registries(pm), Images(), ConvGenerator(Images().info()).eval()


def child(n: int, metrics: list[str]) -> dict:
    import genbench

    registries, data, model = build()
    # what every evaluation imports, in the baseline too: the peak above it is the data's
    import scipy.linalg  # noqa: F401
    import torch_fidelity  # noqa: F401

    t0 = time.perf_counter()
    values = {}
    if n:
        result = genbench.evaluate(model, data, metrics=metrics, num_samples=n, seed=0,
                                   batch_size=500, feature_extractor="bench-conv",
                                   registries=registries)
        failed = [r.metric + ": " + r.message for r in result.metrics if r.status != "ok"]
        if failed:
            raise SystemExit("; ".join(failed))
        values = result.values
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return {"n": n, "peak": peak, "seconds": time.perf_counter() - t0, "values": values}


def run(n: int, metrics: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(n), "--metrics", *metrics],
                         capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"N={n} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 50000])
    parser.add_argument("--metrics", nargs="+", default=["fid", "kid", "isc", "prc"])
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.child is not None:
        print(json.dumps(child(args.child, args.metrics)))
        return
    gb = 1 << 30
    base = run(0, args.metrics)
    print(f"baseline (imports, data, model, no evaluation): peak {base['peak'] / gb:.2f} GB")
    print(f"{'N':>7} {'peak GB':>8} {'eval GB':>8} {'samples f32 GB':>15} {'features GB':>12} "
          f"{'eval/N vs first':>16} {'seconds':>8}")
    first = None
    for n in args.sizes:
        r = run(n, args.metrics)
        above = r["peak"] - base["peak"]
        samples = n * 3 * 64 * 64 * 4 / gb
        feats = n * (POOL + LOGITS) * 4 / gb
        per_n = above / n
        first = first or per_n
        print(f"{n:>7} {r['peak'] / gb:>8.2f} {above / gb:>8.2f} {samples:>15.2f} {feats:>12.2f} "
              f"{per_n / first:>16.2f} {r['seconds']:>8.1f}")
        print("        " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(r["values"].items())))


if __name__ == "__main__":
    main()
