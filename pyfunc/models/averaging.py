"""Checkpoint averaging: the parameters (and BatchNorm statistics) of the last N epochs, averaged.

Floating-point tensors are averaged in float64 and cast back; integer tensors (BatchNorm's
``num_batches_tracked``) are taken from the newest checkpoint. WeSpeaker averages its last
checkpoints the same way before extraction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import torch

from pyfunc.config import Config
from pyfunc.data.atomic import PathLike
from pyfunc.errors import PyfuncError
from pyfunc.models.checkpoint import load_checkpoint, progress_of
from pyfunc.models.model_dir import build_encoder, build_head, load_state_checked, save_model_dir


def average_states(states: Sequence[Mapping[str, torch.Tensor]], source: str = "checkpoints") -> dict:
    """The key-wise average of state dicts with the same keys and shapes (see the module docstring)."""
    if not states:
        raise PyfuncError(f"{source}: nothing to average")
    keys = list(states[0])
    for index, state in enumerate(states[1:], start=1):
        if list(state) != keys:
            raise PyfuncError(f"{source}: state {index} has other keys than state 0")
    out = {}
    for key in keys:
        tensors = [state[key] for state in states]
        if any(t.shape != tensors[0].shape for t in tensors):
            raise PyfuncError(f"{source}: {key} has different shapes")
        if tensors[0].is_floating_point():
            mean = torch.stack([t.detach().double() for t in tensors]).mean(dim=0)
            out[key] = mean.to(tensors[0].dtype)
        else:
            out[key] = tensors[-1].detach().clone()
    return out


def last_epoch_checkpoints(models_dir: PathLike, count: int) -> list[Path]:
    """The ``count`` newest ``epoch_N.pt`` of ``models_dir``, oldest first; PyfuncError when fewer exist."""
    epochs = sorted((p for p in Path(models_dir).glob("epoch_*.pt") if progress_of(p) is not None),
                    key=progress_of)
    if count < 1 or len(epochs) < count:
        raise PyfuncError(f"{models_dir}: {len(epochs)} epoch checkpoint(s), cannot average the last {count}")
    return epochs[-count:]


def average_into_model_dir(models_dir: PathLike, count: int, config: Config, model_dir: PathLike) -> list[Path]:
    """Write ``model_dir`` (config.yaml + model.pt) with the average of the last ``count`` epoch checkpoints
    of ``models_dir``; returns the checkpoints averaged."""
    paths = last_epoch_checkpoints(models_dir, count)
    loaded = [load_checkpoint(path) for path in paths]
    encoder, head = build_encoder(config.model), build_head(config)
    where = f"{paths[0].parent} (epochs {progress_of(paths[0])[0]}-{progress_of(paths[-1])[0]})"
    load_state_checked(encoder, average_states([s["encoder"] for s in loaded], where), f"{where} (encoder)")
    load_state_checked(head, average_states([s["head"] for s in loaded], where), f"{where} (head)")
    save_model_dir(model_dir, config, encoder, head)
    return paths
