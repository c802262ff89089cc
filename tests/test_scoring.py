"""Stage 4: ark/scp writing, embedding loading, cosine and seed-protocol scoring, the score step."""

from __future__ import annotations

import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch
from conftest import REPO, SHARED

from pyfunc.data.arkio import ArkScpWriter, merge_scps
from pyfunc.data.trials import read_trial_list
from pyfunc.data.vectors import load_embeddings, write_vectors
from pyfunc.errors import ConfigError, DataError
from pyfunc.pipeline.score_stage import score_trials
from pyfunc.scoring.cohort import speaker_means
from pyfunc.scoring.cosine import cosine_scores, l2_normalise, load_crop_means, seed_scores
from pyfunc.scoring.score_files import read_scores, write_scores


def _dot(a, b) -> float:
    return sum(float(x) * float(y) for x, y in zip(a, b))


def _cos(a, b) -> float:
    return _dot(a, b) / math.sqrt(_dot(a, a) * _dot(b, b))


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------------------------------------- ark/scp writing

def test_ark_scp_writer_is_kaldi_binary_and_loads(tmp_path: Path) -> None:
    vec = np.array([1.5, -2.0, 0.25], dtype=np.float32)
    mat = np.arange(6, dtype=np.float64).reshape(2, 3)
    with ArkScpWriter(tmp_path / "out" / "x.ark", tmp_path / "out" / "x.scp") as write:
        write("a", vec)
        write("b", mat)
    assert _files(tmp_path / "out") == ["x.ark", "x.scp"]
    raw = (tmp_path / "out" / "x.ark").read_bytes()
    # Kaldi binary table: "key " "\0B" then "FV " <int32 size tagged \4> floats, "DM " rows cols doubles.
    expected = (b"a \0BFV \x04" + struct.pack("<i", 3) + vec.tobytes()
                + b"b \0BDM \x04" + struct.pack("<i", 2) + b"\x04" + struct.pack("<i", 3) + mat.tobytes())
    assert raw == expected
    scp_lines = (tmp_path / "out" / "x.scp").read_text().splitlines()
    ark = str((tmp_path / "out" / "x.ark").absolute())
    assert scp_lines == [f"a {ark}:2", f"b {ark}:{len(b'a ') + 2 + 3 + 5 + 12 + 2}"]
    loaded = dict(kaldiio.load_scp(str(tmp_path / "out" / "x.scp")))
    assert loaded["a"].dtype == np.float32 and np.array_equal(loaded["a"], vec)
    assert np.array_equal(loaded["b"], mat)
    from_ark = dict(kaldiio.load_ark(str(tmp_path / "out" / "x.ark")))
    assert list(from_ark) == ["a", "b"] and np.array_equal(from_ark["b"], mat)


def test_ark_scp_writer_leaves_nothing_on_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="boom"):
        with ArkScpWriter(out / "x.ark", out / "x.scp") as write:
            write("a", np.zeros(3, np.float32))
            raise RuntimeError("boom")
    assert _files(out) == []
    with pytest.raises(DataError, match="out of order"):
        with ArkScpWriter(out / "x.ark", out / "x.scp") as write:
            write("b", np.zeros(3, np.float32))
            write("a", np.zeros(3, np.float32))
    with pytest.raises(DataError, match="duplicate key 'a'"):
        with ArkScpWriter(out / "x.ark", out / "x.scp") as write:
            write("a", np.zeros(3, np.float32))
            write("a", np.zeros(3, np.float32))
    with pytest.raises(DataError, match="float32/float64 vector or matrix"):
        with ArkScpWriter(out / "x.ark", out / "x.scp") as write:
            write("a", np.zeros(3, np.int64))
    assert _files(out) == []
    # A failed rewrite keeps the previous complete pair.
    write_vectors(out / "x.scp", ["a"], np.ones((1, 3), np.float32))
    with pytest.raises(RuntimeError):
        with ArkScpWriter(out / "x.ark", out / "x.scp") as write:
            write("z", np.zeros(3, np.float32))
            raise RuntimeError
    assert _files(out) == ["x.ark", "x.scp"]
    assert np.array_equal(kaldiio.load_scp(str(out / "x.scp"))["a"], np.ones(3, np.float32))


def test_merge_scps_keeps_order_and_checks_keys(tmp_path: Path) -> None:
    parts = []
    for job, keys in enumerate((["a", "b"], ["c"], ["d", "e"]), start=1):
        scp = tmp_path / f"x.{job}.scp"
        write_vectors(scp, keys, np.arange(len(keys) * 2, dtype=np.float32).reshape(-1, 2) + 10 * job)
        parts.append(scp)
    assert merge_scps(parts, tmp_path / "all.scp") == 5
    merged = kaldiio.load_scp(str(tmp_path / "all.scp"))
    assert list(merged) == ["a", "b", "c", "d", "e"]
    assert np.array_equal(merged["d"], np.array([30, 31], np.float32))
    with pytest.raises(DataError, match=r"x.1.scp:1: key 'a' is out of order \(after 'e'\)"):
        merge_scps([parts[2], parts[0]], tmp_path / "bad.scp")
    with pytest.raises(DataError, match="duplicate key 'c'"):
        merge_scps([parts[1], parts[1]], tmp_path / "bad.scp")
    assert not (tmp_path / "bad.scp").exists()


