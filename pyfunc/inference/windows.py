"""Sliding-window embeddings of a recording: one embedding per window of ``segment`` seconds every ``shift``.

Each window's embedding is that of the window's audio alone (its own fbank, its own mean normalisation),
as if it were cut into its own file. The recording is read once; the windows are embedded a group at a
time, so memory beyond the samples is that of a group. ``python -m pyfunc embed --segment S --shift H``
writes them under the keys of :func:`~pyfunc.inference.long_audio.window_key`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from pyfunc.inference.api import Audio, SpeakerModel
from pyfunc.inference.long_audio import window_bounds

WINDOW_POOL_SECONDS = 300.0  # seconds of windows embedded together


@dataclass(frozen=True)
class WindowEmbeddings:
    """The result of :func:`embed_windows`: window times in seconds and one raw embedding per window."""

    bounds: np.ndarray  # (windows, 2) start and end, seconds
    embeddings: np.ndarray  # (windows, dim) float32


def iter_window_embeddings(model: SpeakerModel, samples: np.ndarray, segment: float, shift: float,
                           where: str = "audio", batch_frames: int | None = None, crops: bool = False
                           ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray | None]]:
    """Yield ``(start, end, embedding, crop embeddings or None)`` of each window of mono ``samples`` at the
    model's rate, in time order (sample indices; :func:`~pyfunc.inference.long_audio.window_bounds`)."""
    bounds = window_bounds(samples.shape[0], model.sample_rate, segment, shift)
    per_pool = max(1, int(WINDOW_POOL_SECONDS // segment))
    for first in range(0, len(bounds), per_pool):
        pool = bounds[first:first + per_pool]
        inputs = [model.model_input(samples[start:end], f"{where} [{start / model.sample_rate:.3f} s, "
                                    f"{end / model.sample_rate:.3f} s)") for start, end in pool]
        full = model.embed_inputs(inputs, batch_frames)
        crop_emb = model.embed_crop_inputs(inputs, batch_frames) if crops else None
        for row, (start, end) in enumerate(pool):
            yield start, end, full[row], crop_emb[row] if crop_emb is not None else None


def embed_windows(model: SpeakerModel, audio: Audio, segment: float, shift: float | None = None,
                  sample_rate: int | None = None) -> WindowEmbeddings:
    """Raw embeddings of the sliding windows of one recording (a path or an array, as :meth:`SpeakerModel.embed`);
    ``shift`` defaults to ``segment`` (windows side by side)."""
    where = str(audio) if not isinstance(audio, np.ndarray) else "audio array"
    samples = model.load_audio(audio, sample_rate, where)
    rows = list(iter_window_embeddings(model, samples, segment, segment if shift is None else shift, where))
    bounds = np.array([(start, end) for start, end, _, _ in rows], dtype=np.float64) / model.sample_rate
    return WindowEmbeddings(bounds.reshape(-1, 2), np.stack([emb for _, _, emb, _ in rows]).astype(np.float32))
