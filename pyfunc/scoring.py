"""Stage 4: cosine scoring of a trials file, with the full-utterance or the seed evaluation protocol.

* ``full``: score = cosine of the two full-utterance embeddings.
* ``seed`` (SYSTEM.md "Evaluation"): score = (cosine of the full-utterance embeddings + mean of
  the n x m cosine matrix of the L2-normalised crop embeddings) / 2. The mean of that matrix
  equals the dot product of the two utterances' mean normalised crop embeddings, which is how
  it is computed here (one vector per utterance instead of five).

Scores are computed in float64, vectorised over trials in chunks so that memory stays bounded
(``chunk`` trials at a time). Score files hold ``enroll test score`` lines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from pyfunc.datadir import parse_trial_line
from pyfunc.embeddings import CROPS_SCP, XVECTOR_SCP, open_scp, l2_normalise, load_crop_means, load_embeddings
from pyfunc.errors import ConfigError, DataError
from pyfunc.fileio import PathLike, atomic_open, iter_table_lines

logger = logging.getLogger(__name__)

PROTOCOLS = ("auto", "full", "seed")
DEFAULT_CHUNK = 65536


@dataclass
class TrialList:
    """Trial pairs with where they came from, so errors can name the file and line."""

    enrolls: list[str]
    tests: list[str]
    path: str | None = None
    lines: list[int] | None = None
    labels: list[bool | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.enrolls)

    def where(self, index: int) -> str:
        """``file:line`` (or ``trial N``) of trial ``index``."""
        if self.path is not None and self.lines is not None:
            return f"{self.path}:{self.lines[index]}"
        return f"trial {index + 1}"

    @property
    def utterances(self) -> list[str]:
        """Every utterance of the trials, sorted."""
        return sorted(set(self.enrolls) | set(self.tests))


def read_trial_list(path: PathLike) -> TrialList:
    """Read ``enroll test [target|nontarget|1|0]`` lines (labels optional for scoring)."""
    enrolls, tests, lines, labels = [], [], [], []
    for number, fields in iter_table_lines(path):
        enroll, test, label = parse_trial_line(path, number, fields)
        enrolls.append(enroll)
        tests.append(test)
        lines.append(number)
        labels.append(label)
    if not enrolls:
        raise DataError(f"{path}: no trials")
    return TrialList(enrolls, tests, str(path), lines, labels)


def as_trial_list(trials: TrialList | Sequence[Sequence]) -> TrialList:
    """Accept a :class:`TrialList` or a sequence of ``(enroll, test[, label])`` tuples."""
    if isinstance(trials, TrialList):
        return trials
    enrolls, tests = [], []
    for i, trial in enumerate(trials):
        if len(trial) not in (2, 3):
            raise DataError(f"trial {i + 1}: expected (enroll, test[, label]), got {trial!r}")
        enrolls.append(str(trial[0]))
        tests.append(str(trial[1]))
    return TrialList(enrolls, tests)


def trial_indices(trials: TrialList | Sequence[Sequence], keys: Sequence[str],
                  source: str = "the embeddings") -> tuple[np.ndarray, np.ndarray]:
    """Row indices into ``keys`` of each trial's enroll and test utterance.

    An utterance not in ``keys`` is a DataError naming the trials file, line and key.
    """
    trials = as_trial_list(trials)
    row = {key: i for i, key in enumerate(keys)}
    ei = np.fromiter((row.get(key, -1) for key in trials.enrolls), dtype=np.int64, count=len(trials))
    ti = np.fromiter((row.get(key, -1) for key in trials.tests), dtype=np.int64, count=len(trials))
    if (ei < 0).any() or (ti < 0).any():
        bad = int(np.flatnonzero((ei < 0) | (ti < 0))[0])
        key = trials.enrolls[bad] if ei[bad] < 0 else trials.tests[bad]
        raise DataError(f"{trials.where(bad)}: utterance {key!r} is not in {source}")
    return ei, ti


def _row_dots(left: np.ndarray, right: np.ndarray, ei: np.ndarray, ti: np.ndarray, chunk: int) -> np.ndarray:
    """``sum(left[ei[k]] * right[ti[k]])`` for every k, ``chunk`` rows at a time, in float64."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    out = np.empty(len(ei), dtype=np.float64)
    for start in range(0, len(ei), chunk):
        stop = start + chunk
        a = np.asarray(left[ei[start:stop]], dtype=np.float64)
        b = np.asarray(right[ti[start:stop]], dtype=np.float64)
        out[start:stop] = np.einsum("ij,ij->i", a, b)
    return out


