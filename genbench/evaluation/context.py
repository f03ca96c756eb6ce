"""EvalContext: what every metric sees. Samples and features are made once and shared."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from genbench.api.data import DataInfo
from genbench.api.errors import ConfigError, GenbenchError
from genbench.features.job_features import JobFeatures, NonFiniteSamplesError, choose_feature_extractor, skip_reason
from genbench.api.model import GenerativeModel

if TYPE_CHECKING:
    from genbench.registry.manager import Registries


class SampleShapeError(GenbenchError, ValueError):
    """A model's samples are not in the data's layout."""


@dataclass
class EvalContext:
    """The trained model, the real data and lazily generated samples for one job.

    ``train``/``test`` are ``(x, labels or None)`` CPU tensors; metrics compare against
    ``test``. :attr:`samples` are generated on first access (``num_samples`` of them, from a
    generator seeded with ``seed``), kept on the CPU as float32 and shared by every metric
    (when any holds NaN or infinity, every access raises
    :class:`~genbench.features.job_features.NonFiniteSamplesError` instead: see :attr:`sample_failure`);
    :attr:`reconstructions` likewise for ``model.reconstruct`` on the test split.
    :meth:`features` gives the features of the samples and of the real splits, per extractor.
    ``registries`` (keyword, required) are the run's: extractors are looked up there.

    Samples are drawn in batches of ``batch_size``: ``model.sample(n, generator)`` with one
    generator for the whole set, or, for a model with a fixed, indexed stream of samples
    (:meth:`genbench.GenerativeModel.sample_range`: samples read from files), items
    ``start..stop-1`` batch by batch, so that no batch replays another's.
    """

    model: GenerativeModel
    model_name: str
    data_info: DataInfo
    train: tuple[torch.Tensor, torch.Tensor | None]
    test: tuple[torch.Tensor, torch.Tensor | None]
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
    timings: dict[str, float] = field(default_factory=dict)
    _samples: torch.Tensor | None = None
    _sample_failure: str | None = field(default=None, init=False, repr=False)
    _reconstructions: torch.Tensor | None = None
    _features: dict[str, JobFeatures] = field(default_factory=dict, init=False, repr=False)

    def generator(self, offset: int = 0) -> torch.Generator:
        """A fresh CPU generator seeded from the job seed (+ ``offset`` for independent streams)."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + offset)

    @property
    def samples(self) -> torch.Tensor:
        """The job's shared samples ``(num_samples, *shape)``, generated on first access.

        Raises :class:`~genbench.features.job_features.NonFiniteSamplesError` (on this and every later
        access) when any sample holds NaN or infinity: no sample-based number of such a
        model means anything."""
        if self._samples is None and self._sample_failure is None:
            x = self._timed("sample_seconds", self._generate)
            bad = int((~torch.isfinite(x)).flatten(1).any(1).sum()) if len(x) else 0
            if bad:
                self._sample_failure = (f"{bad} of the {len(x)} samples contain NaN or infinite "
                                        "values: the model cannot sample finite values")
            else:
                self._samples = x
        if self._sample_failure is not None:
            raise NonFiniteSamplesError(self._sample_failure)
        return self._samples

    @property
    def sample_failure(self) -> str | None:
        """Why :attr:`samples` cannot be used (they hold NaN or infinity), or ``None``;
        generates them on first use."""
        try:
            self.samples
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
    def _generate(self) -> torch.Tensor:
        self.model.eval()
        gen = self.generator(1)
        indexed = callable(getattr(self.model, "sample_range", None))
        chunks = []
        for start in range(0, self.num_samples, self.batch_size):
            stop = min(start + self.batch_size, self.num_samples)
            if indexed:  # a fixed stream (samples read from files): items start..stop-1
                x = self.model.sample_range(start, stop, generator=gen, **self.model_settings())
            else:
                x = self.sample(stop - start, gen)
            self._check_shape(x, stop - start)
            chunks.append(x.detach().float().cpu())
        return torch.cat(chunks).reshape(self.num_samples, *self.data_info.shape)

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