# ---------------------------------------------------------------------------------------------- loading

def test_load_embeddings_errors(tmp_path: Path) -> None:
    write_vectors(tmp_path / "e" / "xvector.scp", ["u1", "u2"], np.ones((2, 4), np.float32))
    keys, emb = load_embeddings(tmp_path / "e" / "xvector.scp", ["u2", "u1"])
    assert keys == ["u2", "u1"] and emb.shape == (2, 4) and emb.dtype == np.float32
    with pytest.raises(DataError, match=r"xvector.scp: no entry for utterance 'u3'"):
        load_embeddings(tmp_path / "e" / "xvector.scp", ["u1", "u3"])
    with ArkScpWriter(tmp_path / "m.ark", tmp_path / "m.scp") as write:
        write("u1", np.ones(4, np.float32))
        write("u2", np.ones((2, 4), np.float32))
    with pytest.raises(DataError, match=r"m.scp: key 'u2': expected a non-empty vector, got shape \(2, 4\)"):
        load_embeddings(tmp_path / "m.scp")
    (tmp_path / "e" / "xvector.ark").write_bytes(b"u1 \0BFV \x04")  # truncated
    with pytest.raises(DataError, match=r"xvector.scp: key 'u1': cannot read"):
        load_embeddings(tmp_path / "e" / "xvector.scp")
    with pytest.raises(DataError, match="file not found"):
        load_embeddings(tmp_path / "nowhere.scp")


def test_speaker_means_by_hand() -> None:
    emb = np.array([[3.0, 4.0], [0.0, 2.0], [5.0, 0.0]])
    means_keys, means = speaker_means(["u1", "u2", "u3"], emb, {"u1": "s2", "u2": "s2", "u3": "s1"})
    assert means_keys == ["s1", "s2"]
    # s2: mean of (.6, .8) and (0, 1) = (.3, .9), normalised
    np.testing.assert_allclose(means, [[1.0, 0.0], [0.3 / math.sqrt(0.9), 0.9 / math.sqrt(0.9)]], atol=1e-15)
    with pytest.raises(DataError, match="'u3' has no speaker"):
        speaker_means(["u1", "u3"], emb[:2], {"u1": "s1"})


# ---------------------------------------------------------------------------------------------- scoring

def _random_set(rng: np.random.Generator, num_utts: int = 7, dim: int = 5, crops: int = 5):
    keys = [f"utt{i}" for i in range(num_utts)]
    emb = rng.standard_normal((num_utts, dim)).astype(np.float32) * rng.uniform(0.5, 3.0, (num_utts, 1))
    crop = rng.standard_normal((num_utts, crops, dim)).astype(np.float32)
    trials = [(keys[i], keys[j], bool(i % 2 == j % 2)) for i in range(num_utts) for j in range(num_utts) if i != j]
    return keys, emb, crop, trials


def test_cosine_scores_equal_a_plain_loop() -> None:
    keys, emb, _, trials = _random_set(np.random.default_rng(1))
    row = {k: i for i, k in enumerate(keys)}
    expected = [_cos(emb[row[e]], emb[row[t]]) for e, t, _ in trials]
    np.testing.assert_allclose(cosine_scores(trials, keys, emb), expected, rtol=0, atol=1e-12)
    assert np.array_equal(cosine_scores(trials, keys, emb, chunk=3), cosine_scores(trials, keys, emb))


def test_seed_scores_equal_the_formula() -> None:
    keys, emb, crops, trials = _random_set(np.random.default_rng(2))
    row = {k: i for i, k in enumerate(keys)}
    expected = []
    for e, t, _ in trials:
        full = _cos(emb[row[e]], emb[row[t]])
        matrix = [[_cos(a, b) for b in crops[row[t]]] for a in crops[row[e]]]  # 5 x 5 crop cosines
        expected.append((full + sum(sum(r) for r in matrix) / 25) / 2)
    got = seed_scores(trials, keys, emb, crops)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert np.array_equal(seed_scores(trials, keys, emb, crops, chunk=4), got)
    assert np.array_equal(seed_scores(trials, keys, emb, list(crops)), got)


def test_unknown_utterance_is_named() -> None:
    keys, emb, _, _ = _random_set(np.random.default_rng(3))
    with pytest.raises(DataError, match=r"trial 2: utterance 'nobody' is not in"):
        cosine_scores([("utt0", "utt1"), ("utt1", "nobody")], keys, emb)


