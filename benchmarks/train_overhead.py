"""Training-engine overhead: the same VAE, the same steps, through genbench and a bare loop.

    python benchmarks/train_overhead.py [--steps 600] [--repeats 5] [--device auto]

Both loops draw shuffled batches from the same in-memory tensor and call the same
``train_step``; the engine adds seeding, the NaN guard, loss bookkeeping, the progress bar
(off when not on a terminal) and a final checkpoint. Prints the median time of each and
their ratio (target: engine within 1.10x of the bare loop).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from genbench import Budget
from genbench.registry.manager import default_registries
from genbench.execution.devices import resolve_device
from genbench.execution.training import Trainer


def bare_loop(model, x: torch.Tensor, steps: int, batch_size: int, device) -> None:
    """What a user would write by hand: shuffle each epoch, slice, step."""
    model.to(device).train()
    x = x.to(device)
    per_epoch = len(x) // batch_size
    step = 0
    while step < steps:
        perm = torch.randperm(len(x), device=device)
        for i in range(per_epoch):
            if step == steps:
                break
            model.train_step(x[perm[i * batch_size:(i + 1) * batch_size]], step)
            step += 1
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    regs = default_registries()
    data = regs.datasets.get("digits")()
    info, split = data.info(), data.split("train")
    device = resolve_device(args.device)
    budget = Budget(steps=args.steps, batch_size=args.batch_size)

    def fresh():
        torch.manual_seed(0)
        return regs.models.get("vae")(info)

    engine_times, bare_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats + 1):  # the first round warms up both paths
            model = fresh()
            t0 = time.perf_counter()
            bare_loop(model, split.x, args.steps, args.batch_size, device)
            bare = time.perf_counter() - t0

            model = fresh()
            trainer = Trainer(device, seed=0, progress=None,
                              checkpoint_path=Path(tmp) / f"ckpt{r}.pt", fingerprint="bench")
            t0 = time.perf_counter()
            trainer.fit(model, split, budget)
            engine = time.perf_counter() - t0
            if r:
                bare_times.append(bare)
                engine_times.append(engine)

    b, e = statistics.median(bare_times), statistics.median(engine_times)
    print(f"device: {device}   VAE on digits, {args.steps} steps, batch {args.batch_size}, "
          f"median of {args.repeats}")
    print(f"{'bare PyTorch loop':<24}{b:8.3f} s   1.00x")
    print(f"{'genbench engine':<24}{e:8.3f} s   {e / b:.2f}x   (target <= 1.10x)")


if __name__ == "__main__":
    main()
