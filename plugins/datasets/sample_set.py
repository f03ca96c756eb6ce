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

from genbench import (BenchmarkDataset, DataInfo, InputFile, TensorSplit, content_sha256,
                      hookimpl, open_sample_set)

SAMPLE_FILE_SUFFIXES = (".npz", ".npy", ".zip", ".csv")


class SampleSetDataset(BenchmarkDataset):
    """Every item of the set, unlabelled, as the train and the test split."""

    description = ("a sample set from files (image folder, zip, .npz/.npy, vectors .npy/.csv) "
                   "as a reference: both splits are the whole set")
    sample_set_parameter = "path"

    def __init__(self, path: Annotated[str, InputFile(SAMPLE_FILE_SUFFIXES, folders=True)]):
        self.path = path
        self._split: TensorSplit | None = None

    def info(self) -> DataInfo:
        found = open_sample_set(self.path).info
        return DataInfo(name=Path(self.path).name, kind=found.kind, shape=found.shape,
                        fingerprint=content_sha256(self.path)[:16],
                        extra={"sample_set": found.to_dict()})

    def split(self, name: str) -> TensorSplit:
        if self._split is None:
            samples = open_sample_set(self.path)
            self._split = TensorSplit(samples.read(0, len(samples)))
        return self._split


@hookimpl
def register_datasets(register):
    register("sample-set", SampleSetDataset)
