"""The AS-norm cohort's speaker means, computed once per cohort embedding directory and reused by every list.

``write_cohort_means`` reads the cohort's ``xvector.scp`` in blocks and writes
``EMB_DIR/spk_xvector.{ark,scp}``: per speaker of ``utt2spk``, the L2-normalised mean of
the L2-normalised full-utterance embeddings (:func:`pyfunc.scoring.cohort.cohort_from_scp`;
unlike Kaldi's ``spk_xvector.scp``, a unit vector), with the stamp ``EMB_DIR/.cohort.stamp``.
``load_cohort_means`` returns those means when the stamp says they were made from the
embeddings and ``utt2spk`` as they are now, else it computes them from ``xvector.scp``
(as stage 5 always did), saying why. Crop embeddings are never used for the cohort
(docs/scoring.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pyfunc.data.atomic import PathLike
from pyfunc.data.dirnames import check_output_dir_name
from pyfunc.data.tables import read_map
from pyfunc.data.vectors import XVECTOR_SCP, iter_scp_arrays, write_vectors
from pyfunc.pipeline.stamps import make_stamp, needs_work, why_not_current, write_stamp
from pyfunc.scoring.cohort import cohort_from_scp

logger = logging.getLogger(__name__)

COHORT_SCP = "spk_xvector.scp"
COHORT_STAMP = ".cohort.stamp"
STAGE = "cohort_means"


def _inputs(emb_dir: Path, utt2spk: PathLike) -> list[Path]:
    return [emb_dir / XVECTOR_SCP, Path(utt2spk)]


def _params(utt2spk: PathLike) -> dict:
    return {"utt2spk": str(Path(utt2spk).absolute())}


def write_cohort_means(emb_dir: PathLike, utt2spk: PathLike, force: bool = False) -> bool:
    """Write ``emb_dir/spk_xvector.scp`` (speaker means of ``emb_dir/xvector.scp`` over ``utt2spk``);
    False, doing nothing, when its stamp shows it up to date (unless ``force``)."""
    check_output_dir_name(emb_dir, "cohort embedding folder")
    emb_dir = Path(emb_dir)
    out = emb_dir / COHORT_SCP
    stamp = emb_dir / COHORT_STAMP
    inputs = _inputs(emb_dir, utt2spk)
    if not needs_work(stamp, STAGE, _params(utt2spk), inputs, (), out, "cohort speaker means", force):
        return False
    speakers, means = cohort_from_scp(emb_dir / XVECTOR_SCP, read_map(utt2spk))
    write_vectors(out, speakers, means)  # float64: the same numbers as computing them again
    write_stamp(stamp, make_stamp(STAGE, _params(utt2spk), inputs, [out, out.with_suffix(".ark")]))
    logger.info("%s: mean embeddings of %d cohort speakers", out, len(speakers))
    return True


def load_cohort_means(emb_dir: PathLike, utt2spk: PathLike, mean: np.ndarray | None = None
                      ) -> tuple[list[str], np.ndarray]:
    """The cohort ``(speakers, unit speaker means as float64)`` of ``emb_dir``: from ``spk_xvector.scp`` when it
    is current for ``utt2spk`` and ``xvector.scp``, else computed from ``xvector.scp`` (logging why). With the
    embedding mean ``mean`` (score.subtract_mean) they are always computed, the mean subtracted first."""
    emb_dir = Path(emb_dir)
    if mean is not None:
        return cohort_from_scp(emb_dir / XVECTOR_SCP, read_map(utt2spk), mean=mean)
    reason = why_not_current(emb_dir / COHORT_STAMP, STAGE, _params(utt2spk), _inputs(emb_dir, utt2spk))
    if reason is None:
        rows = list(iter_scp_arrays(emb_dir / COHORT_SCP, None, ndim=1))
        logger.info("cohort: %d speaker means from %s", len(rows), emb_dir / COHORT_SCP)
        return [key for key, _ in rows], np.stack([row for _, row in rows]).astype(np.float64)
    logger.info("cohort: speaker means computed from %s (%s; steps/cohort_means.py stores them once)",
                emb_dir / XVECTOR_SCP, reason)
    return cohort_from_scp(emb_dir / XVECTOR_SCP, read_map(utt2spk))


__all__ = ["COHORT_SCP", "COHORT_STAMP", "load_cohort_means", "write_cohort_means"]
