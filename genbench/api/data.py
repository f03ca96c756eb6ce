"""The dataset contract: :class:`DataInfo` and :class:`BenchmarkDataset`."""

from __future__ import annotations

import hashlib
import abc
import math
import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch.utils.data import Dataset

from genbench.api.errors import ConfigError
from genbench.api.names import registered_name
from genbench.api.parameters import validate_on_init

DATA_KINDS = ("image", "vector")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class DataInfo:
    """What a dataset is, as models and metrics see it.

    ``shape`` is the shape of one item: ``(C, H, W)`` for images (values in [0, 1]) and
    ``(D,)`` for vectors. ``modes`` are known mixture centres, shape ``(K, D)``, with their
    common standard deviation ``mode_std``; ``feature_extractor`` names the default extractor
    for sample-quality metrics; ``fingerprint`` is a hash of the content that caches of
    derived quantities (reference statistics) are keyed by. ``class_frequencies``, when the
    dataset declares them, are the true weights of its ``num_classes`` classes (non-negative,
    one per class, normalised to sum to 1): class-coverage metrics compare the generated
    class histogram with them instead of the uniform distribution. ``levels`` says the data is
    quantised: every coordinate takes one of ``levels`` evenly spaced values ``k / (levels - 1)``
    in [0, 1] (256 for 8-bit images); ``None`` for continuous data. Likelihood metrics read it
    to dequantise; it changes nothing that is trained, so no fingerprint includes it.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    num_classes: int | None = None
    modes: tuple[tuple[float, ...], ...] | None = None
    mode_std: float | None = None
    feature_extractor: str | None = None
    fingerprint: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    class_frequencies: tuple[float, ...] | None = None
    levels: int | None = None

    def __post_init__(self):
        if self.kind not in DATA_KINDS:
            raise ConfigError(f"DataInfo.kind must be one of {DATA_KINDS}, got {self.kind!r}")
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if self.kind == "image" and len(self.shape) != 3:
            raise ConfigError(f"image data needs shape (C, H, W), got {self.shape}")
        if self.kind == "vector" and len(self.shape) != 1:
            raise ConfigError(f"vector data needs shape (D,), got {self.shape}")
        if self.class_frequencies is not None:
            freqs = tuple(float(f) for f in self.class_frequencies)
            if self.num_classes is None or len(freqs) != self.num_classes:
                raise ConfigError(f"{self.name}: class_frequencies needs one weight per class "
                                  f"(num_classes={self.num_classes}), got {len(freqs)}")
            if not all(math.isfinite(f) and f >= 0 for f in freqs) or sum(freqs) <= 0:
                raise ConfigError(f"{self.name}: class_frequencies must be finite, non-negative "
                                  "and not all zero")
            total = sum(freqs)
            object.__setattr__(self, "class_frequencies", tuple(f / total for f in freqs))
        if self.levels is not None:
            if (isinstance(self.levels, bool) or not isinstance(self.levels, numbers.Integral)
                    or self.levels < 2):
                raise ConfigError(f"{self.name}: DataInfo.levels must be an integer >= 2 (the "
                                  "number of evenly spaced values per coordinate, 256 for 8-bit "
                                  f"images) or None for continuous data, got {self.levels!r}")
            object.__setattr__(self, "levels", int(self.levels))

    @property
    def dim(self) -> int:
        """Number of scalars in one item."""
        n = 1
        for s in self.shape:
            n *= s
        return n

    def modes_tensor(self) -> torch.Tensor | None:
        return None if self.modes is None else torch.tensor(self.modes, dtype=torch.float32)


class TensorSplit(Dataset):
    """An in-memory split: items are ``x`` or ``(x, label)``; never re-decoded per epoch."""

    def __init__(self, x: torch.Tensor, labels: torch.Tensor | None = None):
        if labels is not None and len(labels) != len(x):
            raise ValueError(f"{len(x)} items but {len(labels)} labels")
        self.x = x.contiguous().float()
        self.labels = None if labels is None else labels.long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i] if self.labels is None else (self.x[i], self.labels[i])


class BenchmarkDataset(abc.ABC):
    """Base class of dataset plugins.

    Subclasses take their options as keyword arguments with defaults (validated like model
    hyper-parameters) and implement :meth:`info` and :meth:`split`. The framework also passes
    ``root`` (the data directory, see :func:`genbench.api.paths.data_root`) and ``download``
    (bool, whether the user allowed downloads) to datasets that name them in ``__init__``.
    """

    description: ClassVar[str] = ""
    #: The option naming a sample set (files) the dataset serves, or ``None``: ``genbench
    #: eval --reference DIR`` uses the registered dataset that declares one.
    sample_set_parameter: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        validate_on_init(cls)  # a direct call checks its options as a spec's are checked

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """A summary for ``genbench list datasets`` and ``genbench show dataset``: ``kind``,
        ``shape``, ``classes`` and ``modes`` (counts; ``None``: none), as the class knows them
        at its default options.

        Describing never builds the dataset or loads data, so listing stays instant; the
        default knows nothing (every key is shown as unknown). Override it.
        """
        return {}

    @abc.abstractmethod
    def info(self) -> DataInfo:
        """The dataset's :class:`DataInfo` (may load the data to compute the fingerprint)."""

    @abc.abstractmethod
    def split(self, name: str) -> Dataset:
        """The ``"train"`` or ``"test"`` split as a torch Dataset of ``x`` or ``(x, label)``.

        Splits are fixed and seeded: calling twice gives the same items in the same order.
        """

    def tensors(self, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The whole split as ``(x, labels or None)`` tensors on the CPU."""
        if name not in SPLITS:
            raise ConfigError(f"unknown split {name!r}; valid splits: {', '.join(SPLITS)}")
        return split_tensors(self.split(name))


class LazySplit(Sequence):
    """A dataset's split as the pair ``(x, labels or None)``, read whole only when indexed.

    It stands where a metric expects the tensor pair (``x, y = ctx.test``; ``ctx.test[0]``):
    the first index loads the split (:meth:`load`, once). Feature extraction reads it batch
    by batch instead (:meth:`batches`), so a split larger than memory can be the reference.
    """

    def __init__(self, dataset: "BenchmarkDataset", name: str):
        if name not in SPLITS:
            raise ConfigError(f"unknown split {name!r}; valid splits: {', '.join(SPLITS)}")
        self.dataset, self.name = dataset, name
        self._tensors: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self._split: Dataset | None = None

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i):
        return self.load()[i]

    def __repr__(self) -> str:
        return f"LazySplit({registered_name(self.dataset)!r}, {self.name!r}, loaded={self.loaded})"

    @property
    def loaded(self) -> bool:
        return self._tensors is not None

    def load(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The whole split as CPU tensors (``BenchmarkDataset.tensors``), read once."""
        if self._tensors is None:
            self._tensors = self.dataset.tensors(self.name)
        return self._tensors

    def _items(self) -> Dataset:
        if self._split is None:
            self._split = self.dataset.split(self.name)
        return self._split

    def num_items(self) -> int:
        """Items in the split (without loading it when the dataset knows its length)."""
        return len(self._tensors[0]) if self._tensors is not None else len(self._items())

    def batches(self, batch_size: int, indices: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
        """The items (all, or those at ``indices``, in that order), ``batch_size`` at a time,
        as float tensors: from memory when loaded, else read from the dataset batch by batch."""
        step = max(1, int(batch_size))
        if self._tensors is not None:
            x = self._tensors[0] if indices is None else self._tensors[0][indices]
            for i in range(0, len(x), step):
                yield x[i:i + step]
            return
        data = self._items()
        if indices is not None:
            data = torch.utils.data.Subset(data, indices.tolist())
        for batch in torch.utils.data.DataLoader(data, batch_size=step, shuffle=False):
            yield (batch[0] if isinstance(batch, (tuple, list)) else batch).float()


def split_tensors(data: Dataset) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A split (a torch Dataset of ``x`` or ``(x, label)`` items, as ``fit`` receives it)
    as whole ``(x, labels or None)`` CPU tensors, in order."""
    if isinstance(data, TensorSplit):
        return data.x, data.labels
    xs, ys = [], []
    for batch in torch.utils.data.DataLoader(data, batch_size=256, shuffle=False):
        if isinstance(batch, (tuple, list)):
            xs.append(batch[0])
            ys.append(batch[1])
        else:
            xs.append(batch)
    x = torch.cat(xs).float()
    return x, (torch.cat(ys).long() if ys else None)


def tensor_fingerprint(*tensors: torch.Tensor | None, extra: str = "") -> str:
    """sha256 (hex, 16 chars) over the tensors' dtype, shape and bytes, plus ``extra``."""
    h = hashlib.sha256(extra.encode())
    for t in tensors:
        if t is None:
            h.update(b"none")
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]
