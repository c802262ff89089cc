"""End-to-end run of run.sh stages 0-6 on a tiny espeak-ng corpus; --status on it; a rerun of stages 4-6."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile

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

SETS = ("test", "test_hard", "test_unseen", "test_enroll3")  # test_enroll3: enrolled models of test

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
    # --nj 1: stages 1 and 3 run their one job in the recipe's process (each further job is a python+torch start-up,
    # 30 of them here); the seed model's stage 3 below runs 2 jobs, and test_distributed.py compares --nj 3 with 1
    common = ["--data", str(data), "--exp", str(exp), "--config", str(config), "--lm-config", str(lm_config),
              "--nj", "1", "--train-speakers", "4", "--test-speakers", "3", "--utts-per-speaker", "4",
              "--wide-speakers", "6", "--wide-utts-per-speaker", "3", "--unseen-speakers", "3", "--dev-speakers", "3",
              "--device", "cpu"]
    proc = _run_recipe(common)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    for part in ("train_wide", "dev") + SETS:
        for name in ("wav.scp", "utt2spk", "spk2utt", "utt2dur", "feats.scp", "utt2num_frames"):
            if part == "train_wide" and name in ("feats.scp", "utt2num_frames"):
                # both configs train on fbank computed on the fly: stage 1 leaves the training set alone
                assert not (data / part / name).exists(), f"{part}/{name}"
            else:
                assert (data / part / name).is_file(), f"{part}/{name}"
    feats = kaldiio.load_scp(str(data / "test" / "feats.scp"))
    assert len(feats) == 12 and next(iter(feats.values())).shape[1] == 80
    assert sorted((exp / "models").glob("epoch_*.pt"))[-1].name == "epoch_2.pt"
    assert sorted((exp / "lm" / "models").glob("epoch_*.pt"))[-1].name == "epoch_1.pt"  # fine-tuned from exp
    for log in (exp / "log", exp / "lm" / "log"):
        assert (log / "train.log").is_file() and (log / "history.tsv").is_file()
    assert "train.init_model: encoder and classifier head from" in (exp / "lm" / "log" / "train.log").read_text()

    trials = [line.split() for line in (data / "test" / "trials").read_text().splitlines()]
    for model in (exp / "lm", exp / "untrained"):
        table = kaldiio.load_scp(str(model / "embeddings" / "test" / "xvector.scp"))
        emb = {k: np.asarray(v) for k, v in table.items()}
        assert len(emb) == 12 and all(v.shape == (16,) and np.isfinite(v).all() for v in emb.values())
        assert len(kaldiio.load_scp(str(model / "embeddings" / "cohort" / "xvector.scp"))) == 12  # 2 of 3 each
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

    _status_says_what_would_be_redone(common, data, exp)
    _feat_to_dim_and_len_on_the_mini_features(data / "test")

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
                        "--cohort-data", str(data / "cohort"), "--nj", "2", "--device", "cpu"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    crops = kaldiio.load_scp(str(seed_dir / "embeddings" / "test" / "xvector_crops.scp"))
    assert len(crops) == 12 and next(iter(crops.values())).shape == (5, 192)  # the seed protocol
    # a --test-data run writes the table of its one list and no combined MODEL/results (issue 25 item 8)
    assert set(_results(seed_dir / "results_test")) == {f"{seed_dir}/scores/test_{n}" for n in ("cosine", "asnorm")}
    assert not (seed_dir / "results").exists()


def _file_states(*roots: Path) -> dict[str, tuple[int, int]]:
    return {str(path): (path.stat().st_size, path.stat().st_mtime_ns)
            for root in roots for path in sorted(root.rglob("*")) if path.is_file()}


def _status(common: list[str], *extra: str) -> dict[tuple[str, str], str]:
    """``run.sh --status true``: {(stage, target): state and reason}."""
    proc = _run_recipe(common + ["--status", "true", *extra])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[-1].endswith("nothing was run or written"), proc.stdout
    rows = {}
    for line in lines[:-1]:
        stage, _, target, state = re.split(r"\s{2,}", line, maxsplit=3)
        rows[(stage, target)] = state
    return rows


def _status_says_what_would_be_redone(common: list[str], data: Path, exp: Path) -> None:
    """run.sh --status: all up to date after the run; after touching wav.scp, stage 1 and later for that
    data dir to redo; and not one file written or touched by asking."""
    before = _file_states(data, exp)
    rows = _status(common)
    trained = {f"up to date: {n} epoch{'s' if n > 1 else ''} done, the model directory written after them"
               for n in (1, 2)}
    assert set(rows.values()) == {"up to date"} | trained, rows
    assert len(rows) > 40 and _file_states(data, exp) == before
    rows = _status(common, "--stage", "3", "--skip-bad-audio", "true")  # an option stage 3's stamp records
    assert {state for (stage, target), state in rows.items() if stage == "stage 3" and " <- " in target} == {
        "to redo: parameter skip_bad_audio changed"}

    wav_scp, train_wav_scp = data / "test" / "wav.scp", data / "train_wide" / "wav.scp"
    times = {path: (path.stat().st_atime_ns, path.stat().st_mtime_ns) for path in (wav_scp, train_wav_scp)}
    os.utime(wav_scp, ns=(times[wav_scp][0], times[wav_scp][1] + 10**9))
    before = _file_states(data, exp)
    rows = _status(common)
    assert _file_states(data, exp) == before
    redo = {key: state for key, state in rows.items() if not state.startswith("up to date")}
    test, models = data / "test", (exp / "lm", exp / "untrained")
    assert redo == {
        ("stage 1", str(test)): f"to redo: input {wav_scp} changed",
        **{("stage 3", f"{m} <- {test}"): f"to redo: stage 1 remakes {test / 'feats.scp'}" for m in models},
        **{("stage 4", str(m / "scores" / "test_cosine")):
           f"to redo: stage 3 remakes {m / 'embeddings' / 'test' / 'xvector.scp'}" for m in models},
        **{("stage 5", str(m / "scores" / "test_asnorm")):
           f"to redo: stage 3 remakes {m / 'embeddings' / 'test' / 'xvector.scp'}" for m in models},
        **{("stage 6", f"{m / 'calibration.yaml'} (and 4 more)"):
           f"to redo: stage 4 remakes {m / 'scores' / 'test_cosine'}" for m in models},
        **{("stage 6", f"{m / 'calibration_asnorm-qmf.yaml'} (and 4 more)"):
           f"to redo: stage 5 remakes {m / 'scores' / 'test_asnorm'}" for m in models},
        ("stage 6", f"{exp / 'lm' / 'results_test_enroll3'} (and 4 more)"):
            f"to redo: stage 4 remakes {exp / 'lm' / 'scores' / 'test_cosine'}",
    }, rows
    # stages 4-6 alone: the embeddings are still the ones their stamps describe, so nothing would fail
    rows = _status(common, "--stage", "4")
    assert rows[("stage 1", str(test))] == f"outside the stages run: to redo: input {wav_scp} changed"
    assert all(state == "up to date" for (stage, _), state in rows.items() if stage >= "stage 4")

    os.utime(wav_scp, ns=times[wav_scp])  # as the run left it

    # training reads wav.scp (fbank on the fly): the same text, so the training stays as it is, and
    # stage 1 has nothing to do for the training set
    os.utime(train_wav_scp, ns=(times[train_wav_scp][0], times[train_wav_scp][1] + 10**9))
    rows = _status(common, "--stop-stage", "3")
    assert ("stage 1", str(data / "train_wide")) not in rows and ("stage 1", str(data / "cohort")) in rows
    assert rows[("stage 2", str(exp))].startswith("up to date"), rows
    assert all(state == "up to date" for (stage, _), state in rows.items() if stage == "stage 3"), rows
    for path, (atime, mtime) in times.items():
        os.utime(path, ns=(atime, mtime))  # as the run left them, for what follows
    assert all(state.startswith("up to date") for state in _status(common).values())


def _feat_to_dim_and_len_on_the_mini_features(test: Path) -> None:
    """feat-to-dim and feat-to-len (``python -m pyfunc``) on stage 1's features of the espeak-ng test set:
    80 bins, and Kaldi's frame count 1 + (samples - 400) // 160 (25 ms windows, 10 ms shift at 16 kHz)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    tool = [sys.executable, "-m", "pyfunc"]
    dim = subprocess.run([*tool, "feat-to-dim", f"scp:{test / 'feats.scp'}"], capture_output=True, env=env)
    assert dim.returncode == 0 and dim.stdout == b"80\n", dim.stderr
    lengths = subprocess.run([*tool, "feat-to-len", f"scp:{test / 'feats.scp'}", "ark,t:-"], capture_output=True,
                             text=True, env=env)
    assert lengths.returncode == 0, lengths.stderr
    wavs = dict(line.split(None, 1) for line in (test / "wav.scp").read_text().splitlines())
    assert lengths.stdout == "".join(f"{utt} {1 + (soundfile.info(wav.strip()).frames - 400) // 160} \n"
                                     for utt, wav in sorted(wavs.items()))


def test_unknown_option_fails_with_a_message(tmp_path: Path) -> None:
    proc = _run_recipe(["--stage", "6", "--no-such-option", "1"])
    assert proc.returncode != 0 and "unknown option --no-such-option" in proc.stderr
