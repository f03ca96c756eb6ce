"""The on-disk store of an evaluation's samples, written batch by batch and read in slices.

An evaluation writes its samples here as they are drawn, so memory does not grow with the
sample count: images quantised once to uint8 (``round(x * 255)`` clamped to [0, 255], the
input every image metric's protocol takes anyway), vectors as float32. The store is a folder
of ``.npy`` shards (``shard-00000.npy``, ..., each ``(n_i, *shape)``, at most
:data:`SHARD_BYTES` each) and a ``manifest.json`` written last, so a folder without a
manifest is an unfinished store. An evaluation drawn by several workers keeps one store per
worker in sub-folders and a manifest naming all their shards (:func:`merge_sample_stores`). Plugins read one with :func:`open_sample_store`.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from genbench.api.errors import GenbenchError

__all__ = ["MANIFEST", "SHARD_BYTES", "STORE_FORMAT", "SampleStore", "SampleStoreError",
           "SampleStoreWriter", "merge_sample_stores", "open_sample_store", "quantise_images"]

MANIFEST = "manifest.json"
#: Bumped when the layout of a store changes.
STORE_FORMAT = 1
#: The largest shard, in bytes (the writer buffers at most one shard in memory).
SHARD_BYTES = 64 << 20


class SampleStoreError(GenbenchError, ValueError):
    """A sample store folder is missing, unfinished or damaged."""


def quantise_images(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] as uint8: ``round(x * 255)`` clamped to [0, 255]."""
    return (x.detach().float() * 255.0).round().clamp(0.0, 255.0).to(torch.uint8)


