"""Stage 5: AS-norm against a small example computed by hand, blockwise statistics, the CLI."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
from conftest import REPO

from pyfunc.data.arkio import ArkScpWriter
from pyfunc.data.tables import write_table
from pyfunc.data.vectors import write_vectors
from pyfunc.errors import ConfigError, DataError
from pyfunc.pipeline.cohort_stage import load_cohort_means, write_cohort_means
from pyfunc.pipeline.score_stage import score_trials, score_trials_asnorm
from pyfunc.scoring.asnorm import asnorm_scores, cohort_stats

# Cohort directions (1, 0), (0, 1), (-1, 0); top 2 of each utterance's three cohort cosines:
#   a = (1, 0):  cosines 1, 0, -1       -> top {1, 0}:     mean 0.5, std 0.5
#   b = (0, 2):  cosines 0, 1, 0        -> top {1, 0}:     mean 0.5, std 0.5
#   c = (3, 4):  cosines 0.6, 0.8, -0.6 -> top {0.8, 0.6}: mean 0.7, std 0.1
# AS-norm of a trial with raw cosine s: 0.5 * ((s - mu_e) / sd_e + (s - mu_t) / sd_t)
#   (a, c): s = 0.6 -> 0.5 * (0.2 - 1.0) = -0.4
#   (a, b): s = 0.0 -> 0.5 * (-1.0 - 1.0) = -1.0
#   (b, c): s = 0.8 -> 0.5 * (0.6 + 1.0) = 0.8
HAND = {("a", "c"): -0.4, ("a", "b"): -1.0, ("b", "c"): 0.8}
UTTS = {"a": [1.0, 0.0], "b": [0.0, 2.0], "c": [3.0, 4.0]}
COHORT_UTTS = {"s1-1": ("s1", [2.0, 0.0]), "s1-2": ("s1", [0.5, 0.0]), "s2-1": ("s2", [0.0, 3.0]),
               "s3-1": ("s3", [-1.0, 0.0]), "s3-2": ("s3", [-4.0, 0.0])}


@pytest.fixture
def example(tmp_path: Path) -> Path:
    write_vectors(tmp_path / "emb" / "xvector.scp", list(UTTS), np.array(list(UTTS.values()), np.float32))
    keys = sorted(COHORT_UTTS)
    write_vectors(tmp_path / "cohort" / "xvector.scp", keys,
                  np.array([COHORT_UTTS[k][1] for k in keys], np.float32))
    write_table(tmp_path / "utt2spk", {k: COHORT_UTTS[k][0] for k in keys})
    (tmp_path / "trials").write_text("".join(f"{e} {t} nontarget\n" for e, t in HAND))
    return tmp_path


def test_hand_computed_example(example: Path) -> None:
    scores = score_trials_asnorm(example / "trials", example / "emb", example / "cohort", example / "utt2spk",
                                 2, example / "scores")
    np.testing.assert_allclose(scores, list(HAND.values()), atol=1e-6)
    lines = [line.split() for line in (example / "scores").read_text().splitlines()]
    assert [(e, t) for e, t, _ in lines] == list(HAND)
    np.testing.assert_allclose([float(s) for _, _, s in lines], list(HAND.values()), atol=1e-6)


# The seed protocol: trial score 0.5 * (f_e.f_t + m_e.m_t), f the unit full embedding, m the mean of the unit crop
# embeddings (not unit). The cohort score of u against speaker mean c is the seed score with c on both of the
# speaker's sides, 0.5 * (f_u.c + m_u.c) = ((f_u + m_u) / 2).c. Same cohort as above, top 2:
#   e: f = (1, 0), crops (2, 0) and (0, 1): m = (0.5, 0.5); (f + m) / 2 = (0.75, 0.25)
#      cohort scores 0.75, 0.25, -0.75 -> top {0.75, 0.25}: mean 0.5, std 0.25
#   t: f = (0, 1), crops (0, 3) and (0, 1): m = (0, 1);     (f + m) / 2 = (0, 1)
#      cohort scores 0, 1, 0           -> top {1, 0}:       mean 0.5, std 0.5
#   (e, t): s = 0.5 * (0 + 0.5) = 0.25 -> 0.5 * ((0.25 - 0.5) / 0.25 + (0.25 - 0.5) / 0.5) = -0.75
# (Full cosines alone for the cohort, as before, give e mean 0.5, std 0.5, hence -0.5.)
SEED_FULL = {"e": [1.0, 0.0], "t": [0.0, 1.0]}
SEED_CROPS = {"e": [[2.0, 0.0], [0.0, 1.0]], "t": [[0.0, 3.0], [0.0, 1.0]]}


def test_hand_computed_example_with_crops(example: Path) -> None:
    emb = example / "seed_emb"
    write_vectors(emb / "xvector.scp", list(SEED_FULL), np.array(list(SEED_FULL.values()), np.float32))
    with ArkScpWriter(emb / "xvector_crops.ark", emb / "xvector_crops.scp") as write:
        for key, crops in SEED_CROPS.items():
            write(key, np.array(crops, np.float32))
    (example / "seed_trials").write_text("e t target\n")
    cosine = score_trials(example / "seed_trials", emb, example / "seed_cosine")
    np.testing.assert_allclose(cosine, [0.25], atol=1e-7)
    scores = score_trials_asnorm(example / "seed_trials", emb, example / "cohort", example / "utt2spk", 2,
                                 example / "seed_asnorm")
    np.testing.assert_allclose(scores, [-0.75], atol=1e-7)
    full_only = score_trials_asnorm(example / "seed_trials", emb, example / "cohort", example / "utt2spk", 2,
                                    example / "full_asnorm", protocol="full")
    np.testing.assert_allclose(full_only, [-1.0], atol=1e-7)  # cosine 0, both sides mean 0.5, std 0.5


def test_cohort_means_are_stored_once_and_used_while_current(example: Path, caplog: pytest.LogCaptureFixture) -> None:
    """steps/cohort_means.py writes the speaker means (by hand: s1 (1, 0), s2 (0, 1), s3 (-1, 0)); stage 5 reads
    them while the cohort embeddings and utt2spk are those they were made from, and recomputes otherwise."""
    cohort, means_scp = example / "cohort", example / "cohort" / "spk_xvector.scp"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, str(REPO / "steps" / "cohort_means.py"), "--utt2spk", str(example / "utt2spk"),
           str(cohort)]
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    stored = {k: np.asarray(v) for k, v in kaldiio.load_scp(str(means_scp)).items()}
    assert list(stored) == ["s1", "s2", "s3"]
    np.testing.assert_array_equal(np.stack(list(stored.values())), [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert not write_cohort_means(cohort, example / "utt2spk")  # up to date: nothing to do
    with caplog.at_level(logging.INFO):
        scores = score_trials_asnorm(example / "trials", example / "emb", cohort, example / "utt2spk", 2,
                                     example / "scores")
    np.testing.assert_allclose(scores, list(HAND.values()), atol=1e-6)
    assert f"cohort: 3 speaker means from {means_scp}" in caplog.text
    # New cohort embeddings (s3 now points along (0, -1)): the stored means are stale and not used.
    keys = sorted(COHORT_UTTS)
    moved = {**COHORT_UTTS, "s3-1": ("s3", [0.0, -1.0]), "s3-2": ("s3", [0.0, -4.0])}
    write_vectors(cohort / "xvector.scp", keys, np.array([moved[k][1] for k in keys], np.float32))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        speakers, means = load_cohort_means(cohort, example / "utt2spk")
    assert "speaker means computed from" in caplog.text and f"input {cohort / 'xvector.scp'} changed" in caplog.text
    np.testing.assert_allclose(means, [[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], atol=1e-12)
    assert write_cohort_means(cohort, example / "utt2spk")
    assert set(kaldiio.load_scp(str(means_scp))) == {"s1", "s2", "s3"}
    np.testing.assert_allclose(load_cohort_means(cohort, example / "utt2spk")[1], means, atol=0)


def test_stats_by_hand_and_whole_cohort_cap() -> None:
    cohort = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    mean, std = cohort_stats(np.array(list(UTTS.values())), cohort, 2)
    np.testing.assert_allclose(mean, [0.5, 0.5, 0.7], atol=1e-12)
    np.testing.assert_allclose(std, [0.5, 0.5, 0.1], atol=1e-12)
    mean, std = cohort_stats(np.array([[1.0, 0.0]]), cohort, 50)  # capped at the 3 speakers
    np.testing.assert_allclose([mean[0], std[0]], [0.0, np.sqrt(2 / 3)], atol=1e-12)


def test_blockwise_stats_equal_one_block() -> None:
    rng = np.random.default_rng(0)
    emb, cohort = rng.standard_normal((300, 16)), rng.standard_normal((50, 16))
    whole = cohort_stats(emb, cohort, 10)
    blocks = cohort_stats(emb, cohort, 10, max_block_bytes=8 * 50 * 7)  # 7 rows a block
    np.testing.assert_allclose(blocks, whole, atol=1e-15)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    top = np.sort(unit @ (cohort / np.linalg.norm(cohort, axis=1, keepdims=True)).T, axis=1)[:, -10:]
    np.testing.assert_allclose(whole, (top.mean(1), top.std(1)), atol=1e-12)


def test_errors() -> None:
    cohort = np.array([[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ConfigError, match="top_n must be at least 2"):
        cohort_stats(np.ones((1, 2)), cohort, 1)
    with pytest.raises(DataError, match="at least 2 speakers"):
        cohort_stats(np.ones((1, 2)), cohort[:1], 2)
    with pytest.raises(DataError, match="2 raw scores for 1 trials"):
        asnorm_scores([("a", "b")], ["a", "b"], np.eye(2), cohort, 2, np.zeros(2))


def test_cli_takes_top_n_from_the_config(example: Path) -> None:
    (example / "config.yaml").write_text("score:\n  asnorm_top_n: 2\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, str(REPO / "steps" / "score_asnorm.py"), "--trials", str(example / "trials"),
           "--embeddings", str(example / "emb"), "--cohort", str(example / "cohort"),
           "--cohort-utt2spk", str(example / "utt2spk"), "--out", str(example / "cli_scores")]
    proc = subprocess.run(cmd + ["--config", str(example / "config.yaml")], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    got = [float(line.split()[2]) for line in (example / "cli_scores").read_text().splitlines()]
    np.testing.assert_allclose(got, list(HAND.values()), atol=1e-6)
    proc = subprocess.run(cmd + ["--top-n", "1"], capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and "top_n must be at least 2" in proc.stderr


def test_status_redoes_asnorm_scores_made_with_another_top_n(example: Path) -> None:
    """Stage 5 records the top N beside its score file; --status calls a score file of another top N 'to redo'
    (it said 'up to date' after a run with another --top-n, though stage 5 would rescore: issue 25 item 7)."""
    from pyfunc.pipeline.score_stage import asnorm_params_path, asnorm_top_n_of
    from pyfunc.pipeline.status import TO_REDO, UP_TO_DATE, RecipeStatus, check_scoring

    out = example / "scores_asnorm"
    score_trials_asnorm(example / "trials", example / "emb", example / "cohort", example / "utt2spk", 2, out)
    assert asnorm_top_n_of(out) == 2 and asnorm_params_path(out).name == ".scores_asnorm.params"

    def state(top_n: int | None) -> tuple[str, str]:
        check = check_scoring(RecipeStatus(0, 6), 5, example / "trials", [example / "emb", example / "cohort"],
                              out, [example / "utt2spk"], top_n)
        return check.state, check.reason

    assert state(2) == (UP_TO_DATE, "")
    assert state(3) == (TO_REDO, "scored with the top 2 of the cohort, now top 3")
    assert state(None)[0] == UP_TO_DATE  # no top N known (a model not trained yet): make's rule alone
    asnorm_params_path(out).unlink()  # a score file of an earlier version: no record, make's rule alone
    assert state(3)[0] == UP_TO_DATE
