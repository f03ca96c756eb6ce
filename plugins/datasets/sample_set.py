"""``sample-set``: a sample set read from files, used as the reference of an evaluation.

This is how two sample sets are compared (``genbench eval gen/ --reference real/``, as
torch-fidelity and clean-fid compare two folders): the reference set is both splits, so
metrics that read the training split (memorisation, NDB's bins) measure against the same
set. Its fingerprint is the files' content hash; every format of :class:`genbench.SampleSet`
is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from genbench import (SAMPLE_FILE_SUFFIXES, BenchmarkDataset, DataInfo, InputFile, SampleSet,
                      TensorSplit, hookimpl, open_sample_set)


class SampleSetDataset(BenchmarkDataset):
    """Every item of the set, unlabelled, as the train and the test split."""

    description = ("a sample set from files (image folder, zip, .npz/.npy, vectors .npy/.csv) "
                   "as a reference: both splits are the whole set")
    sample_set_parameter = "path"

    def __init__(self, path: Annotated[str, InputFile(SAMPLE_FILE_SUFFIXES, folders=True)]):
        self.path = path
        self._samples: SampleSet | None = None
        self._split: TensorSplit | None = None

    @property
    def samples(self) -> SampleSet:
        """The set, opened (and hashed) once."""
        if self._samples is None:
            self._samples = open_sample_set(self.path)
        return self._samples

    def info(self) -> DataInfo:
        found = self.samples.info
        return DataInfo(name=Path(self.path).name, kind=found.kind, shape=found.shape,
                        fingerprint=found.sha256[:16], extra={"sample_set": found.to_dict()})

    def split(self, name: str) -> TensorSplit:
        if self._split is None:
            self._split = TensorSplit(self.samples.read(0, len(self.samples)))
        return self._split


@hookimpl
def register_datasets(register):
    register("sample-set", SampleSetDataset)
