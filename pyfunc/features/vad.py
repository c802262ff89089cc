"""Energy voice-activity detection: Kaldi's ``compute-vad`` rule and ``select-voiced-frames``.

The rule (Kaldi's ``ComputeVadEnergy``, its options and defaults): with ``E[t]`` the log energy of frame
``t`` of ``T`` and ``m`` its mean over the utterance, a frame is *above* when
``E[t] > energy_threshold + energy_mean_scale * m``; frame ``t`` is voiced when, among the frames
``t - frames_context .. t + frames_context`` that exist (the window is cut at the ends), the proportion
that are above is at least ``proportion_threshold``. The comparison ``count >= frames x proportion`` is made
in float32, as with Kaldi's ``BaseFloat`` (3 of 5 frames is "at least 0.6": 5 x 0.6f rounds to 3.0).

How the energy is obtained here, and how it differs from Kaldi's: Kaldi's VoxCeleb recipe runs
``compute-vad`` on MFCC features, whose column 0 is then the raw log energy of each frame (after dithering
and DC removal, before pre-emphasis and the window). Our front end is fbank, which has the same log-energy
option (``--use-energy``): :func:`frame_log_energy` computes the fbank of the recipe's ``fbank.conf`` with
``use_energy`` and ``raw_energy`` on and takes that column, so the framing (window, shift, ``snip_edges``)
and the frame count are exactly those of the utterance's features, and the scale is Kaldi's (16-bit sample
values). The one difference is dither: Kaldi's MFCC default ``--dither=1.0`` adds noise, so digital silence
has a log energy near ``log(frame length / 3)`` there; here dither is always off (the decision is the same on
every run), so digital silence has ``log(FLT_EPSILON)`` (about -15.9) unless the conf sets
``--energy-floor``. That lowers the mean of a recording with stretches of digital zeros, and so the relative
threshold ``energy_threshold + energy_mean_scale * m``; real recordings (never exactly zero) are not affected.

A decision is a float vector of 1.0 (voiced) and 0.0 per frame, as ``compute-vad`` writes it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from pyfunc.data.atomic import PathLike
from pyfunc.data.badinput import SHOW, BadInputs
from pyfunc.data.tables import iter_table_lines
from pyfunc.errors import ConfigError, DataError
from pyfunc.features.kaldi_fbank import compute_fbank, count_frames

logger = logging.getLogger(__name__)

DEFAULT_VAD_CONF = Path(__file__).resolve().parents[1] / "conf" / "vad.conf"  # package data, as conf/vad.conf


@dataclass(frozen=True)
class VadOptions:
    """The options of Kaldi's ``compute-vad`` (``--vad-energy-threshold`` etc.), with its defaults."""

    energy_threshold: float = 5.0  # constant term of the threshold on the log energy
    energy_mean_scale: float = 0.5  # s: the threshold is energy_threshold + s * (mean log energy of the utterance)
    frames_context: int = 0  # frames on each side of the frame in the window whose energies are looked at
    proportion_threshold: float = 0.6  # the proportion of the window's frames that must be above the threshold

    def __post_init__(self) -> None:
        check_vad_options(self)


def check_vad_options(options: VadOptions, where: str = "VAD options") -> None:
    """ConfigError when an option is out of Kaldi's range (as ``compute-vad`` asserts)."""
    if not np.isfinite(options.energy_threshold):
        raise ConfigError(f"{where}: --vad-energy-threshold must be finite, got {options.energy_threshold}")
    if not (options.energy_mean_scale >= 0.0 and np.isfinite(options.energy_mean_scale)):
        raise ConfigError(f"{where}: --vad-energy-mean-scale must be at least 0, got {options.energy_mean_scale}")
    if isinstance(options.frames_context, bool) or not isinstance(options.frames_context, int) \
            or options.frames_context < 0:
        raise ConfigError(f"{where}: --vad-frames-context must be an integer of at least 0, got "
                          f"{options.frames_context!r}")
    if not 0.0 < options.proportion_threshold < 1.0:
        raise ConfigError(f"{where}: --vad-proportion-threshold must be between 0 and 1 (exclusive), got "
                          f"{options.proportion_threshold}")


_CONF_NAMES = {f"vad-{f.name.replace('_', '-')}": f for f in dataclasses.fields(VadOptions)}


def read_vad_conf(path: PathLike) -> VadOptions:
    """Parse a Kaldi ``vad.conf`` (``--vad-energy-threshold=5.5`` per line, ``#`` comments); options left out
    keep Kaldi's defaults. ConfigError names the file and line of a malformed, unknown or out-of-range option."""
    values: dict[str, Any] = {}
    for number, fields in iter_table_lines(path):
        line = " ".join(fields).split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path}:{number}"
        if not line.startswith("--") or "=" not in line:
            raise ConfigError(f"{where}: expected '--option=value', got {line!r}")
        name, text = line[2:].split("=", 1)
        if name not in _CONF_NAMES:
            raise ConfigError(f"{where}: unknown VAD option --{name} (known: "
                              f"{', '.join('--' + n for n in _CONF_NAMES)})")
        field = _CONF_NAMES[name]
        kind = int if field.type in (int, "int") else float
        try:
            values[field.name] = kind(text)
        except ValueError:
            raise ConfigError(f"{where}: --{name}: expected {kind.__name__}, got {text!r}") from None
    try:
        return VadOptions(**values)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def vad_options_dict(options: VadOptions) -> dict[str, Any]:
    """The options as a plain dict (for stamps)."""
    return dataclasses.asdict(options)


