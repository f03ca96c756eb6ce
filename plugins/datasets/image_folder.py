"""``image-folder``: any folder of PNG, JPEG or WebP images, streamed from disk.

The folder is searched recursively (hidden files and folders are left out). When every
image lies inside a top-level sub-folder and there are at least two of them, the sub-folder
names, sorted, become the class labels 0, 1, ...; otherwise the set is unlabelled. Each image
is decoded per item with PIL, converted to ``channels``, centre-cropped per ``crop`` and
resized to ``size`` x ``size``, so a folder larger than memory trains through the engine's
DataLoader (with workers) without being held in memory.

Every file is checked once when the dataset is built: it must open as an image and pass
PIL's ``verify()`` (for PNG this checks every chunk's CRC). A file that fails is reported with
its path, and either stops the build (``on_error = "fail"``) or is left out with a warning
(``on_error = "skip"``). ``verify()`` does not decode the pixels, so a file whose header and
checksums are sound but whose pixel data cannot be decoded still fails, with its path, when
the item is loaded.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from annotated_types import Ge
from torch.utils.data import Dataset

from genbench import (BenchmarkDataset, ConfigError, DataInfo, DataUnavailableError, hookimpl,
                      registered_name)

from .options import TestFraction

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
#: What to do with an unreadable file: stop, or skip it with a warning.
OnError = Literal["fail", "skip"]
CHANNEL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
# 16-bit grayscale PNGs open in these modes; PIL's convert("L") would clip them at 255.
_HIGH_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
_SHOWN_PATHS = 20
_CHUNK = 1 << 20  # bytes read at a time when fingerprinting
DEFAULT_SIZE = 64


def native_channels(image) -> int:
    """Number of channels an image has before conversion (palette images: 3, or 4 with
    transparency; CMYK and other colour spaces: 3)."""
    mode = image.mode
    if mode in ("P", "PA"):
        return 4 if mode == "PA" or "transparency" in image.info else 3
    if mode in _HIGH_BIT_MODES or mode in ("1", "L", "F"):
        return 1
    if mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        return 3
    return len(image.getbands())


@dataclass(frozen=True)
class ImageTransform:
    """Decode one file into a float ``(C, size, size)`` tensor in [0, 1].

    ``crop``: ``None`` cuts the largest centred square, an int ``N`` the centred ``N x N``
    square, ``"none"`` nothing (the image is stretched to a square); then the image is
    resized with bicubic filtering (antialiased when shrinking).
    """

    size: int
    channels: int
    crop: int | str | None = None

    def __call__(self, path: str | Path) -> torch.Tensor:
        from PIL import Image, ImageOps

        try:
            with Image.open(path) as image:
                image = ImageOps.exif_transpose(image)
                if image.mode in _HIGH_BIT_MODES:
                    image = image.convert("I").point(lambda v: v / 257).convert("L")
                image = image.convert(CHANNEL_MODES[self.channels])
                image = self._cropped(image)
                if image.size != (self.size, self.size):
                    image = image.resize((self.size, self.size), Image.Resampling.BICUBIC)
                array = np.array(image, dtype=np.uint8)
        except Exception as exc:  # PIL raises many types for undecodable data
            raise DataUnavailableError(
                f"image-folder: could not decode {path} ({type(exc).__name__}: {exc}); "
                "fix or remove the file"
            ) from exc
        x = torch.from_numpy(array)
        x = x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1)
        return x.float().div_(255.0)

    def _cropped(self, image):
        if self.crop == "none":
            return image
        w, h = image.size
        side = min(w, h) if self.crop is None else self.crop
        left, top = (w - side) // 2, (h - side) // 2
        return image.crop((left, top, left + side, top + side))


class FolderImages(Dataset):
    """One split of an image folder: decodes each item from disk when it is asked for."""

    def __init__(self, files: list[Path], labels: list[int] | None, transform: ImageTransform):
        self.files, self.labels, self.transform = files, labels, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i):
        x = self.transform(self.files[i])
        return x if self.labels is None else (x, torch.tensor(self.labels[i]))


def _file_sha256(path: Path, buffer: memoryview) -> bytes:
    """Raw sha256 digest of a file's bytes, read in chunks through ``buffer``."""
    h = hashlib.sha256()
    try:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buffer):
                h.update(buffer[:n])
    except OSError as exc:
        raise DataUnavailableError(
            f"image-folder: could not read {path} to fingerprint the set ({exc}); the folder "
            "changed after it was scanned, build the dataset again"
        ) from exc
    return h.digest()


