"""Stages 4 and 5: cosine and AS-norm scoring of a trials file, from stage-3 embeddings."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pyfunc.data.atomic import PathLike, write_lines
from pyfunc.data.enroll import enroll_beside, read_enroll
from pyfunc.data.trials import TrialList, read_trial_list
from pyfunc.data.vectors import XVECTOR_SCP
from pyfunc.errors import DataError
from pyfunc.pipeline.cohort_stage import load_cohort_means
from pyfunc.pipeline.stamps import EXTRACT_STAMP, refuse_stale
from pyfunc.scoring.asnorm import asnorm_scores
from pyfunc.scoring.cosine import TrialEmbeddings, load_trial_embeddings, raw_scores
from pyfunc.scoring.enrolment import load_enrolled_trial_embeddings
from pyfunc.scoring.score_files import write_scores

logger = logging.getLogger(__name__)


def refuse_stale_embeddings(emb_dir: PathLike) -> None:
    """DataError when stage 3's inputs (model, data) changed after it wrote ``emb_dir`` (see pipeline.stamps)."""
    emb_dir = Path(emb_dir)
    refuse_stale(emb_dir / EXTRACT_STAMP, emb_dir / XVECTOR_SCP, "rerun stage 3 (steps/extract_embeddings.py)")


def _load_inputs(trials: TrialList, emb_dir: PathLike, protocol: str, mean: np.ndarray | None) -> TrialEmbeddings:
    """The trials' embeddings; with an ``enroll`` file beside the trials, one row per enrolled model."""
    enroll = enroll_beside(trials.path) if trials.path is not None else None
    if enroll is None:
        return load_trial_embeddings(trials, emb_dir, protocol, mean)
    models = read_enroll(enroll)
    logger.info("%s: the trials name enrolled models (%s); scoring each model's mean embedding", trials.path, enroll)
    return load_enrolled_trial_embeddings(trials, models, emb_dir, protocol, mean)


def score_trials(trials_path: PathLike, emb_dir: PathLike, out_path: PathLike,
                 protocol: str = "auto", mean: np.ndarray | None = None) -> np.ndarray:
    """Stage 4: score every trial of ``trials_path`` with the embeddings of ``emb_dir``; write and
    return the scores. ``protocol``: ``auto`` (seed iff xvector_crops.scp exists), ``full`` or ``seed``.
    ``mean``: an embedding mean subtracted from every embedding first (pyfunc.scoring.embedding_mean).
    With an ``enroll`` file beside ``trials_path`` its left column names models (pyfunc.scoring.enrolment)."""
    trials = read_trial_list(trials_path)
    refuse_stale_embeddings(emb_dir)
    inputs = _load_inputs(trials, emb_dir, protocol, mean)
    scores = raw_scores(trials, inputs)
    write_scores(out_path, trials, scores)
    logger.info("scored %d trials (%d utterances, %s protocol) into %s", len(trials), len(inputs.keys),
                inputs.protocol, out_path)
    return scores


def asnorm_params_path(out_path: PathLike) -> Path:
    """Where stage 5 records the top N an AS-norm score file was made with (``--status`` compares it)."""
    out_path = Path(out_path)
    return out_path.with_name(f".{out_path.name}.params")


def asnorm_top_n_of(out_path: PathLike) -> int | None:
    """The top N recorded beside the AS-norm score file ``out_path``; None when there is no record."""
    path = asnorm_params_path(out_path)
    if not path.is_file():
        return None
    fields = dict(line.split(maxsplit=1) for line in path.read_text().splitlines() if line.strip())
    try:
        return int(fields["top_n"])
    except (KeyError, ValueError):
        raise DataError(f"{path}: expected a line 'top_n N', got {path.read_text()!r}") from None


def score_trials_asnorm(trials_path: PathLike, emb_dir: PathLike, cohort_emb_dir: PathLike,
                        cohort_utt2spk: PathLike, top_n: int, out_path: PathLike,
                        protocol: str = "auto", mean: np.ndarray | None = None) -> np.ndarray:
    """Stage 5: raw scores of ``trials_path`` (as stage 4, same ``protocol`` and ``mean``) normalised with
    AS-norm against the speaker means of ``cohort_emb_dir`` (its ``spk_xvector.scp`` when current, see
    :mod:`pyfunc.pipeline.cohort_stage`; ``mean`` subtracted there too); write and return the scores. With
    an ``enroll`` file beside the trials, the enrolment side of a trial is its model's mean embedding."""
    trials = read_trial_list(trials_path)
    for directory in (emb_dir, cohort_emb_dir):
        refuse_stale_embeddings(directory)
    inputs = _load_inputs(trials, emb_dir, protocol, mean)
    speakers, cohort = load_cohort_means(cohort_emb_dir, cohort_utt2spk, mean)
    if cohort.shape[1] != inputs.full.shape[1]:
        raise DataError(f"{Path(cohort_emb_dir) / XVECTOR_SCP}: cohort embeddings have dimension "
                        f"{cohort.shape[1]}, those of {Path(emb_dir) / XVECTOR_SCP} {inputs.full.shape[1]}")
    scores = asnorm_scores(trials, inputs.keys, inputs.full, cohort, top_n, raw_scores(trials, inputs),
                           inputs.crop_means)
    write_scores(out_path, trials, scores)
    write_lines(asnorm_params_path(out_path), [f"top_n {top_n}"])
    logger.info("AS-norm scored %d trials (%s protocol, cohort of %d speakers, top %d) into %s", len(trials),
                inputs.protocol, len(speakers), min(top_n, len(speakers)), out_path)
    return scores
