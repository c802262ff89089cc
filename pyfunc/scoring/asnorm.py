"""Stage 5: adaptive symmetric score normalisation (AS-norm; Matejka et al., 2017), as WeSpeaker's score_norm.

For an utterance u, let c_u be the cosine scores of its L2-normalised embedding against
every cohort vector (the L2-normalised mean embeddings of the training speakers), and
mu_u, sigma_u the mean and standard deviation of its ``top_n`` largest cohort scores
(``numpy.std`` with ``ddof=0``, the population deviation, as WeSpeaker). A trial (e, t)
with raw score s gets::

    0.5 * ((s - mu_e) / sigma_e + (s - mu_t) / sigma_t)

The statistics depend only on the utterance, so they are computed once per distinct
utterance of the trials, a block of utterances at a time (the block's score matrix is
kept under ``max_block_bytes``).

One scale on both sides. With the full protocol the trial score and the cohort scores
are cosines. With the seed protocol the trial score is the seed score
``0.5 * (f_e.f_t + m_e.m_t)`` (``f`` the unit full-utterance embedding, ``m`` the mean
of the unit crop embeddings, not unit length), so the cohort score of utterance u
against speaker mean c is the same formula with the speaker's full and crop sides both
c: ``0.5 * (f_u.c + m_u.c)``, the dot product of c with ``(f_u + m_u) / 2``
(:func:`cohort_probes`). Scoring the cohort with full cosines only would put the
statistics on another scale than the score they normalise (docs/scoring.md).
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from pyfunc.data.trials import TrialList, as_trial_list
from pyfunc.errors import ConfigError, DataError
from pyfunc.scoring.cosine import l2_normalise, trial_indices

logger = logging.getLogger(__name__)

MAX_BLOCK_BYTES = 128 << 20


def effective_top_n(top_n: int, cohort_size: int) -> int:
    """``top_n`` checked (>= 2: one score has no spread) and capped at the cohort size with a warning."""
    if top_n < 2:
        raise ConfigError(f"AS-norm top_n must be at least 2, got {top_n}")
    if cohort_size < 2:
        raise DataError(f"the AS-norm cohort needs at least 2 speakers, got {cohort_size}")
    if top_n > cohort_size:
        logger.warning("AS-norm top_n %d is larger than the cohort (%d speakers); using the whole cohort",
                       top_n, cohort_size)
        return cohort_size
    return top_n


def cohort_probes(full: np.ndarray, crop_means: np.ndarray | None = None) -> np.ndarray:
    """Vectors whose dot product with a unit cohort vector c is each utterance's cohort score (float64):
    the unit full-utterance embedding (full protocol, a cosine), or with ``crop_means`` (the seed
    protocol) ``(unit full + crop mean) / 2``, the seed score against a speaker whose every embedding is c."""
    unit = l2_normalise(np.asarray(full, dtype=np.float64))
    if crop_means is None:
        return unit
    crop_means = np.asarray(crop_means, dtype=np.float64)
    if crop_means.shape != unit.shape:
        raise DataError(f"crop means of shape {crop_means.shape} for embeddings of shape {unit.shape}")
    return 0.5 * (unit + crop_means)


def cohort_stats(emb: np.ndarray, cohort: np.ndarray, top_n: int, max_block_bytes: int = MAX_BLOCK_BYTES,
                 crop_means: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, std)`` of the ``top_n`` largest cohort scores of each row of ``emb`` against ``cohort``.

    Cohort rows are L2-normalised here; a score is the dot product with :func:`cohort_probes` of ``emb``
    (and ``crop_means``, row for row, under the seed protocol): a cosine without crops. Float64
    throughout; ``std`` has ``ddof=0``.
    """
    emb = np.asarray(emb)
    cohort = l2_normalise(np.asarray(cohort, dtype=np.float64))
    if emb.ndim != 2 or cohort.ndim != 2 or emb.shape[1] != cohort.shape[1]:
        raise DataError(f"embeddings of shape {emb.shape} and a cohort of shape {cohort.shape} do not match")
    if crop_means is not None and np.shape(crop_means) != emb.shape:
        raise DataError(f"crop means of shape {np.shape(crop_means)} for embeddings of shape {emb.shape}")
    top_n = effective_top_n(top_n, len(cohort))
    size = len(cohort)
    block = max(1, max_block_bytes // (8 * size))
    mean = np.empty(len(emb), dtype=np.float64)
    std = np.empty(len(emb), dtype=np.float64)
    for start in range(0, len(emb), block):
        means = None if crop_means is None else crop_means[start:start + block]
        scores = cohort_probes(emb[start:start + block], means) @ cohort.T
        if top_n < size:
            scores.partition(size - top_n, axis=1)  # in place: the block is ours, a copy would cost a fifth more
        top = scores[:, size - top_n:]
        mean[start:start + block] = top.mean(axis=1)
        std[start:start + block] = top.std(axis=1)
    return mean, std


def asnorm_scores(trials: TrialList | Sequence[Sequence], keys: Sequence[str], emb: np.ndarray,
                  cohort: np.ndarray, top_n: int, raw_scores: np.ndarray,
                  crop_means: np.ndarray | None = None) -> np.ndarray:
    """AS-norm of ``raw_scores`` (one per trial) given the utterance embeddings (``emb[i]`` of
    ``keys[i]``, raw or normalised) and the cohort vectors (num_speakers x dim).

    Raw scores of the seed protocol come with ``crop_means`` (row ``i``: the mean unit crop
    embedding of ``keys[i]``), which put the cohort scores on their scale (module docstring).
    """
    trials = as_trial_list(trials)
    raw_scores = np.asarray(raw_scores, dtype=np.float64)
    if raw_scores.shape != (len(trials),):
        raise DataError(f"{raw_scores.size} raw scores for {len(trials)} trials")
    ei, ti = trial_indices(trials, keys)
    used = np.unique(np.r_[ei, ti])  # statistics only for utterances that appear in a trial
    means_used = None if crop_means is None else np.asarray(crop_means)[used]
    mean_used, std_used = cohort_stats(np.asarray(emb)[used], cohort, top_n, crop_means=means_used)
    if (std_used <= 0).any():
        bad = keys[int(used[np.flatnonzero(std_used <= 0)[0]])]
        raise DataError(f"utterance {bad!r}: its top cohort scores are all equal, AS-norm is undefined")
    mean = np.zeros(len(keys))
    std = np.ones(len(keys))
    mean[used], std[used] = mean_used, std_used
    return 0.5 * ((raw_scores - mean[ei]) / std[ei] + (raw_scores - mean[ti]) / std[ti])
