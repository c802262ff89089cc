"""Audio of any sample rate and channel count, made mono at the model's rate (for the user-facing tools).

The recipe's :func:`pyfunc.data.audio.read_audio` refuses anything but mono audio at the
expected rate, because a data directory should be prepared once, explicitly. The
``verify``/``embed`` tools and the Python API take whatever a user has instead:
:func:`read_audio_converted` averages the channels and resamples
(``torchaudio.functional.resample``), and says so in a warning naming the file.
Stages 1 and 3 resample a data directory's audio only when asked (``--resample``:
:func:`read_audio_at_rate`), and still refuse several channels.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torchaudio.functional as AF

from pyfunc.data.audio import checked_mono, read_samples, wrong_rate_message
from pyfunc.errors import DataError

logger = logging.getLogger(__name__)


def convert_samples(samples: np.ndarray, rate: int, target_rate: int, where: str = "audio") -> np.ndarray:
    """(frames, channels) or (frames,) float samples at ``rate`` -> float32 mono at ``target_rate``.

    Several channels are averaged; another rate is resampled. Either logs a warning naming ``where``.
    """
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.ndim != 2 or samples.shape[0] == 0 or samples.shape[1] == 0:
        raise DataError(f"{where}: audio is empty")
    if rate <= 0:
        raise DataError(f"{where}: invalid sample rate {rate}")
    if not np.isfinite(samples).all():
        raise DataError(f"{where}: audio has non-finite samples")
    changes = []
    if samples.shape[1] > 1:
        changes.append(f"downmixed {samples.shape[1]} channels to mono (channel mean)")
    mono = samples.mean(axis=1)
    if rate != target_rate:
        changes.append(f"resampled from {rate} Hz to {target_rate} Hz")
        mono = AF.resample(torch.from_numpy(mono), rate, target_rate).numpy()
    if changes:
        logger.warning("%s: %s", where, " and ".join(changes))
    if mono.shape[0] == 0:
        raise DataError(f"{where}: audio is empty after resampling to {target_rate} Hz")
    return mono.astype(np.float32)


def read_audio_converted(entry: str, target_rate: int, where: str = "") -> np.ndarray:
    """Read an audio file (or ``wav.scp`` pipe command) as float32 mono samples at ``target_rate``.

    Any format soundfile reads; other rates are resampled and several channels averaged,
    with a warning. Unreadable, empty or non-finite audio is a DataError naming ``where``.
    """
    where = where or entry
    samples, rate = read_samples(entry, where)
    return convert_samples(samples, rate, target_rate, where)


def read_audio_at_rate(entry: str, where: str, rate: int, resample: bool = False) -> np.ndarray:
    """Read a data directory's ``wav.scp`` entry as float32 mono samples at ``rate`` (stages 1 and 3).

    Audio at another rate is resampled (``torchaudio.functional.resample``, its default
    windowed-sinc interpolation) when ``resample``, else refused with a DataError naming
    ``where``, both rates and the fix. Several channels, empty or non-finite audio are
    refused either way, as :func:`pyfunc.data.audio.read_audio` does.
    """
    samples, found = read_samples(entry, where)
    mono = checked_mono(samples, found, where)
    if found == rate:
        return mono
    if not resample:
        raise DataError(wrong_rate_message(where, entry, found, rate))
    resampled = AF.resample(torch.from_numpy(np.ascontiguousarray(samples[:, 0])), found, rate).numpy()
    if resampled.shape[0] == 0:
        raise DataError(f"{where}: audio is empty after resampling from {found} Hz to {rate} Hz")
    return resampled.astype(np.float32)
