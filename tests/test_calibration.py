"""Calibration: Cllr, min Cllr and actual DCF by hand; logistic calibration and QMF on scores with known LLRs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pyfunc.errors import ConfigError, DataError
from pyfunc.scoring.calibration import feature_names, fit_logistic, quality_features
from pyfunc.scoring.metrics import (
    bayes_threshold,
    cllr,
    compute_act_dcf,
    compute_eer,
    compute_llr_metrics,
    compute_min_dcf,
    min_cllr,
    pav_llrs,
    sort_trials,
)

LN3 = math.log(3)


def test_cllr_and_min_cllr_by_hand() -> None:
    # Targets with LLRs ln 3 and 0, non-targets -ln 3 and 0. In bits, log2(1 + e^-ln3) = log2(4/3) and
    # log2(1 + e^0) = 1, so each class costs (log2(4/3) + 1) / 2 and Cllr = (log2(4/3) + 1) / 2 = 0.707519.
    scores = np.array([LN3, 0.0, -LN3, 0.0])
    labels = np.array([True, True, False, False])
    assert cllr(scores, labels) == pytest.approx((math.log2(4 / 3) + 1) / 2, abs=1e-15)
    # PAV in ascending order, the tie at 0 pooled: -ln3 (N) | 0 (T), 0 (N) | ln3 (T) -> posteriors 0, 1/2, 1.
    # With equal class counts the prior log odds are 0: LLRs -inf, 0, +inf. The two trials at LLR 0 cost
    # 1 bit each, the others nothing: min Cllr = (1/2 + 1/2) / 2 = 0.5.
    assert min_cllr(scores, labels) == pytest.approx(0.5, abs=1e-15)
    np.testing.assert_array_equal(pav_llrs(scores, labels), [-np.inf, 0.0, 0.0, np.inf])
    # One target (1.0) and three non-targets (-1, 0, 2): ascending N N T N -> PAV 0, 0, 1/2, 1/2. Prior log odds
    # ln(1/3), so the pooled pair has LLR ln(1) - ln(1/3) = ln 3. Target cost log2(1 + 1/3) = log2(4/3); the
    # non-target at 2 costs log2(1 + 3) = 2, the others 0, mean 2/3: min Cllr = (log2(4/3) + 2/3) / 2 = 0.540852.
    scores, labels = np.array([1.0, -1.0, 0.0, 2.0]), np.array([True, False, False, False])
    assert min_cllr(scores, labels) == pytest.approx((math.log2(4 / 3) + 2 / 3) / 2, abs=1e-15)
    # perfectly separated trials calibrate to certainty: min Cllr 0
    assert min_cllr(np.array([0.1, 0.2, 0.3]), np.array([False, True, True])) == 0.0


def test_actual_dcf_by_hand() -> None:
    llrs = np.array([3.0, 5.0, -1.0, -4.0, 0.0, 4.7, -2.0])
    labels = np.array([True, True, True, False, False, False, False])
    # p = 0.01: the Bayes threshold is ln(99) = 4.595. Misses: 3 and -1 (2 of 3); false alarms: 4.7 (1 of 4).
    # (0.01 * 2/3 + 0.99 * 1/4) / min(0.01, 0.99) = 0.666667 + 24.75 = 25.416667
    assert bayes_threshold(0.01) == pytest.approx(math.log(99), abs=1e-15)
    assert compute_act_dcf(llrs, labels, 0.01) == pytest.approx(2 / 3 + 24.75, abs=1e-12)
    # p = 0.5: threshold 0 (an LLR of exactly 0 is accepted). Misses: -1 (1 of 3); false alarms 0 and 4.7 (2 of 4).
    # (0.5 / 3 + 0.5 * 2/4) / 0.5 = 1/3 + 1/2
    assert compute_act_dcf(llrs, labels, 0.5) == pytest.approx(1 / 3 + 1 / 2, abs=1e-12)


def _normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def _calibrated_gaussian(random_seed: int, num_target: int, num_nontarget: int, sd: float = 4.0):
    """Scores that are exact LLRs: targets N(sd^2/2, sd^2), non-targets N(-sd^2/2, sd^2) give
    log N(s; mu, sd^2) - log N(s; -mu, sd^2) = 2 mu s / sd^2 = s."""
    rng = np.random.default_rng(random_seed)
    mu = sd ** 2 / 2
    scores = np.r_[rng.normal(mu, sd, num_target), rng.normal(-mu, sd, num_nontarget)]
    return scores, np.r_[np.ones(num_target, bool), np.zeros(num_nontarget, bool)]


def test_actual_dcf_equals_min_dcf_for_calibrated_gaussian_scores() -> None:
    """With exact LLRs the Bayes threshold is the best one, so actual DCF = minDCF in the population.

    Tolerances: (1) actual DCF is within 3 standard errors of the analytic population value
    P_miss + (1 - p) / p * P_fa at the threshold ln((1 - p) / p); its binomial standard error,
    sqrt(P_miss (1 - P_miss) / N_t) + (1 - p) / p * sqrt(P_fa (1 - P_fa) / N_n), is 0.0041 at
    p = 0.01 and 0.0020 at p = 0.05 here. (2) The sample's minDCF picks the best of all
    thresholds on these same trials, so it lies below actual DCF by an optimism that is of
    second order at the population optimum, where the DCF curve is flat: five draws of this
    set-up gave gaps of 2e-4 to 8e-4. We allow 0.005, 2 % of the DCF, and show that scores
    miscalibrated by 1 nat miss that bound by far.
    """
    scores, labels = _calibrated_gaussian(0, 100_000, 1_000_000)
    st = sort_trials(scores, labels)
    mu, sd = 8.0, 4.0
    for p, standard_error in ((0.01, 0.0041), (0.05, 0.0020)):
        eta = math.log((1 - p) / p)
        population = _normal_cdf((eta - mu) / sd) + (1 - p) / p * (1 - _normal_cdf((eta + mu) / sd))
        actual = compute_act_dcf(st, None, p)
        assert abs(actual - population) < 3 * standard_error
        minimum = compute_min_dcf(st, None, p)[0]
        assert minimum <= actual <= minimum + 0.005
        shifted = compute_act_dcf(scores + 1.0, labels, p)  # LLRs 1 nat too high: too many false alarms
        assert shifted > minimum + 0.02


def test_metrics_of_a_score_file_row() -> None:
    scores, labels = _calibrated_gaussian(1, 2000, 20000)
    row = compute_llr_metrics(scores, labels, (0.01, 0.05))
    assert set(row) == {"cllr", "min_cllr", "act_dcf"} and set(row["act_dcf"]) == {0.01, 0.05}
    assert row["min_cllr"] <= row["cllr"] < 0.2  # exact LLRs: small calibration loss
    miscalibrated = compute_llr_metrics(0.05 * scores + 0.3, labels)  # cosine-like scale
    assert miscalibrated["min_cllr"] == pytest.approx(row["min_cllr"], abs=1e-12)  # monotone: same min Cllr
    assert miscalibrated["cllr"] > 0.7


def _known_llr_set(random_seed: int, num_target: int = 20_000, num_nontarget: int = 200_000):
    """Cosine-like raw scores s = 0.05 llr + 0.3 of trials whose LLR is known: llr = 20 s - 6."""
    llrs, labels = _calibrated_gaussian(random_seed, num_target, num_nontarget)
    return 0.05 * llrs + 0.3, llrs, labels


def test_logistic_calibration_recovers_known_llrs_on_held_out_trials() -> None:
    """Fitted on one draw (the development set), applied to another. Six draws of this set-up gave slopes
    19.53..20.11 (true 20), biases -5.80..-6.02 (true -6) and at most 0.29 nats of error on LLRs in [-10, 10];
    the bounds below are about twice those."""
    dev_scores, _, dev_labels = _known_llr_set(2)
    calibration = fit_logistic(dev_scores[:, None], dev_labels, features=feature_names())
    assert calibration.features == ("score",)
    assert calibration.weights[0] == pytest.approx(20.0, rel=0.05)
    assert calibration.bias == pytest.approx(-6.0, abs=0.4)
    grid = np.linspace(-10, 10, 41)
    assert np.abs(calibration.llrs((0.05 * grid + 0.3)[:, None]) - grid).max() < 0.6
    scores, llrs, labels = _known_llr_set(3)
    calibrated = calibration.llrs(scores[:, None])
    assert cllr(calibrated, labels) < cllr(scores, labels) / 5  # raw cosine-scale scores are far from LLRs
    assert cllr(calibrated, labels) < cllr(llrs, labels) + 0.001  # as good as the true LLRs
    # the calibrated decisions at p = 0.01 cost what the best threshold costs (see the Gaussian test)
    assert compute_act_dcf(calibrated, labels, 0.01) <= compute_min_dcf(calibrated, labels, 0.01)[0] + 0.005
    # an affine map keeps the order: the EER does not move
    assert compute_eer(calibrated, labels)[0] == compute_eer(scores, labels)[0]
    threshold = calibration.score_threshold(bayes_threshold(0.01))
    assert threshold == pytest.approx((math.log(99) + 6) / 20, abs=0.02)


def test_quality_features_by_hand() -> None:
    scores = np.array([0.5, -0.1])
    qualities = {"duration": (np.array([2.0, 30.0]), np.array([25.0, 4.0])),
                 "magnitude": (np.array([3.0, 1.0]), np.array([1.5, 4.0]))}
    matrix = quality_features(scores, qualities, ["duration", "magnitude"], max_duration=20.0)
    assert feature_names(["duration", "magnitude"]) == [
        "score", "duration_min", "duration_max", "duration_diff", "duration_ratio",
        "magnitude_min", "magnitude_max", "magnitude_diff", "magnitude_ratio"]
    # trial 1: durations 2 and 25 -> capped 2, 20: min 2, max 20, diff 18, ratio 10; magnitudes 3, 1.5
    # trial 2: durations 30 and 4 -> 20, 4: min 4, max 20, diff 16, ratio 5; magnitudes 1, 4
    np.testing.assert_allclose(matrix, [[0.5, 2, 20, 18, 10, 1.5, 3, 1.5, 2],
                                        [-0.1, 4, 20, 16, 5, 1, 4, 3, 4]], atol=1e-15)
    with pytest.raises(ConfigError, match="unknown quality measure"):
        feature_names(["loudness"])
    with pytest.raises(DataError, match="'magnitude' of trial 2 is 0"):
        quality_features(scores, {"magnitude": (np.array([0.3, 0.4]), np.array([0.5, 0.0]))}, ["magnitude"])
    # a cohort mean is a mean cosine score: it may be negative and has no ratio feature
    assert feature_names(["cohort_mean"]) == ["score", "cohort_mean_min", "cohort_mean_max", "cohort_mean_diff"]
    np.testing.assert_allclose(
        quality_features(scores, {"cohort_mean": (np.array([0.3, 0.4]), np.array([0.5, -0.2]))}, ["cohort_mean"]),
        [[0.5, 0.3, 0.5, 0.2], [-0.1, -0.2, 0.4, 0.6]], atol=1e-15)


def test_quality_measures_correct_what_the_score_alone_cannot() -> None:
    """Scores drift up with the shorter side's duration d: s = 0.05 llr + 0.3 + 0.03 (d - 5), so
    llr = 20 s - 6 - 0.6 (d - 5): linear in the score and duration_min, which only QMF sees."""

    def draw(random_seed: int):
        scores, llrs, labels = _known_llr_set(random_seed, 10_000, 100_000)
        rng = np.random.default_rng(random_seed + 100)
        enroll, test = rng.uniform(1, 10, scores.size), rng.uniform(1, 10, scores.size)
        return scores + 0.03 * (np.minimum(enroll, test) - 5), {"duration": (enroll, test)}, llrs, labels

    scores, qualities, _, labels = draw(4)
    qmf = fit_logistic(quality_features(scores, qualities, ["duration"]), labels,
                       features=feature_names(["duration"]))
    plain = fit_logistic(scores[:, None], labels, features=feature_names())
    scores, qualities, llrs, labels = draw(5)
    with_quality = qmf.llrs(quality_features(scores, qualities, ["duration"]))
    score_only = plain.llrs(scores[:, None])
    assert cllr(with_quality, labels) < cllr(llrs, labels) + 0.002
    assert cllr(score_only, labels) > cllr(with_quality, labels) + 0.01
    assert compute_eer(with_quality, labels)[0] < compute_eer(score_only, labels)[0]  # QMF reorders the trials


def test_separable_development_trials_give_a_finite_calibration() -> None:
    scores = np.r_[np.linspace(1, 2, 10), np.linspace(-2, -1, 10)]
    labels = np.r_[np.ones(10, bool), np.zeros(10, bool)]
    calibration = fit_logistic(scores[:, None], labels)
    assert np.isfinite(calibration.weights).all() and 0 < calibration.weights[0] < 100
    assert abs(calibration.bias) < 1e-6  # symmetric classes: the boundary stays at 0
    with pytest.raises(DataError, match="needs target and nontarget trials"):
        fit_logistic(scores[:, None], np.ones(20, bool))
    with pytest.raises(ConfigError, match="prior must be in"):
        fit_logistic(scores[:, None], labels, prior=1.0)
