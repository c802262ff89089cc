"""Stage 6: equal error rate and minimum detection cost of scored trials, exactly as the seed computes them.

* EER follows sklearn's ``roc_curve(labels, scores)`` (distinct score thresholds,
  ``drop_intermediate=True``, a leading point at threshold +inf): the operating
  point where ``|fnr - fpr|`` is smallest (the first such point), reported as
  ``max(fpr, fnr)`` in percent.
* minDCF follows the seed's ``ComputeErrorRates``/``ComputeMinDcf``: the scores
  are sorted ascending with a stable sort (ties keep trial order) and *every
  trial* is a candidate threshold, the trials up to and including it being
  rejected; ``min(c_miss p fnr + c_fa (1 - p) fpr) / min(c_miss p, c_fa (1 - p))``.

Both are vectorised with numpy (one sort per score list, no sklearn) and equal
the seed's numbers to the last bits: the floating-point operations are the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from pyfunc.data.atomic import PathLike, write_lines
from pyfunc.data.trials import read_trials
from pyfunc.errors import DataError
from pyfunc.scoring.score_files import scores_for_trials


@dataclass(frozen=True)
class SortedTrials:
    """Scores sorted ascending (stable) with their labels: the one sort both metrics need."""

    scores: np.ndarray  # float64, ascending
    labels: np.ndarray  # bool, in the same order
    num_target: int
    num_nontarget: int


def sort_trials(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> SortedTrials:
    """Check ``scores``/``labels`` and sort them once (stable, ascending) for the metric functions."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 1 or labels.shape != scores.shape:
        raise DataError(f"scores and labels must be 1-d arrays of one length, got shapes {scores.shape} "
                        f"and {labels.shape}")
    if labels.dtype != np.bool_:
        if not np.isin(labels, (0, 1)).all():
            raise DataError("labels must be 0/1 or boolean")
        labels = labels.astype(bool)
    if not np.isfinite(scores).all():
        bad = int(np.flatnonzero(~np.isfinite(scores))[0])
        raise DataError(f"trial {bad + 1}: score is not a finite number ({scores[bad]})")
    num_target = int(labels.sum())
    num_nontarget = int(labels.size - num_target)
    if num_target == 0 or num_nontarget == 0:
        raise DataError(f"need both target and nontarget trials, got {num_target} target and "
                        f"{num_nontarget} nontarget")
    order = np.argsort(scores, kind="stable")
    return SortedTrials(scores[order], labels[order], num_target, num_nontarget)


def _as_sorted(scores, labels) -> SortedTrials:
    return scores if isinstance(scores, SortedTrials) and labels is None else sort_trials(scores, labels)


