"""Images per second through the training engine's batch iterators, for three kinds of data.

    python benchmarks/data_loading.py

* ``digits``: the shipped 8x8 digits, an in-memory TensorSplit (the baseline);
* ``mnist (IDX)``: a 28x28 set in MNIST's IDX format, written to a temp dir and read by the
  ``mnist`` plugin (torchvision's reader), then held in memory;
* ``image-folder``: 2,000 64x64 PNGs written to a temp dir, decoded, resized to 32x32 per
  item and streamed through the engine's DataLoader (with its default workers, which stay within
  the job's torch threads, for one thread and for every core; and with none).

Each line gives the one-off load time and images/second for batches of 64 on the CPU, with
the ratio to the digits baseline measured in the same run. Runs in well under a minute.
"""

from __future__ import annotations

import os
import struct
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from genbench.execution.executor_support import available_cores
from genbench.execution.batches import LoaderBatches, TensorBatches
from genbench_plugins.datasets.embedded import Digits
from genbench_plugins.datasets.image_folder import ImageFolder
from genbench_plugins.datasets.torchvision_sets import MNIST

BATCH = 64
MIN_SECONDS = 1.0
CPU = torch.device("cpu")


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX ("ubyte") file of uint8 data, as MNIST ships it (uncompressed)."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_mnist_like(root: Path, n_train: int, n_test: int) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n, dtype=np.uint8))


def write_pngs(root: Path, n: int, side: int = 64) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 200, side, dtype=np.float32)
    for i in range(n):
        # a smooth gradient plus mild noise: compresses like a photo more than pure noise does
        img = ramp[None, :, None] + ramp[:, None, None] * rng.random(3) \
            + rng.normal(0, 12, (side, side, 3))
        folder = root / f"class{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"{i:05d}.png")


def rate_in_memory(x: torch.Tensor) -> float:
    """Images/s drawing shuffled batches from an in-memory split, for at least MIN_SECONDS."""
    it = TensorBatches(x, BATCH, CPU, seed=0).from_step(0)
    next(it)  # warm-up
    seen, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < MIN_SECONDS:
        for _ in range(100):
            seen += len(next(it))
    return seen / (time.perf_counter() - t0)


def rate_streamed(data, num_workers: int | None) -> tuple[float, int]:
    """Images/s over one full epoch through the engine's DataLoader (worker start-up included)."""
    batches = LoaderBatches(data, BATCH, CPU, seed=0, num_workers=num_workers)
    it = batches.from_step(0)
    seen, t0 = 0, time.perf_counter()
    for _ in range(batches.per_epoch):
        seen += len(next(it))
    return seen / (time.perf_counter() - t0), batches.num_workers


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    t0 = time.perf_counter()
    digits = Digits().split("train")
    rows.append(("digits (in memory, 1x8x8)", time.perf_counter() - t0, rate_in_memory(digits.x)))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_mnist_like(tmp / "idx", n_train=20_000, n_test=2_000)
        t0 = time.perf_counter()
        mnist = MNIST(root=str(tmp / "idx"))
        x = mnist.split("train").x
        rows.append(("mnist IDX (in memory, 1x28x28)", time.perf_counter() - t0, rate_in_memory(x)))

        write_pngs(tmp / "pngs", 2_000)
        t0 = time.perf_counter()
        folder = ImageFolder(str(tmp / "pngs"), size=32, test_fraction=0.1)
        train = folder.split("train")
        load = time.perf_counter() - t0
        # The engine's default gives a job loader workers only within its torch threads
        # (its share of the cores): measured for one thread per job and for a job that
        # has every core, then with no workers.
        for threads, workers in ((1, None), (available_cores(), None), (1, 0)):
            torch.set_num_threads(threads)
            rate, used = rate_streamed(train, workers)
            rows.append((f"image-folder, 2,000 PNGs 64->32 ({threads} thr, {used} wkr)", load, rate))
        torch.set_num_threads(1)

    base = rows[0][2]
    print(f"batch size {BATCH}, CPU ({os.cpu_count()} cores), torch {torch.__version__}")
    print(f"{'data':<50} {'load s':>7} {'images/s':>12} {'vs digits':>10}")
    for name, load, rate in rows:
        print(f"{name:<50} {load:>7.2f} {rate:>12,.0f} {rate / base:>10.4f}")


if __name__ == "__main__":
    main()
