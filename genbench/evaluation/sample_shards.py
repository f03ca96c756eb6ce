"""One evaluation's samples drawn by several workers: each draws and embeds one shard.

With ``eval_shards = K`` a row's ``num_samples`` are split into ``K`` contiguous ranges
(:func:`genbench.plan.jobs.shard_ranges`). A sample job draws items ``start..stop-1`` with
their per-sample noise (:class:`~genbench.api.noise.SampleNoise`, so they are the items one
job would draw), writes them as a sample store in ``samples/part-<start>-<stop>/``, embeds
them with the run's extractor (``features-<extractor>/`` beside them) and writes
``part.json`` last. The row then merges the parts (:meth:`EvalContext.sample_store`) and reads
their features instead of embedding again, so its numbers equal those of one job.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genbench.api.errors import GenbenchError
from genbench.api.paths import atomic_write
from genbench.evaluation.sample_store import SampleStoreError, open_sample_store
from genbench.features.feature_matrix import FeatureMatrix

if TYPE_CHECKING:
    from genbench.evaluation.context import EvalContext
    from genbench.features.job_features import Extractor

__all__ = ["PART_RECORD", "draw_part", "finished_part", "part_features", "read_part"]

#: Written last into a finished part's folder.
PART_RECORD = "part.json"
#: Written last into a part's features folder (``features-<extractor>/``).
FEATURES_RECORD = "features.json"


def read_part(folder: str | os.PathLike) -> dict[str, Any] | None:
    """A part's record, or ``None`` when it is not finished (or unreadable)."""
    try:
        record = json.loads((Path(folder) / PART_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def finished_part(folder: str | os.PathLike, fingerprint: str, start: int,
                  stop: int) -> dict[str, Any] | None:
    """The record of the part in ``folder`` when it was finished for this evaluation and range."""
    record = read_part(folder)
    if not record or (record.get("fingerprint"), record.get("start"), record.get("stop")) != \
            (fingerprint, start, stop):
        return None
    if not record.get("bad"):  # its samples must still be there, whole
        try:
            open_sample_store(folder)
        except SampleStoreError:
            return None
    return record


def _features_folder(folder: Path, extractor: str) -> Path:
    return folder / f"features-{extractor}"


def draw_part(ctx: "EvalContext", fingerprint: str) -> dict[str, Any]:
    """Draw ``ctx``'s samples (items ``ctx.first_sample`` on, into ``ctx.sample_dir``), embed
    them with the run's extractor when it applies, and write the part's record: what it
    returns. Samples holding NaN or infinity are recorded (``bad``), not raised."""
    t0 = time.perf_counter()
    folder = Path(ctx.sample_dir)
    (folder / PART_RECORD).unlink(missing_ok=True)
    record: dict[str, Any] = {"fingerprint": fingerprint, "start": ctx.first_sample,
                              "stop": ctx.first_sample + ctx.num_samples, "bad": 0}
    failure = ctx.sample_failure
    if failure is not None:
        record.update(bad=ctx.nonfinite_count, failure=failure)
    else:
        extractor = _embed(ctx)
        if extractor is not None:
            record["features"] = extractor
    record.update(noise=ctx.noise, seconds=time.perf_counter() - t0)
    atomic_write(folder / PART_RECORD, lambda tmp: Path(tmp).write_text(json.dumps(record)))
    return record


def _embed(ctx: "EvalContext") -> str | None:
    """Features of the part with the run's extractor, saved beside it (``features-<name>/``:
    one ``.npy`` per layer and ``features.json``, written last); ``None`` when no extractor
    applies (the row then has nothing to read, and embeds nothing either)."""
    name = ctx.extractor_name
    if name is None:
        return None
    try:
        ext = ctx.features(name).extractor
    except GenbenchError:  # no extractor for this data: the row's metrics say why
        return None
    target = _features_folder(Path(ctx.sample_dir), name)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    store = ctx.sample_store  # written once, straight into the part's folder
    rows = ext.features_to_files(store.batches(ctx.batch_size), len(store), target)
    record = {"extractor": name, "weights_sha256": ext.weights_sha256, "n": ctx.num_samples,
              "layers": {layer: matrix.path.name for layer, matrix in rows.items()}}
    atomic_write(target / FEATURES_RECORD, lambda tmp: Path(tmp).write_text(json.dumps(record)))
    return name


def part_features(folders: list[Path], extractor: "Extractor",
                  total: int) -> list[dict[str, FeatureMatrix]] | None:
    """The parts' features for ``extractor``, one ``{layer: FeatureMatrix}`` per part, in
    order and ``total`` rows in all, or ``None`` when a part has none for it (another
    extractor, other weights, a damaged file): then they are extracted again."""
    parts = []
    for folder in folders:
        target = _features_folder(folder, extractor.name)
        try:
            record = json.loads((target / FEATURES_RECORD).read_text())
            if (not isinstance(record, dict) or record.get("weights_sha256") != extractor.weights_sha256
                    or not isinstance(record.get("layers"), dict)):
                return None
            part = {layer: FeatureMatrix(target / str(record["layers"][layer]))
                    for layer in extractor.requested_layers}
        except (OSError, ValueError, KeyError, TypeError):  # absent, truncated or foreign
            return None
        if any(len(m) != record.get("n") for m in part.values()):
            return None
        parts.append(part)
    if not parts or sum(len(next(iter(p.values()))) for p in parts) != total:
        return None
    widths = [{layer: m.shape[1] for layer, m in p.items()} for p in parts]
    return parts if all(w == widths[0] for w in widths) else None
