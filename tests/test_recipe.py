"""End-to-end smoke run of run.sh stages 0-6 on a tiny espeak-ng corpus, and a rerun of stages 4-6."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

TINY_CONFIG = """\
model:
  frontend: fbank
  channels: 32
  embed_dim: 16
train:
  epochs: 2
  batch_size: 8
  lr: 0.01
  chunk_frames: 100
  num_workers: 0
  on_the_fly_features: true
  speed_perturb: [1.0, 0.9, 1.1]
  augment:
    enabled: true
score:
  asnorm_top_n: 3
"""

TINY_LM_CONFIG = TINY_CONFIG.replace("epochs: 2", "epochs: 1").replace("chunk_frames: 100", "chunk_frames: 150") \
    .replace("enabled: true", "enabled: false") + "loss:\n  margin: 0.5\n"

SETS = ("test", "test_hard", "test_unseen")

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def _run_recipe(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(REPO / "run.sh"), *args], capture_output=True, text=True, env=env,
                          timeout=600)


def _results(path: Path) -> dict[str, list[float]]:
    lines = path.read_text().splitlines()
    assert lines[0].split() == ["system", "EER(%)", "minDCF(p=0.01)", "minDCF(p=0.05)", "Cllr", "minCllr",
                                "actDCF(p=0.01)", "actDCF(p=0.05)"]
    return {fields[0]: [float(x) for x in fields[1:4]] for fields in (line.split() for line in lines[1:])}


def test_all_stages_then_rescoring(tmp_path: Path) -> None:
    config, lm_config = tmp_path / "tiny.yaml", tmp_path / "tiny_lm.yaml"
    config.write_text(TINY_CONFIG)
    lm_config.write_text(TINY_LM_CONFIG)
    data, exp = tmp_path / "mini", tmp_path / "exp"
    common = ["--data", str(data), "--exp", str(exp), "--config", str(config), "--lm-config", str(lm_config),
              "--nj", "2", "--train-speakers", "4", "--test-speakers", "3", "--utts-per-speaker", "4",
              "--wide-speakers", "6", "--wide-utts-per-speaker", "3", "--unseen-speakers", "3", "--dev-speakers", "3",
              "--device", "cpu"]
    proc = _run_recipe(common)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    for part in ("train_wide", "dev") + SETS:
        for name in ("wav.scp", "utt2spk", "spk2utt", "utt2dur", "feats.scp", "utt2num_frames"):
            assert (data / part / name).is_file(), f"{part}/{name}"
    feats = kaldiio.load_scp(str(data / "test" / "feats.scp"))
    assert len(feats) == 12 and next(iter(feats.values())).shape[1] == 80
    assert sorted((exp / "models").glob("epoch_*.pt"))[-1].name == "epoch_2.pt"
    assert sorted((exp / "lm" / "models").glob("epoch_*.pt"))[-1].name == "epoch_1.pt"  # fine-tuned from exp
    for log in (exp / "log", exp / "lm" / "log"):
        assert (log / "train.log").is_file() and (log / "history.tsv").is_file()
    assert "initialised the weights from" in (exp / "lm" / "log" / "train.log").read_text()

    trials = [line.split() for line in (data / "test" / "trials").read_text().splitlines()]
    for model in (exp / "lm", exp / "untrained"):
        table = kaldiio.load_scp(str(model / "embeddings" / "test" / "xvector.scp"))
        emb = {k: np.asarray(v) for k, v in table.items()}
        assert len(emb) == 12 and all(v.shape == (16,) and np.isfinite(v).all() for v in emb.values())
        assert len(kaldiio.load_scp(str(model / "embeddings" / "train_wide" / "xvector.scp"))) == 18
        for norm in ("cosine", "asnorm", "cosine-cal", "asnorm-qmf"):
            scored = [line.split() for line in (model / "scores" / f"test_{norm}").read_text().splitlines()]
            assert [s[:2] for s in scored] == [t[:2] for t in trials]
        # stage 4 is the cosine of the stage-3 embeddings
        e, t, score = (model / "scores" / "test_cosine").read_text().split("\n", 1)[0].split()
        a, b = emb[e], emb[t]
        assert float(score) == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), abs=1e-6)
        assert (model / "calibration.yaml").is_file()  # the operating point, from the dev set

    results = exp / "lm" / "results"
    table = _results(results)
    assert set(table) == {f"{m}/scores/{s}_{n}" for m in (exp / "lm", exp / "untrained") for s in SETS
                          for n in ("cosine", "cosine-cal", "asnorm", "asnorm-qmf")}
    for eer, dcf01, dcf05 in table.values():
        assert 0 <= eer <= 100 and 0 <= dcf01 <= 1.0001 and 0 <= dcf05 <= 1.0001
    assert "EER(%)" in proc.stdout  # the table is printed too
    assert all((exp / "lm" / "plots" / f"det_{s}.png").is_file() for s in SETS)

    before = results.read_text()
    cosine_scores = (exp / "lm" / "scores" / "test_cosine").read_text()
    results.unlink()
    rerun = _run_recipe(common + ["--stage", "4", "--stop-stage", "6"])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert results.read_text() == before
    assert (exp / "lm" / "scores" / "test_cosine").read_text() == cosine_scores

    # stages 3-6 with a model imported from a seed checkpoint, on any data dir (the README's recipe)
    import torch

    from pyfunc.models.aam_softmax import AAMSoftmax
    from pyfunc.models.ecapa import ECAPATDNN

    torch.manual_seed(0)
    state = {f"speaker_encoder.{k}": v for k, v in ECAPATDNN(64, frontend="seed").state_dict().items()}
    state["speaker_loss.weight"] = AAMSoftmax(192, 5).weight.detach()
    torch.save(state, tmp_path / "seed.model")
    seed_dir = tmp_path / "seed_import"
    imported = subprocess.run([sys.executable, str(REPO / "steps" / "import_seed_model.py"),
                               str(tmp_path / "seed.model"), str(seed_dir)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    assert imported.returncode == 0, imported.stderr
    proc = _run_recipe(["--stage", "3", "--model-dir", str(seed_dir), "--test-data", str(data / "test"),
                        "--cohort-data", str(data / "train_wide"), "--nj", "2", "--device", "cpu"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    crops = kaldiio.load_scp(str(seed_dir / "embeddings" / "test" / "xvector_crops.scp"))
    assert len(crops) == 12 and next(iter(crops.values())).shape == (5, 192)  # the seed protocol
    assert set(_results(seed_dir / "results")) == {f"{seed_dir}/scores/test_{n}" for n in ("cosine", "asnorm")}


def test_unknown_option_fails_with_a_message(tmp_path: Path) -> None:
    proc = _run_recipe(["--stage", "6", "--no-such-option", "1"])
    assert proc.returncode != 0 and "unknown option --no-such-option" in proc.stderr
