"""Baselines of the scoring benchmarks, written the way the seed's metric code is written.

* :func:`seed_metrics`: the seed's ``ComputeErrorRates`` (Python ``sorted`` over
  ``(index, score)`` tuples, cumulative counts in a Python loop, list comprehensions)
  and ``ComputeMinDcf`` (a Python loop over every threshold), once per p_target. The
  seed takes the EER from sklearn's ``roc_curve``, which is vectorised numpy; sklearn is
  not a dependency here, so the EER comes from :func:`pyfunc.metrics.roc_curve`, an
  operation-for-operation numpy equivalent, and is timed as part of the baseline.
* :func:`plain_asnorm`: AS-norm as it is usually first written: the full
  utterances x cohort score matrix at once, each row fully sorted, then a Python loop
  over the trials.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Sequence

import numpy as np


def compute_error_rates(scores: Sequence[float], labels: Sequence[int]) -> tuple[list, list, tuple]:
    """The seed's ComputeErrorRates: fnrs, fprs and thresholds at every trial, in ascending score order."""
    sorted_indexes, thresholds = zip(*sorted([(index, threshold) for index, threshold in enumerate(scores)],
                                             key=itemgetter(1)))
    labels = [labels[i] for i in sorted_indexes]
    fnrs: list[float] = []
    fprs: list[float] = []
    for i in range(0, len(labels)):
        if i == 0:
            fnrs.append(labels[i])
            fprs.append(1 - labels[i])
        else:
            fnrs.append(fnrs[i - 1] + labels[i])
            fprs.append(fprs[i - 1] + 1 - labels[i])
    fnrs_norm = sum(labels)
    fprs_norm = len(labels) - fnrs_norm
    fnrs = [x / float(fnrs_norm) for x in fnrs]
    fprs = [1 - x / float(fprs_norm) for x in fprs]
    return fnrs, fprs, thresholds


def compute_min_dcf(fnrs: list, fprs: list, thresholds: Sequence[float], p_target: float, c_miss: float = 1.0,
                    c_fa: float = 1.0) -> tuple[float, float]:
    """The seed's ComputeMinDcf: a Python loop keeping the first strict minimum."""
    min_c_det = float("inf")
    min_c_det_threshold = thresholds[0]
    for i in range(0, len(fnrs)):
        c_det = c_miss * fnrs[i] * p_target + c_fa * fprs[i] * (1 - p_target)
        if c_det < min_c_det:
            min_c_det = c_det
            min_c_det_threshold = thresholds[i]
    c_def = min(c_miss * p_target, c_fa * (1 - p_target))
    return min_c_det / c_def, min_c_det_threshold


def seed_metrics(scores: np.ndarray, labels: np.ndarray, p_targets: Sequence[float] = (0.01, 0.05)) -> dict:
    """EER (%) and minDCF per p_target, the seed's way (see the module docstring)."""
    from pyfunc.scoring.metrics import roc_curve

    score_list = scores.tolist()  # the seed reads its scores into Python lists
    label_list = [int(x) for x in labels.tolist()]
    fpr, tpr, _ = roc_curve(np.asarray(score_list), np.asarray(label_list, dtype=bool))
    fnr = 1 - tpr
    index = int(np.nanargmin(np.absolute(fnr - fpr)))
    eer = max(fpr[index], fnr[index]) * 100
    fnrs, fprs, thresholds = compute_error_rates(score_list, label_list)
    min_dcf = {float(p): compute_min_dcf(fnrs, fprs, thresholds, p)[0] for p in p_targets}
    return {"eer_percent": float(eer), "min_dcf": min_dcf}


def plain_asnorm(keys: Sequence[str], emb: np.ndarray, cohort: np.ndarray, top_n: int,
                 trials: Sequence[tuple[str, str]], raw: Sequence[float]) -> np.ndarray:
    """AS-norm with the whole score matrix in memory, full row sorts and a per-trial Python loop."""
    emb = np.asarray(emb, dtype=np.float64)
    cohort = np.asarray(cohort, dtype=np.float64)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    coh = cohort / np.linalg.norm(cohort, axis=1, keepdims=True)
    matrix = unit @ coh.T
    top = np.sort(matrix, axis=1)[:, -top_n:]
    mean = dict(zip(keys, top.mean(axis=1).tolist()))
    std = dict(zip(keys, top.std(axis=1).tolist()))
    out = []
    for (enroll, test), score in zip(trials, raw):
        out.append(0.5 * ((score - mean[enroll]) / std[enroll] + (score - mean[test]) / std[test]))
    return np.asarray(out)
