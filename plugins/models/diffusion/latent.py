"""``latent-diffusion``: a diffusion model in the code space of a trained autoencoder
(Rombach et al. 2022, with an MLP denoiser in place of their U-Net: our codes are vectors).

The autoencoder is a :class:`genbench.ModelRef` hyper-parameter: the runner trains it once
as its own job (shared by every row that references the same configuration) and passes the
trained model, which stays frozen and in eval mode here. Training encodes each batch,
standardises the codes with the first batch's statistics (their scale-by-std) and trains the
DDPM objective on them; sampling runs any registered sampler in code space and decodes.
"""

from __future__ import annotations

import torch

from genbench import ConfigError, DataInfo, GenerativeModel, ModelRef

from ..layers import LearningRate, Positive
from .ddpm import DiffusionModel, Dropout
from .ema import Decay
from .networks import MLPDenoiser
from .schedule import Beta, Schedule, Timesteps


class LatentDiffusion(DiffusionModel):
    """DDPM on the codes of a trained autoencoder (``encode``/``decode`` and ``latent_dim``),
    denoised by an MLP of ``depth`` residual blocks of width ``hidden``."""

    description = ("latent diffusion (Rombach et al. 2022): DDPM with an MLP denoiser on the "
                   "codes of a trained autoencoder (a model reference), samples decoded")
    data_kinds = ("image",)

    def __init__(self, data_info: DataInfo, autoencoder=ModelRef("conv-ae", latent_dim=8),
                 timesteps: Timesteps = 1000, beta_schedule: Schedule = "linear",
                 beta_start: Beta = 1e-4, beta_end: Beta = 0.02, hidden: Positive = 256,
                 depth: Positive = 3, dropout: Dropout = 0.0, lr: LearningRate = 5e-4,
                 ema_decay: Decay = 0.999):
        super().__init__()
        latent_dim = getattr(autoencoder, "latent_dim", None)
        if not isinstance(autoencoder, GenerativeModel) or latent_dim is None or not all(
                callable(getattr(autoencoder, m, None)) for m in ("encode", "decode")):
            raise ConfigError("latent-diffusion: autoencoder must be a trained model with "
                              "encode, decode and latent_dim (an autoencoder or VAE), got "
                              f"{type(autoencoder).__name__}")
        self.autoencoder = autoencoder.requires_grad_(False).eval()
        network = MLPDenoiser(int(latent_dim), hidden, depth, float(dropout))
        self._setup(network, (int(latent_dim),), timesteps=timesteps,
                    beta_schedule=beta_schedule, beta_start=beta_start, beta_end=beta_end,
                    lr=lr, ema_decay=ema_decay, clip_sample=None)

    def train(self, mode: bool = True) -> "LatentDiffusion":
        """The autoencoder stays frozen: in eval mode while the denoiser trains."""
        super().train(mode)
        self.autoencoder.eval()
        return self

    @torch.no_grad()
    def to_space(self, x: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.encode(x).reshape(len(x), -1).float()

    def from_space(self, z: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode(z)

    def num_parameters(self) -> int:
        """The denoiser's and the autoencoder's (whose decoder every sample goes through)."""
        return super().num_parameters() + self.autoencoder.num_parameters()
