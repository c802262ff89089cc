"""The AS-norm cohort: per-speaker mean embeddings, from arrays or from a (large) embedding scp."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from pyfunc.data.atomic import PathLike
from pyfunc.data.vectors import iter_scp_arrays
from pyfunc.errors import DataError
from pyfunc.scoring.cosine import l2_normalise
from pyfunc.scoring.embedding_mean import subtract_mean

logger = logging.getLogger(__name__)


def speaker_means(keys: Sequence[str], emb: np.ndarray,
                  utt2spk: Mapping[str, str]) -> tuple[list[str], np.ndarray]:
    """Per-speaker mean of the L2-normalised embeddings, L2-normalised again (the AS-norm cohort).

    Returns ``(sorted speakers, float64 array num_speakers x dim)``; every key must be in ``utt2spk``.
    """
    if len(keys) != len(emb):
        raise DataError(f"{len(keys)} keys for {len(emb)} embeddings")
    missing = [key for key in keys if key not in utt2spk]
    if missing:
        raise DataError(f"utterance {missing[0]!r} has no speaker in utt2spk ({len(missing)} such)")
    speakers, index = np.unique(np.asarray([utt2spk[key] for key in keys]), return_inverse=True)
    sums = np.zeros((len(speakers), emb.shape[1]), dtype=np.float64)
    np.add.at(sums, index, l2_normalise(np.asarray(emb, dtype=np.float64)))
    counts = np.bincount(index, minlength=len(speakers))
    return [str(s) for s in speakers], l2_normalise(sums / counts[:, None])


def cohort_from_scp(scp_path: PathLike, utt2spk: Mapping[str, str], block: int = 20000,
                    mean: np.ndarray | None = None) -> tuple[list[str], np.ndarray]:
    """:func:`speaker_means` of every utterance of ``scp_path`` (``mean``, when given, subtracted from
    each embedding first), read in blocks so that a large cohort (a million utterances) never sits
    in memory at once."""
    scp_path = Path(scp_path)
    speakers = sorted(set(utt2spk.values()))
    spk_index = {spk: i for i, spk in enumerate(speakers)}
    sums = counts = None
    keys: list[str] = []
    rows: list[np.ndarray] = []

    def flush() -> None:
        nonlocal sums, counts
        if not rows:
            return
        unit = l2_normalise(subtract_mean(np.stack(rows), mean))
        if sums is None:
            sums = np.zeros((len(speakers), unit.shape[1]), dtype=np.float64)
            counts = np.zeros(len(speakers), dtype=np.int64)
        index = np.fromiter((spk_index[utt2spk[key]] for key in keys), dtype=np.int64, count=len(keys))
        np.add.at(sums, index, unit)
        counts += np.bincount(index, minlength=len(speakers))
        keys.clear()
        rows.clear()

    total = 0
    for key, vector in iter_scp_arrays(scp_path, None, ndim=1):
        if key not in utt2spk:
            raise DataError(f"{scp_path}: utterance {key!r} has no speaker in the cohort utt2spk")
        keys.append(key)
        rows.append(vector)
        total += 1
        if len(rows) >= block:
            flush()
    flush()
    if sums is None or counts is None:
        raise DataError(f"{scp_path}: no embeddings")
    present = counts > 0
    if not present.all():
        logger.info("%d of %d cohort speakers have no embedding in %s; using the other %d",
                    int((~present).sum()), len(speakers), scp_path, int(present.sum()))
    if total < len(utt2spk):
        logger.info("cohort: %d of the %d utterances of utt2spk have embeddings", total, len(utt2spk))
    kept = [spk for spk, ok in zip(speakers, present) if ok]
    return kept, l2_normalise(sums[present] / counts[present, None])