@dataclass(frozen=True)
class _Entry:
    rel: str
    channels: int
    width: int
    height: int


class ImageFolder(BenchmarkDataset):
    """Images from a folder, ``(C, size, size)`` in [0, 1]; class sub-folders become labels.

    Options: ``path`` (required), ``size`` (output side, pixels), ``channels`` (1, 3 or 4;
    default: the images' own count, which must then be the same for all), ``crop`` (see
    :class:`ImageTransform`), ``on_error`` (``"fail"`` or ``"skip"`` unreadable files),
    ``test_fraction`` and ``split_seed`` (a seeded split, stratified by class when labelled).
    """

    description = ("Any folder of PNG/JPEG/WebP images (recursive), resized and cropped, "
                   "class sub-folders as labels; streamed from disk")

    def __init__(self, path: str | os.PathLike, size: Annotated[int, Ge(1)] = DEFAULT_SIZE,
                 channels: Literal[1, 3, 4] | None = None,
                 crop: Annotated[int, Ge(1)] | Literal["none"] | None = None,
                 on_error: OnError = "fail", test_fraction: TestFraction = 0.1,
                 split_seed: int = 0):
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise DataUnavailableError(f"image-folder: folder {self.path} does not exist")
        if not self.path.is_dir():
            raise ConfigError(f"image-folder: path must be a folder, {self.path} is a file")
        self.size, self.crop, self.on_error = size, crop, on_error
        self.test_fraction, self.split_seed = float(test_fraction), split_seed

        entries, self.skipped = self._scan()
        self.classes = self._class_names(entries)
        self.channels = channels if channels is not None else self._common_channels(entries)
        if isinstance(crop, int):
            small = [e for e in entries if min(e.width, e.height) < crop]
            if small:
                e = small[0]
                raise ConfigError(
                    f"image-folder: crop={crop} is larger than {len(small)} image(s), e.g. "
                    f"{self.path / e.rel} ({e.width}x{e.height}); use a smaller crop"
                )
        class_index = {name: i for i, name in enumerate(self.classes)}
        labels = [class_index[e.rel.split("/", 1)[0]] for e in entries] if self.classes else None
        self._entries, self._labels = entries, labels
        self._split_idx = self._make_split(labels, len(entries))
        self.transform = ImageTransform(size, self.channels, crop)
        self._fingerprint: str | None = None

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """What is known without a folder: ``("C", size, size)`` at the default size, where
        ``C`` comes from the images or the ``channels`` option; classes from sub-folders."""
        return {"kind": "image", "shape": ("C", DEFAULT_SIZE, DEFAULT_SIZE), "classes": None,
                "modes": None}

    # -- scanning -------------------------------------------------------------------------
    def _candidates(self) -> list[str]:
        found = []
        for dirpath, dirnames, filenames in os.walk(self.path):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for f in filenames:
                if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS):
                    found.append(Path(dirpath, f).relative_to(self.path).as_posix())
        return sorted(found)

    def _scan(self) -> tuple[list[_Entry], tuple[str, ...]]:
        from PIL import Image

        entries, bad = [], []
        for rel in self._candidates():
            full = self.path / rel
            try:
                with Image.open(full) as image:
                    channels, (w, h) = native_channels(image), image.size
                    image.verify()
            except Exception as exc:  # PIL raises many types for malformed files
                bad.append((rel, f"{type(exc).__name__}: {exc}"))
                continue
            entries.append(_Entry(rel, channels, w, h))
        if bad:
            listing = "\n".join(f"  {self.path / rel}: {why}" for rel, why in bad[:_SHOWN_PATHS])
            more = f"\n  ... and {len(bad) - _SHOWN_PATHS} more" if len(bad) > _SHOWN_PATHS else ""
            if self.on_error == "fail":
                raise DataUnavailableError(
                    f"image-folder: {len(bad)} unreadable image file(s) in {self.path}:\n"
                    f"{listing}{more}\nFix or remove them, or set on_error = \"skip\" to leave "
                    "them out"
                )
            warnings.warn(f"image-folder: skipped {len(bad)} unreadable image file(s) in "
                          f"{self.path}:\n{listing}{more}", stacklevel=3)
        if not entries:
            skipped = f"; {len(bad)} unreadable file(s) were skipped" if bad else ""
            raise DataUnavailableError(
                f"image-folder: no images in {self.path} (searched recursively for "
                f"{', '.join(IMAGE_EXTENSIONS)} files){skipped}"
            )
        return entries, tuple(rel for rel, _ in bad)

    @staticmethod
    def _class_names(entries: list[_Entry]) -> tuple[str, ...]:
        """Sorted top-level sub-folder names when every image is in one and there are >= 2."""
        if any("/" not in e.rel for e in entries):
            return ()
        names = sorted({e.rel.split("/", 1)[0] for e in entries})
        return tuple(names) if len(names) >= 2 else ()

    def _common_channels(self, entries: list[_Entry]) -> int:
        counts = Counter(e.channels for e in entries)
        if len(counts) == 1 and next(iter(counts)) in CHANNEL_MODES:
            return next(iter(counts))
        example = {}
        for e in entries:
            example.setdefault(e.channels, e.rel)
        found = "; ".join(f"{c} channel(s): {n} file(s), e.g. {self.path / example[c]}"
                          for c, n in sorted(counts.items()))
        raise ConfigError(
            f"image-folder: the images in {self.path} do not share a channel count this set "
            f"supports ({found}); set channels = 1 (gray), 3 (RGB) or 4 (RGBA) to convert them all"
        )

    def _make_split(self, labels: list[int] | None, n: int) -> dict[str, np.ndarray]:
        """Seeded test indices drawn per class (or over all files), the rest train."""
        if n < 2:
            raise ConfigError(f"image-folder: {self.path} holds a single image, too few for a "
                              "train and a test split; add images")
        rng = np.random.default_rng(self.split_seed)
        groups = ([np.flatnonzero(np.asarray(labels) == c) for c in range(len(self.classes))]
                  if labels is not None else [np.arange(n)])
        shuffled = [rng.permutation(g) for g in groups]
        ks = [min(int(round(self.test_fraction * len(g))), len(g) - 1) for g in groups]
        if sum(ks) == 0:  # a small folder still gets one test image
            ks[max(range(len(groups)), key=lambda i: len(groups[i]))] = 1
        test_idx = np.sort(np.concatenate([g[:k] for g, k in zip(shuffled, ks)]))
        train_idx = np.setdiff1d(np.arange(n), test_idx)
        return {"train": train_idx, "test": test_idx}

    # -- the contract ---------------------------------------------------------------------
    def split(self, name: str) -> FolderImages:
        if name not in self._split_idx:
            raise ConfigError(f"image-folder has no split {name!r}; valid splits: train, test")
        idx = self._split_idx[name]
        files = [self.path / self._entries[i].rel for i in idx]
        labels = None if self._labels is None else [self._labels[i] for i in idx]
        return FolderImages(files, labels, self.transform)

    def split_files(self, name: str) -> list[str]:
        """Paths, relative to the folder, of the split's images in item order."""
        return [self._entries[i].rel for i in self._split_idx[name]]

    def fingerprint(self) -> str:
        """sha256 (16 hex chars) of every kept file's bytes and relative path, its split and
        label, and the options (conversion and split). Computed once per instance."""
        if self._fingerprint is None:
            # A fixed salt, not registered_name: the hash must not depend on the set's name.
            h = hashlib.sha256(
                f"image-folder|{self.size}|{self.channels}|{self.crop}|{self.test_fraction}|"
                f"{self.split_seed}".encode())
            buffer = bytearray(_CHUNK)
            view = memoryview(buffer)
            for name, idx in self._split_idx.items():
                for i in idx:
                    e = self._entries[i]
                    label = "" if self._labels is None else self._labels[i]
                    h.update(f"\n{name}|{e.rel}|{label}|".encode())
                    h.update(_file_sha256(self.path / e.rel, view))
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def info(self) -> DataInfo:
        return DataInfo(
            name=registered_name(self), kind="image", shape=(self.channels, self.size, self.size),
            num_classes=len(self.classes) or None, feature_extractor="inception-v3-compat",
            fingerprint=self.fingerprint(), levels=256,  # decoded to uint8, divided by 255
            extra={"path": str(self.path), "classes": self.classes,
                   "files": len(self._entries), "skipped": self.skipped},
        )


@hookimpl
def register_datasets(register):
    register("image-folder", ImageFolder)
