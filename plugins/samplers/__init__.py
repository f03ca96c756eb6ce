"""Built-in diffusion samplers, one per module: ``ddpm`` (ancestral) and ``ddim``."""
