"""Evaluation protocols: everything a number depends on, under one name.

A number is comparable with a paper's only when it was computed the same way: the same
extractor and weights, the same resize, the same sample and reference counts, the same
metrics with the same options. A protocol fixes all of them. It is a class (registered
through the ``register_protocols`` hook, like every other plugin object) with class
attributes::

    class MyProtocol(Protocol):
        description = "FID and KID on DINOv2 ViT-L/14 features, 10,000 samples"
        source = "Author et al. 2025, section 4"
        extractor = "dinov2-vitl14"
        resize = "224 x 224, bicubic (PIL), antialiased"
        num_samples = 10_000
        metrics = {"fid": {"max_reference": 50_000}, "kid": {"max_reference": 50_000}}

A suite names one (``protocol = "name"``), as does ``genbench eval --protocol name``: the
protocol then chooses the extractor, the metrics and their options and the sample count,
and a spec that sets any of them differently is refused. Every value it produces records
the protocol's name, the evaluation's identity includes the protocol's code, and a
leaderboard column holds the values of one protocol, named in its header.
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["Protocol", "incomplete_protocol"]


class Protocol:
    """A named evaluation protocol; subclass it and set the class attributes below."""

    #: One line: what it computes (``genbench list protocols``).
    description: str = ""
    #: The paper or code it follows, and where in it.
    source: str = ""
    #: The data kinds it applies to.
    data_kinds: tuple[str, ...] = ("image",)
    #: The registered feature extractor every metric of the protocol reads.
    extractor: str = ""
    #: How the extractor prepares its input, in words: mode, size, filter, antialiasing.
    resize: str = ""
    #: How many generated samples it scores (``None``: as many as the suite or file gives).
    num_samples: int | None = None
    #: What the samples are compared with, in words (the dataset's test split, or the
    #: reference statistics file a suite or ``genbench eval --reference`` gives).
    reference: str = "the dataset's test split (or a reference statistics file built from it)"
    #: Metric name -> its options, as a spec's ``metrics`` entry takes them.
    metrics: Mapping[str, Mapping[str, Any]] = {}

    @classmethod
    def metric_entries(cls) -> list[dict[str, Any]]:
        """The metrics as a spec's ``metrics`` list takes them, labelled by their names (the
        column header names the protocol, which fixes the options)."""
        return [{"name": name, "label": name, "params": dict(params)}
                for name, params in cls.metrics.items()]

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Everything the protocol fixes (``genbench show protocol``)."""
        return {"source": cls.source, "data_kinds": list(cls.data_kinds),
                "extractor": cls.extractor, "resize": cls.resize,
                "num_samples": cls.num_samples, "reference": cls.reference,
                "metrics": {name: dict(params) for name, params in cls.metrics.items()}}


def incomplete_protocol(cls: type) -> str | None:
    """Why a :class:`Protocol` subclass cannot be used, or ``None``."""
    if not isinstance(cls.extractor, str) or not cls.extractor:
        return "it names no extractor (set the class attribute `extractor`)"
    if not isinstance(cls.metrics, Mapping) or not cls.metrics:
        return "it names no metrics (set `metrics = {name: {options}}`)"
    if not all(isinstance(k, str) and isinstance(v, Mapping) for k, v in cls.metrics.items()):
        return "`metrics` must map metric names to dicts of options"
    n = cls.num_samples
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        return f"num_samples must be a positive integer or None, got {n!r}"
    return None