def frame_log_energy(samples: np.ndarray, fbank_options: Mapping[str, Any]) -> np.ndarray:
    """The raw log energy (float32, one per frame) of float samples in [-1, 1], with the framing of
    ``fbank_options`` (so as many frames as their fbank features): the fbank energy column, dither off
    (see the module docstring)."""
    options = {**fbank_options, "use_energy": True, "raw_energy": True, "htk_compat": False, "dither": 0.0}
    if count_frames(len(samples), options) == 0:
        return np.zeros(0, dtype=np.float32)
    return np.ascontiguousarray(compute_fbank(samples, options)[:, 0], dtype=np.float32)


def vad_decision(log_energy: np.ndarray, options: VadOptions) -> np.ndarray:
    """Kaldi's ``compute-vad`` rule on per-frame log energies: float32 1.0 (voiced) / 0.0 per frame."""
    energy = np.asarray(log_energy, dtype=np.float64)
    if energy.ndim != 1:
        raise ValueError(f"expected a vector of log energies, got shape {energy.shape}")
    frames = energy.shape[0]
    if frames == 0:
        return np.zeros(0, dtype=np.float32)
    threshold = options.energy_threshold + options.energy_mean_scale * float(energy.mean())
    above = np.concatenate([[0], np.cumsum(energy > np.float32(threshold))])
    t = np.arange(frames)
    first = np.maximum(t - options.frames_context, 0)
    end = np.minimum(t + options.frames_context + 1, frames)
    count = above[end] - above[first]
    voiced = count.astype(np.float32) >= (end - first).astype(np.float32) * np.float32(options.proportion_threshold)
    return voiced.astype(np.float32)


def compute_vad(samples: np.ndarray, fbank_options: Mapping[str, Any], options: VadOptions) -> np.ndarray:
    """The decision (1.0/0.0 per fbank frame) of float samples in [-1, 1]: :func:`vad_decision` of
    :func:`frame_log_energy`."""
    return vad_decision(frame_log_energy(samples, fbank_options), options)


def check_vad_length(vad: np.ndarray, frames: int, key: str, what: str = "the features") -> np.ndarray:
    """``vad`` as a float vector; DataError naming ``key`` when it is not a vector of ``frames`` values."""
    vad = np.asarray(vad)
    if vad.ndim != 1:
        raise DataError(f"{key}: the voice-activity decision is not a vector (shape {vad.shape})")
    if vad.shape[0] != frames:
        raise DataError(f"{key}: the voice-activity decision has {vad.shape[0]} frames, {what} {frames}; "
                        f"recompute vad.scp (steps/compute_vad.py) with the features' fbank.conf")
    return vad


def select_voiced_frames(feats: np.ndarray, vad: np.ndarray, key: str) -> np.ndarray:
    """Kaldi's ``select-voiced-frames`` for one utterance: the rows of ``feats`` whose decision is not 0.

    DataError naming ``key`` when the decision has another length than ``feats`` has rows (both lengths
    given), or when no frame is voiced."""
    vad = check_vad_length(vad, feats.shape[0], key)
    voiced = vad != 0.0
    if not voiced.any():
        raise DataError(f"{key}: no frame of {feats.shape[0]} is judged voiced; nothing is left to use")
    return feats[voiced]


def select_voiced_table(items: Iterable[tuple[str, np.ndarray]], vads: Mapping[str, np.ndarray],
                        skip_bad: bool = False, source: PathLike = "vad.scp") -> dict[str, np.ndarray]:
    """``select-voiced-frames`` of a table: ``key -> voiced rows`` of each ``(key, matrix)``.

    A key without a decision, with one of another length, or with no voiced frame is bad input: without
    ``skip_bad`` a DataError lists every such key with its reason; with it they are left out and a warning
    lists them."""
    bad = BadInputs()
    out: dict[str, np.ndarray] = {}
    for key, feats in items:
        try:
            if key not in vads:
                raise DataError(f"{key}: no entry in {source}")
            out[key] = select_voiced_frames(feats, vads[key], key)
        except DataError as err:
            bad.add(key, str(err))
    if bad and not skip_bad:
        raise bad.error(source)
    if bad:
        shown = sorted(bad.found)[:SHOW]
        logger.warning("%s: left out %d utterance(s) without usable voiced frames: %s%s", source, len(bad),
                       ", ".join(shown), " ..." if len(bad) > SHOW else "")
    return out


def voiced_samples(samples: np.ndarray, vad: np.ndarray, fbank_options: Mapping[str, Any], key: str) -> np.ndarray:
    """The samples of the voiced frames, joined: the waveform counterpart of :func:`select_voiced_frames`.

    Sample ``s`` belongs to frame ``min(s // shift, T - 1)`` (frames overlap; each sample goes with the frame
    that its shift starts, the tail after the last shift with the last frame), and is kept when that frame is
    voiced. ``vad`` must have the frame count of ``fbank_options``' framing of ``samples``; DataError naming
    ``key`` otherwise, or when no frame is voiced."""
    frames = count_frames(len(samples), dict(fbank_options))
    vad = check_vad_length(vad, frames, key, f"the {len(samples)} samples give")
    voiced = vad != 0.0
    if not voiced.any():
        raise DataError(f"{key}: no frame of {frames} is judged voiced; nothing is left to use")
    rate = float(fbank_options.get("sample_frequency", 16000.0))
    shift = int(rate * float(fbank_options.get("frame_shift", 10.0)) / 1000)
    owner = np.minimum(np.arange(len(samples)) // shift, frames - 1)
    return samples[voiced[owner]]
