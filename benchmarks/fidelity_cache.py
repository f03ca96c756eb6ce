"""Reference cache speed-up and genbench's overhead over torch-fidelity, offline.

    python benchmarks/fidelity_cache.py [--repeats 5] [--samples 1000]

On ``digits`` with ``digits-cnn`` (shipped weights, no network), samples from ``train-data``:

1. first evaluation (FID, IS, KID, PRC; empty cache) vs a second one in a new job against the
   cached reference features (``ctx.features().test()``): times and ratio, for the whole
   evaluation and for the reference stage;
2. genbench's uncached evaluation vs ``torch_fidelity.calculate_metrics`` called directly on
   the same uint8 images with the same extractor and settings (target: within 1.05x).

Timings: median and minimum over ``--repeats`` interleaved runs on one CPU thread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402
import torch_fidelity  # noqa: E402
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY  # noqa: E402

from genbench import Budget, EvalContext  # noqa: E402
from genbench.api.extractor import torch_fidelity_extractor  # noqa: E402
from genbench.features.job_features import to_uint8_images  # noqa: E402
from genbench.registry.manager import build_registries, create_plugin_manager  # noqa: E402
from genbench.execution.training import train  # noqa: E402

METRICS = ("fid", "isc", "kid", "prc")


class _Images(torch.utils.data.Dataset):
    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--samples", type=int, default=1000)
    args = ap.parse_args()
    torch.set_num_threads(1)

    regs = build_registries(create_plugin_manager(load_entrypoints=False))
    data = regs.datasets.get("digits")()
    info, test = data.info(), data.tensors("test")
    model = regs.models.get("train-data")(info)
    train(model, data.split("train"), Budget(steps=1), device="cpu", progress=False)

    def new_ctx(cache_dir: Path) -> EvalContext:
        ctx = EvalContext(model=model, model_name="train-data", data_info=info,
                          train=data.tensors("train"), test=test, device=torch.device("cpu"),
                          seed=0, num_samples=args.samples, cache_dir=cache_dir, registries=regs)
        ctx.samples  # generated outside the timings: both sides start from the same images
        return ctx

    def genbench_eval(ctx: EvalContext) -> tuple[float, float, dict]:
        t0 = time.perf_counter()
        ctx.features().test(10000)
        t_ref = time.perf_counter() - t0
        values = {m: regs.metrics.get(m)().compute(ctx) for m in METRICS}
        return time.perf_counter() - t0, t_ref, values

    ext_cls = regs.extractors.get("digits-cnn")
    if "digits-cnn" not in FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor("digits-cnn", torch_fidelity_extractor(ext_cls))
    with tempfile.TemporaryDirectory() as tmp:  # removed afterwards, unlike mkdtemp's
        samples_u8 = to_uint8_images(new_ctx(Path(tmp)).samples)
    ref_u8 = to_uint8_images(test[0])
    n_ref = len(ref_u8)

    def direct_eval() -> tuple[float, dict]:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = torch_fidelity.calculate_metrics(
                input1=_Images(samples_u8), input2=_Images(ref_u8), cuda=False,
                fid=True, isc=True, kid=True, prc=True, feature_extractor="digits-cnn",
                feature_extractor_weights_path=str(ext_cls.default_weights_path()), digit_channels=1,
                batch_size=256, kid_subset_size=min(1000, args.samples, n_ref), save_cpu_ram=True,
                cache=False, verbose=False)
        return time.perf_counter() - t0, out

    firsts, seconds, ref_firsts, ref_seconds, directs = [], [], [], [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            t1, r1, v1 = genbench_eval(new_ctx(Path(tmp)))
            t2, r2, v2 = genbench_eval(new_ctx(Path(tmp)))
            assert v1["fid"].details["reference_cache"] == "miss"
            assert v2["fid"].details["reference_cache"] == "hit"
        td, direct = direct_eval()
        firsts.append(t1); seconds.append(t2); ref_firsts.append(r1); ref_seconds.append(r2)
        directs.append(td)

    med = statistics.median
    fid_ours, fid_direct = v1["fid"].values["fid"], direct["frechet_inception_distance"]
    print(f"digits-cnn on digits: {args.samples} generated vs {n_ref} reference, "
          f"{args.repeats} interleaved repeats, 1 CPU thread; median (min) in ms")

    def row(label: str, a: list[float], b: list[float], names: tuple[str, str]) -> None:
        print(f"{label:<34} {names[0]} {med(a) * 1e3:7.1f} ({min(a) * 1e3:6.1f}), "
              f"{names[1]} {med(b) * 1e3:7.1f} ({min(b) * 1e3:6.1f}): "
              f"ratio {med(a) / med(b):.3f} ({min(a) / min(b):.3f})")

    row("evaluation, fid+isc+kid+prc:", firsts, seconds, ("first", "cached"))
    row("reference stage:", ref_firsts, ref_seconds, ("first", "cached"))
    row("genbench uncached vs direct call:", firsts, directs, ("genbench", "torch-fidelity"))
    print("target: genbench / torch-fidelity <= 1.05")
    print(f"same numbers: FID {fid_ours:.6f} (genbench) vs {fid_direct:.6f} (torch-fidelity)")

if __name__ == "__main__":
    main()
