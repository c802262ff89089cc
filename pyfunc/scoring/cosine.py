"""Stage 4: cosine scoring of a trials file, with the full-utterance or the seed evaluation protocol.

* ``full``: score = cosine of the two full-utterance embeddings.
* ``seed`` (docs/reference-system.md, "Evaluation"): score = (cosine of the full-utterance embeddings + mean of
  the n x m cosine matrix of the L2-normalised crop embeddings) / 2. The mean of that matrix
  equals the dot product of the two utterances' mean normalised crop embeddings, which is how
  it is computed here (one vector per utterance instead of five).

Scores are computed in float64, vectorised over trials in chunks so that memory stays bounded
(``chunk`` trials at a time). Score files hold ``enroll test score`` lines. With an embedding
mean (:mod:`pyfunc.scoring.embedding_mean`) it is subtracted from the full-utterance and every
crop embedding before they are normalised.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from pyfunc.data.atomic import PathLike
from pyfunc.data.badinput import SKIPPED_NAME, read_skipped
from pyfunc.data.trials import TrialList, as_trial_list
from pyfunc.data.vectors import CROPS_SCP, XVECTOR_SCP, iter_scp_arrays, load_embeddings, open_scp
from pyfunc.errors import ConfigError, DataError
from pyfunc.scoring.embedding_mean import subtract_mean

logger = logging.getLogger(__name__)

PROTOCOLS = ("auto", "full", "seed")

DEFAULT_CHUNK = 65536


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


def load_trial_embeddings(trials: TrialList, emb_dir: PathLike, protocol: str = "auto",
                          mean: np.ndarray | None = None) -> TrialEmbeddings:
    """Read the embeddings of every utterance of ``trials`` from ``emb_dir`` (and crops for ``seed``),
    ``mean`` (when given) subtracted from each.

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
    if mean is not None:
        full = subtract_mean(full, mean)
    means = load_crop_means(scps[1], keys, table=tables[1], mean=mean) if protocol == "seed" else None
    if means is not None and means.shape[1] != full.shape[1]:
        raise DataError(f"{scps[1]}: crop embeddings have dimension {means.shape[1]}, the full-utterance "
                        f"embeddings of {scps[0]} {full.shape[1]}")
    return TrialEmbeddings(keys, full, means, protocol)


def _raise_missing(trials: TrialList, missing: dict[str, int], scp: Path) -> None:
    """DataError listing the trial utterances absent from ``scp`` (and why, when stage 3 skipped them)."""
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


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm (norms computed in float64; the dtype of ``x`` is kept).

    A zero row is a DataError: it has no direction to score.
    """
    x = np.asarray(x)
    norms = np.sqrt(np.einsum("...i,...i->...", x, x, dtype=np.float64))
    if (norms == 0).any():
        raise DataError(f"cannot L2-normalise a zero vector (row {int(np.flatnonzero(norms.ravel() == 0)[0])})")
    out = x / norms[..., None]
    return out.astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64, copy=False)


def load_crop_means(scp_path: PathLike, keys: Sequence[str], table=None, mean: np.ndarray | None = None
                    ) -> np.ndarray:
    """For each key, the mean of its L2-normalised crop embeddings (a ``num_crops x dim`` matrix in
    ``scp_path``; ``mean``, when given, subtracted from each crop first): ``num_keys x dim`` float64.
    The mean of the crop cosine matrix of two utterances is the dot product of these means, so the
    crops themselves need not be kept in memory."""
    means = None
    for row, (key, crops) in enumerate(iter_scp_arrays(scp_path, keys, ndim=2, table=table)):
        if means is None:
            means = np.empty((len(keys), crops.shape[1]), dtype=np.float64)
        means[row] = l2_normalise(subtract_mean(crops, mean)).mean(axis=0)
    if means is None:
        raise DataError(f"{scp_path}: no crop embeddings")
    return means
