"""Diffusion sampling speed by sampler and step count, from one network.

    python benchmarks/sampler_speed.py [--batch-size 100] [--repeats 3] [--device auto]

Times ``ddpm`` sampling on ``digits`` at each setting of the DDIM table (``ddim`` at 10, 20,
50 and 100 steps, ancestral ``ddpm`` at all 1,000) in one process, interleaved, after one
warm-up batch each, and prints samples/s, the median seconds per batch and the ratio to
DDPM-1000 measured in the same run (target: DDIM-50 at least 18x). Speed does not depend
on what the network learnt, so the network is the untrained default U-Net; the threads
are torch's default unless ``--threads`` is given.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from genbench.registry.manager import default_registries
from genbench.execution.devices import resolve_device

SETTINGS = [("ddpm", 1000), ("ddim", 10), ("ddim", 20), ("ddim", 50), ("ddim", 100)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    regs = default_registries()
    info = regs.datasets.get("digits")().info()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = regs.models.get("ddpm")(info).to(device).eval()

    def once(sampler: str, steps: int) -> float:
        g = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        model.sample(args.batch_size, g, sampler=regs.samplers.get(sampler), steps=steps)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    for sampler, steps in SETTINGS:
        once(sampler, steps)  # warm-up
    times: dict[tuple[str, int], list[float]] = {s: [] for s in SETTINGS}
    for _ in range(args.repeats):  # interleaved, so that a load change hits every setting
        for setting in SETTINGS:
            times[setting].append(once(*setting))

    base = statistics.median(times[SETTINGS[0]])
    print(f"device {device}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"median of {args.repeats}")
    print(f"{'setting':<12} {'s/batch':>9} {'samples/s':>10} {'vs ddpm-1000':>13}")
    for sampler, steps in SETTINGS:
        median = statistics.median(times[(sampler, steps)])
        print(f"{sampler}-{steps:<7} {median:9.3f} {args.batch_size / median:10.1f} "
              f"{base / median:12.1f}x")


if __name__ == "__main__":
    main()
