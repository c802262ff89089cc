"""Import and export of checkpoints in the seed system's format.

A seed checkpoint is a plain state dict: the encoder under ``speaker_encoder.``
(front-end buffers included) and the AAM weight ``speaker_loss.weight``; keys
may carry ``module.`` (DataParallel). Every key must fit: unknown, missing or
mis-shaped keys are an error that lists them, never a silent skip.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Mapping

import torch

from pyfunc.config import Config, load_config
from pyfunc.data.atomic import PathLike, atomic_path
from pyfunc.errors import PyfuncError
from pyfunc.models.model_dir import (
    build_encoder,
    build_head,
    load_model_dir_with_head,
    load_weights_file,
    save_model_dir,
    state_dict_problems,
)

logger = logging.getLogger(__name__)

ENCODER_PREFIX = "speaker_encoder."

HEAD_PREFIX = "speaker_loss."


def _strip_module(key: str) -> str:
    return ".".join(part for part in key.split(".") if part != "module")


def read_seed_state(path: PathLike) -> dict[str, torch.Tensor]:
    """Read a seed checkpoint as a state dict with ``module.`` prefixes removed."""
    path = Path(path)
    state = load_weights_file(path)
    if not isinstance(state, Mapping):
        raise PyfuncError(f"{path}: expected a state dict (a mapping of names to tensors), got {type(state).__name__}")
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise PyfuncError(f"{path}: state dict key {key!r} is not a string")
        name = _strip_module(key)
        if name in out:
            raise PyfuncError(f"{path}: key {key!r} duplicates {name!r} once 'module.' is removed")
        out[name] = value
    return out


def _shape_of(state: Mapping[str, object], key: str, ndim: int, path: Path) -> tuple[int, ...]:
    value = state.get(key)
    if not isinstance(value, torch.Tensor):
        raise PyfuncError(f"{path}: missing key {key!r}; not a seed ECAPA-TDNN checkpoint "
                          f"(it has {len(state)} keys, e.g. {', '.join(list(state)[:5])})")
    if value.dim() != ndim:
        raise PyfuncError(f"{path}: {key} has shape {tuple(value.shape)}, expected {ndim} dimensions")
    return tuple(value.shape)


def seed_config(state: Mapping[str, torch.Tensor], path: PathLike, base: Config | None = None) -> Config:
    """The Config of a seed checkpoint: C, embedding size and class count read off the weight shapes."""
    path = Path(path)
    config = copy.deepcopy(base) if base is not None else Config()
    channels, feat_dim, _ = _shape_of(state, ENCODER_PREFIX + "conv1.weight", 3, path)
    embed_dim, _ = _shape_of(state, ENCODER_PREFIX + "fc6.weight", 2, path)
    num_classes, _ = _shape_of(state, HEAD_PREFIX + "weight", 2, path)
    config.model.frontend = "seed"
    config.model.channels = channels
    config.model.feat_dim = feat_dim
    config.model.embed_dim = embed_dim
    config.model.num_classes = num_classes
    config.extract.protocol = "seed"
    return config


def import_seed_checkpoint(seed_path: PathLike, model_dir: PathLike, base_config: PathLike | None = None) -> Config:
    """Convert a seed checkpoint into a model directory; returns the config written.

    ``base_config`` (a YAML file) supplies the settings the checkpoint does not
    fix (training, extraction, scoring); the model section comes from the weights.
    """
    seed_path = Path(seed_path)
    state = read_seed_state(seed_path)
    base = load_config(base_config) if base_config is not None else None
    config = seed_config(state, seed_path, base)
    try:
        encoder = build_encoder(config.model)
    except PyfuncError as err:
        raise PyfuncError(f"{seed_path}: unsupported model sizes: {err}") from None
    head = build_head(config)
    problems = state_dict_problems(_seed_keyed_state(encoder, head), state)
    if problems:
        raise PyfuncError(f"{seed_path}: does not match the seed ECAPA-TDNN with C={config.model.channels}, "
                          f"embed_dim={config.model.embed_dim}, {config.model.num_classes} classes: "
                          + "; ".join(problems))
    encoder.load_state_dict({k[len(ENCODER_PREFIX):]: v for k, v in state.items() if k.startswith(ENCODER_PREFIX)},
                            strict=True)
    head.load_state_dict({k[len(HEAD_PREFIX):]: v for k, v in state.items() if k.startswith(HEAD_PREFIX)},
                         strict=True)
    save_model_dir(model_dir, config, encoder, head)
    logger.info("imported %s: C=%d, embed_dim=%d, %d classes -> %s", seed_path, config.model.channels,
                config.model.embed_dim, config.model.num_classes, model_dir)
    return config


def seed_state_of(model_dir: PathLike) -> dict[str, torch.Tensor]:
    """The seed-format state dict of a model directory (seed front end only)."""
    encoder, head, config = load_model_dir_with_head(model_dir, "cpu")
    if config.model.frontend != "seed":
        raise PyfuncError(f"{Path(model_dir) / 'config.yaml'}: model.frontend is {config.model.frontend!r}; only "
                          f"models with the 'seed' front end can be exported, since the seed's code always "
                          f"computes its own log-mel features from waveforms")
    return {key: value.detach().clone() for key, value in _seed_keyed_state(encoder, head).items()}


def _seed_keyed_state(encoder: torch.nn.Module, head: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The encoder's and the head's state under the seed's key prefixes (the tensors themselves, not copies)."""
    state = {ENCODER_PREFIX + k: v for k, v in encoder.state_dict().items()}
    state.update({HEAD_PREFIX + k: v for k, v in head.state_dict().items()})
    return state


def export_seed_checkpoint(model_dir: PathLike, seed_path: PathLike) -> None:
    """Write a model directory's weights as a seed checkpoint (a plain state dict), atomically."""
    state = seed_state_of(model_dir)
    with atomic_path(seed_path) as tmp:
        torch.save(state, tmp)
    logger.info("exported %s -> %s (%d tensors)", model_dir, seed_path, len(state))
