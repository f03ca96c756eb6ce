"""Sampling speed: samples per second and milliseconds per batch at stated batch sizes."""

from __future__ import annotations

import os
import statistics
import time
from typing import Annotated

import torch
from annotated_types import Ge, Gt

from genbench import (ConfigError, EvalContext, Headline, KeyPresentation, Metric, MetricResult,
                      hookimpl)

from .inputs import Count


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class SamplingSpeed(Metric):
    """Times sampling under the row's sampling settings after warm-up, synchronised on
    CUDA; median of repeats. NFE follows the settings when the model's ``nfe`` is a method.

    Its cost is bounded: the warm-up and the timed batches together take about as long as
    the time budget, ``max_seconds`` or the time the evaluation spent drawing its own
    samples, whichever is shorter (at least one warm-up batch when ``warmup`` > 0 and
    ``min_repeats`` timed ones), so timing a slow sampler never costs much more than the
    evaluation it belongs to; and at least ``min_seconds`` (at most ``max_seconds``), so a
    fast sampler gets its warm-up and enough batches for a stable median. The details record the batches timed, their spread
    (``spread``: (max - min) / median), the budget, and the machine's 1-minute load average
    beside its core count, with ``under_load`` set when the load exceeded the cores: a
    timing taken while other work competed for them."""

    description = ("sampling speed: samples/s and ms per batch (median of repeats after "
                   "warm-up), parameter count, NFE and peak CUDA memory")
    higher_is_better = {"samples_per_s": True}
    timed_alone = True
    # Every key is shown as a mean only in the terminal: they vary with the machine's load
    # (or, for params and NFE, not across seeds at all).
    presentation = {
        "samples_per_s": KeyPresentation("samples/s", (Headline(90),), role="sampling_speed",
                                         mean_only=True),
        "ms_per_batch": KeyPresentation(mean_only=True),
        "params": KeyPresentation(mean_only=True),
        "nfe": KeyPresentation(role="nfe", mean_only=True),
        "peak_mem_mb": KeyPresentation(mean_only=True),
    }

    def __init__(self, batch_size: Count = 256, repeats: Count = 10,
                 warmup: Annotated[int, Ge(0)] = 2, min_repeats: Count = 2,
                 max_seconds: Annotated[float, Gt(0)] = 60.0,
                 min_seconds: Annotated[float, Ge(0)] = 0.5):
        if min_repeats > repeats:
            raise ConfigError(f"speed: min_repeats ({min_repeats}) must not exceed repeats ({repeats})")
        if min_seconds > max_seconds:
            raise ConfigError(f"speed: min_seconds ({min_seconds:g}) must not exceed max_seconds "
                              f"({max_seconds:g})")
        self.batch_size, self.repeats, self.warmup = batch_size, repeats, warmup
        self.min_repeats, self.max_seconds, self.min_seconds = min_repeats, max_seconds, min_seconds

    def skip_reason(self, ctx: EvalContext) -> str | None:
        reason = super().skip_reason(ctx)
        if reason is None and "sample_range" in ctx.model.capabilities():
            reason = f"model {ctx.model_name!r} reads its samples from files: no sampling to time"
        return reason

    @torch.no_grad()
    def compute(self, ctx: EvalContext) -> MetricResult:
        model, device = ctx.model.eval(), ctx.device
        gen = ctx.generator(99)

        def noise():  # what the evaluation draws with: fresh per-sample streams per batch
            return gen if ctx.noise == "one generator" else ctx.sample_noise(0, self.batch_size, 99)

        # what drawing the row's own samples took (in its shards, when it had several)
        spent = ctx.timings.get("shards_sample_seconds", ctx.timings.get("sample_seconds"))
        budget = self.max_seconds if spent is None else \
            min(self.max_seconds, max(self.min_seconds, spent))
        start = time.perf_counter()
        warmed = 0
        while warmed < self.warmup and (warmed == 0 or time.perf_counter() - start < budget / 4):
            ctx.sample(self.batch_size, noise())
            warmed += 1
        _sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        while len(times) < self.repeats and (len(times) < self.min_repeats
                                             or time.perf_counter() - start < budget):
            t0 = time.perf_counter()
            ctx.sample(self.batch_size, noise())
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
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        cores = os.cpu_count()
        return MetricResult(values, {
            "batch_size": self.batch_size, "repeats": len(times), "warmup": warmed,
            "budget_seconds": budget, "spread": (max(times) - min(times)) / median if median else 0.0,
            "load_average_1min": load, "cores": cores,
            "under_load": None if load is None or cores is None else load > cores,
            "threads": torch.get_num_threads(), "device": str(device)})


@hookimpl
def register_metrics(register):
    register("speed", SamplingSpeed)
