"""Trials of enrolled speaker models (an ``enroll`` file beside ``trials``): cosine and AS-norm against a
hand computation, one-recording models, the errors; steps/make_enroll_trials.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from pyfunc.data.arkio import ArkScpWriter
from pyfunc.data.badinput import check_trials_need
from pyfunc.data.datadir import validate_data_dir
from pyfunc.data.enroll import read_enroll
from pyfunc.data.enroll_sets import make_enroll_trials
from pyfunc.data.tables import read_map, write_table
from pyfunc.data.vectors import write_vectors
from pyfunc.errors import ConfigError, DataError
from pyfunc.pipeline.score_stage import score_trials, score_trials_asnorm

ENV = {**os.environ, "PYTHONPATH": str(REPO)}
UTTS = {"a1": [1.0, 0.0, 0.0], "a2": [2.0, 2.0, 0.0], "a3": [0.0, 0.0, 3.0], "a4": [1.0, 1.0, 1.0],
        "b1": [0.0, 1.0, 0.0], "b2": [-1.0, 4.0, 1.0], "b3": [0.0, 2.0, -2.0], "b4": [0.5, -1.0, 2.0]}
ENROLL = {"A": ["a1", "a2", "a3"], "B": ["b1", "b2", "b3"], "S": ["a4"]}
TRIALS = [("A", "a4", "target"), ("A", "b4", "nontarget"), ("B", "a4", "nontarget"), ("B", "b4", "target"),
          ("S", "b4", "nontarget")]
COHORT = {"c1": [1.0, -1.0, 0.0], "c2": [0.0, 0.0, -1.0], "c3": [-1.0, 1.0, 1.0], "c4": [0.2, 0.3, 0.1]}


def unit(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def hand_model(utts: list[str]) -> np.ndarray:
    """Kaldi: ivector-normalize-length, ivector-mean, ivector-normalize-length."""
    return unit(np.mean([unit(UTTS[u]) for u in utts], axis=0))


def write_set(root: Path, enroll: dict[str, list[str]] = ENROLL, trials=TRIALS) -> Path:
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "enroll").write_text("".join(f"{m} {' '.join(u)}\n" for m, u in enroll.items()))
    (data / "trials").write_text("".join(" ".join(t) + "\n" for t in trials))
    keys = sorted(UTTS)
    write_vectors(root / "emb" / "xvector.scp", keys, np.array([UTTS[k] for k in keys], np.float32))
    cohort = sorted(COHORT)
    write_vectors(root / "cohort" / "xvector.scp", cohort, np.array([COHORT[k] for k in cohort], np.float32))
    write_table(root / "cohort_utt2spk", {k: f"spk{k}" for k in cohort})
    return data


def test_cosine_of_model_means_equals_the_hand_computation(tmp_path: Path) -> None:
    data = write_set(tmp_path)
    scores = score_trials(data / "trials", tmp_path / "emb", tmp_path / "scores")
    hand = [float(hand_model(ENROLL[m]) @ unit(UTTS[t])) for m, t, _ in TRIALS]
    np.testing.assert_allclose(scores, hand, atol=1e-6)
    lines = [line.split() for line in (tmp_path / "scores").read_text().splitlines()]
    assert [(m, t) for m, t, _ in lines] == [(m, t) for m, t, _ in TRIALS]
    # a one-recording model scores as the recording itself (a plain trials file, no enroll file beside it)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "trials").write_text("a4 b4 nontarget\n")
    single = score_trials(plain / "trials", tmp_path / "emb", tmp_path / "plain_scores")
    assert scores[4] == pytest.approx(single[0], abs=1e-12)


def test_asnorm_of_model_means_equals_the_hand_computation(tmp_path: Path) -> None:
    data = write_set(tmp_path)
    top_n = 2
    scores = score_trials_asnorm(data / "trials", tmp_path / "emb", tmp_path / "cohort", tmp_path / "cohort_utt2spk",
                                 top_n, tmp_path / "scores")
    cohort = unit([COHORT[k] for k in sorted(COHORT)])

    def stats(vector: np.ndarray) -> tuple[float, float]:
        top = np.sort(cohort @ unit(vector))[-top_n:]
        return top.mean(), top.std()

    hand = []
    for model, test, _ in TRIALS:
        e, t = hand_model(ENROLL[model]), unit(UTTS[test])
        s = e @ t
        (mu_e, sd_e), (mu_t, sd_t) = stats(e), stats(t)
        hand.append(0.5 * ((s - mu_e) / sd_e + (s - mu_t) / sd_t))
    np.testing.assert_allclose(scores, hand, atol=1e-6)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "trials").write_text("a4 b4 nontarget\n")
    single = score_trials_asnorm(plain / "trials", tmp_path / "emb", tmp_path / "cohort", tmp_path / "cohort_utt2spk",
                                 top_n, tmp_path / "plain_scores")
    assert scores[4] == pytest.approx(single[0], abs=1e-9)


def test_mean_subtraction_and_the_seed_protocol(tmp_path: Path) -> None:
    """The embedding mean goes before each enrolment embedding is normalised; with crops the model's crop side
    is the mean of its recordings' crop means: score 0.5 * (model . unit(t) + cropmean_model . cropmean_t)."""
    data = write_set(tmp_path)
    mean = np.array([0.1, -0.2, 0.3])
    scores = score_trials(data / "trials", tmp_path / "emb", tmp_path / "scores", mean=mean)
    centred = {k: np.asarray(v) - mean for k, v in UTTS.items()}
    hand = [float(unit(np.mean([unit(centred[u]) for u in ENROLL[m]], axis=0)) @ unit(centred[t]))
            for m, t, _ in TRIALS]
    np.testing.assert_allclose(scores, hand, atol=1e-6)

    rng = np.random.default_rng(3)
    crops = {k: rng.normal(size=(2, 3)) for k in UTTS}
    with ArkScpWriter(tmp_path / "emb" / "xvector_crops.ark", tmp_path / "emb" / "xvector_crops.scp") as write:
        for key in sorted(crops):
            write(key, crops[key].astype(np.float32))
    seed = score_trials(data / "trials", tmp_path / "emb", tmp_path / "seed_scores", protocol="seed")
    crop_mean = {k: unit(c.astype(np.float32)).mean(axis=0) for k, c in crops.items()}
    hand = [0.5 * (hand_model(ENROLL[m]) @ unit(UTTS[t])
                   + np.mean([crop_mean[u] for u in ENROLL[m]], axis=0) @ crop_mean[t]) for m, t, _ in TRIALS]
    np.testing.assert_allclose(seed, hand, atol=1e-6)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "trials").write_text("a4 b4 nontarget\n")
    single = score_trials(plain / "trials", tmp_path / "emb", tmp_path / "plain_scores", protocol="seed")
    assert seed[4] == pytest.approx(single[0], abs=1e-9)