@dataclass(frozen=True)
class SampleStore:
    """A finished store: ``len(store)`` samples of ``shape`` in shards of ``folder``."""

    folder: Path
    kind: str
    shape: tuple[int, ...]
    dtype: str
    shards: tuple[tuple[str, int], ...]

    def __len__(self) -> int:
        return sum(n for _, n in self.shards)

    def _arrays(self) -> Iterator[tuple[int, np.ndarray]]:
        start = 0
        for name, n in self.shards:
            yield start, np.load(self.folder / name, mmap_mode="r")
            start += n

    def read_stored(self, start: int, stop: int) -> torch.Tensor:
        """Samples ``start..stop-1`` as stored (uint8 images, float32 vectors)."""
        if not 0 <= start <= stop <= len(self):
            raise SampleStoreError(f"sample store {self.folder} holds {len(self)} samples; "
                                   f"asked for {start}..{stop - 1}")
        parts = []
        for first, arr in self._arrays():
            lo, hi = max(start, first), min(stop, first + len(arr))
            if lo < hi:
                parts.append(np.asarray(arr[lo - first:hi - first]))
        if not parts:
            return torch.empty((0, *self.shape), dtype=getattr(torch, self.dtype))
        return torch.from_numpy(np.concatenate(parts) if len(parts) > 1 else parts[0].copy())

    def read(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Samples ``start..stop-1`` as float32 in data space (images in [0, 1])."""
        x = self.read_stored(start, len(self) if stop is None else stop)
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()

    def batches(self, batch_size: int, stored: bool = True) -> Iterator[torch.Tensor]:
        """The samples in order, ``batch_size`` at a time (as stored, or as :meth:`read` gives)."""
        read = self.read_stored if stored else self.read
        for start in range(0, len(self), max(1, int(batch_size))):
            yield read(start, min(start + batch_size, len(self)))


def _write_manifest(folder: Path, kind: str, shape: tuple[int, ...], dtype: str,
                    shards: list[tuple[str, int]]) -> None:
    manifest = {"store_format": STORE_FORMAT, "kind": kind, "shape": list(shape), "dtype": dtype,
                "shards": [list(s) for s in shards], "count": sum(n for _, n in shards)}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, folder / MANIFEST)


def merge_sample_stores(folder: str | os.PathLike, parts: list[str | os.PathLike]) -> SampleStore:
    """One store in ``folder`` made of the finished stores ``parts`` (sub-folders of it), in
    order: a manifest naming their shards, nothing copied."""
    folder = Path(folder)
    stores = [open_sample_store(p) for p in parts]
    if not stores:
        raise SampleStoreError(f"no sample stores to merge into {folder}")
    first = stores[0]
    shards = []
    for store in stores:
        if (store.kind, store.shape, store.dtype) != (first.kind, first.shape, first.dtype):
            raise SampleStoreError(f"sample store {store.folder} holds {store.dtype}{store.shape} "
                                   f"{store.kind}s; {first.folder} holds {first.dtype}{first.shape}")
        where = store.folder.resolve().relative_to(folder.resolve())
        shards += [(str(where / name), n) for name, n in store.shards]
    _write_manifest(folder, first.kind, first.shape, first.dtype, shards)
    return open_sample_store(folder)


class SampleStoreWriter:
    """Writes a store into ``folder`` (emptied of an earlier store first), batch by batch."""

    def __init__(self, folder: str | os.PathLike, *, shape: tuple[int, ...], kind: str):
        self.folder, self.shape, self.kind = Path(folder), tuple(shape), kind
        self.dtype = np.uint8 if kind == "image" else np.float32
        item_bytes = int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize
        self.shard_items = max(1, SHARD_BYTES // max(1, item_bytes))
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        self._pending: list[np.ndarray] = []
        self._pending_n = 0
        self._shards: list[tuple[str, int]] = []

    def append(self, x: torch.Tensor) -> None:
        """Add a batch ``(n, *shape)`` of float samples (images in [0, 1])."""
        x = x.detach().cpu().reshape(len(x), *self.shape)
        x = quantise_images(x) if self.kind == "image" else x.float()
        arr = np.array(x.numpy(), copy=True)  # never a view of the model's own buffer
        while len(arr):
            take = min(len(arr), self.shard_items - self._pending_n)
            self._pending.append(arr[:take])
            self._pending_n += take
            arr = arr[take:]
            if self._pending_n == self.shard_items:
                self._flush()

    def _flush(self) -> None:
        if not self._pending_n:
            return
        name = f"shard-{len(self._shards):05d}.npy"
        np.save(self.folder / name, np.concatenate(self._pending))
        self._shards.append((name, self._pending_n))
        self._pending, self._pending_n = [], 0

    def close(self) -> SampleStore:
        """Write the last shard and the manifest; the finished store."""
        self._flush()
        _write_manifest(self.folder, self.kind, self.shape, np.dtype(self.dtype).name, self._shards)
        return open_sample_store(self.folder)


def open_sample_store(folder: str | os.PathLike) -> SampleStore:
    """The finished store in ``folder`` (an evaluation's ``samples/``); a
    :class:`SampleStoreError` if it has no manifest or a shard is missing or the wrong size."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise SampleStoreError(f"{folder} is not a finished sample store (no {MANIFEST}); "
                               "rerun the evaluation that writes it") from None
    except (OSError, ValueError) as exc:
        raise SampleStoreError(f"cannot read {folder / MANIFEST}: {exc}") from None
    if manifest.get("store_format") != STORE_FORMAT:
        raise SampleStoreError(f"sample store {folder} has format {manifest.get('store_format')!r}; "
                               f"this genbench reads format {STORE_FORMAT}: rerun the evaluation")
    store = SampleStore(folder, manifest["kind"], tuple(manifest["shape"]), manifest["dtype"],
                        tuple((str(name), int(n)) for name, n in manifest["shards"]))
    for name, n in store.shards:
        path = folder / name
        try:
            arr = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise SampleStoreError(f"sample store {folder}: cannot read shard {name}: {exc}") from None
        if arr.shape != (n, *store.shape) or arr.dtype.name != store.dtype:
            raise SampleStoreError(f"sample store {folder}: shard {name} holds {arr.dtype}{arr.shape}, "
                                   f"the manifest says {store.dtype}{(n, *store.shape)}")
    return store
