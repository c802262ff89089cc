"""Embedding mean subtraction: the stored mean, and cosine, seed-protocol and AS-norm scores after it, by hand."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import yaml
from conftest import REPO

from pyfunc.data.arkio import ArkScpWriter
from pyfunc.data.tables import write_table
from pyfunc.data.vectors import write_vectors
from pyfunc.errors import ConfigError, DataError
from pyfunc.pipeline.mean_stage import compute_embedding_mean, scoring_mean
from pyfunc.pipeline.score_stage import score_trials, score_trials_asnorm
from pyfunc.pipeline.stamps import EXTRACT_STAMP, make_stamp, write_stamp

# Training set (also the AS-norm cohort, one utterance per speaker): m + 2 e1, m + 3 e2, m - 2 e1, m - 3 e2
# with m = (2, 1, 1), so their mean is m.
TRAIN = {"s1-1": [4.0, 1.0, 1.0], "s2-1": [2.0, 4.0, 1.0], "s3-1": [0.0, 1.0, 1.0], "s4-1": [2.0, -2.0, 1.0]}
MEAN = [2.0, 1.0, 1.0]
# Trial a = (3, 1, 2), b = (4, 1, 2): a - m = (1, 0, 1), b - m = (2, 0, 1).
#   raw cosine:            (12 + 1 + 4) / sqrt(14 * 21) = 17 / sqrt(294) = 0.991460
#   after the mean:        (2 + 0 + 1) / sqrt(2 * 5)    = 3 / sqrt(10)    = 0.948683
TEST = {"a": [3.0, 1.0, 2.0], "b": [4.0, 1.0, 2.0]}
RAW_COSINE = 17 / math.sqrt(294)
CENTRED_COSINE = 3 / math.sqrt(10)
# Seed protocol: crops a: m + e1, m + e2; b: m + e1, m + 2 e3. Centred and normalised: {e1, e2} and {e1, e3};
# their 2 x 2 cosine matrix is [[1, 0], [0, 0]], mean 0.25; score (3 / sqrt(10) + 0.25) / 2 = 0.599342.
CROPS = {"a": [[3.0, 1.0, 1.0], [2.0, 2.0, 1.0]], "b": [[3.0, 1.0, 1.0], [2.0, 1.0, 3.0]]}
CENTRED_SEED = (3 / math.sqrt(10) + 0.25) / 2
# AS-norm, top 2 of the 4 centred cohort speakers e1, e2, -e1, -e2:
#   a: unit (1, 0, 1) / sqrt 2 -> cosines .7071, 0, -.7071, 0 -> top {.7071, 0}: mean = std = 1 / (2 sqrt 2)
#   b: unit (2, 0, 1) / sqrt 5 -> cosines .8944, 0, -.8944, 0 -> top {.8944, 0}: mean = std = 1 / sqrt 5
#   0.5 * ((s - mu_a) / sd_a + (s - mu_b) / sd_b) with s = 3 / sqrt(10): 1.402301
CENTRED_ASNORM = 0.5 * ((CENTRED_COSINE - 1 / (2 * math.sqrt(2))) / (1 / (2 * math.sqrt(2)))
                        + (CENTRED_COSINE - 1 / math.sqrt(5)) / (1 / math.sqrt(5)))


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A model dir (a stand-in model.pt, config with score.subtract_mean), train and test embeddings."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.pt").write_bytes(b"weights of model 1")
    (model / "config.yaml").write_text("score:\n  subtract_mean: true\n  asnorm_top_n: 2\n")
    write_vectors(model / "embeddings" / "train" / "xvector.scp", list(TRAIN), np.array(list(TRAIN.values())))
    write_table(tmp_path / "train_utt2spk", {k: k.split("-")[0] for k in TRAIN})
    test = model / "embeddings" / "test"
    write_vectors(test / "xvector.scp", list(TEST), np.array(list(TEST.values()), np.float32))
    (tmp_path / "trials").write_text("a b target\n")
    return tmp_path


def _with_crops(emb_dir: Path) -> None:
    with ArkScpWriter(emb_dir / "xvector_crops.ark", emb_dir / "xvector_crops.scp") as write:
        for key, crops in CROPS.items():
            write(key, np.array(crops, np.float32))


def test_the_mean_is_a_kaldi_vector_with_where_it_came_from(example: Path) -> None:
    model = example / "model"
    path = compute_embedding_mean(model, model / "embeddings" / "train")
    assert path == model / "embedding_mean.vec"
    np.testing.assert_array_equal(kaldiio.load_mat(str(path)), MEAN)
    info = yaml.safe_load((model / "embedding_mean.yaml").read_text())
    assert info["count"] == 4 and info["dim"] == 3
    assert info["source"] == str(model / "embeddings" / "train" / "xvector.scp")
    assert info["model_sha256"] == hashlib.sha256(b"weights of model 1").hexdigest()


def test_cosine_after_mean_subtraction_equals_the_hand_computation(example: Path) -> None:
    model = example / "model"
    compute_embedding_mean(model, model / "embeddings" / "train")
    emb = model / "embeddings" / "test"
    raw = score_trials(example / "trials", emb, example / "raw")
    assert raw[0] == pytest.approx(RAW_COSINE, abs=1e-12)
    mean = scoring_mean(model)  # the config says subtract_mean: true
    np.testing.assert_array_equal(mean, MEAN)
    centred = score_trials(example / "trials", emb, example / "centred", mean=mean)
    assert centred[0] == pytest.approx(CENTRED_COSINE, abs=1e-12)
    assert scoring_mean(model, subtract_mean=False) is None
    # the step, as steps/score.sh calls it: auto follows the model's config; a Kaldi text vector file works too
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    (example / "mean.txt").write_text(" [ 2 1 1 ]\n")
    for extra, expected in ((["--model-dir", str(model)], CENTRED_COSINE),
                            (["--model-dir", str(model), "--subtract-mean", "false"], RAW_COSINE),
                            (["--mean", str(example / "mean.txt")], CENTRED_COSINE), ([], RAW_COSINE)):
        proc = subprocess.run([sys.executable, str(REPO / "steps" / "score_cosine.py"), "--trials",
                               str(example / "trials"), "--embeddings", str(emb), "--out", str(example / "step"),
                               *extra], capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
        assert float((example / "step").read_text().split()[2]) == pytest.approx(expected, abs=1e-8), extra


def test_seed_protocol_subtracts_the_mean_from_every_crop(example: Path) -> None:
    model = example / "model"
    compute_embedding_mean(model, model / "embeddings" / "train")
    _with_crops(model / "embeddings" / "test")
    scores = score_trials(example / "trials", model / "embeddings" / "test", example / "s", mean=scoring_mean(model))
    assert scores[0] == pytest.approx(CENTRED_SEED, abs=1e-12)


def test_asnorm_subtracts_the_mean_from_trials_and_cohort(example: Path) -> None:
    model = example / "model"
    compute_embedding_mean(model, model / "embeddings" / "train")
    args = (example / "trials", model / "embeddings" / "test", model / "embeddings" / "train",
            example / "train_utt2spk", 2)
    centred = score_trials_asnorm(*args, example / "as", mean=scoring_mean(model))
    assert centred[0] == pytest.approx(CENTRED_ASNORM, abs=1e-12)
    raw = score_trials_asnorm(*args, example / "as_raw")
    assert abs(raw[0] - CENTRED_ASNORM) > 0.1


def test_a_missing_or_stale_mean_is_refused(example: Path) -> None:
    model = example / "model"
    with pytest.raises(ConfigError, match=r"embedding_mean.vec: not found.*steps/compute_embedding_mean.py"):
        scoring_mean(model)
    compute_embedding_mean(model, model / "embeddings" / "train")
    (model / "model.pt").write_bytes(b"weights of model 2")
    with pytest.raises(DataError, match=r"out of date: .*model.pt changed after .*embedding_mean.vec was made"):
        scoring_mean(model)
    # embeddings that stage 3 made with another model do not give this model's mean
    train = model / "embeddings" / "train"
    write_stamp(train / EXTRACT_STAMP, make_stamp("extract_embeddings", {}, [example / "other" / "model.pt"],
                                                  [train / "xvector.scp"]))
    with pytest.raises(DataError, match=r"made with .*other/model.pt, not .*model/model.pt"):
        compute_embedding_mean(model, train)
    (example / "short.txt").write_text(" [ 2 1 ]\n")
    with pytest.raises(DataError, match="dimension 3 and an embedding mean of dimension 2"):
        score_trials(example / "trials", model / "embeddings" / "test", example / "s",
                     mean=scoring_mean(None, None, example / "short.txt"))
    assert not (example / "s").exists()
