"""Stage 2: the example plan, training, checkpoints and resuming."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile
import torch
import yaml
from conftest import REPO

import pyfunc.training.examples as examples
from pyfunc.data.arkio import ArkScpWriter, read_matrix_header, read_matrix_rows
from pyfunc.data.datadir import DataDir, write_data_dir
from pyfunc.errors import DataError
from pyfunc.models.checkpoint import latest_checkpoint, load_checkpoint
from pyfunc.training.examples import EpochBatches, feature_crop, wrap_crop

TINY = {
    "model": {"channels": 16, "embed_dim": 8},
    "train": {"epochs": 2, "batch_size": 8, "lr": 0.01, "chunk_frames": 20, "num_workers": 0, "log_interval": 1,
              "random_seed": 7, "checkpoint_interval": 1},
}


def _feature_data_dir(root: Path, speakers: int = 4, utts: int = 6) -> Path:
    """A data dir whose feats.scp holds random 'fbank' matrices with a per-speaker offset."""
    rng = np.random.default_rng(0)
    wav_scp, utt2spk, feats = {}, {}, {}
    for s in range(speakers):
        for u in range(utts):
            utt = f"s{s}-{u:02d}"
            utt2spk[utt] = f"s{s}"
            wav_scp[utt] = "/dev/null"
            feats[utt] = (rng.standard_normal((15 + 7 * u, 80)) + s).astype(np.float32)
    root.mkdir(parents=True, exist_ok=True)
    with kaldiio.WriteHelper(f"ark,scp:{root / 'feats.ark'},{root / 'feats.scp.raw'}") as writer:
        for utt in sorted(feats):
            writer(utt, feats[utt])
    scp = dict(line.split(" ", 1) for line in (root / "feats.scp.raw").read_text().splitlines())
    write_data_dir(root / "data", DataDir(wav_scp, utt2spk, feats_scp={k: v.strip() for k, v in scp.items()}))
    return root / "data"


def _config(path: Path, **train) -> Path:
    config = {"model": dict(TINY["model"]), "train": {**TINY["train"], **train}}
    path.write_text(yaml.safe_dump(config))
    return path


def _run_train(config: Path, data: Path, exp: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(REPO / "steps" / "train.py"), "--config", str(config),
                             "--data", str(data), "--exp", str(exp), "--device", "cpu"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def test_plan_is_independent_of_process_split() -> None:
    one = EpochBatches(40, 8, random_seed=3, world_size=1, rank=0, grad_accum=4)
    one.set_epoch(2)
    flat = [b for b in one]
    pieces = []
    for rank in range(2):
        sampler = EpochBatches(40, 8, random_seed=3, world_size=2, rank=rank, grad_accum=2)
        sampler.set_epoch(2)
        pieces.append(list(sampler))
    for step in range(one.steps_per_epoch):
        merged = pieces[0][2 * step] + pieces[0][2 * step + 1] + pieces[1][2 * step] + pieces[1][2 * step + 1]
        assert merged == [x for part in flat[4 * step:4 * step + 4] for x in part]
    epoch_utts = [i for batch in flat for i, _ in batch]
    assert len(set(epoch_utts)) == len(epoch_utts) == 40
    resumed = EpochBatches(40, 8, random_seed=3, grad_accum=4)
    resumed.set_epoch(2, start_step=3)
    assert list(resumed) == flat[12:]
    other = EpochBatches(40, 8, random_seed=3, grad_accum=4)
    other.set_epoch(3)
    assert list(other) != flat


def test_plan_rejects_bad_splits() -> None:
    with pytest.raises(DataError, match="not divisible"):
        EpochBatches(40, 10, random_seed=0, world_size=3)
    with pytest.raises(DataError, match="fewer than one batch"):
        EpochBatches(5, 8, random_seed=0)


def test_wrap_crop() -> None:
    rng = np.random.default_rng(0)
    short = np.arange(5)
    assert list(wrap_crop(short, 12, rng)) == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    long = np.arange(100)
    crop = wrap_crop(long, 10, rng)
    assert len(crop) == 10 and list(crop) == list(range(crop[0], crop[0] + 10))


def test_feature_chunks_read_only_their_rows(tmp_path: Path, monkeypatch) -> None:
    """A training chunk comes from its own rows (float32 and float64 matrices; of a Kaldi-compressed one, only
    those rows are decoded), equal to the crop of the whole matrix (kaldiio) with the same draw; only the
    two-byte compressed form of tiny matrices is read whole."""
    rng = np.random.default_rng(0)
    mats = {"a-long": rng.standard_normal((500, 80)).astype(np.float32), "b-short": rng.standard_normal((30, 80)),
            "c-double": rng.standard_normal((300, 80)), "d-tiny": rng.standard_normal((5, 80))}
    for compress in (False, True):
        with ArkScpWriter(tmp_path / f"{compress}.ark", tmp_path / f"{compress}.scp", compress=compress) as write:
            for key, mat in mats.items():
                write(key, mat)
    entries = {c: dict(line.split() for line in (tmp_path / f"{c}.scp").read_text().splitlines())
               for c in (False, True)}
    whole_reads = []
    load_mat = kaldiio.load_mat
    monkeypatch.setattr(examples.kaldiio, "load_mat", lambda entry: whole_reads.append(entry) or load_mat(entry))
    for compress in (False, True):
        for key in mats:
            entry = entries[compress][key]
            got = feature_crop(entry, 200, np.random.default_rng(5))
            expected = wrap_crop(np.asarray(load_mat(entry), dtype=np.float32), 200, np.random.default_rng(5))
            assert got.dtype == np.float32 and np.array_equal(got, expected), (compress, key)
    assert whole_reads == [entries[True]["d-tiny"]]  # CM2: Kaldi's form for 8 rows or fewer
    header = read_matrix_header(entries[False]["c-double"])
    assert (header.rows, header.cols, header.kind) == (300, 80, "DM")
    assert read_matrix_header(entries[True]["a-long"])[:3] == (500, 80, "CM")
    with pytest.raises(DataError, match="rows 290..309 of a 300-row matrix"):
        read_matrix_rows(entries[False]["c-double"], header, 290, 20)


def test_training_refuses_pipe_entries_and_says_how_to_convert(tmp_path: Path) -> None:
    """A wav.scp pipe (ffmpeg for m4a) would run once per 2 s example: refused, even with --allow-pipes."""
    wav = tmp_path / "a.wav"
    soundfile.write(wav, np.zeros(16000, np.float32), 16000)
    marker = tmp_path / "pipe_ran"
    wav_scp = {"s0-a": str(wav), "s0-b": f"touch {marker}; cat {wav} |", "s1-a": str(wav)}
    write_data_dir(tmp_path / "data", DataDir(wav_scp, {u: u[:2] for u in wav_scp}))
    config = _config(tmp_path / "seed.yaml")
    text = config.read_text().replace("model:\n", "model:\n  frontend: seed\n")
    config.write_text(text)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(REPO / "steps" / "train.py"), "--config", str(config), "--data",
                           str(tmp_path / "data"), "--exp", str(tmp_path / "exp"), "--device", "cpu", "--allow-pipes"],
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    assert (f"error: {tmp_path / 'data' / 'wav.scp'}: 1 of 3 entries are pipe commands (e.g. s0-b: "
            in proc.stderr), proc.stderr
    assert "Convert the audio to wav once" in proc.stderr and "local/convert_m4a.py" in proc.stderr
    assert not marker.exists()


def test_training_learns_and_writes_model_dir(tmp_path: Path) -> None:
    data = _feature_data_dir(tmp_path / "feats")
    config = _config(tmp_path / "tiny.yaml", epochs=3)
    proc = _run_train(config, data, tmp_path / "exp")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    exp = tmp_path / "exp"
    for path in ("model.pt", "config.yaml", "untrained/model.pt", "models/epoch_3.pt", "log/train.log"):
        assert (exp / path).is_file(), path
    history = (exp / "log" / "history.tsv").read_text().splitlines()
    assert len(history) == 4
    losses = [float(line.split("\t")[1]) for line in history[1:]]
    assert losses[-1] < losses[0]
    assert not list((exp / "models").glob("step_*.pt")), "mid-epoch checkpoints are dropped once an epoch ends"
    assert "examples/s" in (exp / "log" / "train.log").read_text()

    # A rerun of the complete run writes nothing: a rewritten model.pt would make stage 3 redo its embeddings.
    written = {p: p.stat().st_mtime_ns for p in exp.rglob("*") if p.is_file() and p.parent.name != "log"}
    proc = _run_train(config, data, exp)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "training is complete (3 epochs)" in out, out
    assert {p: p.stat().st_mtime_ns for p in written} == written
    proc = _run_train(_config(tmp_path / "tiny.yaml", epochs=4), data, exp)  # one more epoch: resumes
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0 and (exp / "models" / "epoch_4.pt").is_file(), out
    assert (exp / "model.pt").stat().st_mtime_ns > written[exp / "model.pt"]


def test_killed_training_resumes_to_identical_weights(tmp_path: Path) -> None:
    data = _feature_data_dir(tmp_path / "feats", utts=16)
    config = _config(tmp_path / "tiny.yaml")
    straight = _run_train(config, data, tmp_path / "straight")
    out, _ = straight.communicate(timeout=300)
    assert straight.returncode == 0, out

    killed = _run_train(config, data, tmp_path / "killed")
    models = tmp_path / "killed" / "models"
    deadline = time.time() + 240
    while time.time() < deadline:  # kill in epoch 1 (8 steps), once a mid-epoch checkpoint exists
        newest = latest_checkpoint(models) if models.is_dir() else None
        if newest is not None and newest.name.startswith("step_1_"):
            break
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "model.pt").exists()

    resumed = _run_train(config, data, tmp_path / "killed")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert "resuming from" in (tmp_path / "killed" / "log" / "train.log").read_text()
    a = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "killed" / "model.pt", weights_only=True)
    for part in ("encoder", "head"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), key
    last = load_checkpoint(tmp_path / "killed" / "models" / "epoch_2.pt")
    assert last["epoch"] == 2 and last["step"] == 0 and "optimizer" in last and "rng" in last


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_seed_frontend_trains_on_the_mini_corpus_waveforms(tmp_path: Path) -> None:
    """model.frontend: seed trains from wav.scp (no stage 1) and its model dir extracts like any other."""
    from mini_corpus.mini import make_mini_corpus

    from pyfunc.pipeline.extract_job import extract_embeddings

    make_mini_corpus(tmp_path / "mini", num_train_speakers=4, num_test_speakers=2, utts_per_speaker=4, num_jobs=2)
    config = {"model": {"frontend": "seed", **TINY["model"]}, "train": {**TINY["train"], "epochs": 3, "lr": 0.002}}
    (tmp_path / "seed.yaml").write_text(yaml.safe_dump(config))
    data = tmp_path / "mini" / "train"
    assert not (data / "feats.scp").exists()
    proc = _run_train(tmp_path / "seed.yaml", data, tmp_path / "exp")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    history = (tmp_path / "exp" / "log" / "history.tsv").read_text().splitlines()[1:]
    losses = [float(line.split("\t")[1]) for line in history]
    assert len(losses) == 3 and all(np.isfinite(losses)) and losses[-1] < losses[0]
    extract_embeddings(tmp_path / "exp", tmp_path / "mini" / "test", tmp_path / "emb", device="cpu")
    emb = kaldiio.load_scp(str(tmp_path / "emb" / "xvector.scp"))
    assert len(emb) == 8 and all(np.isfinite(np.asarray(v)).all() for v in emb.values())


def test_bf16_autocast_on_the_cpu(tmp_path: Path) -> None:
    """train.precision: bf16 autocasts the forward pass on the CPU too: float32 weights, a loss near fp32's."""
    data = _feature_data_dir(tmp_path / "feats")
    losses, weights = {}, {}
    for precision in ("fp32", "bf16"):
        proc = _run_train(_config(tmp_path / f"{precision}.yaml", epochs=1, precision=precision), data,
                          tmp_path / precision)
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
        log = (tmp_path / precision / "log" / "train.log").read_text()  # step 1: same weights in both runs
        losses[precision] = float(log.split("epoch 1 step 1/", 1)[1].split(" loss ", 1)[1].split()[0])
        weights[precision] = torch.load(tmp_path / precision / "model.pt", weights_only=True)["encoder"]
    assert "device cpu, precision bf16" in (tmp_path / "bf16" / "log" / "train.log").read_text()
    assert losses["bf16"] != losses["fp32"]  # the forward pass really ran in bfloat16 ...
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.02)  # ... to bfloat16 precision
    assert all(weights["bf16"][k].dtype == v.dtype for k, v in weights["fp32"].items())
