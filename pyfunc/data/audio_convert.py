"""Audio of any sample rate and channel count, made mono at the model's rate (for the user-facing tools).

The recipe's :func:`pyfunc.data.audio.read_audio` refuses anything but mono audio at the
expected rate, because a data directory should be prepared once, explicitly. The
``verify``/``embed`` tools and the Python API take whatever a user has instead:
:func:`read_audio_converted` averages the channels and resamples
(``torchaudio.functional.resample``), and says so in a warning naming the file.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torchaudio.functional as AF

from pyfunc.data.audio import read_samples
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
