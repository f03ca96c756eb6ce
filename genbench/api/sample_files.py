"""Sample sets made elsewhere, read in slices: a folder of images, a zip of them, ``.npz`` /
``.npy`` arrays (the ADM/EDM ``arr_0`` convention) and ``.csv`` vectors.

:func:`open_sample_set` detects the format from the path, checks the set cheaply (image
headers and PIL's ``verify()``, array metadata, the value range of arrays chunk by chunk) and
describes it in a :class:`SampleSetInfo`; :meth:`SampleSet.read` then decodes items
``[start, stop)`` only, so a set larger than memory is never loaded whole. Every bad input
raises :class:`SampleSetError` naming the file and what to do.

Arrays: ``(N, H, W, C)`` or ``(N, C, H, W)`` images with ``C`` 1 or 3 (the channel axis is
the one of size 1 or 3; when both axes are, uint8 is NHWC as ADM writes it and float is
NCHW), ``(N, H, W)`` grayscale, ``(N, D)`` vectors; uint8 in 0..255 or float in [0, 1].
Image files: gray and colour files in one set make every item RGB; RGBA and palette images
become RGB; 16-bit grayscale PNGs are read without clipping (``read`` divides by 65535).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from functools import partial
from typing import Callable

import numpy as np
import torch

from genbench.api.errors import ConfigError
from genbench.api.paths import sha256_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
#: File suffix -> format name; a folder is ``"folder"``.
FILE_FORMATS = {".zip": "zip", ".npz": "npz", ".npy": "npy", ".csv": "csv"}
#: The file suffixes a sample set may have (a folder of images is one too): what a
#: parameter naming one declares, ``InputFile(SAMPLE_FILE_SUFFIXES, folders=True)``.
SAMPLE_FILE_SUFFIXES = tuple(FILE_FORMATS)
SUPPORTED = (f"a folder of images ({' '.join(IMAGE_SUFFIXES)}), a .zip of images, "
             ".npz, .npy or .csv")
#: How far float images may leave [0, 1] (rounding) before they are refused.
UNIT_TOLERANCE = 1e-6
_CHUNK_BYTES = 16 << 20  # bytes scanned at a time when an array's value range is checked
# 16-bit grayscale PNGs open in these modes; PIL's convert("L") would clip them at 255.
_HIGH_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
_GRAY_MODES = {"1", "L", "LA", "La"} | _HIGH_BIT_MODES


class SampleSetError(ConfigError):
    """A sample set that cannot be read as it is; the message names the file and what to do."""


@dataclass(frozen=True)
class SampleSetInfo:
    """What a sample set is, recorded as the provenance of its scores.

    ``shape`` is one item's: ``(C, H, W)`` for images, ``(D,)`` for vectors. ``dtype`` is
    the stored one (``"uint8"``, ``"uint16"`` for 16-bit PNGs, or a float name such as
    ``"float32"``); ``scale`` says how it maps to [0, 1]: ``"uint8"`` (0..255), ``"uint16"``
    (0..65535, 16-bit PNGs), ``"unit"`` (already 0..1) or ``"none"`` (vectors, read as
    stored). ``value_range`` is the (min, max) found in an array, in the stored scale; image
    files are not decoded to find it, so theirs is the range of their format, (0, 255) or
    (0, 65535). ``sha256`` is :func:`content_sha256` of the path.
    """

    path: str
    format: str
    kind: str
    count: int
    shape: tuple[int, ...]
    dtype: str
    value_range: tuple[float, float]
    scale: str
    sha256: str

    def to_dict(self) -> dict:
        """The fields as JSON-able values (tuples become lists)."""
        return {"path": self.path, "format": self.format, "kind": self.kind,
                "count": self.count, "shape": list(self.shape), "dtype": self.dtype,
                "value_range": [float(v) for v in self.value_range], "scale": self.scale,
                "sha256": self.sha256}


def _is_hidden(relative: str) -> bool:
    return any(part.startswith(".") for part in relative.split("/"))


def _is_image_name(relative: str) -> bool:
    return relative.lower().endswith(IMAGE_SUFFIXES) and not _is_hidden(relative)


def _folder_images(folder: Path) -> list[str]:
    """Relative paths (``/``-separated) of the image files under ``folder``, hidden files and
    folders left out, sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel_root = Path(root).relative_to(folder).as_posix()
        for name in files:
            relative = name if rel_root == "." else f"{rel_root}/{name}"
            if _is_image_name(relative):
                found.append(relative)
    return sorted(found)


