"""Everything that went wrong in a results database, one entry each, with its traceback:
what ``genbench results --failed`` prints.

A job row that failed or diverged carries its own traceback, or else (its training failed,
and the row was stored without running) its training's. A failed metric of a good row keeps
its traceback in its details. A failed training is listed once, where no row of it is. A
rerun that failed beside a good record kept in its place is in :meth:`ResultStore.failures`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genbench.results.store import ResultStore

#: Statuses of a job or training that went wrong ("diverged" is a result, but still listed).
BAD_STATUSES = ("failed", "diverged")


@dataclass
class Failure:
    """One thing that went wrong: a ``"job"`` row, a ``"metric"`` of a row, or a
    ``"training"``; ``kept_good_record`` marks a rerun whose earlier good record stands."""

    kind: str
    key: str
    status: str
    error: str
    traceback: str | None = None
    suite: str | None = None
    created_at: str | None = None
    kept_good_record: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_text(self) -> str:
        """A header line (status, what, key, suite), the error, then the traceback indented."""
        where = f"  (suite {self.suite})" if self.suite else ""
        rerun = "  (a rerun; the earlier good result is kept)" if self.kept_good_record else ""
        lines = [f"{self.status} {self.kind} {self.key}{where}{rerun}", f"  error: {self.error}"]
        if self.traceback:
            lines += ["  " + line for line in self.traceback.rstrip().splitlines()]
        else:
            lines.append("  (no traceback stored)")
        return "\n".join(lines)


def _text(value: Any) -> str | None:
    """A store cell as text; ``None`` for SQL NULL (NaN in a DataFrame)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _details(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    return json.loads(value) if isinstance(value, str) and value else {}


def collect_failures(store: ResultStore) -> list[Failure]:
    """Failed and diverged rows, failed metrics of good rows, failed trainings no row
    shows, then failed reruns beside kept records, each oldest first."""
    jobs = store.jobs()
    trainings = store.trainings()
    training_traceback = {t["fingerprint"]: t["provenance"].get("traceback")
                          for t in trainings.to_dict("records")}
    out: list[Failure] = []
    shown_trainings: set[str] = set()
    for job in jobs.to_dict("records"):
        if job["status"] not in BAD_STATUSES:
            continue
        prov = job["provenance"]
        shown_trainings.add(prov.get("train_fingerprint"))
        trace = prov.get("traceback") or training_traceback.get(prov.get("train_fingerprint"))
        out.append(Failure("job", job["job_key"], job["status"], _text(job["error"]) or "",
                           trace, job["suite"], job["created_at"]))
    metrics = store.metric_values()
    if len(metrics):
        keys = dict(zip(jobs["id"], jobs["job_key"]))
        failed = metrics[(metrics["status"] == "failed") & (metrics["job_status"] == "ok")]
        for m in failed.drop_duplicates(["job_id", "metric"]).to_dict("records"):
            out.append(Failure("metric", f"{keys.get(m['job_id'], m['fingerprint'])} {m['metric']}",
                               "failed", _text(m["message"]) or "",
                               _details(m["details"]).get("traceback"), m["suite"]))
    for t in trainings.to_dict("records"):
        if t["status"] in BAD_STATUSES and t["fingerprint"] not in shown_trainings:
            key = f"{t['dataset_name']}/{t['label']}/seed{t['seed']} (training {t['fingerprint'][:8]})"
            out.append(Failure("training", key, t["status"], _text(t["error"]) or "",
                               t["provenance"].get("traceback"), None, t["created_at"]))
    for f in store.failures():
        out.append(Failure(f["kind"], f["job_key"], f["status"], f["error"] or "",
                           f["provenance"].get("traceback"), f["suite"], f["created_at"],
                           kept_good_record=True))
    return out
