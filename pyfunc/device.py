"""Choice of the torch device: CUDA when available, else CPU."""

from __future__ import annotations

import torch

from pyfunc.errors import ConfigError


def pick_device(name: str = "auto") -> torch.device:
    """Return the device for ``name``: 'auto' (cuda if available, else cpu), 'cpu', 'cuda' or 'cuda:N'."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but CUDA is not available on this machine")
        return torch.device(name)
    raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
