"""The diffusion family: ``ddpm`` (Ho et al. 2020) and ``latent-diffusion`` (Rombach et al.
2022), sampled through the registered samplers (``genbench_plugins.samplers``).

One idea per module: :mod:`.schedule` (beta schedules and the forward process),
:mod:`.networks` (U-Net, MLP denoiser, time embedding), :mod:`.ema` (averaged weights),
:mod:`.ddpm` (training and sampling, the ``ddpm`` model) and :mod:`.latent`.
"""

from genbench import hookimpl

from .ddpm import DDPM
from .latent import LatentDiffusion


@hookimpl
def register_models(register):
    register("ddpm", DDPM)
    register("latent-diffusion", LatentDiffusion)
