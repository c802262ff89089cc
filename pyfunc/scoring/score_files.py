"""Score files: ``enroll test score`` per line, written atomically, read back in trials order."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from pyfunc.data.atomic import PathLike, atomic_open
from pyfunc.data.tables import iter_table_lines
from pyfunc.data.trials import TrialList, as_trial_list
from pyfunc.errors import DataError
from pyfunc.scoring.cosine import DEFAULT_CHUNK


def write_scores(path: PathLike, trials: TrialList | Sequence[Sequence], scores: np.ndarray) -> None:
    """Write ``enroll test score`` lines (score with 8 decimals) atomically."""
    trials = as_trial_list(trials)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (len(trials),):
        raise DataError(f"{path}: {scores.shape} scores for {len(trials)} trials")
    with atomic_open(path) as handle:
        for start in range(0, len(trials), DEFAULT_CHUNK):
            stop = start + DEFAULT_CHUNK
            handle.write("".join(f"{e} {t} {s:.8f}\n" for e, t, s in
                                 zip(trials.enrolls[start:stop], trials.tests[start:stop],
                                     scores[start:stop].tolist())))


def read_scores(path: PathLike) -> tuple[list[str], list[str], np.ndarray]:
    """Read a score file: ``(enrolls, tests, float64 scores)``; DataError names a bad line."""
    enrolls, tests, values = [], [], []
    for number, fields in iter_table_lines(path):
        if len(fields) != 3:
            raise DataError(f"{path}:{number}: expected 'enroll test score', got {' '.join(fields)!r}")
        try:
            value = float(fields[2])
        except ValueError:
            raise DataError(f"{path}:{number}: score {fields[2]!r} is not a number") from None
        if not np.isfinite(value):
            raise DataError(f"{path}:{number}: score {fields[2]!r} is not finite")
        enrolls.append(fields[0])
        tests.append(fields[1])
        values.append(value)
    if not enrolls:
        raise DataError(f"{path}: no scores")
    return enrolls, tests, np.asarray(values, dtype=np.float64)


def scores_for_trials(score_path: PathLike, trials_path: PathLike, enrolls: list[str],
                       tests: list[str]) -> np.ndarray:
    """The scores of ``score_path`` in trials order; a DataError names any missing or extra pair."""
    s_enrolls, s_tests, values = read_scores(score_path)
    if s_enrolls == enrolls and s_tests == tests:
        return values
    table: dict[tuple[str, str], float] = {}
    for enroll, test, value in zip(s_enrolls, s_tests, values.tolist()):
        old = table.setdefault((enroll, test), value)
        if old != value:
            raise DataError(f"{score_path}: pair {enroll} {test} is scored twice with different scores")
    out = np.empty(len(enrolls), dtype=np.float64)
    wanted = set()
    for i, pair in enumerate(zip(enrolls, tests)):
        value = table.get(pair)
        if value is None:
            raise DataError(f"{score_path}: no score for trial {pair[0]} {pair[1]} of {trials_path}")
        out[i] = value
        wanted.add(pair)
    if len(wanted) != len(table):
        extra = next(pair for pair in table if pair not in wanted)
        raise DataError(f"{score_path}: pair {extra[0]} {extra[1]} is not a trial of {trials_path}")
    return out
