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

Beside them, the calibration measures of BOSARIS (Brümmer and de Villiers, 2011),
which read the scores as log-likelihood ratios (natural log):

* Cllr: ``(mean over targets of log2(1 + e^-llr) + mean over non-targets of
  log2(1 + e^llr)) / 2``; 1 for a system that always says llr = 0, 0 for a perfect one.
* min Cllr: the Cllr after the best monotone rescoring of these very trials: the pool
  adjacent violators (PAV) fit of the labels to the score order, equal scores pooled,
  whose posteriors taken back to LLRs (minus the log prior odds of the trials) lie on
  the ROC convex hull. Cllr - min Cllr is the calibration loss.
* actual DCF at p_target: the normalised cost of deciding "target" when llr >= the
  Bayes threshold ``log(c_fa (1 - p) / (c_miss p))`` (= -logit(p) with unit costs),
  normalised as minDCF is. Equal to minDCF at best; larger when the scores are not
  calibrated LLRs.
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


def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x), without overflow."""
    return np.logaddexp(0.0, x)


def cllr(llrs, labels=None) -> float:
    """Cllr in bits of scores read as natural-log LLRs (see the module docstring)."""
    st = _as_sorted(llrs, labels)
    target_cost = _softplus(-st.scores[st.labels]).mean()
    nontarget_cost = _softplus(st.scores[~st.labels]).mean()
    return float((target_cost + nontarget_cost) / (2 * np.log(2)))


def pav_llrs(scores, labels=None) -> np.ndarray:
    """The optimally calibrated LLR of each trial in ascending score order (``SortedTrials`` order).

    PAV (``scipy.optimize.isotonic_regression``) of the target indicator over the groups
    of equal scores (so ties share one value), weighted by group size; posterior log-odds
    minus the log prior odds of the trials. +-inf where a group pools only one class.
    """
    from scipy.optimize import isotonic_regression  # noqa: PLC0415 (scipy.optimize takes ~0.5 s to import)

    st = _as_sorted(scores, labels)
    starts = np.flatnonzero(np.r_[True, st.scores[1:] != st.scores[:-1]])
    sizes = np.diff(np.r_[starts, st.scores.size])
    targets = np.add.reduceat(st.labels.astype(np.float64), starts)
    posterior = np.clip(isotonic_regression(targets / sizes, weights=sizes.astype(np.float64)).x, 0.0, 1.0)
    with np.errstate(divide="ignore"):
        llr = np.log(posterior) - np.log1p(-posterior) - np.log(st.num_target / st.num_nontarget)
    return np.repeat(llr, sizes)


def min_cllr(scores, labels=None) -> float:
    """Cllr of :func:`pav_llrs`: the Cllr of the best monotone calibration of these trials."""
    st = _as_sorted(scores, labels)
    llr = pav_llrs(st)
    with np.errstate(invalid="ignore"):  # an infinite LLR costs nothing for the class it is certain of
        target_cost = np.where(np.isposinf(llr), 0.0, _softplus(-llr))[st.labels].sum() / st.num_target
        nontarget_cost = np.where(np.isneginf(llr), 0.0, _softplus(llr))[~st.labels].sum() / st.num_nontarget
    return float((target_cost + nontarget_cost) / (2 * np.log(2)))


def bayes_threshold(p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """The LLR threshold of the Bayes decision at ``p_target``: ``log(c_fa (1 - p) / (c_miss p))``."""
    if not 0.0 < p_target < 1.0:
        raise DataError(f"p_target must be in (0, 1), got {p_target}")
    return float(np.log(c_fa * (1 - p_target)) - np.log(c_miss * p_target))


def compute_act_dcf(llrs, labels=None, p_target: float = 0.01, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Normalised actual DCF: accept iff llr >= :func:`bayes_threshold` (normalised as minDCF)."""
    threshold = bayes_threshold(p_target, c_miss, c_fa)
    st = _as_sorted(llrs, labels)
    rejected = int(np.searchsorted(st.scores, threshold, side="left"))  # trials scoring below the threshold
    misses = int(st.labels[:rejected].sum())
    false_alarms = st.num_nontarget - (rejected - misses)
    c_det = c_miss * p_target * misses / st.num_target + c_fa * (1 - p_target) * false_alarms / st.num_nontarget
    return float(c_det / min(c_miss * p_target, c_fa * (1 - p_target)))


