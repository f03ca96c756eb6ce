"""``exported``: a generator trained anywhere, loaded from an exported file and benchmarked
without a plugin of its own.

The file is a TorchScript module (``torch.jit.save(torch.jit.script(g), "g.pt")``) or a
``torch.export`` program (``torch.export.save(torch.export.export(g, (z,)), "g.pt2")``; the
``.pt2`` suffix says which). It maps a batch of standard normal latents, shape
``(n, latent_dim)`` (``latent_layout = "flat"``) or ``(n, latent_dim, 1, 1)`` (``"spatial"``,
as DCGAN-style generators take them), to samples with values in ``output_range``, which are
mapped to the data's scale ([0, 1] for images) and checked against the dataset's shape.
Noise is drawn from the evaluation's seeded generator, so a row is reproducible. The file's
content identifies the row: a new export under the same path is a new row.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Literal

import torch
from annotated_types import Ge

from genbench import ConfigError, DataInfo, GenerativeModel, InputFile, content_sha256, hookimpl

EXPORT_SUFFIXES = (".pt", ".pth", ".ts", ".pt2")
#: Where each declared output range is mapped from: data = (out - offset) / scale.
_RANGES = {"0,1": (0.0, 1.0), "-1,1": (-1.0, 2.0), "0,255": (0.0, 255.0)}


def load_exported(path: str) -> torch.nn.Module:
    """The module saved at ``path``: a ``torch.export`` program for ``.pt2``, else TorchScript."""
    p = Path(path).expanduser()
    try:
        if p.suffix.lower() == ".pt2":
            return torch.export.load(str(p)).module()
        with warnings.catch_warnings():  # torch deprecates TorchScript; its files still exist
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(p), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError, ValueError or zipfile errors here
        how = ("torch.export.save(torch.export.export(generator, (z,)), 'generator.pt2')"
               if p.suffix.lower() == ".pt2" else
               "torch.jit.save(torch.jit.script(generator), 'generator.pt')")
        raise ConfigError(f"{p} cannot be loaded as an exported generator ({type(exc).__name__}: "
                          f"{exc}); save one with {how}") from None


class ExportedGenerator(GenerativeModel):
    """Latents in, samples out, from an exported network; nothing is trained."""

    description = ("a generator trained elsewhere, exported as TorchScript or torch.export "
                   "(.pt2): standard normal latents in, samples out")
    family = "external"
    refit_instead_of_checkpoint = True  # the exported file is the trained model

    def __init__(self, data_info: DataInfo,
                 path: Annotated[str, InputFile(EXPORT_SUFFIXES)],
                 latent_dim: Annotated[int, Ge(1)],
                 latent_layout: Literal["flat", "spatial"] = "flat",
                 output_range: Literal["0,1", "-1,1", "0,255"] = "-1,1"):
        super().__init__()
        self.path, self.latent_dim, self.latent_layout = path, latent_dim, latent_layout
        self.offset, self.scale = _RANGES[output_range]
        self.shape = tuple(data_info.shape)
        self.network = load_exported(path)

    def train(self, mode: bool = True) -> "ExportedGenerator":
        """Set this module's mode only: an exported network keeps the mode it was exported
        in (``torch.export`` programs refuse ``eval()``)."""
        self.training = mode
        return self

    def fit(self, data, budget) -> None:
        """Nothing to train: the network is already trained."""

    def provenance(self) -> dict:
        """What a row records of the exported file: its path, format and content sha256."""
        return {"path": str(self.path), "sha256": content_sha256(self.path),
                "format": "torch.export" if str(self.path).lower().endswith(".pt2") else "torchscript"}

    def _latents(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        z = self.randn(n, self.latent_dim, generator=generator)
        return z.view(n, self.latent_dim, 1, 1) if self.latent_layout == "spatial" else z

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        out = self.network(self._latents(n, generator))
        if not isinstance(out, torch.Tensor):
            raise ConfigError(f"{self.path}: the network returned {type(out).__name__}, not a "
                              "tensor of samples")
        if tuple(out.shape) != (n, *self.shape):
            raise ConfigError(f"{self.path}: the network maps {n} latents to shape "
                              f"{tuple(out.shape)}, but the dataset's items have shape "
                              f"{self.shape}; export a generator for this data")
        return (out.float() - self.offset) / self.scale


@hookimpl
def register_models(register):
    register("exported", ExportedGenerator)
