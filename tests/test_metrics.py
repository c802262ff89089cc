"""Stage 6: EER and minDCF equal the seed's numbers; score files are checked against the trials."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SHARED

from pyfunc.errors import DataError
from pyfunc.scoring.metrics import (
    compute_eer,
    compute_metrics,
    compute_min_dcf,
    evaluate_score_files,
    format_results_table,
    roc_curve,
    write_results,
)

REFERENCE = SHARED / "reference"


def _read_reference_scores() -> tuple[np.ndarray, np.ndarray]:
    scores, labels = [], []
    with open(REFERENCE / "metrics_scores.txt") as handle:
        for line in handle:
            _, _, score, label = line.split()
            scores.append(float(score))
            labels.append(label == "target")
    return np.array(scores), np.array(labels)


def test_metrics_equal_the_seed_reference() -> None:
    reference = json.loads((REFERENCE / "metrics_reference.json").read_text())
    scores, labels = _read_reference_scores()
    assert len(scores) == reference["n_trials"]
    assert len(np.unique(scores)) < len(scores)  # the reference has ties
    eer, _ = compute_eer(scores, labels)
    assert abs(eer - reference["eer_percent"]) < 1e-9
    for p in (0.05, 0.01):
        min_dcf, _ = compute_min_dcf(scores, labels, p)
        assert abs(min_dcf - reference[f"min_dcf_p{p}"]) < 1e-9
    row = compute_metrics(scores, labels, (0.01, 0.05))
    assert abs(row["eer_percent"] - reference["eer_percent"]) < 1e-9
    assert abs(row["min_dcf"][0.05] - reference["min_dcf_p0.05"]) < 1e-9
    assert abs(row["min_dcf"][0.01] - reference["min_dcf_p0.01"]) < 1e-9


def test_perfect_separation() -> None:
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.7])
    labels = np.array([1, 0, 1, 0, 1])
    eer, threshold = compute_eer(scores, labels)
    assert eer == 0.0 and threshold == 0.7
    for p in (0.01, 0.05, 0.5):
        assert compute_min_dcf(scores, labels, p)[0] == 0.0


def test_roc_curve_by_hand_with_ties() -> None:
    # Descending: 0.9 T, 0.5 {T, N}, 0.2 N, 0.1 N.  Distinct thresholds 0.9, 0.5, 0.2, 0.1.
    scores = np.array([0.5, 0.2, 0.9, 0.5, 0.1])
    labels = np.array([True, False, True, False, False])
    fpr, tpr, thresholds = roc_curve(scores, labels)
    # Points (fps, tps): (0,0) (0,1) (1,2) (2,2) (3,2); (2,2) lies between (1,2) and (3,2): dropped.
    assert thresholds.tolist() == [np.inf, 0.9, 0.5, 0.1]
    assert fpr.tolist() == [0, 0, 1 / 3, 1]
    assert tpr.tolist() == [0, 0.5, 1, 1]
    # |fnr - fpr|: 1, 0.5, 1/3, 1 -> index 2: max(1/3, 0) = 33.33 %
    eer, threshold = compute_eer(scores, labels)
    assert eer == pytest.approx(100 / 3, abs=1e-12) and threshold == 0.5


def test_eer_drops_intermediate_points_like_sklearn() -> None:
    # Descending: N, T, T, N.  Full ROC (fpr, tpr): (0,0) (.5,0) (.5,.5) (.5,1) (1,1); sklearn's
    # drop_intermediate removes (.5,.5), the only point with |fnr - fpr| = 0, so the EER point is
    # the first of the remaining minima, (.5, 0): max(fpr, fnr) = 100 %.
    scores = np.array([0.0, 1.0, 2.0, 3.0])
    labels = np.array([False, True, True, False])
    fpr, tpr, _ = roc_curve(scores, labels)
    assert fpr.tolist() == [0, 0.5, 0.5, 1] and tpr.tolist() == [0, 0, 1, 1]
    eer, threshold = compute_eer(scores, labels)
    assert eer == 100.0 and threshold == 3.0


def test_min_dcf_by_hand() -> None:
    scores = np.array([0.0, 1.0, 2.0, 3.0])
    labels = np.array([False, True, True, False])
    # Rejecting up to and including trial i (ascending): fnr = 0, .5, 1, 1; fpr = .5, .5, .5, 0
    # p = 0.5: cost .25, .5, .75, .5 -> .25 / .5
    assert compute_min_dcf(scores, labels, 0.5) == (0.5, 0.0)
    # p = 0.01: .495, .5, .505, .01 -> .01 / .01
    min_dcf, threshold = compute_min_dcf(scores, labels, 0.01)
    assert min_dcf == pytest.approx(1.0, abs=1e-15) and threshold == 3.0
    # c_miss = 10: normaliser min(10 * .5, .5) = .5; costs 2.5 + .25 ... -> min at i = 0: .25 / .5
    assert compute_min_dcf(scores, labels, 0.5, c_miss=10.0)[0] == 0.5


def test_min_dcf_ties_follow_the_seed_stable_order() -> None:
    # The seed sorts trials stably and tries every trial as a threshold, so within a tie the
    # file order matters: nontarget first -> rejecting it alone costs nothing.
    assert compute_min_dcf([0.5, 0.5], [False, True], 0.05)[0] == 0.0
    assert compute_min_dcf([0.5, 0.5], [True, False], 0.05)[0] == pytest.approx(1.0, abs=1e-15)
    # EER on sklearn's distinct thresholds does not depend on that order.
    assert compute_eer([0.5, 0.5], [False, True])[0] == compute_eer([0.5, 0.5], [True, False])[0] == 100.0


def test_bad_metric_input() -> None:
    with pytest.raises(DataError, match="both target and nontarget"):
        compute_eer([0.1, 0.2], [True, True])
    with pytest.raises(DataError, match="trial 2: score is not a finite number"):
        compute_eer([0.1, np.nan, 0.3], [True, False, True])
    with pytest.raises(DataError, match="shapes"):
        compute_min_dcf([0.1, 0.2], [True], 0.01)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _toy_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    trials = _write(tmp_path / "trials", ["a b target", "a c nontarget", "b c nontarget", "c d target"])
    good = _write(tmp_path / "sys1", ["a b 0.9", "a c 0.1", "b c 0.3", "c d 0.2"])  # c d below b c
    shuffled = _write(tmp_path / "sys2", ["c d 0.8", "b c 0.3", "a c -0.2", "a b 0.7"])
    return trials, good, shuffled


def test_evaluate_score_files_and_table(tmp_path: Path) -> None:
    trials, good, shuffled = _toy_files(tmp_path)
    rows = evaluate_score_files(trials, [good, shuffled], (0.01, 0.05))
    assert [row["system"] for row in rows] == [str(good), str(shuffled)]
    # sys1 descending: a b T .9, b c N .3, c d T .2, a c N .1 -> points (0,0) (0,.5) (.5,.5) (.5,1) (1,1)
    # |fnr - fpr|: 1, .5, 0, .5, 1 -> EER 50 %
    assert rows[0]["eer_percent"] == 50.0
    assert rows[1]["eer_percent"] == 0.0 and rows[1]["min_dcf"][0.01] == 0.0
    # Cllr reads the scores as LLRs: targets .9, .2 and non-targets .1, .3 cost, in bits,
    # log2(1 + e^-s) and log2(1 + e^s): the mean of each class, averaged.
    bits = [math.log2(1 + math.exp(-0.9)), math.log2(1 + math.exp(-0.2)),
            math.log2(1 + math.exp(0.1)), math.log2(1 + math.exp(0.3))]
    assert rows[0]["cllr"] == pytest.approx(((bits[0] + bits[1]) / 2 + (bits[2] + bits[3]) / 2) / 2, abs=1e-12)
    # ascending .1 N, .2 T, .3 N, .9 T: PAV pools the middle pair (LLR 0, 1 bit each): min Cllr (1/2 + 1/2) / 2
    assert rows[0]["min_cllr"] == pytest.approx(0.5, abs=1e-12) and rows[1]["min_cllr"] == 0.0
    # every score is below the Bayes thresholds ln 99 and ln 19: all rejected, actual DCF = P_miss = 1
    assert rows[0]["act_dcf"] == {0.01: 1.0, 0.05: 1.0}
    table = format_results_table(rows)
    lines = table.splitlines()
    assert lines[0].split() == ["system", "EER(%)", "minDCF(p=0.01)", "minDCF(p=0.05)", "Cllr", "minCllr",
                                "actDCF(p=0.01)", "actDCF(p=0.05)"]
    assert lines[1].split()[:2] == [str(good), "50.0000"]
    assert lines[1].split()[4:] == [f"{rows[0]['cllr']:.4f}", "0.5000", "1.0000", "1.0000"]
    # rows without the calibration measures (e.g. made by compute_metrics alone) show '-'
    bare = [{k: v for k, v in rows[0].items() if k not in ("cllr", "min_cllr", "act_dcf")}, rows[1]]
    assert format_results_table(bare).splitlines()[1].split()[4:] == ["-", "-", "-", "-"]
    assert len({len(line) for line in lines}) == 1  # aligned columns
    write_results(tmp_path / "results", rows)
    assert (tmp_path / "results").read_text() == table


def test_score_file_must_match_trials(tmp_path: Path) -> None:
    trials, _, _ = _toy_files(tmp_path)
    missing = _write(tmp_path / "missing", ["a b 0.9", "a c 0.1", "c d 0.2"])
    with pytest.raises(DataError, match=r"missing: no score for trial b c of .*trials"):
        evaluate_score_files(trials, [missing])
    extra = _write(tmp_path / "extra", ["a b 0.9", "a c 0.1", "b c 0.3", "c d 0.2", "d e 0.5"])
    with pytest.raises(DataError, match=r"extra: pair d e is not a trial"):
        evaluate_score_files(trials, [extra])
    bad = _write(tmp_path / "bad", ["a b 0.9", "a c x"])
    with pytest.raises(DataError, match=r"bad:2: score 'x' is not a number"):
        evaluate_score_files(trials, [bad])


def test_compute_metrics_step(tmp_path: Path) -> None:
    trials, good, shuffled = _toy_files(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = tmp_path / "exp" / "results"
    proc = subprocess.run([sys.executable, str(REPO / "steps" / "compute_metrics.py"), "--trials", str(trials),
                           "--out", str(out), "--name", "one", "--name", "two", str(good), str(shuffled)],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == out.read_text()
    assert [line.split()[0] for line in proc.stdout.splitlines()[1:]] == ["one", "two"]
    missing = _write(tmp_path / "missing", ["a b 0.9"])
    proc = subprocess.run([sys.executable, str(REPO / "steps" / "compute_metrics.py"), "--trials", str(trials),
                           "--out", str(tmp_path / "r2"), str(missing)], capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and "no score for trial a c" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r2").exists()
