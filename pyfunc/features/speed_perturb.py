"""Speed perturbation (Kaldi's and WeSpeaker's 0.9/1.0/1.1): the waveform played faster or slower.

A factor ``f`` resamples the signal as if it had been recorded at ``f x`` the sample rate: it
lasts ``1 / f`` as long and every frequency is ``f`` times higher (tempo and pitch change together,
as with sox's ``speed``), so a perturbed copy sounds like another speaker.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from pyfunc.errors import ConfigError

CONTEXT = 64  # samples of context on each side of a crop, so the resampling filter's edges fall outside it


def resampling_ratio(factor: float) -> tuple[int, int]:
    """``(up, down)`` with ``up / down == 1 / factor`` (factors like 0.9 and 1.1 give small integers)."""
    if not 0.5 <= factor <= 2.0:
        raise ConfigError(f"speed perturbation factor {factor} is outside [0.5, 2]")
    ratio = Fraction(1 / factor).limit_denominator(1000)
    return ratio.numerator, ratio.denominator


def speed_perturb(samples: np.ndarray, factor: float) -> np.ndarray:
    """``samples`` (1-d) at speed ``factor``: about ``len(samples) / factor`` samples (float64)."""
    if factor == 1.0:
        return np.asarray(samples, dtype=np.float64)
    up, down = resampling_ratio(factor)
    return resample_poly(np.asarray(samples, dtype=np.float64), up, down)


def perturbed_crop(samples: np.ndarray, length: int, factor: float, rng: np.random.Generator) -> np.ndarray:
    """A random ``length``-sample crop of ``samples`` at speed ``factor`` (float64).

    The crop is cut from the unperturbed signal with ``CONTEXT`` samples to spare on each side
    (``ceil((length + 2 CONTEXT) * factor)`` samples, the signal wrap-padded when shorter, the
    start drawn uniformly as for unperturbed crops), resampled, and its middle ``length`` kept.
    """
    need = math.ceil((length + 2 * CONTEXT) * factor)
    x = np.asarray(samples, dtype=np.float64)
    if x.shape[0] <= need:
        x = np.pad(x, (0, need - x.shape[0]), mode="wrap")
        start = 0
    else:
        start = int(rng.random() * (x.shape[0] - need))
    out = speed_perturb(x[start:start + need], factor)
    return out[CONTEXT:CONTEXT + length]
