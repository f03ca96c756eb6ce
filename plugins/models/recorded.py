"""``sample-files``: a sample set made elsewhere, scored as a row beside trained models.

The samples are read from files (a folder or zip of images, ``.npz``/``.npy`` arrays in the
ADM/EDM layout, vectors in ``.npy``/``.csv``; see :class:`genbench.SampleSet`). Nothing is
trained. An evaluation reads items ``0..num_samples-1`` in order through
:meth:`RecordedSamples.sample_range`, so every sample is scored once and none is replayed,
and a suite that asks for more samples than the set holds is refused before it starts. The
row is identified by the files' content, not their path: new content under the same path is
a new row.
"""

from __future__ import annotations

from typing import Annotated

import torch

from genbench import (SAMPLE_FILE_SUFFIXES, ConfigError, DataInfo, GenerativeModel, InputFile,
                      SampleNoise, hookimpl, open_sample_set)


class RecordedSamples(GenerativeModel):
    """Samples read from ``path``; shape and kind must be the dataset's."""

    description = ("samples made elsewhere, read from files (image folder, zip, .npz/.npy, "
                   "vectors .npy/.csv); nothing is trained")
    family = "external"
    refit_instead_of_checkpoint = True  # nothing to keep: the files are the model
    sample_set_parameter = "path"

    def __init__(self, data_info: DataInfo,
                 path: Annotated[str, InputFile(SAMPLE_FILE_SUFFIXES, folders=True)]):
        super().__init__()
        self.samples = open_sample_set(path)
        found = self.samples.info
        if found.kind != data_info.kind or tuple(found.shape) != tuple(data_info.shape):
            raise ConfigError(
                f"sample set {path}: its items are {found.kind} data of shape {tuple(found.shape)}, "
                f"but dataset {data_info.name!r} holds {data_info.kind} data of shape "
                f"{tuple(data_info.shape)}; score it against a reference of the same shape")
        #: The most samples an evaluation can ask for (checked before a suite starts).
        self.max_samples = len(self.samples)

    def fit(self, data, budget) -> None:
        """Nothing to train: the samples are already made."""

    def provenance(self) -> dict:
        """What a row records of the set: format, count, item shape, dtype, value range,
        content sha256."""
        return self.samples.info.to_dict()

    def sample_range(self, start: int, stop: int, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
        """Items ``start..stop-1`` of the set, in data space."""
        return self.samples.read(start, stop).to(self.device)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` items of the set drawn without replacement (``generator`` picks which)."""
        if n > len(self.samples):
            raise ConfigError(f"sample set {self.samples.info.path} holds {len(self.samples)} "
                              f"samples; {n} were asked for")
        if isinstance(generator, SampleNoise):
            generator = generator.generator
        picked = torch.randperm(len(self.samples), generator=generator)[:n].tolist()
        return torch.cat([self.samples.read(i, i + 1) for i in picked]).to(self.device)


@hookimpl
def register_models(register):
    register("sample-files", RecordedSamples)
