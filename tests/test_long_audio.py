"""Long recordings: the block-wise embedding equals the one-pass one, sliding windows, the short-file path unchanged.

Tolerance: block-wise and one-pass compute the same float32 operations on the same frames, but in other
summation orders (the squeeze-excitation means and the pooling statistics are summed block by block, in
float64; convolutions and FFTs over inputs of other lengths may block their sums differently), so
embeddings agree to float32 rounding: measured differences are about 1e-7 on values of order 1; the tests
allow 2e-5 absolute, the tolerance that tests/test_api.py allows between batched and single embeddings.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from tools_helpers import REPO, tiny_model_dir

import pyfunc
import pyfunc.inference.long_audio as long_audio
from pyfunc.cli.tools import main as pyfunc_main
from pyfunc.errors import ConfigError
from pyfunc.features.blockwise import fbank_in_blocks, seed_logmel_in_blocks
from pyfunc.features.kaldi_fbank import compute_fbank, read_kaldi_conf
from pyfunc.inference.api import load_model
from pyfunc.inference.batching import embed_items
from pyfunc.inference.long_audio import window_bounds, window_key
from pyfunc.inference.windows import embed_windows
from pyfunc.models.ecapa_blocks import encode_in_blocks

ATOL = 2e-5

RATE = 16000


def synthetic_recording(seconds: float, random_seed: int) -> np.ndarray:
    """Noise and tones whose pitch and loudness change every few seconds, in [-1, 1]."""
    rng = np.random.default_rng(random_seed)
    t = np.arange(int(seconds * RATE)) / RATE
    pitch = 120 + 80 * np.sin(2 * np.pi * t / 7.0) + 40 * np.floor(t / 3.0) % 160
    wave = 0.3 * np.sin(2 * np.pi * np.cumsum(pitch) / RATE) + 0.1 * np.sin(2 * np.pi * 3 * np.cumsum(pitch) / RATE)
    loudness = 0.5 + 0.5 * np.abs(np.sin(2 * np.pi * t / 11.0))
    return ((wave * loudness + 0.03 * rng.standard_normal(t.shape[0])) * 0.8).astype(np.float32)


def model_dir_with_conf(path: Path, frontend: str) -> Path:
    tiny_model_dir(path, frontend=frontend, random_seed=5)
    shutil.copy(REPO / "conf" / "fbank.conf", path / "fbank.conf")
    return path


@pytest.fixture(scope="module")
def long_wavs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("long_wavs")
    paths = {}
    # long enough for several 10 s and 12.5 s blocks, and two of 20 s (the embed tool's --max-chunk-seconds)
    for name, seconds, seed in (("call_a", 25.3, 1), ("call_b", 23.0, 2)):
        paths[name] = root / f"{name}.wav"
        soundfile.write(paths[name], synthetic_recording(seconds, seed), RATE, subtype="FLOAT")
    return paths


@pytest.fixture(scope="module", params=["fbank", "seed"])
def model_dir(request, tmp_path_factory) -> Path:
    return model_dir_with_conf(tmp_path_factory.mktemp(f"long_{request.param}") / "model", request.param)


def test_block_wise_front_ends_equal_one_pass(tmp_path) -> None:
    samples = synthetic_recording(3.37, 3)  # 335 frames: several blocks of 17 and of 250
    options = read_kaldi_conf(REPO / "conf" / "fbank.conf")
    for extra in ({}, {"snip_edges": False}, {"subtract_mean": True}):
        reference = compute_fbank(samples, {**options, **extra})
        for block in (1, 17, 250, 10_000):
            np.testing.assert_allclose(fbank_in_blocks(samples, {**options, **extra}, block), reference,
                                       atol=1e-4, rtol=0)
    encoder = load_model(model_dir_with_conf(tmp_path / "model", "seed")).encoder
    wave = torch.from_numpy(samples)
    reference = encoder.logmel(wave.unsqueeze(0))[0]
    for block in (1, 33, 1000):
        torch.testing.assert_close(seed_logmel_in_blocks(encoder.torchfbank, wave, block), reference,
                                   atol=1e-4, rtol=0)


def test_layer_blocks_smaller_than_their_context_equal_encode(model_dir) -> None:
    """Blocks of 5 frames (the Res2Net blocks read up to 28 frames each side): every frame's context is
    gathered across several blocks, and the utterance's edges stay zero-padded as in one pass."""
    encoder = load_model(model_dir).encoder
    feats = torch.from_numpy(np.random.default_rng(4).standard_normal((encoder.feat_dim, 203)).astype(np.float32))
    with torch.no_grad():
        reference = encoder.encode(feats.unsqueeze(0))[0]
    for block in (5, 64, 203, 1000):
        torch.testing.assert_close(encode_in_blocks(encoder, feats, block), reference, atol=ATOL, rtol=0)


def test_long_recording_block_wise_equals_one_pass(model_dir, long_wavs, monkeypatch) -> None:
    one_pass = load_model(model_dir, max_chunk_seconds=0)
    block_wise = load_model(model_dir, max_chunk_seconds=10)
    calls = []
    real = long_audio.embed_long_input
    monkeypatch.setattr(long_audio, "embed_long_input", lambda *a: calls.append(a[2]) or real(*a))
    for path in long_wavs.values():
        reference = one_pass.embed(path)
        assert not calls
        got = block_wise.embed(path)
        assert calls == [1000]  # the block-wise path ran, in 10 s blocks
        calls.clear()
        np.testing.assert_allclose(got, reference, atol=ATOL, rtol=0)
        assert np.abs(reference).max() > 0.05  # a real embedding, not zeros
    a, b = long_wavs["call_a"], long_wavs["call_b"]
    assert block_wise.score(a, b) == pytest.approx(one_pass.score(a, b), abs=ATOL)


