"""Long recordings: when the Python API and the ``embed``/``verify`` tools embed block-wise, and sliding windows.

Inputs longer than ``max_chunk_seconds`` (default :data:`DEFAULT_MAX_CHUNK_SECONDS`) get their front end
(:mod:`pyfunc.features.blockwise`) and their encoder (:mod:`pyfunc.models.ecapa_blocks`) computed in blocks
of that many seconds, which gives the one-pass embedding up to float32 rounding with memory that no longer
holds every layer of the whole recording. Shorter inputs take the one-pass path, unchanged. ``0`` turns the
block-wise path off.

:func:`window_bounds` cuts a recording into the windows of ``embed --segment S --shift H``, named as
:func:`window_key` says (``<utt>-<start ms>-<end ms>``, like the keys of a Kaldi ``segments`` file).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from pyfunc.errors import ConfigError
from pyfunc.features.blockwise import fbank_in_blocks, kaldi_framing
from pyfunc.features.kaldi_fbank import compute_fbank, count_frames
from pyfunc.inference.batching import embed_items, input_frames
from pyfunc.models.ecapa import ECAPATDNN
from pyfunc.models.ecapa_blocks import embed_long_input

DEFAULT_MAX_CHUNK_SECONDS = 30.0  # longer recordings are embedded block-wise, in blocks of this length

MIN_CHUNK_SECONDS = 1.0

SEED_FRAMES_PER_SECOND = 100  # the seed front end's hop is 10 ms


def check_max_chunk_seconds(seconds: float) -> float:
    """``seconds`` as a float when it is 0 (one pass always) or at least :data:`MIN_CHUNK_SECONDS`."""
    seconds = float(seconds)
    if not (seconds == 0 or seconds >= MIN_CHUNK_SECONDS):  # also refuses NaN
        raise ConfigError(f"max_chunk_seconds must be 0 (never block-wise) or at least {MIN_CHUNK_SECONDS}, "
                          f"got {seconds}")
    return seconds


def chunk_frames(seconds: float, fbank_options: dict[str, Any] | None) -> int:
    """``seconds`` (checked by :func:`check_max_chunk_seconds`) in model frames: fbank frames of
    ``fbank_options``' shift, or the seed front end's (None)."""
    seconds = check_max_chunk_seconds(seconds)
    if fbank_options is None:
        return int(round(seconds * SEED_FRAMES_PER_SECOND))
    rate = float(fbank_options.get("sample_frequency", 16000.0))
    return int(round(seconds * rate / kaldi_framing(fbank_options)[1]))


def fbank_input(samples: np.ndarray, options: dict[str, Any], max_chunk_frames: int) -> np.ndarray:
    """Kaldi fbank of ``samples``: in one pass up to ``max_chunk_frames`` frames (or when it is 0), else in
    blocks of that many frames."""
    if max_chunk_frames and count_frames(samples.shape[0], options) > max_chunk_frames:
        return fbank_in_blocks(samples, options, max_chunk_frames)
    return compute_fbank(samples, options)


def embed_items_long(encoder: ECAPATDNN, items: Sequence[np.ndarray], batch_frames: int,
                     max_chunk_frames: int) -> np.ndarray:
    """Full-utterance embeddings (len(items), dim) of model inputs: those of up to ``max_chunk_frames`` frames
    (all of them when it is 0) in length-sorted batches as :func:`~pyfunc.inference.batching.embed_items`,
    longer ones one at a time block-wise."""
    long = [i for i, item in enumerate(items)
            if max_chunk_frames and input_frames(encoder.frontend, item) > max_chunk_frames]
    if not long:
        return embed_items(encoder, items, batch_frames)
    out = np.zeros((len(items), encoder.embed_dim), dtype=np.float32)
    short = sorted(set(range(len(items))) - set(long))
    if short:
        out[short] = embed_items(encoder, [items[i] for i in short], batch_frames)
    for index in long:
        out[index] = embed_long_input(encoder, items[index], max_chunk_frames)
    return out


def window_bounds(num_samples: int, sample_rate: int, segment: float, shift: float) -> list[tuple[int, int]]:
    """``(start, end)`` sample indices of the sliding windows of a recording.

    Windows of ``segment`` seconds start every ``shift`` seconds while they fit; when the last one ends
    before the recording does, one more window ends at the recording's end (all windows are ``segment``
    long). A recording shorter than ``segment`` is one window.
    """
    if not segment > 0 or not shift > 0:
        raise ConfigError(f"segment and shift must be positive seconds, got segment={segment}, shift={shift}")
    length, step = int(round(segment * sample_rate)), int(round(shift * sample_rate))
    if length < 1 or step < 1:
        raise ConfigError(f"segment {segment} s and shift {shift} s must each be at least one sample at "
                          f"{sample_rate} Hz")
    if num_samples <= length:
        return [(0, num_samples)]
    bounds = [(start, start + length) for start in range(0, num_samples - length + 1, step)]
    if bounds[-1][1] < num_samples:
        bounds.append((num_samples - length, num_samples))
    return bounds


def window_key(utt: str, start: int, end: int, sample_rate: int) -> str:
    """``<utt>-<start>-<end>`` with the window's times in milliseconds, zero-padded to 7 digits (Kaldi's
    segment naming), so that a recording's windows sort in time order."""
    return f"{utt}-{round(start * 1000 / sample_rate):07d}-{round(end * 1000 / sample_rate):07d}"
