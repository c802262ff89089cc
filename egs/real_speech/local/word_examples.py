"""Isolated words as speaker-verification examples: energy trim, quiet gaps, joining; 16 kHz mono loading.

A recorded word is ~0.6 s of speech in a 1-2 s file, shorter than a training chunk, so an
example joins several words of one speaker: each word trimmed to its speech (:func:`speech_span`),
separated by :data:`GAP_SECONDS` of the quietest stretch of the same recording
(:func:`quietest_window`: the speaker's own microphone background, not digital silence), with
short fades at every joint so that nothing clicks (:func:`join_words`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from pyfunc.data.audio import SAMPLE_RATE, write_wav
from pyfunc.errors import DataError

FRAME_SECONDS = 0.025
HOP_SECONDS = 0.010
RANGE_DB = 35.0  # a frame is speech when within this many dB of the loudest frame ...
FLOOR_DB = 12.0  # ... and this many dB above the background (the 10th percentile frame level)
FLOOR_PERCENTILE = 10
MERGE_SECONDS = 0.2  # speech runs closer than this are one word (stop closures, pauses inside a word)
MARGIN_SECONDS = 0.05  # kept around the word's speech
GAP_SECONDS = 0.1
FADE_SECONDS = 0.005


@dataclass(frozen=True)
class TrimRule:
    """The energy rule of :func:`speech_span` (seconds and dB)."""

    frame: float = FRAME_SECONDS
    hop: float = HOP_SECONDS
    range_db: float = RANGE_DB
    floor_db: float = FLOOR_DB
    merge: float = MERGE_SECONDS
    margin: float = MARGIN_SECONDS


def frame_power(samples: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """Mean square of each frame (``1 + (n - frame) // hop`` frames; one frame of the whole signal when shorter)."""
    if samples.size <= frame:
        return np.array([float(np.mean(samples.astype(np.float64) ** 2))])
    count = 1 + (samples.size - frame) // hop
    squares = np.concatenate([[0.0], np.cumsum(samples.astype(np.float64) ** 2)])
    starts = np.arange(count) * hop
    return (squares[starts + frame] - squares[starts]) / frame


def speech_span(samples: np.ndarray, rate: int = SAMPLE_RATE, rule: TrimRule = TrimRule()) -> tuple[int, int]:
    """``(start, end)`` sample range of the word in ``samples``.

    Frames within ``range_db`` of the loudest frame and ``floor_db`` above the background level are
    speech; runs of them closer than ``merge`` are joined, and the run with the most energy is the word
    (a click before or after it is left out); ``margin`` is kept on both sides.
    """
    frame, hop = max(1, round(rule.frame * rate)), max(1, round(rule.hop * rate))
    power = frame_power(samples, frame, hop)
    level = 10.0 * np.log10(power + 1e-12)
    threshold = max(level.max() - rule.range_db, np.percentile(level, FLOOR_PERCENTILE) + rule.floor_db)
    active = np.flatnonzero(level >= threshold)
    if active.size == 0:  # a flat signal: every frame is as loud as the background
        return 0, samples.size
    breaks = np.flatnonzero(np.diff(active) * hop > rule.merge * rate)
    run_starts = np.concatenate([[active[0]], active[breaks + 1]])
    run_ends = np.concatenate([active[breaks], [active[-1]]])
    energy = [power[a:b + 1].sum() for a, b in zip(run_starts, run_ends)]
    best = int(np.argmax(energy))
    margin = round(rule.margin * rate)
    start = max(0, int(run_starts[best]) * hop - margin)
    end = min(samples.size, int(run_ends[best]) * hop + frame + margin)
    return start, end


def quietest_window(samples: np.ndarray, length: int) -> np.ndarray:
    """The ``length`` consecutive samples of least energy (tiled when ``samples`` is shorter)."""
    if samples.size <= length:
        return np.resize(samples, length)
    squares = np.concatenate([[0.0], np.cumsum(samples.astype(np.float64) ** 2)])
    energy = squares[length:] - squares[:-length]
    start = int(np.argmin(energy[::max(1, length // 8)])) * max(1, length // 8)
    return samples[start:start + length]


def fade(samples: np.ndarray, length: int) -> np.ndarray:
    """``samples`` with half-cosine fades of ``length`` samples at both ends."""
    out = samples.astype(np.float64, copy=True)
    n = min(length, out.size // 2)
    if n > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
        out[:n] *= ramp
        out[-n:] *= ramp[::-1]
    return out


def join_words(words: list[np.ndarray], gaps: list[np.ndarray], rate: int = SAMPLE_RATE) -> np.ndarray:
    """``words[0] gaps[0] words[1] ... words[-1]``, each piece faded in and out (:data:`FADE_SECONDS`)."""
    if not words or len(gaps) != len(words) - 1:
        raise ValueError("join_words: need one gap between each two words")
    n = round(FADE_SECONDS * rate)
    pieces: list[np.ndarray] = []
    for i, word in enumerate(words):
        pieces.append(fade(word, n))
        if i < len(gaps):
            pieces.append(fade(gaps[i], n))
    return np.concatenate(pieces)


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """``samples`` resampled from ``rate`` to ``target`` Hz (torchaudio's windowed-sinc resampler)."""
    if rate == target:
        return samples
    import torch
    import torchaudio.functional

    tensor = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one file is too small to share: threads only fight the other worker processes
    try:
        return torchaudio.functional.resample(tensor, rate, target).numpy().astype(np.float64)
    finally:
        torch.set_num_threads(threads)


def load_mono_16k(path: Path | str, where: str) -> np.ndarray:
    """The samples of ``path`` as float64 mono at 16 kHz (channels averaged, other rates resampled)."""
    try:
        samples, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, ValueError) as err:
        raise DataError(f"{where}: cannot read audio {path}: {err}") from None
    if samples.shape[0] == 0 or not np.isfinite(samples).all():
        raise DataError(f"{where}: audio {path} is empty or has non-finite samples")
    return resample(samples.mean(axis=1), int(rate))


def make_joined_example(files: list[str], out_path: str, where: str) -> float:
    """Trim each word of ``files``, join them with quiet gaps of their own recordings, write ``out_path``
    (16-bit 16 kHz wav); return its duration in seconds. A process-pool task."""
    words, gaps = [], []
    gap = round(GAP_SECONDS * SAMPLE_RATE)
    for i, path in enumerate(files):
        samples = load_mono_16k(path, where)
        start, end = speech_span(samples)
        words.append(samples[start:end])
        if i < len(files) - 1:
            gaps.append(quietest_window(samples, gap))
    joined = join_words(words, gaps)
    peak = float(np.max(np.abs(joined)))
    if peak > 0.99:  # never clip: a loud recording is scaled down as a whole
        joined *= 0.99 / peak
    write_wav(out_path, joined)
    return joined.size / SAMPLE_RATE


def convert_file(path: str, out_path: str, where: str) -> float:
    """Write ``path`` (any soundfile format, rate, channels) as 16-bit 16 kHz mono wav; return its duration."""
    samples = load_mono_16k(path, where)
    peak = float(np.max(np.abs(samples)))
    if peak > 0.99:
        samples = samples * (0.99 / peak)
    write_wav(out_path, samples)
    return samples.size / SAMPLE_RATE