def test_errors_name_the_file_and_line(tmp_path: Path) -> None:
    data = write_set(tmp_path, trials=[*TRIALS[:2], ("C", "a4", "target")])
    with pytest.raises(DataError, match=rf"{data / 'trials'}:3: model 'C' is not in {data / 'enroll'}"):
        score_trials(data / "trials", tmp_path / "emb", tmp_path / "scores")
    data = write_set(tmp_path, enroll={"A": ["a1", "a2", "a3"], "B": ["b1", "zz", "b3"], "S": ["a4"]})
    with pytest.raises(DataError, match=rf"{data / 'enroll'}:2: model 'B': enrolment utterance 'zz' has no "
                                        rf"embedding in {tmp_path / 'emb' / 'xvector.scp'}"):
        score_trials(data / "trials", tmp_path / "emb", tmp_path / "scores")
    with pytest.raises(DataError, match=rf"{data / 'enroll'}:2: model 'B': enrolment utterance 'zz'"):
        score_trials_asnorm(data / "trials", tmp_path / "emb", tmp_path / "cohort", tmp_path / "cohort_utt2spk", 2,
                            tmp_path / "scores")
    (data / "enroll").write_text("A a1 a2\nB b1 b1\n")
    with pytest.raises(DataError, match=rf"{data / 'enroll'}:2: utterance 'b1' is listed twice"):
        read_enroll(data / "enroll")
    (data / "enroll").write_text("A a1\nA a2\n")
    with pytest.raises(DataError, match=rf"{data / 'enroll'}:2: duplicate key 'A'"):
        read_enroll(data / "enroll")
    (data / "enroll").write_text("A\n")
    with pytest.raises(DataError, match=rf"{data / 'enroll'}:1: model 'A' has no enrolment utterances"):
        read_enroll(data / "enroll")
    # the command line: one error line naming file and line, exit status 1
    data = write_set(tmp_path, trials=[("C", "a4", "target")])
    run = subprocess.run([sys.executable, str(REPO / "steps" / "score_cosine.py"), "--trials", str(data / "trials"),
                          "--embeddings", str(tmp_path / "emb"), "--out", str(tmp_path / "scores")],
                         capture_output=True, text=True, env=ENV)
    assert run.returncode == 1
    assert f"error: {data / 'trials'}:1: model 'C' is not in" in run.stderr, run.stderr


