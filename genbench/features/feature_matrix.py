"""A feature matrix kept in a file, read a block of rows at a time.

The generated samples' features grow with the sample count (Inception's 2,048 pooled features
and 1,008 logits are 12 KB a sample: 0.6 GB at 50,000). :class:`FeatureMatrixWriter` writes
them batch by batch as they are extracted into a standard ``.npy`` file (header written by
:mod:`numpy.lib.format`, rows appended with plain writes), and :class:`FeatureMatrix` reads
rows back as tensors: ``m[a:b]``, ``m[indices]``, ``m[i]``, :meth:`~FeatureMatrix.chunks`.
A metric that works on blocks (FID's moments, the Inception Score's splits, KID's subsets)
then holds one block at a time, so its memory does not depend on the sample count.

Rows are read with plain reads (a run of consecutive rows is one read), never through a
memory map: a map counts the pages around every row it touches in the process's resident
memory (numpy's memmap taking 3,000 random rows of a 400 MB matrix grew it by 0.4 GB), where
a read copies only the rows asked for. Writes are plain writes too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

__all__ = ["FeatureMatrix", "FeatureMatrixWriter"]

class FeatureMatrix:
    """An ``(N, D)`` matrix of features in a ``.npy`` file; indexing returns CPU tensors.

    Supports what metrics do with an in-memory tensor of features: ``len(m)``, ``m.shape``,
    ``m.dtype`` (a torch dtype), ``m[i]`` (one row), ``m[a:b]`` (a block of rows) and
    ``m[idx]`` (rows by a 1-D integer tensor or array, in that order). :meth:`load` reads it
    whole."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            self._offset = f.tell()
        if fortran or len(shape) != 2:
            raise ValueError(f"{self.path}: not a C-ordered 2-D matrix (shape {shape})")
        self._np_dtype = np.dtype(dtype)
        self.shape = torch.Size(shape)
        self._row_bytes = shape[1] * self._np_dtype.itemsize
        expected = self._offset + shape[0] * shape[1] * self._np_dtype.itemsize
        if self.path.stat().st_size != expected:
            raise ValueError(f"{self.path}: {self.path.stat().st_size} bytes where a {shape[0]}x"
                             f"{shape[1]} {self._np_dtype} matrix takes {expected}: truncated")

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def dtype(self) -> torch.dtype:
        return torch.from_numpy(np.empty(0, self._np_dtype)).dtype

    def __repr__(self) -> str:
        return f"FeatureMatrix({str(self.path)!r}, shape={tuple(self.shape)}, dtype={self._np_dtype})"

    def _read_rows(self, f, start: int, out: np.ndarray) -> None:
        """Rows ``start .. start + len(out) - 1`` into ``out``, by one plain read."""
        f.seek(self._offset + start * self._row_bytes)
        view = memoryview(out.reshape(-1).view(np.uint8))
        done = 0
        while done < len(view):  # one read() returns at most about 2 GiB on Linux
            got = f.readinto(view[done:])
            if not got:
                raise ValueError(f"{self.path}: shorter than its header says")
            done += got

    def _read(self, key) -> np.ndarray:
        n, d = self.shape
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step != 1:
                return self._read(np.arange(start, stop, step))
            out = np.empty((max(0, stop - start), d), self._np_dtype)
            if len(out):
                with open(self.path, "rb", buffering=0) as f:
                    self._read_rows(f, start, out)
            return out
        if np.ndim(key) == 0:
            i = int(key)
            if not -n <= i < n:
                raise IndexError(f"row {i} of a matrix of {n} rows")
            return self._read(slice(i % n, i % n + 1))[0]
        idx = np.asarray(key)
        if idx.ndim != 1 or (len(idx) and not np.issubdtype(idx.dtype, np.integer)):
            raise TypeError("a FeatureMatrix takes a slice, an integer or a 1-D array of "
                            f"integer row indices, got {idx.dtype} of shape {idx.shape}")
        idx = idx.astype(np.int64)
        if not len(idx):
            return np.empty((0, d), self._np_dtype)
        if len(idx) and not (-n <= idx.min() and idx.max() < n):
            raise IndexError(f"row indices outside a matrix of {n} rows")
        idx = idx % max(n, 1)
        rows = np.unique(idx)  # sorted: each run of consecutive rows is one read
        held = np.empty((len(rows), d), self._np_dtype)
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        with open(self.path, "rb", buffering=0) as f:
            for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
                self._read_rows(f, int(rows[lo]), held[lo:hi])
        return held[np.searchsorted(rows, idx)]

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, tuple):
            raise TypeError("a FeatureMatrix is indexed by rows only")
        if isinstance(key, torch.Tensor):
            key = key.cpu().numpy()
        if not isinstance(key, slice) and np.asarray(key).dtype == bool:
            raise TypeError("a FeatureMatrix takes integer row indices, not a mask")
        return torch.from_numpy(self._read(key))

    def chunks(self, rows: int = 4096) -> Iterator[torch.Tensor]:
        """The matrix ``rows`` rows at a time, in order."""
        for i in range(0, len(self), max(1, rows)):
            yield self[i:i + rows]

    def load(self) -> torch.Tensor:
        """The whole matrix as one tensor."""
        return self[:]


class FeatureMatrixWriter:
    """Writes an ``(N, D)`` matrix of ``N`` rows known in advance, block by block, to ``path``.

    :meth:`append` blocks of rows (tensors or arrays, each ``(B, D)``); :meth:`close` checks
    that ``N`` rows came and returns the :class:`FeatureMatrix`. Usable as a context manager
    (the file is removed if the block raises)."""

    def __init__(self, path: str | os.PathLike, rows: int):
        self.path, self.rows = Path(path), int(rows)
        self._file = None
        self._dtype: np.dtype | None = None
        self._dim: int | None = None
        self.written = 0

    def _start(self, block: np.ndarray) -> None:
        self._dtype, self._dim = block.dtype, block.shape[1]
        self._file = open(self.path, "wb")
        header = {"descr": np.lib.format.dtype_to_descr(self._dtype), "fortran_order": False,
                  "shape": (self.rows, self._dim)}
        np.lib.format.write_array_header_2_0(self._file, header)

    def append(self, block) -> None:
        """Append rows ``(B, D)``; every block has the first one's width and dtype."""
        if isinstance(block, torch.Tensor):
            block = block.detach().cpu()
            block = (block.float() if block.dtype == torch.bfloat16 else block).numpy()
        block = np.ascontiguousarray(block)
        if block.ndim != 2:
            raise ValueError(f"feature blocks are (rows, D) matrices, got shape {block.shape}")
        if self._file is None:
            self._start(block)
        elif block.shape[1] != self._dim or block.dtype != self._dtype:
            raise ValueError(f"a block of shape {block.shape} and dtype {block.dtype} after "
                             f"blocks of width {self._dim} and dtype {self._dtype}")
        if self.written + len(block) > self.rows:
            raise ValueError(f"more than the {self.rows} rows declared")
        self._file.write(block.tobytes())
        self.written += len(block)

    def close(self) -> FeatureMatrix:
        """Finish the file: the matrix, readable from now on."""
        if self._file is None:
            raise ValueError(f"no rows were written to {self.path}")
        self._file.close()
        if self.written != self.rows:
            self.path.unlink(missing_ok=True)
            raise ValueError(f"{self.written} rows written where {self.rows} were declared")
        return FeatureMatrix(self.path)

    def abort(self) -> None:
        """Drop the unfinished file."""
        if self._file is not None:
            self._file.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> "FeatureMatrixWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