def test_verify_and_embed_tools_on_long_recordings(model_dir, long_wavs, tmp_path, capsys) -> None:
    a, b = map(str, long_wavs.values())
    scores = []
    for seconds in ("0", "12.5"):
        assert pyfunc_main(["verify", a, b, "--model-dir", str(model_dir), "--threshold", "0.5",
                            "--max-chunk-seconds", seconds]) == 0
        scores.append(float(capsys.readouterr().out.split()[1]))
    assert scores[1] == pytest.approx(scores[0], abs=1e-5)
    listing = tmp_path / "files.txt"
    listing.write_text(f"{a}\n{b}\n")
    for seconds in ("0", "20"):
        assert pyfunc_main(["embed", str(listing), "--model-dir", str(model_dir), "--out",
                            str(tmp_path / f"emb{seconds}.npy"), "--max-chunk-seconds", seconds]) == 0
    assert (tmp_path / "emb20.keys").read_text() == (tmp_path / "emb0.keys").read_text() == "call_a\ncall_b\n"
    np.testing.assert_allclose(np.load(tmp_path / "emb20.npy"), np.load(tmp_path / "emb0.npy"), atol=ATOL, rtol=0)


def test_short_recordings_take_the_one_pass_path_bit_for_bit(tmp_path, monkeypatch) -> None:
    model_dir = model_dir_with_conf(tmp_path / "model", "fbank")
    model = load_model(model_dir)
    assert model.max_chunk_seconds == long_audio.DEFAULT_MAX_CHUNK_SECONDS
    samples = [synthetic_recording(seconds, seed) for seconds, seed in ((4.2, 7), (29.9, 8))]

    def refuse(*args):
        raise AssertionError("a short input went block-wise")

    monkeypatch.setattr(long_audio, "embed_long_input", refuse)
    monkeypatch.setattr(long_audio, "fbank_in_blocks", refuse)
    feats = [compute_fbank(x, model.fbank_options) for x in samples]
    reference = embed_items(model.encoder, feats, model._batch_frames(None))
    assert np.array_equal(pyfunc.embed(model, samples), reference)
    for x, row in zip(samples, reference):
        assert np.array_equal(model.embed(x), row)


def test_window_bounds_and_keys() -> None:
    assert window_bounds(7300, 1000, 2.0, 1.5) == [(0, 2000), (1500, 3500), (3000, 5000), (4500, 6500),
                                                   (5300, 7300)]
    assert window_bounds(6000, 1000, 2.0, 2.0) == [(0, 2000), (2000, 4000), (4000, 6000)]  # an exact fit
    assert window_bounds(1500, 1000, 2.0, 1.0) == [(0, 1500)]  # shorter than a window: the whole of it
    assert window_key("spk1/call", 5300 * 16, 7300 * 16, 16000) == "spk1/call-0005300-0007300"
    with pytest.raises(ConfigError, match="positive"):
        window_bounds(7300, 1000, 2.0, 0.0)
    with pytest.raises(ConfigError, match="at least one sample"):
        window_bounds(7300, 1000, 0.0001, 1.0)


def test_embed_segments_one_embedding_per_window(model_dir, tmp_path) -> None:
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    recordings = {"a": synthetic_recording(7.3, 11), "b": synthetic_recording(3.0, 12)}
    for name, samples in recordings.items():
        soundfile.write(wavs / f"{name}.wav", samples, RATE, subtype="FLOAT")
    out = tmp_path / "win.npy"
    assert pyfunc_main(["embed", str(wavs), "--model-dir", str(model_dir), "--out", str(out),
                        "--segment", "2", "--shift", "1.5"]) == 0
    keys = (tmp_path / "win.keys").read_text().split()
    assert keys == ["a-0000000-0002000", "a-0001500-0003500", "a-0003000-0005000", "a-0004500-0006500",
                    "a-0005300-0007300", "b-0000000-0002000", "b-0001000-0003000"]
    matrix = np.load(out)
    model = load_model(model_dir)
    for key, row in zip(keys, matrix):
        name, start_ms, end_ms = key.split("-")
        window = recordings[name][int(start_ms) * 16:int(end_ms) * 16]
        np.testing.assert_allclose(row, model.embed(window), atol=ATOL, rtol=0)
    api = embed_windows(model, wavs / "a.wav", 2.0, 1.5)
    np.testing.assert_allclose(api.bounds, [[0, 2], [1.5, 3.5], [3, 5], [4.5, 6.5], [5.3, 7.3]], atol=1e-9)
    np.testing.assert_allclose(api.embeddings, matrix[:5], atol=ATOL, rtol=0)


def test_bad_options_are_clear_errors(tmp_path) -> None:
    model_dir = model_dir_with_conf(tmp_path / "model", "fbank")
    soundfile.write(tmp_path / "a.wav", synthetic_recording(1.0, 1), RATE)
    with pytest.raises(ConfigError, match="max_chunk_seconds must be 0"):
        load_model(model_dir, max_chunk_seconds=0.5)
    with pytest.raises(ConfigError, match="needs a window length"):
        pyfunc_main(["embed", str(tmp_path), "--model-dir", str(model_dir), "--out", str(tmp_path / "x.npy"),
                     "--shift", "1"])
