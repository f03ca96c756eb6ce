"""EvalContext: what every metric sees. Samples and features are made once and shared."""

from __future__ import annotations

import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import torch

from genbench.api.data import DataInfo, LazySplit
from genbench.api.errors import ConfigError, GenbenchError
from genbench.api.paths import ScratchFolder
from genbench.features.job_features import (JobFeatures, NonFiniteSamplesError,
                                           choose_feature_extractor, skip_reason,
                                           split_item_batches, split_item_count)
from genbench.api.model import GenerativeModel
from genbench.api.noise import SampleNoise, item_seed
from genbench.evaluation.sample_shards import part_features, read_part
from genbench.features.feature_matrix import FeatureMatrix
from genbench.evaluation.sample_store import (SampleStore, SampleStoreError, SampleStoreWriter,
                                              merge_sample_stores)

if TYPE_CHECKING:
    from genbench.registry.manager import Registries


class SampleShapeError(GenbenchError, ValueError):
    """A model's samples are not in the data's layout."""


@dataclass
class EvalContext:
    """The trained model, the real data and lazily generated samples for one job.

    ``train``/``test`` are ``(x, labels or None)`` CPU tensors, or
    :class:`~genbench.api.data.LazySplit` pairs that read the split whole only when a metric
    indexes them (features of a split are extracted batch by batch from the dataset);
    metrics compare against ``test``. The samples are generated on first access (``num_samples`` of them), written
    batch by batch to :attr:`sample_store` (uint8 images, float32 vectors, on disk) and shared
    by every metric; :attr:`samples` reads them whole (when any holds NaN or infinity, every
    access raises :class:`~genbench.features.job_features.NonFiniteSamplesError` instead: see
    :attr:`sample_failure`);
    :attr:`reconstructions` likewise for ``model.reconstruct`` on the test split.
    :meth:`features` gives the features of the samples and of the real splits, per extractor.
    ``registries`` (keyword, required) are the run's: extractors are looked up there.

    Samples are drawn in batches of ``batch_size``: ``model.sample(n, noise)`` with a
    :class:`~genbench.api.noise.SampleNoise` for items ``start..stop-1`` (sample ``i``'s noise
    depends on ``seed`` and ``i`` alone, so the samples do not change with ``batch_size``),
    or, for a model with a fixed, indexed stream of samples
    (:meth:`genbench.GenerativeModel.sample_range`: samples read from files), items
    ``start..stop-1`` batch by batch, so that no batch replays another's.
    """

    model: GenerativeModel
    model_name: str
    data_info: DataInfo
    train: "tuple[torch.Tensor, torch.Tensor | None] | LazySplit"
    test: "tuple[torch.Tensor, torch.Tensor | None] | LazySplit"
    device: torch.device
    seed: int
    num_samples: int
    cache_dir: Path
    feature_extractor: str | None = None
    feature_weights: str | None = None
    batch_size: int = 256
    #: The run's :class:`genbench.registry.manager.Registries` (extractors are looked up there).
    registries: "Registries" = field(kw_only=True)
    #: The sampling settings of this evaluation: keyword-only arguments of ``model.sample``.
    sampling: dict[str, Any] = field(default_factory=dict)
    #: A reference statistics file (``genbench reference build``) whose features stand for
    #: the reference split (``test``), or ``None``: features of the split itself.
    reference_file: str | None = None
    #: The evaluation protocol (:class:`genbench.Protocol`) the row follows, or ``None``:
    #: every value it produces records it (``details["protocol"]``).
    protocol: str | None = None
    #: Where the samples are stored (:mod:`genbench.evaluation.sample_store`); ``None``: a
    #: temporary folder, removed when this context is.
    sample_dir: Path | None = None
    #: The index of the first sample in the job's stream: a shard of an evaluation drawn by
    #: several workers draws items ``first_sample .. first_sample + num_samples - 1``.
    first_sample: int = 0
    #: The row's sample count when this context draws one shard of it (``eval_shards``), else
    #: ``None``.
    shard_of: int | None = None
    #: Finished shards (:mod:`genbench.evaluation.sample_shards`, folders inside
    #: ``sample_dir``) to merge instead of drawing the samples: their features are read too.
    sample_parts: tuple[Path, ...] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    #: How the samples' noise was drawn: ``"per sample"`` (:class:`~genbench.api.noise.SampleNoise`,
    #: independent of the batch size) or ``"one generator"`` (a model that passes the
    #: generator to torch itself).
    noise: str = field(default="per sample", init=False)
    _samples: torch.Tensor | None = None
    _store: SampleStore | None = field(default=None, init=False, repr=False)
    #: Samples holding NaN or infinity (0 unless :attr:`sample_failure` says why).
    nonfinite_count: int = field(default=0, init=False)
    _tmp: Any = field(default=None, init=False, repr=False)
    _sample_failure: str | None = field(default=None, init=False, repr=False)
    _reconstructions: torch.Tensor | None = None
    _features: dict[str, JobFeatures] = field(default_factory=dict, init=False, repr=False)

    def generator(self, offset: int = 0) -> torch.Generator:
        """A fresh CPU generator seeded from the job seed (+ ``offset`` for independent streams)."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + offset)

    @property
    def sample_store(self) -> SampleStore:
        """The job's samples on disk (:mod:`genbench.evaluation.sample_store`), generated on
        first access batch by batch: uint8 images, float32 vectors.

        Raises :class:`~genbench.features.job_features.NonFiniteSamplesError` (on this and every
        later access) when any sample holds NaN or infinity: no sample-based number of such a
        model means anything."""
        if self._store is None and self._sample_failure is None:
            self._timed("sample_seconds", self._generate)
        if self._sample_failure is not None:
            raise NonFiniteSamplesError(self._sample_failure)
        return self._store

    @property
    def samples(self) -> torch.Tensor:
        """All of the job's samples ``(num_samples, *shape)`` as float32 (images in [0, 1],
        as stored: quantised to 1/255), read from :attr:`sample_store` on first access.

        Holds every sample in memory: metrics that can should read :attr:`sample_store` in
        batches (``ctx.sample_store.batches(n)``) or features (:meth:`features`) instead."""
        if self._samples is None:
            self._samples = self.sample_store.read()
        return self._samples

    @property
    def sample_failure(self) -> str | None:
        """Why :attr:`samples` cannot be used (they hold NaN or infinity), or ``None``;
        generates them on first use."""
        try:
            self.sample_store
        except NonFiniteSamplesError:
            pass
        return self._sample_failure

    @property
    def reconstructions(self) -> torch.Tensor:
        if self._reconstructions is None:
            self._reconstructions = self._timed("reconstruct_seconds", self._reconstruct)
        return self._reconstructions

    @property
    def extractor_name(self) -> str | None:
        """The run's feature extractor: ``feature_extractor`` (spec / ``--extractor``), else the
        dataset's default, else ``raw`` for vector data, else ``None``."""
        return choose_feature_extractor(self.data_info, self.feature_extractor)

    def features(self, extractor: str | None = None) -> JobFeatures:
        """The features of this job for ``extractor`` (default: :attr:`extractor_name`).

        Built once per job and extractor and kept here, so every metric shares one extractor
        load, one pass over :attr:`samples` and one pass (or one cache read) per real split;
        see :class:`genbench.features.job_features.JobFeatures` for what it offers. ``feature_weights``
        apply to the run's extractor only. Raises :class:`~genbench.api.errors.ConfigError` when no
        extractor is chosen or it does not apply to the data, and
        :class:`~genbench.api.errors.UnknownNameError` for an unregistered name; call
        :func:`genbench.features.job_features.skip_reason` first to turn those into a recorded skip.
        """
        name = extractor or self.extractor_name
        if name is None:
            raise ConfigError(skip_reason(self, "fid"))
        if name not in self._features:
            self._features[name] = JobFeatures(self, name)
        return self._features[name]

    def split_size(self, split: str) -> int:
        """Items in the real ``split`` (``"train"`` or ``"test"``), without reading it whole."""
        return split_item_count(getattr(self, split))

    def split_batches(self, split: str, batch_size: int | None = None,
                      indices: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
        """The real ``split``'s items (those at ``indices``, else all), ``batch_size`` (default
        :attr:`batch_size`) at a time, as float tensors, without reading it whole."""
        return split_item_batches(getattr(self, split), batch_size or self.batch_size, indices)

    def _timed(self, key: str, fn):
        t0 = time.perf_counter()
        out = fn()
        self.timings[key] = time.perf_counter() - t0
        return out

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``model.sample(n, generator)`` under this evaluation's sampling settings."""
        return self.model.sample(n, generator=generator, **self.model_settings())

    def nfe(self) -> float | None:
        """Network evaluations per sample under these settings: the model's ``nfe``
        attribute, or ``nfe(**settings)`` when it is a method; ``None`` if it has none."""
        nfe = getattr(self.model, "nfe", None)
        return nfe(**self.model_settings()) if callable(nfe) else nfe

    def model_settings(self) -> dict[str, Any]:
        """:attr:`sampling` as the model receives it: a ``sampler`` setting (the name of a
        diffusion sampler) is replaced by the class registered under that name in the run's
        :attr:`registries`, so a model reaches the run's samplers, third-party ones
        included, without a registry of its own."""
        settings = dict(self.sampling)
        if isinstance(settings.get("sampler"), str):
            settings["sampler"] = self.registries.samplers.get(settings["sampler"])
        return settings

    @torch.no_grad()
    def _generate(self) -> None:
        """Draw the samples batch by batch into :attr:`sample_store` (``sample_dir``, else a
        temporary folder removed with this context)."""
        if self.sample_parts is not None:
            return self._merge_parts()
        self.model.eval()
        folder = self.sample_dir
        if folder is None:
            self._tmp = ScratchFolder("genbench-samples-")
            folder = self._tmp.path / "samples"
        writer = SampleStoreWriter(folder, shape=tuple(self.data_info.shape), kind=self.data_info.kind)
        shared = None  # one torch.Generator, for a model that hands the generator to torch
        bad = 0
        for start in range(0, self.num_samples, self.batch_size):
            stop = min(start + self.batch_size, self.num_samples)
            try:
                x = self._draw(start, stop, shared if shared is not None
                               else self.sample_noise(start, stop))
            except TypeError as exc:
                if start or SampleNoise.__name__ not in str(exc):
                    raise
                said = (f"model {self.model_name!r} passes the generator to torch itself "
                        f"({str(exc).splitlines()[0]})")
                if self.shard_of is not None:  # one shard of several: draws would repeat another's
                    raise ConfigError(f"{said}, so its samples depend on how they are drawn and "
                                      "cannot be split into shards: set eval_shards = 1, or draw "
                                      "noise with self.randn / self.rand") from None
                warnings.warn(f"{said}; it gets one torch.Generator for the whole set, so its "
                              "samples depend on the evaluation's batch size: draw noise with "
                              "self.randn / self.rand to make them per-sample", stacklevel=2)
                self.noise = "one generator"
                shared = self.generator(1)
                x = self._draw(start, stop, shared)
            x = self._checked(x, stop - start)
            bad += int((~torch.isfinite(x)).flatten(1).any(1).sum()) if len(x) else 0
            if not bad:
                writer.append(x)
        if bad:
            self._fail(bad)
            return
        self._store = writer.close()

    def _fail(self, bad: int) -> None:
        self.nonfinite_count = bad
        self._sample_failure = (f"{bad} of the {self.num_samples} samples contain NaN or "
                                "infinite values: the model cannot sample finite values")

    def _merge_parts(self) -> None:
        """The samples of finished shards, merged into one store in ``sample_dir``."""
        records = [read_part(p) for p in self.sample_parts]
        missing = [str(p) for p, r in zip(self.sample_parts, records) if r is None]
        if missing:
            raise SampleStoreError(f"sample shards not finished: {', '.join(missing)}")
        if sum(r["stop"] - r["start"] for r in records) != self.num_samples:
            raise SampleStoreError(f"the shards in {self.sample_dir} hold "
                                   f"{sum(r['stop'] - r['start'] for r in records)} samples, "
                                   f"not {self.num_samples}")
        if any(r.get("noise") == "one generator" for r in records):
            self.noise = "one generator"
        self.timings["shards_sample_seconds"] = sum(float(r.get("seconds") or 0) for r in records)
        wanted = {Path(p).name for p in self.sample_parts}
        for stale in Path(self.sample_dir).glob("part-*"):  # an earlier eval_shards' parts
            if stale.is_dir() and stale.name not in wanted:
                shutil.rmtree(stale, ignore_errors=True)
        bad = sum(int(r.get("bad", 0)) for r in records)
        if bad:
            self._fail(bad)
            return
        self._store = merge_sample_stores(self.sample_dir, list(self.sample_parts))

    def part_features(self, extractor) -> list[dict[str, FeatureMatrix]] | None:
        """Features the shards saved for ``extractor`` (an
        :class:`~genbench.features.job_features.Extractor`), one ``{layer: FeatureMatrix}`` per
        shard in order, or ``None``: extract them."""
        if self.sample_parts is None:
            return None
        return part_features(list(self.sample_parts), extractor, self.num_samples)

    def sample_noise(self, start: int, stop: int, stream: int = 0) -> SampleNoise:
        """The per-sample noise of items ``start..stop-1`` of this job's ``stream`` (0: the
        shared samples, counted from :attr:`first_sample`; a metric drawing samples of its
        own uses another)."""
        if stream == 0:
            return SampleNoise(self.seed, self.first_sample + start, self.first_sample + stop)
        return SampleNoise(item_seed(self.seed, -(1 << 32) - stream), start, stop)

    @torch.no_grad()
    def draw_samples(self, n: int, stream: int) -> Iterator[torch.Tensor]:
        """``n`` samples of seeded stream ``stream`` (not 0: the shared samples'), float32 on
        the CPU in batches of at most ``batch_size``, under the row's sampling settings: for a
        metric whose protocol needs more samples than the job made."""
        if stream == 0:
            raise ValueError("stream 0 is the job's shared samples: read ctx.sample_store")
        self.model.eval()
        shared = self.generator(stream) if self.noise == "one generator" else None
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            noise = shared if shared is not None else self.sample_noise(start, stop, stream)
            yield self._checked(self.sample(stop - start, noise), stop - start)

    def _draw(self, start: int, stop: int, generator) -> torch.Tensor:
        """The job's samples ``start..stop-1`` (counted from :attr:`first_sample`)."""
        if callable(getattr(self.model, "sample_range", None)):  # a fixed, indexed stream
            first = self.first_sample
            return self.model.sample_range(first + start, first + stop, generator=generator,
                                           **self.model_settings())
        return self.sample(stop - start, generator)

    def _checked(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` samples as float32 on the CPU in the data's layout, after :meth:`_check_shape`."""
        self._check_shape(x, n)
        return x.detach().float().cpu().reshape(n, *self.data_info.shape)

    def _check_shape(self, x: torch.Tensor, n: int) -> None:
        """Samples must come in the data's layout, ``(n, *shape)``, or flat, ``(n, dim)``:
        any other shape with the same number of values (channels last, say) would be
        reshaped into wrong images without a word."""
        shape = tuple(self.data_info.shape)
        if tuple(x.shape) not in ((n, *shape), (n, self.data_info.dim)):
            raise SampleShapeError(
                f"model {self.model_name!r} returned samples of shape {tuple(x.shape)} when "
                f"asked for {n}; expected {(n, *shape)} (the dataset's layout"
                + (", channels first" if self.data_info.kind == "image" else "")
                + f") or {(n, self.data_info.dim)}")

    @torch.no_grad()
    def _reconstruct(self) -> torch.Tensor:
        self.model.eval()
        x = self.test[0]
        out = [self.model.reconstruct(x[i:i + self.batch_size].to(self.device)).float().cpu()
               for i in range(0, len(x), self.batch_size)]
        return torch.cat(out).reshape(x.shape)
