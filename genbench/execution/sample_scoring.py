"""Scoring samples made elsewhere: ``genbench eval`` and :func:`score_samples`.

A sample set (see :class:`genbench.api.sample_files.SampleSet` for the formats) is scored as
a one-row suite: the registered model that declares ``sample_set_parameter`` (the built-in
``sample-files``) replays the files; the reference is a registered dataset's test split,
another sample set (served by the dataset that declares ``sample_set_parameter``) or a
reference statistics file, and the row is stored in ``<out>/results.db`` and published like
any trained row, so ``genbench leaderboard`` shows it beside them. The row is identified by
the files' content: new content under the same path is a new row, never a stale one.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

from genbench.api.errors import ConfigError
from genbench.api.paths import DEFAULT_OUT
from genbench.api.sample_files import open_sample_set
from genbench.plan.spec import SuiteSpec
from genbench.execution.suite import RunResult, run_and_publish

#: The suite an evaluated sample set is stored under unless one is named.
DEFAULT_SUITE = "eval"


def sample_set_reader(registry) -> tuple[str, str]:
    """The name of the first class in ``registry`` (models or datasets) that declares a
    ``sample_set_parameter``, and that parameter."""
    for entry in registry:
        parameter = getattr(entry.obj, "sample_set_parameter", None)
        if parameter:
            return entry.name, parameter
    raise ConfigError(f"no installed {registry.kind} reads sample sets from files (one that "
                      "declares sample_set_parameter); reinstall genbench or enable its "
                      "built-in plugins")


def reference_entry(reference: str | Path, registries) -> tuple[dict[str, Any], str | None]:
    """The spec's dataset entry for ``reference``, and the feature extractor it requires
    (``None``: any): a reference statistics file (``.npz`` written by ``genbench reference
    build``: its dataset, with the file standing for the test split, and its extractor), a
    sample set on disk, or a registered dataset named ``NAME`` or ``NAME:test``."""
    text = str(reference)
    path = Path(text).expanduser()
    if path.exists():
        provenance = _reference_file_provenance(path)
        if provenance is not None:
            name = provenance.get("dataset")
            if not isinstance(name, str) or not name:
                raise ConfigError(f"reference file {path} names no dataset in its provenance; "
                                  "rebuild it with `genbench reference build`")
            registries.datasets.get(name)  # its dataset must be installed
            split = provenance.get("split", "test")
            label = name if split == "test" else f"{name}:{split}"
            return ({"name": name, "params": dict(provenance.get("dataset_params") or {}),
                     "label": label, "reference": str(path)}, provenance.get("extractor"))
        name, parameter = sample_set_reader(registries.datasets)
        return {"name": name, "params": {parameter: str(path)}, "label": path.name}, None
    name, _, split = text.partition(":")
    registries.datasets.get(name)  # an unknown name lists the registered ones
    if split not in ("", "test"):
        raise ConfigError(
            f"--reference {text}: metrics compare with a dataset's test split; to compare with "
            f"its {split!r} split, write a reference file first: `genbench reference build "
            f"{name} --split {split} -o {name}-{split}.npz`, then give --reference "
            f"{name}-{split}.npz")
    return {"name": name, "label": name}, None


def _reference_file_provenance(path: Path) -> dict[str, Any] | None:
    """The genbench provenance of a reference statistics file, or ``None`` for any other
    file (a sample set, or an ADM batch: its images are then the reference)."""
    if path.suffix.lower() != ".npz":
        return None
    from genbench.features.reference_files import read_reference_file

    return read_reference_file(path).provenance


def score_samples(samples: str | Path, *, reference: str | Path,
                  metrics: Iterable[str] | None = None, out: str | Path = DEFAULT_OUT,
                  label: str | None = None, suite: str = DEFAULT_SUITE,
                  num_samples: int | None = None, extractor: str | None = None,
                  feature_weights: str | None = None, seed: int = 0,
                  device: str | None = None, data_root: str | None = None,
                  download: bool | None = None, eval_batch_size: int | None = None,
                  protocol: str | None = None, force: bool = False, wait: bool = True,
                  progress: bool | None = None,
                  echo: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
                  registries=None) -> RunResult:
    """Score the sample set ``samples`` against ``reference`` and store the row in ``out``.

    ``reference``: a registered dataset (``"digits"`` or ``"digits:test"``), another sample
    set on disk, or a reference statistics file. ``metrics``: the names to run; default,
    every registered metric, those that do not apply recorded as skipped with the reason.
    ``num_samples``: how many of the set's samples to score (default: all). ``label``: the
    row's name (default: the file or folder name); ``suite``: the suite the row is stored
    and published under (give a trained suite's name to rank the row beside its rows).
    ``protocol``: a registered evaluation protocol, which then chooses the extractor, the
    metrics and the sample count (the set must hold at least that many; the first are
    scored).
    Returns the published boards, as :func:`genbench.run` does.
    """
    if registries is None:
        from genbench.registry.manager import default_registries

        registries = default_registries()
    found = open_sample_set(samples)  # a SampleSetError (exit 2) names what is wrong
    count = len(found)
    if protocol is not None:
        num_samples, extractor = _protocol_counts(registries.protocols.get(protocol), protocol,
                                                  samples, count, num_samples, metrics, extractor)
    if num_samples is None:
        num_samples = count
    elif num_samples > count:
        raise ConfigError(f"{samples} holds {count} samples; num_samples = {num_samples} asks "
                          f"for more (give at most {count})")
    dataset, required_extractor = reference_entry(reference, registries)
    if required_extractor is not None:
        if extractor not in (None, required_extractor):
            how = (f"protocol {protocol!r} reads" if protocol is not None
                   else "--extractor is")
            raise ConfigError(f"reference file {reference} holds {required_extractor!r} features, "
                              f"but {how} {extractor!r}; build a file with "
                              f"--extractor {extractor}"
                              + ("" if protocol is not None else " or leave --extractor out"))
        extractor = required_extractor
    model, parameter = sample_set_reader(registries.models)
    spec: dict[str, Any] = {
        "name": suite, "datasets": [dataset], "seeds": [seed], "num_samples": num_samples,
        "models": [{"name": model, "label": label or Path(str(samples)).name,
                    "params": {parameter: str(samples)}}],
        "baselines": [],
    }
    if protocol is not None:  # it chooses the metrics (and the extractor, passed on as its own)
        spec["protocol"] = protocol
    else:
        spec["metrics"] = list(metrics) if metrics is not None else list(registries.metrics.names())
    if eval_batch_size is not None:
        spec["eval_batch_size"] = eval_batch_size
    parsed = SuiteSpec.from_dict(spec, source=f"genbench eval {samples}")
    if metrics is None and protocol is None:  # every metric: those that apply nowhere are noted
        parsed = dataclasses.replace(parsed, narrowed=True)
    # one row: scored in this process (a worker process would only add its start-up)
    return run_and_publish(parsed, out=out, device=device, data_root=data_root,
                           download=download, extractor=extractor,
                           feature_weights=feature_weights, force=force, jobs=0, wait=wait,
                           progress=progress, echo=echo, registries=registries)


def _protocol_counts(cls: type, name: str, samples, count: int, num_samples: int | None,
                     metrics, extractor: str | None) -> tuple[int, str]:
    """``(num_samples, extractor)`` under protocol ``cls``: its sample count (the set must
    hold that many) and its extractor; a :class:`ConfigError` for what contradicts it."""
    if metrics is not None:
        raise ConfigError(f"protocol {name!r} chooses the metrics; leave --metrics out "
                          f"(`genbench show protocol {name}` lists them)")
    if extractor not in (None, cls.extractor):
        raise ConfigError(f"protocol {name!r} reads {cls.extractor!r} features; leave "
                          f"--extractor out")
    wanted = cls.num_samples
    if wanted is None:
        return count if num_samples is None else num_samples, cls.extractor
    if num_samples not in (None, wanted):
        raise ConfigError(f"protocol {name!r} scores {wanted:,} samples; leave --num-samples "
                          f"out (or give {wanted})")
    if count < wanted:
        raise ConfigError(f"protocol {name!r} scores {wanted:,} samples, but {samples} holds "
                          f"{count:,}: its numbers compare with others' only at that count")
    return wanted, cls.extractor
