"""Model directories: ``config.yaml`` (the whole Config) + ``model.pt`` (encoder and AAM head weights).

``model.pt`` is ``{"format": "pyfunc-model-1", "encoder": state_dict, "head": state_dict}``
and is written last (atomically), so its presence marks a complete directory.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from pyfunc.config import Config, ModelConfig, load_config, save_config
from pyfunc.data.atomic import PathLike, atomic_path
from pyfunc.device import pick_device
from pyfunc.errors import PyfuncError
from pyfunc.models.aam_softmax import AAMSoftmax
from pyfunc.models.ecapa import ECAPATDNN

MODEL_FORMAT = "pyfunc-model-1"

CONFIG_NAME = "config.yaml"

MODEL_NAME = "model.pt"


def build_encoder(model: ModelConfig, specaug_time: int = 10, specaug_freq: int = 8) -> ECAPATDNN:
    """The ECAPA-TDNN that ``model`` (config section ``model``) describes."""
    return ECAPATDNN(channels=model.channels, embed_dim=model.embed_dim, feat_dim=model.feat_dim,
                     frontend=model.frontend, specaug_time=specaug_time, specaug_freq=specaug_freq)


def build_head(config: Config) -> AAMSoftmax:
    """The AAM-softmax head for ``config`` (needs ``model.num_classes`` set)."""
    return AAMSoftmax(config.model.embed_dim, config.model.num_classes, config.loss.margin, config.loss.scale)


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().cpu().clone() for key, value in module.state_dict().items()}


def save_model_dir(model_dir: PathLike, config: Config, encoder: nn.Module, head: AAMSoftmax) -> None:
    """Write ``config.yaml`` (with ``model.num_classes`` filled from ``head``) and then ``model.pt``."""
    model_dir = Path(model_dir)
    config = copy.deepcopy(config)
    config.model.num_classes = int(head.weight.shape[0])
    model_dir.mkdir(parents=True, exist_ok=True)
    save_config(model_dir / CONFIG_NAME, config)
    payload = {"format": MODEL_FORMAT, "encoder": _cpu_state(encoder), "head": _cpu_state(head)}
    with atomic_path(model_dir / MODEL_NAME) as tmp:
        torch.save(payload, tmp)


def load_weights_file(path: PathLike) -> object:
    """``torch.load(path, weights_only=True)`` on the CPU; an unreadable file is a PyfuncError naming it."""
    path = Path(path)
    if not path.is_file():
        raise PyfuncError(f"{path}: model file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, not a torch file, disallowed pickle content, ...
        raise PyfuncError(f"{path}: cannot read the weights (truncated or corrupt file?): "
                          f"{type(err).__name__}: {err}") from None


def _list(keys: list[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def state_dict_problems(expected: Mapping[str, torch.Tensor], given: Mapping[str, object]) -> list[str]:
    """Describe missing, unexpected and mis-shaped keys of ``given`` against ``expected`` (empty if it fits)."""
    problems = []
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    if missing:
        problems.append(f"missing key(s): {_list(missing)}")
    if unexpected:
        problems.append(f"unexpected key(s): {_list(unexpected)}")
    misshaped = []
    for key in sorted(set(expected) & set(given)):
        value = given[key]
        if not isinstance(value, torch.Tensor):
            misshaped.append(f"{key} (not a tensor: {type(value).__name__})")
        elif tuple(value.shape) != tuple(expected[key].shape):
            misshaped.append(f"{key} (shape {tuple(value.shape)}, expected {tuple(expected[key].shape)})")
    if misshaped:
        problems.append(f"mis-shaped key(s): {_list(misshaped)}")
    return problems


def load_state_checked(module: nn.Module, state: Mapping[str, object], source: str) -> None:
    """Load ``state`` into ``module`` strictly; any key problem is a PyfuncError naming ``source``."""
    problems = state_dict_problems(module.state_dict(), state)
    if problems:
        raise PyfuncError(f"{source}: weights do not fit the model: " + "; ".join(problems))
    module.load_state_dict(state, strict=True)


def _resolve_device(device: str | torch.device) -> torch.device:
    return device if isinstance(device, torch.device) else pick_device(device)


def load_model_dir_with_head(model_dir: PathLike, device: str | torch.device = "cpu"
                             ) -> tuple[ECAPATDNN, AAMSoftmax, Config]:
    """Read a model directory: (encoder in eval mode, AAM head, config), both modules on ``device``."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise PyfuncError(f"{model_dir}: model directory not found")
    config = load_config(model_dir / CONFIG_NAME)
    path = model_dir / MODEL_NAME
    payload = load_weights_file(path)
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise PyfuncError(f"{path}: not a pyfunc model file (format {found!r}, expected {MODEL_FORMAT!r}); "
                          f"seed checkpoints are imported with steps/import_seed_model.py")
    for part in ("encoder", "head"):
        if not isinstance(payload.get(part), dict):
            raise PyfuncError(f"{path}: the {part!r} entry is missing or not a state dict")
    if config.model.num_classes < 1:
        raise PyfuncError(f"{model_dir / CONFIG_NAME}: model.num_classes is {config.model.num_classes}; "
                          f"expected the number of training speakers")
    encoder = build_encoder(config.model)
    load_state_checked(encoder, payload["encoder"], f"{path} (encoder)")
    head = build_head(config)
    load_state_checked(head, payload["head"], f"{path} (head)")
    target = _resolve_device(device)
    return encoder.to(target).eval(), head.to(target), config


def load_model_dir(model_dir: PathLike, device: str | torch.device = "cpu") -> tuple[ECAPATDNN, Config]:
    """Read a model directory: (encoder on ``device`` in eval mode, config)."""
    encoder, _, config = load_model_dir_with_head(model_dir, device)
    return encoder, config
