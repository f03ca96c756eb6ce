"""Previews: the last finite samples of a training, written when it diverges."""

from __future__ import annotations

from pathlib import Path

import torch

from genbench.api.data import DataInfo
from genbench.api.model import GenerativeModel


class Preview:
    """The last finite preview samples of a model that opts in with ``preview_samples``."""

    def __init__(self, model: GenerativeModel, seed: int):
        self.model, self.seed = model, seed
        n = getattr(model, "preview_samples", 0)
        self.n = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 0
        self.samples: torch.Tensor | None = None

    def take(self) -> None:
        """Draw the preview (eval mode, a seeded CPU generator, no gradients); keep it if finite.
        The modules' train/eval modes are restored exactly afterwards."""
        if not self.n:
            return
        modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        try:
            with torch.no_grad():
                x = self.model.sample(self.n, generator=torch.Generator().manual_seed(self.seed))
        finally:
            for m, mode in modes:
                m.training = mode
        x = x.detach().float().cpu()
        if torch.isfinite(x).all():
            self.samples = x

    def write(self, checkpoint_path: Path | None, batch) -> str | None:
        """Write the kept preview as ``preview.png`` beside the checkpoint (the run folder);
        ``batch`` (real data) is drawn behind 2-D samples. Returns the path, or None."""
        if self.samples is None or checkpoint_path is None:
            return None
        from genbench.results.figures import save_sample_grid

        x = self.samples
        info = DataInfo(name="preview", kind="image" if x.dim() == 4 else "vector",
                        shape=tuple(x.shape[1:]))
        real = batch if isinstance(batch, torch.Tensor) else batch[0]
        real = real.detach().float().cpu()
        real = real[torch.isfinite(real.flatten(1)).all(1)]
        path = save_sample_grid(x, info, Path(checkpoint_path).parent / "preview.png",
                                reference=real)
        return None if path is None else str(path)