def _embedding_dir(root: Path, keys, emb, crops=None) -> Path:
    write_vectors(root / "xvector.scp", keys, emb)
    if crops is not None:
        with ArkScpWriter(root / "xvector_crops.ark", root / "xvector_crops.scp") as write:
            for key, matrix in zip(keys, crops):
                write(key, matrix)
    return root


def test_score_trials_reproduces_the_seed_reference(tmp_path: Path) -> None:
    reference = torch.load(SHARED / "reference" / "seed_ecapa_c1024_reference.pt", weights_only=True)
    keys = sorted(reference["per_utt"])
    emb = np.stack([reference["per_utt"][k]["embedding_raw"].numpy() for k in keys])
    crops = [reference["per_utt"][k]["embedding_crops"].numpy() for k in keys]
    emb_dir = _embedding_dir(tmp_path / "emb", keys, emb, crops)
    (tmp_path / "trials").write_text("".join(f"{e} {t}\n" for e, t, _ in reference["trials"]))
    scores = score_trials(tmp_path / "trials", emb_dir, tmp_path / "scores")  # auto -> seed (crops present)
    expected = np.array([s for _, _, s in reference["trials"]])
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=0)
    enrolls, tests, from_file = read_scores(tmp_path / "scores")
    assert [(e, t) for e, t in zip(enrolls, tests)] == [(e, t) for e, t, _ in reference["trials"]]
    np.testing.assert_allclose(from_file, scores, rtol=0, atol=5e-9)
    full = score_trials(tmp_path / "trials", emb_dir, tmp_path / "scores_full", protocol="full")
    row = {k: i for i, k in enumerate(keys)}
    np.testing.assert_allclose(full, [_cos(emb[row[e]], emb[row[t]]) for e, t, _ in reference["trials"]],
                               rtol=0, atol=1e-12)


def test_score_trials_protocols_and_errors(tmp_path: Path) -> None:
    keys, emb, _, trials = _random_set(np.random.default_rng(4))
    emb_dir = _embedding_dir(tmp_path / "emb", keys, emb)
    (tmp_path / "trials").write_text("utt0 utt1 target\n\nutt2 utt3 nontarget\nutt4 ghost target\n")
    with pytest.raises(DataError, match=r"trials:4: utterance 'ghost' is not in .*xvector.scp"):
        score_trials(tmp_path / "trials", emb_dir, tmp_path / "scores")
    with pytest.raises(DataError, match=r"xvector_crops.scp: file not found"):
        score_trials(tmp_path / "trials", emb_dir, tmp_path / "scores", protocol="seed")
    with pytest.raises(ConfigError, match="unknown scoring protocol 'best'"):
        score_trials(tmp_path / "trials", emb_dir, tmp_path / "scores", protocol="best")
    assert not (tmp_path / "scores").exists()
    (tmp_path / "trials").write_text("utt0 utt1 target\nutt2 utt3\n")
    trial_list = read_trial_list(tmp_path / "trials")
    scores = score_trials(tmp_path / "trials", emb_dir, tmp_path / "scores")
    lines = [line.split() for line in (tmp_path / "scores").read_text().splitlines()]
    assert [line[:2] for line in lines] == [["utt0", "utt1"], ["utt2", "utt3"]]
    np.testing.assert_allclose([float(line[2]) for line in lines],
                               [_cos(emb[0], emb[1]), _cos(emb[2], emb[3])], rtol=0, atol=2e-8)
    write_scores(tmp_path / "again", trial_list, scores)
    assert (tmp_path / "again").read_text() == (tmp_path / "scores").read_text()


def test_crop_means_from_scp(tmp_path: Path) -> None:
    keys, emb, crops, _ = _random_set(np.random.default_rng(5))
    emb_dir = _embedding_dir(tmp_path / "emb", keys, emb, crops)
    means = load_crop_means(emb_dir / "xvector_crops.scp", keys[::-1])
    np.testing.assert_allclose(means, l2_normalise(crops[::-1].astype(np.float64)).mean(axis=1), atol=1e-15)


def test_score_cosine_step_exit_code(tmp_path: Path) -> None:
    keys, emb, _, _ = _random_set(np.random.default_rng(6))
    emb_dir = _embedding_dir(tmp_path / "emb", keys, emb)
    (tmp_path / "trials").write_text("utt0 utt1 target\nutt1 missing_utt nontarget\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, str(REPO / "steps" / "score_cosine.py"), "--trials", str(tmp_path / "trials"),
           "--embeddings", str(emb_dir), "--out", str(tmp_path / "scores")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and "trials:2: utterance 'missing_utt'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "scores").exists()
    (tmp_path / "trials").write_text("utt0 utt1 target\nutt1 utt2 nontarget\n")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "scores").read_text().splitlines()) == 2
