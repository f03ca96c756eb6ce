"""Standard image sets read through torchvision: mnist, fashion-mnist, cifar10, stacked-mnist.

Files live under the data root (``--data-root``, the spec's ``data_root``, ``$GENBENCH_DATA``,
else ``~/.cache/genbench/data``) in torchvision's own layout, and are read by torchvision's
dataset classes. Nothing is fetched unless the user allowed it (``--download`` or
``download = true`` in the spec); a missing set is a :class:`DataUnavailableError` naming the
files, their directory and the command that fetches them. Images are converted once to float
tensors in [0, 1], ``(N, C, H, W)``, and kept in memory.
"""

from __future__ import annotations

import abc
import functools
import os
import pickle
from pathlib import Path
from typing import Any, ClassVar

import torch

from genbench import (BenchmarkDataset, ConfigError, DataInfo, DataUnavailableError, TensorSplit,
                      data_root, hookimpl, registered_name, tensor_fingerprint)

from .options import Count
from .stacking import STACKED_CLASSES, stack, stacked_indices

_SPLITS = ("train", "test")


class _TorchvisionSet(BenchmarkDataset):
    """Shared loading, error reporting and in-memory conversion of one torchvision set.

    Subclasses name the torchvision class and describe where its files live; each split is
    loaded once as uint8 ``(N, C, H, W)`` plus int64 labels, and kept as a float TensorSplit.
    """

    shape: ClassVar[tuple[int, int, int]] = (1, 28, 28)
    num_classes: ClassVar[int] = 10
    #: The torchvision class name shown in error messages and the fetch one-liner.
    tv_class_name: ClassVar[str] = ""

    @property
    def name(self) -> str:
        """The name this dataset is registered under (``register("mnist", MNIST)``)."""
        return registered_name(self)

    def __init__(self, root: str | None = None, download: bool = False,
                 limit: Count | None = None):
        self.root = data_root(root)
        self.download = bool(download)
        self.limit = limit

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Kind, shape and classes, known without the files being present."""
        return {"kind": "image", "shape": cls.shape, "classes": cls.num_classes, "modes": None}

    # -- what subclasses provide --------------------------------------------------------
    @abc.abstractmethod
    def _tv_class(self) -> type:
        """The torchvision dataset class that reads the files."""

    @abc.abstractmethod
    def _arrays(self, ds) -> tuple[torch.Tensor, torch.Tensor]:
        """``(uint8 (N, C, H, W), int64 (N,))`` from the torchvision dataset object."""

    @abc.abstractmethod
    def files_dir(self) -> Path:
        """The directory that must hold the files."""

    @abc.abstractmethod
    def expected_files(self) -> list[str]:
        """Names of the files the set needs, inside :meth:`files_dir`."""

    def _damaged_files(self) -> list[str]:
        """Files present but rejected by torchvision's integrity check (none by default)."""
        return []

    # -- loading --------------------------------------------------------------------------
    def fetch_hint(self) -> str:
        root = str(self.root)
        return (
            f"fetch them with `genbench run --download ...` (or `download = true` in the suite "
            f"spec), or with\n  python -c \"import torchvision; "
            f"torchvision.datasets.{self.tv_class_name}(r'{root}', download=True)\"\n"
            f"(the data root is set by --data-root, the spec's data_root or $GENBENCH_DATA)"
        )

    def _open(self, train: bool):
        try:
            return self._tv_class()(str(self.root), train=train, download=self.download)
        # What torchvision raises for absent, rejected, truncated or malformed files, and
        # for failed downloads (URLError is an OSError).
        except (RuntimeError, ValueError, TypeError, AssertionError, OSError, EOFError,
                KeyError, pickle.UnpicklingError) as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: Exception) -> DataUnavailableError:
        """The error to raise after torchvision failed with ``exc``, saying what to do."""
        files_dir = self.files_dir()
        missing = [f for f in self.expected_files() if not (files_dir / f).is_file()]
        if missing and self.download:
            return DataUnavailableError(
                f"{self.name}: downloading into {files_dir} failed "
                f"({type(exc).__name__}: {exc})\nCheck the network connection, or put these "
                f"files in {files_dir} by hand: {', '.join(missing)}"
            )
        if missing:
            gz = [f"{f}.gz" for f in missing if (files_dir / f"{f}.gz").is_file()]
            unzip = (f"\n{', '.join(gz)} found but not decompressed: run `gunzip` on "
                     f"{'it' if len(gz) == 1 else 'them'} in {files_dir}") if gz else ""
            return DataUnavailableError(
                f"{self.name}: files not found in {files_dir}: {', '.join(missing)} "
                f"(downloads are off).{unzip}\nPut the files there, or {self.fetch_hint()}"
            )
        damaged = self._damaged_files()
        if damaged:
            return DataUnavailableError(
                f"{self.name}: torchvision rejected files in {files_dir} (checksum mismatch: "
                f"{', '.join(damaged)}).\n{self._damaged_hint()}"
            )
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return DataUnavailableError(
            f"{self.name}: could not read the files in {files_dir} ({detail}).\n"
            f"Delete them and {self.fetch_hint()}"
        )

    def _damaged_hint(self) -> str:
        return f"Delete the damaged files and {self.fetch_hint()}"

    def _load_split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        ds = self._open(train=name == "train")
        self._class_names = tuple(ds.classes)
        x, y = self._arrays(ds)
        if self.limit is not None:
            x, y = x[:self.limit], y[:self.limit]
        return x, y

    @functools.cached_property
    def _loaded(self) -> tuple[dict[str, TensorSplit], str, dict[str, Any]]:
        raw = {name: self._load_split(name) for name in _SPLITS}
        fingerprint = tensor_fingerprint(*(t for name in _SPLITS for t in raw[name]),
                                         extra=self.name)
        splits = {name: TensorSplit(x.float().div_(255.0), y) for name, (x, y) in raw.items()}
        return splits, fingerprint, self._extra()

    def _extra(self) -> dict[str, Any]:
        return {"root": str(self.root), "class_names": self._class_names}

    def split(self, name: str) -> TensorSplit:
        if name not in _SPLITS:
            raise ConfigError(f"{self.name} has no split {name!r}; valid splits: train, test")
        return self._loaded[0][name]

    def info(self) -> DataInfo:
        _, fingerprint, extra = self._loaded
        return DataInfo(name=self.name, kind="image", shape=self.shape,
                        num_classes=self.num_classes, feature_extractor="inception-v3-compat",
                        fingerprint=fingerprint, extra=extra, levels=256)  # uint8 / 255