def content_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a sample set's content: of a file's bytes, or, for a folder, over the
    sorted (relative path, file sha256) of every image file in it (so renaming a file
    changes it, and an identical copy elsewhere has the same one). File hashes are
    remembered per path, size and mtime within the process."""
    p = Path(path).expanduser()
    if not p.exists():
        raise SampleSetError(f"sample set {p} does not exist")
    if not p.is_dir():
        return sha256_file(p)
    h = hashlib.sha256()
    for relative in _folder_images(p):
        h.update(f"{relative}\0{sha256_file(p / relative)}\n".encode())
    return h.hexdigest()


# ---- image files (folder or zip) --------------------------------------------------------

class _ImageFiles:
    """Image files, checked at open (header and ``verify()``) and decoded per item."""

    def __init__(self, where: Path, names: list[str], opener: Callable[[str], io.BytesIO | Path]):
        from PIL import Image

        self.where, self.names, self.opener = where, names, opener
        first: tuple[str, tuple[int, int]] | None = None
        depths: dict[bool, str] = {}
        colour = False
        for name in names:
            try:
                with Image.open(opener(name)) as image:
                    size, mode = image.size, image.mode
                    image.verify()
            except Exception as exc:  # PIL raises many types for undecodable data
                raise SampleSetError(
                    f"{self._label(name)} is not a readable image ({type(exc).__name__}: "
                    f"{exc}); fix or remove the file") from None
            if first is None:
                first = (name, size)
            elif size != first[1]:
                raise SampleSetError(
                    f"images of different sizes in {where}: {first[0]} is "
                    f"{first[1][0]}x{first[1][1]} and {name} is {size[0]}x{size[1]} "
                    "(width x height); every sample must have the same size")
            depths.setdefault(mode in _HIGH_BIT_MODES, name)
            colour = colour or mode not in _GRAY_MODES
        if len(depths) == 2:
            raise SampleSetError(
                f"16-bit and 8-bit images mixed in {where}: {depths[True]} is 16-bit, "
                f"{depths[False]} is 8-bit; save them all with one bit depth")
        self.high_bit = True in depths
        if self.high_bit and colour:
            raise SampleSetError(
                f"16-bit grayscale images mixed with colour images in {where} "
                f"({depths[True]} is 16-bit); save them all as 8-bit")
        width, height = first[1]
        self.channels = 3 if colour else 1
        self.shape = (self.channels, height, width)

    def _label(self, name: str) -> str:
        return str(self.where / name) if self.where.is_dir() else f"{name} in {self.where}"

    def decode(self, index: int) -> np.ndarray:
        """Item ``index`` as a ``(C, H, W)`` uint8 array (uint16 for 16-bit PNGs)."""
        from PIL import Image

        name = self.names[index]
        try:
            with Image.open(self.opener(name)) as image:
                if self.high_bit:
                    array = np.asarray(image).astype(np.int64)
                    if array.min() < 0 or array.max() > 65535:
                        raise ValueError(f"values {array.min()}..{array.max()} are not 16-bit")
                    array = array.astype(np.uint16)
                else:
                    array = np.asarray(image.convert("RGB" if self.channels == 3 else "L"),
                                       dtype=np.uint8)
        except Exception as exc:  # PIL raises many types for undecodable data
            raise SampleSetError(f"could not decode {self._label(name)} ({type(exc).__name__}: "
                                 f"{exc}); fix or remove the file") from None
        array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
        if array.shape != self.shape:
            raise SampleSetError(
                f"{self._label(name)} changed since the sample set was opened: its shape is "
                f"{array.shape}, not {self.shape}; open the sample set again")
        return array

    def stored(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, *self.shape), np.uint16 if self.high_bit else np.uint8)
        for i in range(start, stop):
            out[i - start] = self.decode(i)
        return out


def _open_folder(folder: Path) -> _ImageFiles:
    names = _folder_images(folder)
    if not names:
        raise SampleSetError(f"the folder {folder} holds no images ({' '.join(IMAGE_SUFFIXES)}; "
                             "hidden files are left out); pass the folder the samples are in")
    return _ImageFiles(folder, names, partial(Path.joinpath, folder))


class _ZipOpener:
    """Reads members of one zip. Each process opens its own handle (after a pickle or a
    fork), since processes sharing one file offset would read each other's positions."""

    def __init__(self, path: Path):
        self.path, self._zip, self._pid = path, None, None

    def __getstate__(self):
        return {"path": self.path, "_zip": None, "_pid": None}

    @property
    def zip(self) -> zipfile.ZipFile:
        if self._zip is None or self._pid != os.getpid():
            self._zip, self._pid = zipfile.ZipFile(self.path), os.getpid()
        return self._zip

    def __call__(self, name: str) -> io.BytesIO:
        return io.BytesIO(self.zip.read(name))


