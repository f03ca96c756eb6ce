"""The speed metric's cost is bounded by the evaluation it belongs to, and says how it was measured."""

import pytest
import torch

from genbench import DataInfo, GenerativeModel
from genbench.evaluation.context import EvalContext
from genbench.registry.manager import default_registries
from genbench_plugins.metrics import speed

INFO = DataInfo("tiny", "vector", (2,))


class Clock:
    """time.perf_counter for the speed module: every sample() call takes ``cost`` seconds."""

    def __init__(self):
        self.now, self.calls = 0.0, 0

    def __call__(self):
        return self.now


class SlowSampler(GenerativeModel):
    def __init__(self, data_info, clock=None, cost=1.0):
        super().__init__()
        self.clock, self.cost = clock, cost

    def sample(self, n, generator=None):
        self.clock.now += self.cost
        self.clock.calls += 1
        return self.randn(n, 2, generator=generator)


def run(tmp_path, monkeypatch, sample_seconds, cost=1.0, **options):
    clock = Clock()
    monkeypatch.setattr(speed.time, "perf_counter", clock)
    x = torch.zeros(4, 2)
    ctx = EvalContext(model=SlowSampler(INFO, clock, cost), model_name="m", data_info=INFO, train=(x, None),
                      test=(x, None), device=torch.device("cpu"), seed=0, num_samples=4,
                      cache_dir=tmp_path, registries=default_registries())
    ctx.timings["sample_seconds"] = sample_seconds
    out = speed.SamplingSpeed(**options).compute(ctx)
    return out, clock.calls


def test_a_slow_sampler_is_timed_within_the_evaluation_s_own_sampling_time(tmp_path, monkeypatch):
    # the evaluation drew its samples in 3 s; each timed batch takes 1 s
    out, calls = run(tmp_path, monkeypatch, 3.0)
    d = out.details
    assert d["budget_seconds"] == 3.0 and d["warmup"] == 1 and d["repeats"] == 2
    assert calls == 3  # 1 warm-up + the 2 timed batches it needs at least: 3 s, not 12 s
    assert out.values["ms_per_batch"] == pytest.approx(1000.0) and d["spread"] == 0.0
    assert out.values["samples_per_s"] == pytest.approx(256.0)


def test_a_fast_sampler_gets_every_repeat_and_the_cap_applies(tmp_path, monkeypatch):
    out, calls = run(tmp_path, monkeypatch, 100.0, repeats=5, warmup=2)
    assert (out.details["warmup"], out.details["repeats"], calls) == (2, 5, 7)
    out, calls = run(tmp_path, monkeypatch, 100.0, repeats=10, warmup=2, max_seconds=4.0)
    assert out.details["budget_seconds"] == 4.0 and calls == 4  # 1 warm-up, 3 timed: 4 s


def test_a_fast_row_is_still_timed_for_min_seconds(tmp_path, monkeypatch):
    # the evaluation drew its samples in 10 ms; each batch takes 0.1 s; at least 0.5 s
    out, calls = run(tmp_path, monkeypatch, 0.01, cost=0.1)
    d = out.details
    assert d["budget_seconds"] == 0.5 and d["warmup"] == 2 and d["repeats"] == 3 and calls == 5
    out, calls = run(tmp_path, monkeypatch, 0.01, cost=0.1, min_seconds=0.0)
    assert out.details["budget_seconds"] == 0.01 and calls == 3  # 1 warm-up, 2 timed


def test_the_load_is_recorded_and_bad_options_are_refused(tmp_path, monkeypatch):
    out, _ = run(tmp_path, monkeypatch, 3.0)
    assert out.details["cores"] >= 1 and out.details["load_average_1min"] >= 0
    assert out.details["under_load"] == (out.details["load_average_1min"] > out.details["cores"])
    from genbench import ConfigError

    with pytest.raises(ConfigError, match="min_repeats"):
        speed.SamplingSpeed(repeats=2, min_repeats=3)
    with pytest.raises(ConfigError, match="min_seconds"):
        speed.SamplingSpeed(min_seconds=10.0, max_seconds=5.0)
