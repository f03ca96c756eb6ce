"""Statistics of a leaderboard cell: one metric value per seed -> mean, std, 95% interval,
and the ranks and "best" marks of a column.

The interval is Student's t over seeds: ``mean ± t(0.975, n - 1) * std / sqrt(n)`` with the
sample standard deviation (``ddof = 1``). One seed gives no interval (``NaN``), never an
invented one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Two-sided confidence level of the intervals.
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    """Mean, sample std, the t-interval's half-width and bounds (``NaN`` below 2 seeds), n."""

    mean: float
    std: float
    ci: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.ci if not math.isnan(self.ci) else self.mean

    @property
    def high(self) -> float:
        return self.mean + self.ci if not math.isnan(self.ci) else self.mean


def t_quantile(n: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student-t quantile for ``n`` values (``n - 1`` degrees of freedom)."""
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, n - 1))


def summarize(values, confidence: float = CONFIDENCE) -> Summary:
    """Summary of the finite ``values`` (one per seed, in seed order); NaNs are dropped."""
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    n = int(arr.size)
    if n == 0:
        return Summary(math.nan, math.nan, math.nan, 0)
    mean = float(arr.mean())
    if n == 1:
        return Summary(mean, math.nan, math.nan, 1)
    std = float(arr.std(ddof=1))
    return Summary(mean, std, t_quantile(n, confidence) * std / math.sqrt(n), n)


def ranks(means: list[float], higher_is_better: bool) -> list[float]:
    """Rank of each mean in its direction (1 = best; ties share the lower rank; NaN: NaN)."""
    arr = np.asarray(means, dtype=float)
    key = -arr if higher_is_better else arr
    out = []
    for k in key:
        out.append(math.nan if math.isnan(k) else float(1 + np.sum(key[~np.isnan(key)] < k)))
    return out


def best_marks(summaries: list[Summary], higher_is_better: bool) -> list[bool]:
    """The best mean, and every value whose interval overlaps the best one's interval (a row
    without an interval is a point). Empty cells are never marked."""
    means = [s.mean for s in summaries]
    r = ranks(means, higher_is_better)
    if all(math.isnan(x) for x in r):
        return [False] * len(summaries)
    best = summaries[int(np.nanargmin(r))]
    return [not math.isnan(s.mean) and s.low <= best.high and best.low <= s.high
            for s in summaries]