def test_data_dir_checks_know_the_enroll_file(tmp_path: Path) -> None:
    data = write_set(tmp_path)
    write_table(data / "wav.scp", {k: f"/nowhere/{k}.wav" for k in UTTS})
    write_table(data / "utt2spk", {k: f"spk{k[0]}" for k in UTTS})
    write_table(data / "spk2utt", {"spka": sorted(k for k in UTTS if k[0] == "a"),
                                   "spkb": sorted(k for k in UTTS if k[0] == "b")})
    validate_data_dir(data, check_wavs=False)
    with pytest.raises(DataError, match=r"a4 \(line 1: unreadable\)"):
        check_trials_need({"a4": "unreadable"}, [data / "trials"])  # a test utterance (and model S's)
    with pytest.raises(DataError, match=r"a1 \(enroll line 1: unreadable\)"):
        check_trials_need({"a1": "unreadable"}, [data / "trials"])
    (data / "enroll").write_text("A a1 a2 zz\nB b1\nS a4\n")
    with pytest.raises(DataError, match=rf"{data / 'enroll'}:1: model 'A': unknown utterance 'zz'"):
        validate_data_dir(data, check_wavs=False)


def make_source(root: Path, counts: dict[str, int]) -> Path:
    src = root / "src"
    src.mkdir(parents=True)
    utt2spk = {f"{spk}-u{i}": spk for spk, n in counts.items() for i in range(1, n + 1)}
    write_table(src / "wav.scp", {u: f"/nowhere/{u}.wav" for u in utt2spk})
    write_table(src / "utt2spk", utt2spk)
    write_table(src / "spk2utt", {spk: sorted(u for u in utt2spk if utt2spk[u] == spk) for spk in counts})
    utts = sorted(utt2spk)
    (src / "trials").write_text("".join(f"{a} {b} {'target' if utt2spk[a] == utt2spk[b] else 'nontarget'}\n"
                                        for a in utts for b in utts if a < b))
    return src


def test_make_enroll_trials_counts_and_no_test_in_its_own_enrolment(tmp_path: Path) -> None:
    src = make_source(tmp_path, {"s1": 5, "s2": 4, "s3": 3})
    out = tmp_path / "out"
    models, trials = make_enroll_trials(src, out, per_model=3)
    assert models == {"s1-enroll1": ["s1-u1", "s1-u2", "s1-u3"], "s2-enroll1": ["s2-u1", "s2-u2", "s2-u3"]}
    # 12 utterances: each model against the 9 outside its enrolment; targets: 5 - 3 and 4 - 3
    assert len(trials) == 18 and sum(label for *_, label in trials) == 3
    enroll = read_enroll(out / "enroll")
    assert enroll.models == models
    lines = [line.split() for line in (out / "trials").read_text().splitlines()]
    assert len(lines) == 18
    utt2spk = read_map(out / "utt2spk")
    assert len(utt2spk) == 12
    for model, test, label in lines:
        assert test not in enroll.models[model]
        assert label == ("target" if utt2spk[test] == model.removesuffix("-enroll1") else "nontarget")
    validate_data_dir(out, check_wavs=False)
    # deterministic: a rerun rewrites nothing; a seed draws the same utterances every time
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    make_enroll_trials(src, out, per_model=3)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    seeded = make_enroll_trials(src, tmp_path / "seeded", per_model=3, seed=7)[0]
    assert seeded == make_enroll_trials(src, tmp_path / "seeded2", per_model=3, seed=7)[0]
    assert all(len(u) == 3 and all(x.startswith(m.removesuffix("-enroll1")) for x in u) for m, u in seeded.items())
    run = subprocess.run([sys.executable, str(REPO / "steps" / "make_enroll_trials.py"), "--per-model", "3",
                          "--random-seed", "7", str(src), str(tmp_path / "cli")],
                         capture_output=True, text=True, env=ENV)
    assert run.returncode == 0, run.stderr
    assert read_enroll(tmp_path / "cli" / "enroll").models == seeded


def test_make_enroll_trials_errors(tmp_path: Path) -> None:
    src = make_source(tmp_path, {"s1": 4, "s2": 3})
    with pytest.raises(ConfigError, match="at least 1"):
        make_enroll_trials(src, tmp_path / "out", per_model=0)
    with pytest.raises(DataError, match=r"0 model\(s\) with more than 4 utterances give 0 target"):
        make_enroll_trials(src, tmp_path / "out", per_model=4)
    (src / "trials").write_text("s1-u1 s1-u2 target\ns1-u3 s1-u4 target\n")  # s2 named by no trial: not used
    with pytest.raises(DataError, match=r"1 model\(s\) with more than 3 utterances give 1 target and 0 non-target"):
        make_enroll_trials(src, tmp_path / "out", per_model=3)
    (src / "trials").write_text("s1-u1 nobody target\n")
    with pytest.raises(DataError, match=rf"{src / 'trials'}: 1 utterance\(s\) not in utt2spk"):
        make_enroll_trials(src, tmp_path / "out", per_model=3)
    (src / "segments").write_text("s1-u1 rec 0 1\n")
    with pytest.raises(DataError, match="segments are not supported"):
        make_enroll_trials(src, tmp_path / "out", per_model=3)
