"""Sampling speed: samples per second and milliseconds per batch at stated batch sizes."""

from __future__ import annotations

import statistics
import time

import torch

from genbench import EvalContext, Metric, MetricResult, hookimpl
from genbench.api.errors import ConfigError


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class SamplingSpeed(Metric):
    """Times sampling under the row's sampling settings after warm-up, synchronised on
    CUDA; median of repeats. NFE follows the settings when the model's ``nfe`` is a method."""

    description = ("sampling speed: samples/s and ms per batch (median of repeats after "
                   "warm-up), parameter count, NFE and peak CUDA memory")
    higher_is_better = {"samples_per_s": True}

    def __init__(self, batch_size: int = 256, repeats: int = 10, warmup: int = 2):
        if batch_size < 1 or repeats < 1 or warmup < 0:
            raise ConfigError("speed: batch_size and repeats must be >= 1 and warmup >= 0")
        self.batch_size, self.repeats, self.warmup = batch_size, repeats, warmup

    @torch.no_grad()
    def compute(self, ctx: EvalContext) -> MetricResult:
        model, device = ctx.model.eval(), ctx.device
        gen = ctx.generator(99)
        for _ in range(self.warmup):
            ctx.sample(self.batch_size, gen)
        _sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(self.repeats):
            t0 = time.perf_counter()
            ctx.sample(self.batch_size, gen)
            _sync(device)
            times.append(time.perf_counter() - t0)
        median = statistics.median(times)
        values = {
            "samples_per_s": self.batch_size / median,
            "ms_per_batch": 1000.0 * median,
            "params": float(model.num_parameters()),
        }
        nfe = ctx.nfe()
        if nfe is not None:
            values["nfe"] = float(nfe)
        if device.type == "cuda":
            values["peak_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        return MetricResult(values, {"batch_size": self.batch_size, "repeats": self.repeats,
                                     "warmup": self.warmup, "device": str(device)})


@hookimpl
def register_metrics(register):
    register("speed", SamplingSpeed)
