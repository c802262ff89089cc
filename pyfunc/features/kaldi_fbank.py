"""Kaldi-compatible log-mel filterbank features (``compute-fbank-feats``)."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
import torchaudio.compliance.kaldi as kaldi

from pyfunc.data.atomic import PathLike
from pyfunc.data.tables import iter_table_lines
from pyfunc.errors import ConfigError

_FBANK_PARAMS = inspect.signature(kaldi.fbank).parameters

_INT16_SCALE = 32768.0


def read_kaldi_conf(path: PathLike) -> dict[str, Any]:
    """Parse a Kaldi options file (``--name=value`` per line, ``#`` comments) into fbank kwargs."""
    options: dict[str, Any] = {}
    for number, fields in iter_table_lines(path):
        line = " ".join(fields).split("#", 1)[0].strip()
        if not line:
            continue
        if not line.startswith("--") or "=" not in line:
            raise ConfigError(f"{path}:{number}: expected '--option=value', got {line!r}")
        name, value = line[2:].split("=", 1)
        key = name.replace("-", "_")
        if key not in _FBANK_PARAMS or key in ("waveform", "channel"):
            raise ConfigError(f"{path}:{number}: unknown fbank option --{name}")
        default = _FBANK_PARAMS[key].default
        options[key] = _convert(value, type(default), f"{path}:{number}: --{name}")
    return options


def fbank_option_differences(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(--option-name, value in a, value in b)`` of each fbank option whose value differs, an option left
    out counting as its default (``--dither=0.0`` and no ``--dither`` are the same)."""
    differences = []
    for key in sorted(set(a) | set(b)):
        default = _FBANK_PARAMS[key].default if key in _FBANK_PARAMS else None
        one, two = a.get(key, default), b.get(key, default)
        if one != two:
            differences.append(("--" + key.replace("_", "-"), one, two))
    return differences


def _convert(text: str, kind: type, where: str) -> Any:
    if kind is bool:
        if text.lower() in ("true", "1"):
            return True
        if text.lower() in ("false", "0"):
            return False
        raise ConfigError(f"{where}: expected true or false, got {text!r}")
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{where}: expected {kind.__name__}, got {text!r}") from None


def compute_fbank(samples: np.ndarray, options: dict[str, Any]) -> np.ndarray:
    """Log-mel fbank (frames x bins, float32) of float samples in [-1, 1]."""
    wave = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).unsqueeze(0) * _INT16_SCALE
    with torch.no_grad():
        feats = kaldi.fbank(wave, **options)
    return feats.numpy()


def compute_fbank_batch(samples: torch.Tensor, options: dict[str, Any]) -> torch.Tensor:
    """:func:`compute_fbank` of each row of ``samples`` (batch, samples), on their device: (batch, frames, bins)
    float32. With ``dither`` each row draws its own noise."""
    if samples.ndim != 2:
        raise ValueError(f"expected (batch, samples), got shape {tuple(samples.shape)}")
    wave = samples.to(torch.float32) * _INT16_SCALE
    with torch.no_grad():
        return torch.func.vmap(lambda row: kaldi.fbank(row.unsqueeze(0), **options), randomness="different")(wave)


def count_frames(num_samples: int, options: dict[str, Any]) -> int:
    """Frames that Kaldi's framing (``snip_edges``, frame length and shift of ``options``) gives."""
    rate = options.get("sample_frequency", _FBANK_PARAMS["sample_frequency"].default)
    length = int(rate * options.get("frame_length", _FBANK_PARAMS["frame_length"].default) / 1000)
    shift = int(rate * options.get("frame_shift", _FBANK_PARAMS["frame_shift"].default) / 1000)
    if options.get("snip_edges", _FBANK_PARAMS["snip_edges"].default):
        return 0 if num_samples < length else 1 + (num_samples - length) // shift
    return (num_samples + shift // 2) // shift
