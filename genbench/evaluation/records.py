"""What scoring one metric records: :class:`MetricRecord`, plain data that the result store
keeps and reads back without importing torch (so ``genbench results`` stays light)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


#: The status of a metric timed alone (:attr:`genbench.Metric.timed_alone`) in a stored row
#: whose timing job has not run yet.
PENDING = "pending"


@dataclass
class MetricRecord:
    """One metric's outcome for a job: values on success, else a reason or an error."""

    metric: str
    status: str  # "ok", "skipped", "failed" or PENDING
    values: dict[str, float] = field(default_factory=dict)
    message: str | None = None
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    primary: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
