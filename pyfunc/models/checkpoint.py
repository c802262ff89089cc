"""Training checkpoints: everything needed to resume, written atomically, read with weights_only.

Names are ``models/epoch_<E>.pt`` (written when epoch E is complete) and
``models/step_<E>_<S>.pt`` (mid-epoch: S optimiser steps of epoch E done).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyfunc.data.atomic import PathLike, atomic_path
from pyfunc.errors import PyfuncError

TRAINING_KEYS = ("encoder", "head", "optimizer", "scheduler", "epoch", "step", "rng")

_NAME = re.compile(r"^(?:epoch_(\d+)|step_(\d+)_(\d+))\.pt$")


def progress_of(path: Path) -> tuple[int, int] | None:
    """(epochs done, steps done in the next epoch) that a checkpoint name stands for."""
    match = _NAME.match(path.name)
    if not match:
        return None
    if match.group(1) is not None:
        return int(match.group(1)), 0
    return int(match.group(2)) - 1, int(match.group(3))


def latest_checkpoint(models_dir: PathLike) -> Path | None:
    """The checkpoint furthest along in ``models_dir``, or None."""
    found = [(progress_of(p), p) for p in Path(models_dir).glob("*.pt") if progress_of(p) is not None]
    return max(found)[1] if found else None


def rng_states() -> dict[str, Any]:
    np_state = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np_state = states["numpy"]
    np.random.set_state(("MT19937", np_state["key"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["gauss"]))
    python = states["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (a temporary name, then rename)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: PathLike, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; a truncated or foreign file is a clear error."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError ... on bad files
        raise PyfuncError(f"{path}: cannot read checkpoint ({type(err).__name__}: {err})") from None
    missing = [key for key in TRAINING_KEYS if key not in state] if isinstance(state, dict) else list(TRAINING_KEYS)
    if missing:
        raise PyfuncError(f"{path}: not a training checkpoint of this toolkit (no {', '.join(missing)}); "
                          "remove it or move it out of the models folder")
    return state