def _open_zip(path: Path) -> _ImageFiles:
    opener = _ZipOpener(path)
    try:
        members = opener.zip.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise SampleSetError(f"{path} is not a readable zip file ({exc})") from None
    names = sorted(m.filename for m in members if not m.is_dir() and _is_image_name(m.filename))
    if not names:
        raise SampleSetError(f"the zip {path} holds no images ({' '.join(IMAGE_SUFFIXES)}; "
                             "hidden files are left out)")
    return _ImageFiles(path, names, opener)


# ---- arrays (npy, npz, csv) -------------------------------------------------------------

def _npy_header(fp, label: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, header length) of the ``.npy`` data at ``fp``."""
    fmt = np.lib.format
    try:
        start = fp.tell()
        version = fmt.read_magic(fp)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read(fp)
        return tuple(shape), fortran, dtype, fp.tell() - start
    except (ValueError, OSError, EOFError) as exc:
        raise SampleSetError(f"{label} is not a readable .npy array ({exc})") from None


class _Rows:
    """Rows ``[start, stop)`` of an array kept on disk, read on demand: plain reads at an
    offset for ``.npy`` and uncompressed ``.npz`` members (not a memory map, whose touched
    pages would count in the process's resident memory), a memory map when the array is in
    Fortran order (rows are not contiguous), a seek in the stream for compressed members."""

    def __init__(self, path: Path, shape, dtype: np.dtype, fortran: bool, *,
                 offset: int | None = None, member: str | None = None, data_start: int = 0):
        self.path, self.shape, self.dtype, self.fortran = path, tuple(shape), dtype, fortran
        self.offset, self.member, self.data_start = offset, member, data_start
        self.row_bytes = dtype.itemsize * math.prod(self.shape[1:])
        self._array = self._zip = self._stream = self._pid = None

    def __getstate__(self):
        return {**self.__dict__, "_array": None, "_zip": None, "_stream": None, "_pid": None}

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(self.shape[0])
        if self.offset is not None and self.fortran:
            if self._array is None:
                self._array = np.memmap(self.path, self.dtype, "r", self.offset, self.shape, "F")
            return np.array(self._array[start:stop])
        if self.offset is not None:
            out = np.empty((stop - start, *self.shape[1:]), self.dtype)
            with open(self.path, "rb") as f:  # opened per read: safe across fork and pickle
                f.seek(self.offset + start * self.row_bytes)
                got = f.readinto(out.reshape(-1).view(np.uint8))
            if got != out.nbytes:
                raise SampleSetError(f"{self.path} is truncated: it ends before item "
                                     f"{stop - 1} of its shape {self.shape}; save it again")
            return out
        if self._stream is None or self._pid != os.getpid():  # one handle per process
            self._zip, self._pid = zipfile.ZipFile(self.path), os.getpid()
            self._stream = self._zip.open(self.member)
        self._stream.seek(self.data_start + start * self.row_bytes)
        data = self._stream.read((stop - start) * self.row_bytes)
        if len(data) != (stop - start) * self.row_bytes:
            raise SampleSetError(f"{self.member} in {self.path} is truncated: it ends before "
                                 f"item {stop - 1} of its shape {self.shape}; save it again")
        return np.frombuffer(data, self.dtype).reshape(stop - start, *self.shape[1:]).copy()


def _load_npy(path: Path):
    with open(path, "rb") as f:
        shape, fortran, dtype, header = _npy_header(f, str(path))
    _refuse_objects(dtype, str(path))
    _check_size(path.stat().st_size - header, shape, dtype, str(path))
    return _Rows(path, shape, dtype, fortran, offset=header)


def _check_size(available: int, shape, dtype: np.dtype, label: str) -> None:
    needed = math.prod(shape) * dtype.itemsize
    if available < needed:
        raise SampleSetError(f"{label} is truncated: its header declares shape {tuple(shape)} "
                             f"({needed} bytes of data) but only {available} bytes follow; "
                             "save it again")


def _refuse_objects(dtype: np.dtype, label: str) -> None:
    if dtype.hasobject:
        raise SampleSetError(f"{label} holds pickled Python objects (dtype {dtype}), which "
                             "genbench never loads; save a numeric array (np.save / np.savez "
                             "of a uint8 or float array)")


def _load_npz(path: Path):
    try:
        with zipfile.ZipFile(path) as zf:
            members = {m.filename[:-4]: m for m in zf.infolist() if m.filename.endswith(".npy")}
            if not members:
                raise SampleSetError(f"{path} holds no arrays; save the samples with "
                                     "np.savez(path, samples)")
            if "arr_0" in members:
                key = "arr_0"
            elif len(members) == 1:
                key = next(iter(members))
            else:
                raise SampleSetError(
                    f"{path} holds several arrays ({', '.join(sorted(members))}) and none is "
                    "named arr_0; save the samples as arr_0 (np.savez(path, samples)) or alone")
            member = members[key]
            label = f"array {key!r} in {path}"
            with zf.open(member) as fp:
                shape, fortran, dtype, header = _npy_header(fp, label)
                _refuse_objects(dtype, label)
                if member.compress_type == zipfile.ZIP_STORED:
                    _check_size(member.file_size - header, shape, dtype, label)
                    with open(path, "rb") as raw:  # the data lies as is after the local header
                        raw.seek(member.header_offset)
                        local = struct.unpack("<4s5H3L2H", raw.read(30))
                    offset = member.header_offset + 30 + local[9] + local[10] + header
                    return _Rows(path, shape, dtype, fortran, offset=offset), label
                if fortran:  # rows are not contiguous in the stream: read it whole
                    fp.seek(0)
                    return np.lib.format.read_array(fp, allow_pickle=False), label
                return _Rows(path, shape, dtype, fortran, member=member.filename,
                             data_start=header), label
    except (zipfile.BadZipFile, OSError) as exc:
        raise SampleSetError(f"{path} is not a readable .npz file ({exc})") from None


def _load_csv(path: Path) -> np.ndarray:
    rows: list[list[float]] = []
    with open(path, newline="") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            cells = [c.strip() for c in row]
            if not any(cells):
                continue
            try:
                values = [float(c) for c in cells]
            except ValueError:
                if not rows and line == 1:
                    continue  # a header
                raise SampleSetError(f"{path}, line {line}: {row} is not a row of numbers; "
                                     "a .csv sample set holds one vector per row (a header "
                                     "is allowed on the first line)") from None
            if rows and len(values) != len(rows[0]):
                raise SampleSetError(f"{path}, line {line}: {len(values)} values, but the "
                                     f"first row has {len(rows[0])}; every vector needs the "
                                     "same length")
            rows.append(values)
    if not rows:
        raise SampleSetError(f"{path} holds no rows of numbers; write one vector per row")
    return np.asarray(rows, dtype=np.float64)


def _layout(shape: tuple[int, ...], dtype: np.dtype, label: str) -> str:
    """``"NCHW"``, ``"NHWC"``, ``"NHW"`` (grayscale) or ``"ND"`` (vectors)."""
    if len(shape) == 2:
        return "ND"
    if len(shape) == 3:
        return "NHW"
    if len(shape) != 4:
        raise SampleSetError(
            f"{label} has shape {shape}; a sample array is (N, H, W, C) or (N, C, H, W) "
            "images with C = 1 or 3, (N, H, W) grayscale images or (N, D) vectors"
            + ("; for 1-D vectors reshape it to (N, 1)" if len(shape) == 1 else ""))
    first, last = shape[1] in (1, 3), shape[3] in (1, 3)
    if first and last:
        return "NHWC" if dtype == np.uint8 else "NCHW"
    if first or last:
        return "NCHW" if first else "NHWC"
    raise SampleSetError(
        f"{label} has shape {shape}: neither axis 1 (NCHW) nor axis 3 (NHWC) is a channel axis "
        "of size 1 (gray) or 3 (RGB); save images with 1 or 3 channels (drop an alpha channel)")


def _scan(rows, dtype: np.dtype) -> tuple[float, float, int]:
    """(min, max, count of NaN/inf) over every value, read chunk by chunk."""
    step = max(1, _CHUNK_BYTES // max(1, dtype.itemsize * math.prod(rows.shape[1:])))
    low, high, bad = math.inf, -math.inf, 0
    for start in range(0, len(rows), step):
        chunk = rows[start:start + step]
        if dtype.kind == "f":
            finite = np.isfinite(chunk)
            bad += int(chunk.size - np.count_nonzero(finite))
            if bad:
                continue
        low, high = min(low, float(chunk.min())), max(high, float(chunk.max()))
    return low, high, bad


def _unit_range_hint(low: float, high: float) -> str:
    if low >= -1 - UNIT_TOLERANCE and high <= 1 + UNIT_TOLERANCE:
        return "they look like [-1, 1]: save (x + 1) / 2"
    if low >= -UNIT_TOLERANCE and high <= 255 + UNIT_TOLERANCE:
        return "they look like [0, 255]: save them as uint8 (x.round().astype(np.uint8))"
    return "scale them to [0, 1], or save uint8 images in 0..255"


class _ArraySamples:
    """An array of samples: images in a known layout or vectors, read in rows."""

    def __init__(self, rows, label: str):
        self.rows, self.label = rows, label
        shape, dtype = tuple(rows.shape), rows.dtype
        if 0 in shape:
            raise SampleSetError(f"{label} is empty (shape {shape}); it needs at least one sample")
        self.layout = _layout(shape, dtype, label)
        self.kind = "vector" if self.layout == "ND" else "image"
        allowed = "iuf" if self.kind == "vector" else "f"
        if dtype != np.uint8 and (dtype.kind not in allowed or dtype.itemsize > 8):
            what = ("numbers (integers or floats)" if self.kind == "vector" else
                    "uint8 in 0..255 or float in [0, 1]")
            raise SampleSetError(f"{label} has dtype {dtype}; {self.kind} samples must be "
                                 f"{what}" + ("" if self.kind == "vector" else
                                              " (x.astype(np.uint8) for 0..255 integers)"))
        if self.layout == "ND":
            self.shape = (shape[1],)
        elif self.layout == "NHW":
            self.shape = (1, shape[1], shape[2])
        elif self.layout == "NCHW":
            self.shape = shape[1:]
        else:
            self.shape = (shape[3], shape[1], shape[2])
        low, high, bad = _scan(rows, dtype)
        if bad:
            raise SampleSetError(f"{label} holds {bad} NaN or infinite values; every value must "
                                 "be a finite number")
        if self.kind == "image" and dtype.kind == "f" and (
                low < -UNIT_TOLERANCE or high > 1 + UNIT_TOLERANCE):
            raise SampleSetError(f"{label}: float images must lie in [0, 1], but the values run "
                                 f"from {low:g} to {high:g}; {_unit_range_hint(low, high)}")
        self.dtype, self.value_range = dtype, (low, high)
        self.scale = "none" if self.kind == "vector" else "uint8" if dtype == np.uint8 else "unit"

    def stored(self, start: int, stop: int) -> np.ndarray:
        """Items ``[start, stop)`` in the stored dtype, ``(n, C, H, W)`` or ``(n, D)``."""
        x = np.asarray(self.rows[start:stop])
        if self.layout == "NHW":
            x = x[:, None]
        elif self.layout == "NHWC":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x)


# ---- the public reader ------------------------------------------------------------------

class SampleSet:
    """A sample set on disk: checked when opened, items decoded by :meth:`read` in slices."""

    def __init__(self, path: str | os.PathLike):
        p = Path(path).expanduser().absolute()
        if not p.exists():
            raise SampleSetError(f"sample set {p} does not exist; pass {SUPPORTED}")
        p = p.resolve()
        if p.is_dir():
            fmt = "folder"
        else:
            fmt = FILE_FORMATS.get(p.suffix.lower())
            if fmt is None:
                raise SampleSetError(f"cannot read {p} as a sample set: unknown extension "
                                     f"{p.suffix or '(none)'!r}; supported: {SUPPORTED}")
        if fmt in ("folder", "zip"):
            source = _open_folder(p) if fmt == "folder" else _open_zip(p)
            count, shape, kind = len(source.names), source.shape, "image"
            dtype, scale = ("uint16", "uint16") if source.high_bit else ("uint8", "uint8")
            value_range = (0.0, 65535.0 if source.high_bit else 255.0)
        else:
            if fmt == "npy":
                rows, label = _load_npy(p), str(p)
            elif fmt == "npz":
                rows, label = _load_npz(p)
            else:
                rows, label = _load_csv(p), str(p)
            source = _ArraySamples(rows, label)
            count, shape, kind = len(rows), source.shape, source.kind
            dtype, scale, value_range = source.dtype.name, source.scale, source.value_range
        self._source = source
        self.info = SampleSetInfo(
            path=str(p), format=fmt, kind=kind, count=count, shape=tuple(int(s) for s in shape),
            dtype=dtype, value_range=(float(value_range[0]), float(value_range[1])), scale=scale,
            sha256=content_sha256(p))

    def __len__(self) -> int:
        return self.info.count

    def __repr__(self) -> str:
        i = self.info
        return f"SampleSet({i.path!r}: {i.count} {i.kind}s of shape {i.shape}, {i.format})"

    def _check(self, start: int, stop: int) -> None:
        n = self.info.count
        if not 0 <= start <= stop <= n:
            raise SampleSetError(f"{self.info.path} has {n} samples (items 0 to {n - 1}); "
                                 f"items [{start}, {stop}) were asked for")

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Items ``[start, stop)`` as float32: images ``(n, C, H, W)`` in [0, 1] (uint8 / 255,
        16-bit / 65535), vectors ``(n, D)`` as stored."""
        self._check(start, stop)
        x = self._source.stored(start, stop)
        if self.info.scale == "uint8":
            return torch.from_numpy(x).float().div_(255.0)
        x = torch.from_numpy(x.astype(np.float32))  # native byte order, any stored dtype
        if self.info.scale == "uint16":
            return x.div_(65535.0)
        return x.clamp_(0.0, 1.0) if self.info.scale == "unit" else x

    def read_uint8(self, start: int, stop: int) -> torch.Tensor:
        """Images ``[start, stop)`` as uint8 ``(n, C, H, W)``: uint8 data as stored, float
        data as ``round(x * 255)``, 16-bit data as ``round(x / 257)``."""
        if self.info.kind != "image":
            raise SampleSetError(f"{self.info.path} holds vectors, which have no uint8 form; "
                                 "use read()")
        self._check(start, stop)
        x = self._source.stored(start, stop)
        if self.info.scale == "uint8":
            return torch.from_numpy(x)
        if self.info.scale == "uint16":
            return torch.from_numpy(((x.astype(np.int32) + 128) // 257).astype(np.uint8))
        x = torch.from_numpy(x.astype(np.float32))
        return (x * 255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)


#: Sample sets opened in this process, by path and the state of their files (see
#: :func:`_state`): a run opens one set several times (checks, the model, the dataset).
_OPENED: dict[tuple, SampleSet] = {}


def _state(path: Path) -> tuple | None:
    """What changes when the set at ``path`` changes: every file's name, size, mtime and
    ctime (a folder's, recursively), or ``None`` when there is nothing to open."""
    try:
        if path.is_dir():
            files = []
            for root, _, names in os.walk(path):
                for name in names:
                    st = os.stat(os.path.join(root, name))
                    files.append((os.path.join(root, name), st.st_size, st.st_mtime_ns,
                                  st.st_ctime_ns))
            return (str(path), tuple(sorted(files)))
        st = os.stat(path)
        return (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    except OSError:
        return None


def open_sample_set(path: str | os.PathLike) -> SampleSet:
    """Open and check the sample set at ``path`` (a folder of images, .zip, .npz, .npy or
    .csv); raise :class:`SampleSetError` naming the file when it cannot be read. A set
    opened before in this process, whose files have not changed since, is not checked and
    hashed again."""
    p = Path(path).expanduser().absolute()
    key = _state(p)
    if key is None:
        return SampleSet(path)
    if key not in _OPENED:
        _OPENED[key] = SampleSet(path)
    return _OPENED[key]
