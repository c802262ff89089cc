"""Kaldi ``segments`` files: utterances that are time spans of the recordings in ``wav.scp``.

One line per utterance, ``<utt> <recording> <start> <end>`` with times in seconds
(``end`` > ``start`` >= 0), keys sorted as Kaldi requires. In a data dir with a
``segments`` file, ``utt2spk`` (and ``utt2dur``) are keyed by the segments and
``wav.scp`` by the recordings, which must be exactly those the segments name
(as Kaldi's ``validate_data_dir.sh`` checks).

The seed's MUSAN split (voxceleb_trainer's ``musan_split``) is :func:`split_spans`:
5 s windows starting every 3 s while the start is before ``length - 5 s``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, NamedTuple

from pyfunc.data.atomic import PathLike, write_lines
from pyfunc.data.tables import read_text_table
from pyfunc.errors import DataError

SEGMENTS = "segments"


class Segment(NamedTuple):
    """A span of a recording, in seconds."""

    recording: str
    start: float
    end: float


def read_segments(path: PathLike) -> dict[str, Segment]:
    """``utt -> Segment`` from a segments file: 4 fields a line, sorted unique keys, 0 <= start < end."""
    path = Path(path)
    out: dict[str, Segment] = {}
    for utt, (recording, *times) in read_text_table(path, 4, 4, check_sorted=True).items():
        try:
            start, end = (float(t) for t in times)
        except ValueError:
            raise DataError(f"{path}: segment {utt!r}: start and end must be numbers, "
                            f"got {' '.join(times)!r}") from None
        if not (math.isfinite(start) and math.isfinite(end) and 0.0 <= start < end):
            raise DataError(f"{path}: segment {utt!r}: need 0 <= start < end, got {start} {end}")
        out[utt] = Segment(recording, start, end)
    return out


def write_segments(path: PathLike, table: Mapping[str, Segment]) -> None:
    """Write ``utt -> Segment`` sorted by key (LC_ALL=C), times in seconds to the millisecond, atomically."""
    write_lines(path, (f"{utt} {s.recording} {s.start:.3f} {s.end:.3f}" for utt, s in sorted(table.items())))


def split_spans(num_samples: int, length: int, hop: int) -> list[tuple[int, int]]:
    """Sample spans ``[begin, begin + length)`` with ``begin`` = 0, hop, 2 hop, ... while ``begin < num_samples -
    length``: voxceleb_trainer's ``range(0, len(aud) - audlen, audstr)``, so a recording of ``length`` samples or
    fewer gives none."""
    if length < 1 or hop < 1:
        raise ValueError(f"segment length and hop must be positive, got {length} and {hop}")
    return [(begin, begin + length) for begin in range(0, num_samples - length, hop)]


def check_segments(path: PathLike, segments: Mapping[str, Segment], utts: Mapping[str, object],
                   recordings: Mapping[str, object]) -> None:
    """DataError unless the segments are exactly ``utts`` and name exactly the keys of ``recordings`` (wav.scp)."""
    path = Path(path)
    named = {s.recording for s in segments.values()}
    problems = (("utterance(s) of utt2spk have no segment", sorted(set(utts) - set(segments))),
                ("segment(s) are not in utt2spk", sorted(set(segments) - set(utts))),
                ("recording(s) are not in wav.scp", sorted(named - set(recordings))),
                ("recording(s) of wav.scp have no segment (drop them from wav.scp)", sorted(set(recordings) - named)))
    for what, keys in problems:
        if keys:
            raise DataError(f"{path}: {len(keys)} {what}, e.g. {keys[:3]}")


__all__ = ["SEGMENTS", "Segment", "check_segments", "read_segments", "split_spans", "write_segments"]
