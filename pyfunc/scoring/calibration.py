"""Score calibration: a linear map of scores (and quality measures) to log-likelihood ratios.

The map is ``llr = w . x + b`` for a trial's features ``x``: the score alone (an affine
calibration, ``a * s + b``), or with quality measure functions (QMF) as WeSpeaker's
``score_calibration.py`` gathers them: for each measure of the two sides of a trial (its
duration in seconds, capped at ``max_duration``; the L2 norm of its embedding; the mean of
its top-N AS-norm cohort scores), the smaller and the larger value, their difference and,
for the measures that are positive by nature (duration, magnitude), their ratio. A cohort
mean is a mean cosine score and can be negative, so it has no ratio. The names of the
features are ``score``, ``<measure>_min``, ``<measure>_max``, ``<measure>_diff`` and
``<measure>_ratio``.

It is fitted as BOSARIS's linear calibration is: ``w`` and ``b`` minimise the
prior-weighted logistic loss::

    p / N_t * sum_targets log(1 + e^-(llr + logit p)) + (1 - p) / N_n * sum_non log(1 + e^(llr + logit p))

which at p = 0.5 is Cllr (up to the factor 1 / log 2). The loss is convex; Newton's method
with a backtracking line search finds its minimum to machine precision in a few steps.
A tiny L2 penalty on the weights of the standardised features (``l2``, 1e-8 by default;
the bias is free) keeps the fit finite when the development trials are separable, as they
can be on an easy set (the weights then stop near log(1 / l2) / margin, in standard
deviations); on overlapping scores it moves the fit by less than 1e-4 relative (2e-5 on
Gaussian scores with d' = 5, about a 1 % EER).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from pyfunc.errors import ConfigError, DataError

QUALITY_MEASURES = ("duration", "magnitude", "cohort_mean")
QUALITY_FUNCTIONS = ("min", "max", "diff", "ratio")
POSITIVE_MEASURES = ("duration", "magnitude")  # the measures with a ratio feature
DEFAULT_MAX_DURATION = 20.0  # seconds, as WeSpeaker's recipe caps durations
DEFAULT_L2 = 1e-8


def feature_names(measures: Sequence[str] = ()) -> list[str]:
    """``["score"]`` then the functions of each quality measure, in the given order."""
    unknown = [m for m in measures if m not in QUALITY_MEASURES]
    if unknown:
        raise ConfigError(f"unknown quality measure(s) {', '.join(unknown)}; expected some of "
                          f"{', '.join(QUALITY_MEASURES)}")
    if len(set(measures)) != len(measures):
        raise ConfigError(f"quality measures listed twice: {', '.join(measures)}")
    return ["score"] + [f"{m}_{f}" for m in measures for f in _functions(m)]


def _functions(measure: str) -> tuple[str, ...]:
    return QUALITY_FUNCTIONS if measure in POSITIVE_MEASURES else QUALITY_FUNCTIONS[:3]


def quality_features(scores: np.ndarray, qualities: Mapping[str, tuple[np.ndarray, np.ndarray]],
                     measures: Sequence[str] = (), max_duration: float = DEFAULT_MAX_DURATION) -> np.ndarray:
    """The feature matrix (num_trials x len(feature_names(measures))) of scored trials.

    ``qualities[m]`` holds the measure ``m`` of each trial's enrolment and test side (two
    arrays as long as ``scores``). Durations are capped at ``max_duration`` seconds first.
    A duration or magnitude that is not positive is a DataError (its ratio would be meaningless).
    """
    scores = np.asarray(scores, dtype=np.float64)
    columns = [scores]
    feature_names(measures)  # checks the names
    for measure in measures:
        if measure not in qualities:
            raise DataError(f"quality measure {measure!r} was not computed for these trials")
        enroll, test = (np.asarray(side, dtype=np.float64) for side in qualities[measure])
        if enroll.shape != scores.shape or test.shape != scores.shape:
            raise DataError(f"quality measure {measure!r}: {enroll.shape} and {test.shape} values for "
                            f"{scores.size} trials")
        if measure == "duration":
            enroll, test = np.minimum(enroll, max_duration), np.minimum(test, max_duration)
        low, high = np.minimum(enroll, test), np.maximum(enroll, test)
        columns += [low, high, high - low]
        if measure in POSITIVE_MEASURES:
            if not (low > 0).all():
                bad = int(np.flatnonzero(~(low > 0))[0])
                raise DataError(f"quality measure {measure!r} of trial {bad + 1} is {low[bad]:g}; its ratio "
                                "feature needs positive values")
            columns.append(high / low)
    matrix = np.stack(columns, axis=1)
    if not np.isfinite(matrix).all():
        raise DataError("quality features: non-finite values")
    return matrix


@dataclass(frozen=True)
class LinearCalibration:
    """``llr = features @ weights + bias``; ``features`` names the columns the weights apply to."""

    features: tuple[str, ...]
    weights: np.ndarray  # float64, one per feature
    bias: float

    def llrs(self, matrix: np.ndarray) -> np.ndarray:
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(self.features):
            raise DataError(f"calibration of {len(self.features)} features ({', '.join(self.features)}) "
                            f"applied to a matrix of shape {matrix.shape}")
        return matrix @ self.weights + self.bias

    def score_threshold(self, llr_threshold: float) -> float | None:
        """The raw score at which the LLR equals ``llr_threshold``, for a score-only map with a positive
        slope (else None: the decision then depends on more than the score)."""
        if self.features != ("score",) or not self.weights[0] > 0:
            return None
        return float((llr_threshold - self.bias) / self.weights[0])


def _logistic_loss(z: np.ndarray, labels: np.ndarray, weights: np.ndarray, offset: float) -> float:
    signed = np.where(labels, -(z + offset), z + offset)
    return float(np.sum(weights * np.logaddexp(0.0, signed)))


def fit_logistic(matrix: np.ndarray, labels: np.ndarray, prior: float = 0.5, l2: float = DEFAULT_L2,
                 max_iter: int = 100, features: Sequence[str] | None = None) -> LinearCalibration:
    """The prior-weighted logistic regression of the module docstring on ``matrix`` (trials x features)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    if matrix.ndim != 2 or labels.shape != (matrix.shape[0],):
        raise DataError(f"calibration: a feature matrix of shape {matrix.shape} for {labels.shape} labels")
    if not np.isfinite(matrix).all():
        raise DataError("calibration: non-finite features")
    if not 0.0 < prior < 1.0:
        raise ConfigError(f"calibration prior must be in (0, 1), got {prior}")
    num_target, num_nontarget = int(labels.sum()), int((~labels).sum())
    if num_target == 0 or num_nontarget == 0:
        raise DataError(f"calibration needs target and nontarget trials, got {num_target} and {num_nontarget}")
    names = tuple(features) if features is not None else tuple(f"x{i}" for i in range(matrix.shape[1]))
    if len(names) != matrix.shape[1]:
        raise DataError(f"{len(names)} feature names for {matrix.shape[1]} columns")

    centre, scale = matrix.mean(axis=0), matrix.std(axis=0)
    scale[scale == 0] = 1.0  # a constant column keeps weight 0 (the penalty), the bias absorbs it
    design = np.c_[(matrix - centre) / scale, np.ones(len(matrix))]
    trial_weight = np.where(labels, prior / num_target, (1 - prior) / num_nontarget)
    offset = float(np.log(prior) - np.log1p(-prior))
    penalty = np.r_[np.full(matrix.shape[1], l2), 0.0]

    def objective(theta: np.ndarray) -> float:
        return _logistic_loss(design @ theta, labels, trial_weight, offset) + 0.5 * float(penalty @ theta ** 2)

    theta = np.zeros(design.shape[1])
    value = objective(theta)
    for _ in range(max_iter):
        prob = 1.0 / (1.0 + np.exp(-(design @ theta + offset)))  # d(loss)/d(llr) = weight * (prob - label)
        gradient = design.T @ (trial_weight * (prob - labels)) + penalty * theta
        hessian = design.T @ (design * (trial_weight * prob * (1.0 - prob))[:, None]) + np.diag(penalty)
        step = np.linalg.solve(hessian + 1e-12 * np.eye(len(theta)), gradient)
        decrement = float(gradient @ step)  # Newton decrement squared: twice the predicted decrease
        if decrement <= 1e-20:
            break
        size = 1.0
        while size >= 1e-10:  # backtracking (Armijo): a full Newton step can overshoot far from the minimum
            candidate = theta - size * step
            new_value = objective(candidate)
            if new_value <= value - 1e-4 * size * decrement:
                break
            size /= 2
        else:
            break  # no decrease left: at the minimum to rounding
        theta, value = candidate, new_value
    weights = theta[:-1] / scale
    bias = float(theta[-1] - weights @ centre)
    return LinearCalibration(names, weights, bias)
