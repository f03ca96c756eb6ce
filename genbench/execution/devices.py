"""The devices genbench trains and evaluates on, and seeding every device's random state."""

from __future__ import annotations

import random

import numpy as np
import torch

from genbench.api.errors import ConfigError


def _cuda_problem(device: torch.device) -> str | None:
    if not torch.cuda.is_available():
        return "CUDA is not available; use --device auto or cpu"
    if device.index is not None and device.index >= torch.cuda.device_count():
        return (f"this machine has {torch.cuda.device_count()} CUDA device(s), "
                f"numbered from 0")
    return None


def _mps_problem(device: torch.device) -> str | None:
    mps = getattr(torch.backends, "mps", None)
    return None if mps is not None and mps.is_available() else "MPS is not available"


#: The device types genbench trains and evaluates on, each with why it cannot be used here
#: (``None``: it can). Others torch knows (``meta``, ``xla``, ...) are refused before training.
DEVICE_TYPES = {"cpu": lambda device: None, "cuda": _cuda_problem, "mps": _mps_problem}


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then MPS, then the CPU; any other name is checked and used."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_problem(torch.device("mps")) is None:
            return torch.device("mps")
        return torch.device("cpu")
    valid = "use auto, cpu, cuda, cuda:N or mps"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"unknown device {name!r}; {valid}") from exc
    problem = DEVICE_TYPES.get(device.type)
    if problem is None:
        raise ConfigError(f"device {name!r} is not one genbench runs on; {valid}")
    reason = problem(device)
    if reason is not None:
        raise ConfigError(f"device {name!r} requested but {reason}")
    return device


def device_description(device: torch.device) -> str:
    """The device as provenance records it: its type, and a CUDA device's name."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