def compute_llr_metrics(scores, labels=None, p_targets: Iterable[float] = (0.01, 0.05)) -> dict:
    """Cllr, min Cllr and actual DCF at each ``p_target``: ``{"cllr", "min_cllr", "act_dcf": {p: value}}``."""
    st = _as_sorted(scores, labels)
    return {"cllr": cllr(st), "min_cllr": min_cllr(st),
            "act_dcf": {float(p): compute_act_dcf(st, None, float(p)) for p in p_targets}}


def compute_metrics(scores, labels, p_targets: Iterable[float] = (0.01, 0.05)) -> dict:
    """EER and minDCF at each ``p_target`` with one sort: a dict with ``eer_percent``, ``eer_threshold``,
    ``min_dcf`` ({p: value}), ``min_dcf_threshold`` ({p: threshold}), ``num_target``, ``num_nontarget``.
    ``scores`` may be a :class:`SortedTrials` (then ``labels`` is None)."""
    st = _as_sorted(scores, labels)
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

    Each row is :func:`compute_metrics`'s dict and :func:`compute_llr_metrics`'s plus ``system``
    (``names[i]`` or the score file path as given), ``score_file`` and ``num_trials``. Every
    trial must be scored and every scored pair must be a trial, else DataError naming the pair.
    """
    if names is not None and len(names) != len(score_paths):
        raise DataError(f"{len(names)} system name(s) for {len(score_paths)} score file(s)")
    enrolls, tests, labels = read_labelled_trials(trials_path)
    rows = []
    for i, score_path in enumerate(score_paths):
        scores = scores_for_trials(score_path, trials_path, enrolls, tests)
        try:
            st = sort_trials(scores, labels)
            row = {**compute_metrics(st, None, p_targets), **compute_llr_metrics(st, None, p_targets)}
        except DataError as err:
            raise DataError(f"{score_path}: {err}") from None
        row = {"system": names[i] if names is not None else str(score_path), "score_file": str(score_path),
               "num_trials": len(enrolls), **row}
        rows.append(row)
    return rows


def format_results_table(rows: Sequence[dict]) -> str:
    """An aligned text table: system, EER %, one minDCF column per p_target of the rows, then (for rows
    that have them) Cllr, min Cllr and one actual DCF column per p_target; ``-`` where a row has none."""
    p_targets: list[float] = []
    for row in rows:
        for p in row["min_dcf"]:
            if p not in p_targets:
                p_targets.append(p)
    llr_columns = any("cllr" in row for row in rows)
    header = ["system", "EER(%)"] + [f"minDCF(p={p:g})" for p in p_targets]
    header += ["Cllr", "minCllr"] + [f"actDCF(p={p:g})" for p in p_targets] if llr_columns else []
    body = []
    for row in rows:
        cells = [str(row["system"]), f"{row['eer_percent']:.4f}"]
        cells += [f"{row['min_dcf'][p]:.4f}" if p in row["min_dcf"] else "-" for p in p_targets]
        if llr_columns:
            act = row.get("act_dcf", {})
            cells += [f"{row[key]:.4f}" if key in row else "-" for key in ("cllr", "min_cllr")]
            cells += [f"{act[p]:.4f}" if p in act else "-" for p in p_targets]
        body.append(cells)
    widths = [max(len(line[c]) for line in [header] + body) for c in range(len(header))]

    def fmt(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join([first] + [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:])]).rstrip()

    return "\n".join([fmt(header)] + [fmt(cells) for cells in body]) + "\n"


def write_results(path: PathLike, rows: Sequence[dict]) -> None:
    """Write :func:`format_results_table` of ``rows`` to ``path`` atomically."""
    write_lines(Path(path), format_results_table(rows).rstrip("\n").split("\n"))