def roc_curve(scores, labels=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` exactly as ``sklearn.metrics.roc_curve(labels, scores)`` returns them.

    ``scores`` may also be a :class:`SortedTrials` (then ``labels`` is None).
    """
    st = _as_sorted(scores, labels)
    n = st.scores.size
    # sklearn walks the scores in descending order; each group of equal scores is one threshold,
    # closed by its last trial in that order, i.e. by the group's first trial in ascending order.
    starts = np.flatnonzero(np.r_[True, st.scores[1:] != st.scores[:-1]])[::-1]
    threshold_idxs = n - 1 - starts  # descending-order index closing each group
    targets_below = np.r_[0, np.cumsum(st.labels, dtype=np.int64)]  # targets among the first i ascending
    tps = (st.num_target - targets_below[starts]).astype(np.float64)  # targets scoring >= the threshold
    fps = 1 + threshold_idxs - tps
    thresholds = st.scores[starts]
    if fps.size > 2:  # drop_intermediate=True: drop points on a straight line between their neighbours
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    tps = np.r_[0, tps]
    fps = np.r_[0, fps]
    thresholds = np.r_[np.inf, thresholds]
    return fps / fps[-1], tps / tps[-1], thresholds


def compute_eer(scores, labels=None) -> tuple[float, float]:
    """``(eer_percent, threshold)``: the seed's EER on sklearn's ROC (see the module docstring).

    ``labels`` are booleans (target = True); ``scores`` may be a :class:`SortedTrials`.
    The threshold is the ROC threshold of the EER point (trials scoring >= it are accepted).
    """
    fpr, tpr, thresholds = roc_curve(scores, labels)
    fnr = 1 - tpr
    index = int(np.nanargmin(np.absolute(fnr - fpr)))
    return float(max(fpr[index], fnr[index]) * 100), float(thresholds[index])


def compute_min_dcf(scores, labels=None, p_target: float = 0.01, c_miss: float = 1.0,
                    c_fa: float = 1.0) -> tuple[float, float]:
    """``(min_dcf, threshold)``: the seed's normalised minimum detection cost (see the module docstring).

    The threshold is the score of the last rejected trial at the minimum (the first minimum
    in ascending score order, as the seed's loop keeps the first strict improvement).
    """
    if not 0.0 < p_target < 1.0:
        raise DataError(f"p_target must be in (0, 1), got {p_target}")
    st = _as_sorted(scores, labels)
    # Same operations as the seed's Python loop, so the same floats.
    fnrs = np.cumsum(st.labels, dtype=np.int64) / float(st.num_target)
    fprs = 1 - np.cumsum(~st.labels, dtype=np.int64) / float(st.num_nontarget)
    c_det = c_miss * fnrs * p_target + c_fa * fprs * (1 - p_target)
    index = int(np.argmin(c_det))
    c_def = min(c_miss * p_target, c_fa * (1 - p_target))
    return float(c_det[index] / c_def), float(st.scores[index])


def compute_metrics(scores, labels, p_targets: Iterable[float] = (0.01, 0.05)) -> dict:
    """EER and minDCF at each ``p_target`` with one sort: a dict with ``eer_percent``, ``eer_threshold``,
    ``min_dcf`` ({p: value}), ``min_dcf_threshold`` ({p: threshold}), ``num_target``, ``num_nontarget``."""
    st = sort_trials(scores, labels)
    eer, eer_threshold = compute_eer(st)
    min_dcf, min_dcf_threshold = {}, {}
    for p in p_targets:
        min_dcf[float(p)], min_dcf_threshold[float(p)] = compute_min_dcf(st, None, float(p))
    return {"eer_percent": eer, "eer_threshold": eer_threshold, "min_dcf": min_dcf,
            "min_dcf_threshold": min_dcf_threshold, "num_target": st.num_target,
            "num_nontarget": st.num_nontarget}


def read_labelled_trials(path: PathLike) -> tuple[list[str], list[str], np.ndarray]:
    """``(enrolls, tests, labels)`` of a trials file whose every line carries a target/nontarget label."""
    enrolls, tests, labels = zip(*read_trials(path, require_labels=True))
    return list(enrolls), list(tests), np.asarray(labels, dtype=bool)


def evaluate_score_files(trials_path: PathLike, score_paths: Sequence[PathLike],
                         p_targets: Sequence[float] = (0.01, 0.05),
                         names: Sequence[str] | None = None) -> list[dict]:
    """Metrics of each score file against the labels of ``trials_path``.

    Each row is :func:`compute_metrics`'s dict plus ``system`` (``names[i]`` or the score
    file path as given), ``score_file`` and ``num_trials``. Every trial must be scored
    and every scored pair must be a trial, else DataError naming the pair.
    """
    if names is not None and len(names) != len(score_paths):
        raise DataError(f"{len(names)} system name(s) for {len(score_paths)} score file(s)")
    enrolls, tests, labels = read_labelled_trials(trials_path)
    rows = []
    for i, score_path in enumerate(score_paths):
        scores = scores_for_trials(score_path, trials_path, enrolls, tests)
        try:
            row = compute_metrics(scores, labels, p_targets)
        except DataError as err:
            raise DataError(f"{score_path}: {err}") from None
        row = {"system": names[i] if names is not None else str(score_path), "score_file": str(score_path),
               "num_trials": len(enrolls), **row}
        rows.append(row)
    return rows


def format_results_table(rows: Sequence[dict]) -> str:
    """An aligned text table: system, EER %, then one minDCF column per p_target of the rows."""
    p_targets: list[float] = []
    for row in rows:
        for p in row["min_dcf"]:
            if p not in p_targets:
                p_targets.append(p)
    header = ["system", "EER(%)"] + [f"minDCF(p={p:g})" for p in p_targets]
    body = []
    for row in rows:
        cells = [str(row["system"]), f"{row['eer_percent']:.4f}"]
        cells += [f"{row['min_dcf'][p]:.4f}" if p in row["min_dcf"] else "-" for p in p_targets]
        body.append(cells)
    widths = [max(len(line[c]) for line in [header] + body) for c in range(len(header))]

    def fmt(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first] + [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:])]).rstrip()

    return "\n".join([fmt(header)] + [fmt(cells) for cells in body]) + "\n"


def write_results(path: PathLike, rows: Sequence[dict]) -> None:
    """Write :func:`format_results_table` of ``rows`` to ``path`` atomically."""
    write_lines(Path(path), format_results_table(rows).rstrip("\n").split("\n"))