def cosine_scores(trials: TrialList | Sequence[Sequence], keys: Sequence[str], emb: np.ndarray,
                  chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """Cosine similarity of each trial's two embeddings (``emb[i]`` is the raw embedding of ``keys[i]``)."""
    ei, ti = trial_indices(trials, keys)
    unit = l2_normalise(np.asarray(emb, dtype=np.float64))
    return _row_dots(unit, unit, ei, ti, chunk)


def crop_means(crops: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Mean of the L2-normalised crop embeddings of each utterance (``crops[i]``: num_crops x dim)."""
    if isinstance(crops, np.ndarray) and crops.ndim == 3:
        return l2_normalise(crops.astype(np.float64)).mean(axis=1)
    return np.stack([l2_normalise(np.asarray(c, dtype=np.float64)).mean(axis=0) for c in crops])


def seed_scores(trials: TrialList | Sequence[Sequence], full_keys: Sequence[str], full_emb: np.ndarray,
                crops: np.ndarray | Sequence[np.ndarray], chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """The seed's trial score: (full-utterance cosine + mean crop cosine matrix) / 2.

    ``crops[i]`` holds the (raw) crop embeddings of ``full_keys[i]``, num_crops x dim.
    """
    if len(crops) != len(full_keys):
        raise DataError(f"{len(crops)} crop matrices for {len(full_keys)} utterances")
    return _seed_from_means(trials, full_keys, full_emb, crop_means(crops), chunk)


def _seed_from_means(trials, keys, full_emb, means, chunk: int) -> np.ndarray:
    ei, ti = trial_indices(trials, keys)
    unit = l2_normalise(np.asarray(full_emb, dtype=np.float64))
    return (_row_dots(unit, unit, ei, ti, chunk) + _row_dots(means, means, ei, ti, chunk)) / 2


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


@dataclass
class TrialEmbeddings:
    """The embeddings that scoring a trial list needs, rows in ``keys`` order."""

    keys: list[str]
    full: np.ndarray  # raw full-utterance embeddings, num_keys x dim
    crop_means: np.ndarray | None  # seed protocol: mean normalised crop embedding per key
    protocol: str


def resolve_protocol(emb_dir: PathLike, protocol: str = "auto") -> str:
    """``full`` or ``seed``: ``auto`` picks ``seed`` iff ``emb_dir`` holds xvector_crops.scp."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown scoring protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    has_crops = (Path(emb_dir) / CROPS_SCP).is_file()
    if protocol == "auto":
        return "seed" if has_crops else "full"
    if protocol == "seed" and not has_crops:
        raise DataError(f"{Path(emb_dir) / CROPS_SCP}: file not found (the seed protocol needs crop embeddings)")
    return protocol


def load_trial_embeddings(trials: TrialList, emb_dir: PathLike, protocol: str = "auto") -> TrialEmbeddings:
    """Read the embeddings of every utterance of ``trials`` from ``emb_dir`` (and crops for ``seed``).

    An utterance missing from an scp is a DataError naming the trials file, line and key.
    """
    emb_dir = Path(emb_dir)
    protocol = resolve_protocol(emb_dir, protocol)
    scps = [emb_dir / XVECTOR_SCP] + ([emb_dir / CROPS_SCP] if protocol == "seed" else [])
    tables = []  # opened once, for this check and for loading
    for scp in scps:
        available = open_scp(scp)
        tables.append(available)
        missing: dict[str, int] = {}  # key -> first trial needing it
        for i, pair in enumerate(zip(trials.enrolls, trials.tests)):
            for key in pair:
                if key not in available and key not in missing:
                    missing[key] = i
        if missing:
            _raise_missing(trials, missing, scp)
    keys = trials.utterances
    _, full = load_embeddings(scps[0], keys, table=tables[0])
    means = load_crop_means(scps[1], keys, table=tables[1]) if protocol == "seed" else None
    if means is not None and means.shape[1] != full.shape[1]:
        raise DataError(f"{scps[1]}: crop embeddings have dimension {means.shape[1]}, the full-utterance "
                        f"embeddings of {scps[0]} {full.shape[1]}")
    return TrialEmbeddings(keys, full, means, protocol)


def _raise_missing(trials: TrialList, missing: dict[str, int], scp: Path) -> None:
    """DataError listing the trial utterances absent from ``scp`` (and why, when stage 3 skipped them)."""
    from pyfunc.badinput import SKIPPED_NAME, read_skipped

    skipped = read_skipped(scp.parent)
    first = next(iter(missing))
    lines = [f"{trials.where(i)}: utterance {key!r}" + (f" was skipped as bad input: {skipped[key]}"
                                                         if key in skipped else "")
             for key, i in list(missing.items())[:20]]
    more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
    note = f" ({sum(k in skipped for k in missing)} listed in {scp.parent / SKIPPED_NAME})" if skipped else ""
    raise DataError(f"{trials.where(missing[first])}: utterance {first!r} is not in {scp}; {len(missing)} "
                    f"utterance(s) that the trials need are missing{note}:\n  " + "\n  ".join(lines) + more)


def raw_scores(trials: TrialList, inputs: TrialEmbeddings, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """Scores of ``trials`` with the protocol of ``inputs`` (cosine or seed)."""
    if inputs.protocol == "seed":
        assert inputs.crop_means is not None
        return _seed_from_means(trials, inputs.keys, inputs.full, inputs.crop_means, chunk)
    return cosine_scores(trials, inputs.keys, inputs.full, chunk)


def score_trials(trials_path: PathLike, emb_dir: PathLike, out_path: PathLike,
                 protocol: str = "auto") -> np.ndarray:
    """Stage 4: score every trial of ``trials_path`` with the embeddings of ``emb_dir``; write and
    return the scores. ``protocol``: ``auto`` (seed iff xvector_crops.scp exists), ``full`` or ``seed``."""
    trials = read_trial_list(trials_path)
    inputs = load_trial_embeddings(trials, emb_dir, protocol)
    scores = raw_scores(trials, inputs)
    write_scores(out_path, trials, scores)
    logger.info("scored %d trials (%d utterances, %s protocol) into %s", len(trials), len(inputs.keys),
                inputs.protocol, out_path)
    return scores