class _MNISTFamily(_TorchvisionSet):
    """IDX files under ``<root>/<ClassName>/raw/``, uncompressed, read by torchvision."""

    def _tv_class(self):
        import torchvision

        return getattr(torchvision.datasets, self.tv_class_name)

    def _arrays(self, ds):
        return ds.data.unsqueeze(1).contiguous(), ds.targets.long()

    def files_dir(self) -> Path:
        return self.root / self.tv_class_name / "raw"

    def expected_files(self) -> list[str]:
        # torchvision lists the .gz archives it downloads; it reads the decompressed files.
        return [os.path.splitext(name)[0] for name, _ in self._tv_class().resources]


class MNIST(_MNISTFamily):
    """MNIST: 60,000 train / 10,000 test handwritten digits, 1x28x28, 10 classes."""

    description = "MNIST handwritten digits, 1x28x28, 10 classes (torchvision; files or --download)"
    tv_class_name = "MNIST"


class FashionMNIST(_MNISTFamily):
    """Fashion-MNIST: 60,000 train / 10,000 test clothing images, 1x28x28, 10 classes."""

    description = "Fashion-MNIST clothing images, 1x28x28, 10 classes (torchvision; files or --download)"
    tv_class_name = "FashionMNIST"


class CIFAR10(_TorchvisionSet):
    """CIFAR-10: 50,000 train / 10,000 test colour images, 3x32x32, 10 classes.

    torchvision checks every file in ``<root>/cifar-10-batches-py/`` against the md5 of the
    official release and refuses anything else. That check stays on by default. With
    ``verify = false`` genbench still reads the files with torchvision's own ``CIFAR10``
    reader, through a subclass that only drops the md5 values (torchvision's
    ``check_integrity`` then tests that each file exists), so files in the same pickled
    format that are not the official ones (a re-packed subset, a test fixture) load too; their
    content fingerprint still tells them apart from the official set downstream.
    """

    description = "CIFAR-10 colour images, 3x32x32, 10 classes (torchvision; files or --download)"
    shape = (3, 32, 32)
    tv_class_name = "CIFAR10"

    def __init__(self, root: str | None = None, download: bool = False,
                 limit: int | None = None, verify: bool = True):
        super().__init__(root=root, download=download, limit=limit)
        self.verify = bool(verify)

    def _tv_class(self):
        from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10

        if self.verify:
            return TorchvisionCIFAR10
        return _unverified_cifar10()

    def _arrays(self, ds):
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
        return x, torch.as_tensor(ds.targets, dtype=torch.long)

    def _extra(self):
        return {**super()._extra(), "verified": self.verify}

    def files_dir(self) -> Path:
        from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10

        return self.root / TorchvisionCIFAR10.base_folder

    def _checksums(self) -> dict[str, str]:
        from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10

        tv = TorchvisionCIFAR10
        sums = dict(tv.train_list + tv.test_list)
        sums[tv.meta["filename"]] = tv.meta["md5"]
        return sums

    def expected_files(self) -> list[str]:
        return list(self._checksums())

    def _damaged_files(self) -> list[str]:
        from torchvision.datasets.utils import check_integrity

        if not self.verify:
            return []
        return [f for f, md5 in self._checksums().items()
                if not check_integrity(str(self.files_dir() / f), md5)]

    def _damaged_hint(self) -> str:
        return (f"If the files are the official release, they are damaged: delete them and "
                f"{self.fetch_hint()}\nIf they are deliberately not the official files (same "
                f"pickled format), set verify = false for cifar10.")


