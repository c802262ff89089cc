"""Stage 3 extraction: batched embeddings equal one-utterance-at-a-time embeddings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from pyfunc.config import Config
from pyfunc.data.audio import read_audio, write_wav
from pyfunc.data.tables import write_table
from pyfunc.errors import PyfuncError
from pyfunc.inference.batching import crop_starts, embed_batch, seed_crops
from pyfunc.models.aam_softmax import AAMSoftmax
from pyfunc.models.model_dir import build_encoder, load_model_dir, save_model_dir
from pyfunc.pipeline.extract_job import extract_embeddings

ROOT = Path(__file__).resolve().parents[1]
FEAT_LENGTHS = {"u1": 37, "u2": 120, "u3": 120, "u4": 5, "u5": 64, "u6": 350, "u7": 301, "u8": 2}


def _randomise_bn(model):
    gen = torch.Generator().manual_seed(7)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
    return model


def _model_dir(path: Path, frontend: str, protocol: str = "full", crop_seconds: float = 3.0) -> Path:
    torch.manual_seed(0)
    config = Config()
    config.extract.crop_seconds = crop_seconds
    config.model.frontend = frontend
    config.model.channels = 16
    config.model.embed_dim = 8
    config.extract.protocol = protocol
    save_model_dir(path, config, _randomise_bn(build_encoder(config.model)), AAMSoftmax(8, 4))
    return path


def _feats_data(path: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feats = {k: (rng.standard_normal((n, 80)) * 2 + rng.standard_normal(80)).astype(np.float32)
             for k, n in FEAT_LENGTHS.items()}
    feats["u3"] = feats["u2"][::-1].copy()  # equal length, different content
    path.mkdir(parents=True)
    with kaldiio.WriteHelper(f"ark,scp:{path}/feats.ark,{path}/feats.scp") as writer:
        for key in sorted(feats):
            writer(key, feats[key])
    write_table(path / "utt2spk", {k: k for k in feats})
    return feats


def _wav_data(path: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    path.mkdir(parents=True)
    wavs = {}
    for key, n in {"a": 8000, "b": 19360, "c": 56000, "d": 19360}.items():
        write_wav(path / f"{key}.wav", rng.standard_normal(n) * 0.1)
        wavs[key] = read_audio(str(path / f"{key}.wav"))
    write_table(path / "wav.scp", {k: str(path / f"{k}.wav") for k in wavs})
    write_table(path / "utt2spk", {k: k for k in wavs})
    return wavs


def _read(scp: Path) -> dict[str, np.ndarray]:
    keys = [line.split()[0] for line in scp.read_text().splitlines()]
    assert keys == sorted(keys)
    return {k: np.asarray(v) for k, v in kaldiio.load_scp(str(scp)).items()}


def _alone(model, item: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(item)[None])[0].numpy()


def test_crop_starts_follow_numpy_linspace():
    assert crop_starts(48240, 48240, 5) == [0, 0, 0, 0, 0]
    assert crop_starts(1000, 300, 5) == [0, 175, 350, 525, 700]
    assert crop_starts(1003, 300, 5) == [int(x) for x in np.linspace(0, 703, num=5)] == [0, 175, 351, 527, 703]
    short = np.arange(7)
    crops = seed_crops(short, 10, 3)
    assert crops.shape == (3, 10) and (crops[0] == [0, 1, 2, 3, 4, 5, 6, 0, 1, 2]).all()
    tiny = seed_crops(np.arange(3), 10, 2)  # wraps several times
    assert (tiny[1] == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]).all()
    mat = np.arange(20).reshape(10, 2)
    assert (seed_crops(mat, 4, 3)[2] == mat[6:10]).all()


@pytest.mark.parametrize("batch_frames", [10_000, 130])
def test_fbank_extraction_equals_single_utterances(tmp_path, batch_frames):
    model_dir = _model_dir(tmp_path / "model", "fbank", crop_seconds=1.2)
    feats = _feats_data(tmp_path / "data")
    extract_embeddings(model_dir, tmp_path / "data", tmp_path / "emb", protocol="seed", device="cpu",
                       batch_frames=batch_frames)
    model, _ = load_model_dir(model_dir)
    full = _read(tmp_path / "emb" / "xvector.scp")
    crops = _read(tmp_path / "emb" / "xvector_crops.scp")
    assert sorted(full) == sorted(feats) == sorted(crops)
    for key, item in feats.items():
        assert full[key].shape == (8,) and full[key].dtype == np.float32
        np.testing.assert_allclose(full[key], _alone(model, item), atol=1e-4, rtol=0)
        assert crops[key].shape == (5, 8)
        padded = np.pad(item, ((0, max(0, 120 - len(item))), (0, 0)), mode="wrap")  # 1.2 s crops: 120 frames
        for row, start in enumerate(int(s) for s in np.linspace(0, len(padded) - 120, num=5)):
            np.testing.assert_allclose(crops[key][row], _alone(model, padded[start:start + 120]), atol=1e-4, rtol=0)
    assert not np.allclose(full["u2"], full["u3"])


def test_protocol_full_and_subset(tmp_path):
    model_dir = _model_dir(tmp_path / "model", "fbank", protocol="full")
    _feats_data(tmp_path / "data")
    extract_embeddings(model_dir, tmp_path / "data", tmp_path / "emb", device="cpu", utts=["u5", "u2"])
    assert sorted(_read(tmp_path / "emb" / "xvector.scp")) == ["u2", "u5"]
    assert not (tmp_path / "emb" / "xvector_crops.scp").exists()


def test_seed_frontend_extraction_equals_single_utterances(tmp_path):
    model_dir = _model_dir(tmp_path / "model", "seed", protocol="seed")
    wavs = _wav_data(tmp_path / "data")
    extract_embeddings(model_dir, tmp_path / "data", tmp_path / "emb", device="cpu", batch_frames=400)
    model, _ = load_model_dir(model_dir)
    full = _read(tmp_path / "emb" / "xvector.scp")
    crops = _read(tmp_path / "emb" / "xvector_crops.scp")
    crop = 300 * 160 + 240
    for key, wav in wavs.items():
        np.testing.assert_allclose(full[key], _alone(model, wav), atol=1e-4, rtol=0)
        audio = np.pad(wav, (0, crop - len(wav)), "wrap") if len(wav) <= crop else wav
        for row, start in enumerate(np.linspace(0, audio.shape[0] - crop, num=5)):
            segment = audio[int(start):int(start) + crop]
            np.testing.assert_allclose(crops[key][row], _alone(model, segment), atol=1e-4, rtol=0)
    # embed_batch directly, mixed lengths in one batch
    batch = embed_batch(model, list(wavs.values()))
    for row, wav in enumerate(wavs.values()):
        np.testing.assert_allclose(batch[row], _alone(model, wav), atol=1e-4, rtol=0)


def test_extraction_errors(tmp_path):
    fbank_dir = _model_dir(tmp_path / "fbank_model", "fbank")
    _wav_data(tmp_path / "wavdata")
    with pytest.raises(PyfuncError, match="no feats.scp"):
        extract_embeddings(fbank_dir, tmp_path / "wavdata", tmp_path / "emb", device="cpu")
    with pytest.raises(PyfuncError, match="protocol"):
        extract_embeddings(fbank_dir, tmp_path / "wavdata", tmp_path / "emb", protocol="crops", device="cpu")
    data = tmp_path / "bad"
    data.mkdir()
    with kaldiio.WriteHelper(f"ark,scp:{data}/feats.ark,{data}/feats.scp") as writer:
        writer("x1", np.zeros((20, 80), np.float32))
        writer("x2", np.zeros((20, 40), np.float32))
    with pytest.raises(PyfuncError, match=r"feats\.scp: x2: expected a \(frames, 80\) feature matrix"):
        extract_embeddings(fbank_dir, data, tmp_path / "emb", device="cpu")
    assert not (tmp_path / "emb" / "xvector.scp").exists()  # nothing half-written
    (data / "feats.scp").write_text(f"x1 {data}/missing.ark:5\n")
    with pytest.raises(PyfuncError, match="x1: cannot read features"):
        extract_embeddings(fbank_dir, data, tmp_path / "emb", device="cpu")
    with kaldiio.WriteHelper(f"ark,scp:{data}/feats.ark,{data}/feats.scp") as writer:
        writer("x1", np.zeros((1, 80), np.float32))
    with pytest.raises(PyfuncError, match="too short"):
        extract_embeddings(fbank_dir, data, tmp_path / "emb", device="cpu")


def test_cli(tmp_path):
    model_dir = _model_dir(tmp_path / "model", "fbank", protocol="full")
    feats = _feats_data(tmp_path / "data")
    script = ROOT / "steps" / "extract_embeddings.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(script), "--model-dir", str(model_dir), "--data",
                             str(tmp_path / "data"), "--out", str(tmp_path / "emb"), "--device", "cpu"],
                            capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr
    assert sorted(_read(tmp_path / "emb" / "xvector.scp")) == sorted(feats)
    # the single local job runs in-process and still writes the job log a job process would
    header, *records = (tmp_path / "emb" / "log" / "extract.1.log").read_text().splitlines()
    assert header.startswith("# in-process: extract_embeddings ")
    assert any(f"embedding {len(feats)} utterances of" in line for line in records)
    result = subprocess.run([sys.executable, str(script), "--model-dir", str(tmp_path / "none"), "--data",
                             str(tmp_path / "data"), "--out", str(tmp_path / "emb2")],
                            capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode == 1 and "model directory not found" in result.stderr


def test_length_batches_bound_size_and_padding():
    from pyfunc.inference.batching import length_batches

    sizes = [int(x) for x in np.random.default_rng(0).integers(100, 2000, size=300)]
    batches = length_batches(sizes, 6000)
    assert sorted(i for batch in batches for i in batch) == list(range(300))
    for batch in batches:
        longest = max(sizes[i] for i in batch)
        assert sizes[batch[0]] == longest
        assert len(batch) == 1 or len(batch) * longest <= 6000
        assert min(sizes[i] for i in batch) >= 0.8 * longest
    assert max(len(batch) for batch in batches) > 1


def test_automatic_batch_size_follows_the_device(tmp_path):
    from pyfunc.inference.batching import CPU_BATCH_FRAMES, GPU_BATCH_FRAMES, resolve_batch_frames

    model = build_encoder(Config().model).eval()
    assert resolve_batch_frames(0, model) == CPU_BATCH_FRAMES < GPU_BATCH_FRAMES
    assert resolve_batch_frames(777, model) == 777
    with pytest.raises(PyfuncError, match="batch_frames must be 0 \\(automatic\\) or positive, got -5"):
        resolve_batch_frames(-5, model)
    if torch.cuda.is_available():
        assert resolve_batch_frames(0, model.cuda()) == GPU_BATCH_FRAMES
    model_dir = _model_dir(tmp_path / "model", "fbank", protocol="full")
    _feats_data(tmp_path / "data")
    with pytest.raises(PyfuncError, match="got -1"):
        extract_embeddings(model_dir, tmp_path / "data", tmp_path / "emb", device="cpu", batch_frames=-1)
    assert not (tmp_path / "emb" / "xvector.scp").exists()
