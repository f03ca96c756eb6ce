"""Train the ``digits-cnn`` feature extractor and write its weights (a plain state_dict).

    python scripts/train_digits_classifier.py            # writes plugins/extractors/weights/digits_cnn.pt
    python scripts/train_digits_classifier.py --out x.pt --epochs 5

Deterministic: fixed seed, one CPU thread, deterministic algorithms, and the ``digits``
dataset's fixed train split (split_seed 0, test_fraction 0.2). Inputs are quantized to
uint8 levels exactly as the extractor sees them at evaluation time, and each training batch
is shifted by up to one pixel (seeded) for robustness. After training, the features'
``feature_scale`` is set so that the mean of ``x.y / d`` over distinct train-split pairs is
``FEATURE_PAIR_TARGET`` (KID's kernel regime). Prints the test-split accuracy and the sha256
to record in ``genbench_plugins.extractors.digits_cnn.WEIGHTS_SHA256``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from genbench_plugins.datasets.embedded import Digits
from genbench_plugins.extractors.digits_cnn import (FEATURE_PAIR_TARGET, WEIGHTS_PATH, DigitsNet,
                                                    quantize)


@contextlib.contextmanager
def deterministic_cpu(threads: int = 1):
    """One CPU thread and deterministic kernels for the duration; restored afterwards."""
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def _shift(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Shift each image by dy, dx in {-1, 0, 1} (zero fill)."""
    padded = F.pad(x, (1, 1, 1, 1))
    d = torch.randint(0, 3, (len(x), 2), generator=g)
    out = torch.empty_like(x)
    for (dy, dx) in d.unique(dim=0).tolist():
        m = (d[:, 0] == dy) & (d[:, 1] == dx)
        out[m] = padded[m, :, dy:dy + 8, dx:dx + 8]
    return out


def accuracy(net: DigitsNet, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``x`` (in [0, 1]) classified as ``y``, on quantized inputs."""
    net.eval()
    with torch.no_grad():
        pred = net(quantize(x))[1].argmax(1)
    return float((pred == y).float().mean())


def mean_pair_product(features: torch.Tensor) -> float:
    """The mean of ``x.y / d`` over distinct pairs of rows of ``features`` (N, d)."""
    f = features.double()
    n, d = f.shape
    total = f.sum(0)
    pairs = (total @ total - (f * f).sum()) / (n * (n - 1))   # sum over i != j of x_i . x_j
    return float(pairs / d)


def calibrate_feature_scale(net: DigitsNet, x_train: torch.Tensor,
                            target: float = FEATURE_PAIR_TARGET) -> float:
    """Set ``net.feature_scale`` so the train split's mean ``x.y / d`` is ``target``; return it."""
    net.eval()
    with torch.no_grad():
        net.feature_scale.fill_(1.0)
        raw = mean_pair_product(net(quantize(x_train))[0])
        net.feature_scale.fill_((target / raw) ** 0.5)
    return float(net.feature_scale)


def train_digits_classifier(epochs: int = 40, seed: int = 0, batch_size: int = 64,
                            lr: float = 2e-3, weight_decay: float = 1e-4,
                            log: bool = False) -> tuple[DigitsNet, float]:
    """Train :class:`DigitsNet` on the digits train split; return it and its test accuracy."""
    data = Digits()
    x_tr, y_tr = data.tensors("train")
    x_te, y_te = data.tensors("test")
    x_tr = quantize(x_tr)
    with deterministic_cpu():
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        net = DigitsNet()
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
        steps = epochs * ((len(x_tr) + batch_size - 1) // batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
        for epoch in range(epochs):
            net.train()
            perm = torch.randperm(len(x_tr), generator=g)
            for i in range(0, len(x_tr), batch_size):
                idx = perm[i:i + batch_size]
                xb = _shift(x_tr[idx], g)
                loss = F.cross_entropy(net(xb)[1], y_tr[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
            if log and (epoch + 1) % 10 == 0:
                print(f"epoch {epoch + 1}: loss {loss.item():.4f}, "
                      f"test accuracy {accuracy(net, x_te, y_te):.4f}", file=sys.stderr)
        acc = accuracy(net, x_te, y_te)
        calibrate_feature_scale(net, x_tr)
    return net, acc


def state_bytes(net: DigitsNet) -> bytes:
    """The serialized state_dict (what is written to disk)."""
    buf = io.BytesIO()
    torch.save({k: v.clone() for k, v in net.state_dict().items()}, buf)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    net, acc = train_digits_classifier(epochs=args.epochs, seed=args.seed, log=True)
    blob = state_bytes(net)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(blob)
    print(f"test accuracy {acc:.4f}, feature scale {float(net.feature_scale):.6g}, "
          f"in {time.perf_counter() - t0:.1f} s")
    print(f"wrote {args.out} ({len(blob)} bytes), sha256 {hashlib.sha256(blob).hexdigest()}")
    return 0 if acc >= 0.97 else 1


if __name__ == "__main__":
    sys.exit(main())