@functools.lru_cache(maxsize=1)
def _unverified_cifar10() -> type:
    """torchvision's CIFAR10 with the md5 values removed: files are only checked to exist."""
    from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10

    return type("UnverifiedCIFAR10", (TorchvisionCIFAR10,), {
        "train_list": [[f, None] for f, _ in TorchvisionCIFAR10.train_list],
        "test_list": [[f, None] for f, _ in TorchvisionCIFAR10.test_list],
        "meta": {**TorchvisionCIFAR10.meta, "md5": None},
    })


class StackedMNIST(MNIST):
    """Stacked MNIST: three MNIST digits as the channels of one 3x28x28 image, 1,000 modes.

    The VEEGAN / PacGAN construction (see :mod:`genbench_plugins.datasets.stacking`): train
    items draw their digits from the MNIST train file, test items from the t10k file; the
    label is ``100*d1 + 10*d2 + d3``. Memory: ``n_train`` items take ``n_train * 9.4 KB``
    (0.56 GB at the default).
    """

    description = ("Stacked MNIST: three MNIST digits as the RGB channels of one 3x28x28 image, "
                   "1,000 modes (torchvision; files or --download)")
    shape = (3, 28, 28)
    num_classes = STACKED_CLASSES

    def __init__(self, root: str | None = None, download: bool = False,
                 n_train: Count = 60_000, n_test: Count = 10_000, seed: int = 0):
        super().__init__(root=root, download=download)
        self.n = {"train": n_train, "test": n_test}
        self.seed = seed
        self._source_indices: dict[str, torch.Tensor] = {}

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Known without the files: 1,000 modes, one per label ``100*d1 + 10*d2 + d3``."""
        return {**super().describe(), "modes": STACKED_CLASSES}

    def _load_split(self, name):
        digits, labels = super()._load_split(name)
        idx = stacked_indices(len(digits), self.n[name], self.seed, name)
        self._source_indices[name] = idx
        return stack(digits, labels, idx)

    def source_indices(self, name: str) -> torch.Tensor:
        """``(n, 3)`` indices of each item's digits into the MNIST file of the split
        (``train-*`` for train, ``t10k-*`` for test)."""
        self.split(name)
        return self._source_indices[name]

    def _extra(self):
        return {"root": str(self.root), "source": "mnist",
                "label": "100*d1 + 10*d2 + d3 (digits in channels 0, 1, 2)"}


@hookimpl
def register_datasets(register):
    register("mnist", MNIST)
    register("fashion-mnist", FashionMNIST)
    register("cifar10", CIFAR10)
    register("stacked-mnist", StackedMNIST)
