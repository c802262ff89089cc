"""Energy VAD (Kaldi's compute-vad rule), vad.scp, select-voiced-frames, and their use in stage 3 and embed."""

from __future__ import annotations

import logging
from pathlib import Path

import kaldiio
import numpy as np
import pytest
from tools_helpers import tiny_model_dir

from pyfunc.cli.tools import main as tools_main
from pyfunc.data.audio import read_audio, write_wav
from pyfunc.data.datadir import DataDir, write_data_dir
from pyfunc.errors import ConfigError, DataError
from pyfunc.features.kaldi_fbank import compute_fbank, read_kaldi_conf
from pyfunc.features.vad import (
    VadOptions,
    compute_vad,
    frame_log_energy,
    read_vad_conf,
    select_voiced_frames,
    select_voiced_table,
    vad_decision,
    voiced_samples,
)
from pyfunc.inference.api import load_model
from pyfunc.pipeline.extract_stage import run_extraction
from pyfunc.pipeline.fbank_stage import make_fbank
from pyfunc.pipeline.vad_stage import make_vad
from pyfunc.training.examples import ChunkDataset, load_training_set

REPO = Path(__file__).resolve().parents[1]
RATE = 16000
FBANK = {"sample_frequency": 16000.0, "frame_length": 25.0, "frame_shift": 10.0, "num_mel_bins": 80,
         "low_freq": 20.0, "high_freq": 7600.0, "dither": 0.0, "window_type": "hamming", "energy_floor": 0.0}


def _signal(seed: int = 0, silence: float = 0.5, tone: float = 1.0) -> np.ndarray:
    """``silence`` s of faint noise, ``tone`` s of a loud tone, ``silence`` s of faint noise."""
    rng = np.random.default_rng(seed)
    quiet = int(silence * RATE)
    t = np.arange(int(tone * RATE)) / RATE
    loud = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 660 * t)
    parts = [0.001 * rng.standard_normal(quiet), loud + 0.001 * rng.standard_normal(len(t)),
             0.001 * rng.standard_normal(quiet)]
    return np.concatenate(parts).astype(np.float32)


def _hand_energy(samples: np.ndarray) -> np.ndarray:
    """Kaldi's raw log energy by hand: 400-sample frames every 160 (snip edges), 16-bit scale, DC removed."""
    scaled = samples.astype(np.float64) * 32768.0
    frames = 1 + (len(scaled) - 400) // 160
    out = []
    for t in range(frames):
        frame = scaled[t * 160:t * 160 + 400]
        frame = frame - frame.mean()
        out.append(np.log(max(float(np.sum(frame ** 2)), np.finfo(np.float32).eps)))
    return np.array(out)


def _hand_rule(energy: np.ndarray, threshold: float, scale: float, context: int, proportion: float) -> np.ndarray:
    """The compute-vad rule written out frame by frame (Kaldi compares in float32)."""
    limit = threshold + scale * energy.mean()
    out = np.zeros(len(energy), dtype=np.float32)
    for t in range(len(energy)):
        window = [energy[u] > limit for u in range(t - context, t + context + 1) if 0 <= u < len(energy)]
        out[t] = float(np.float32(sum(window)) >= np.float32(len(window)) * np.float32(proportion))
    return out


def test_decision_follows_the_rule_on_a_silence_tone_silence_signal() -> None:
    samples = _signal()
    energy = frame_log_energy(samples, FBANK)
    hand = _hand_energy(samples)
    assert energy.shape == (compute_fbank(samples, FBANK).shape[0],) == hand.shape == (198,)
    assert np.allclose(energy, hand, atol=2e-3)
    for options in (VadOptions(5.5, 0.5), VadOptions(5.0, 0.5, frames_context=3, proportion_threshold=0.6),
                    VadOptions(1.0, 0.9, frames_context=10, proportion_threshold=0.3)):
        decision = compute_vad(samples, FBANK, options)
        expected = _hand_rule(hand, options.energy_threshold, options.energy_mean_scale, options.frames_context,
                              options.proportion_threshold)
        assert decision.dtype == np.float32
        assert np.array_equal(decision, expected)
    # the tone's frames (frames entirely inside 0.5 s .. 1.5 s) are voiced, the faint noise's are not
    decision = compute_vad(samples, FBANK, VadOptions(5.5, 0.5))
    assert decision[52:146].all() and not decision[:47].any() and not decision[153:].any()
    # context widens the voiced stretch: with proportion 0.3 and 10 frames each side, 4 above of 21 are enough
    wide = compute_vad(samples, FBANK, VadOptions(5.5, 0.5, frames_context=10, proportion_threshold=0.15))
    assert wide.sum() > decision.sum() and np.all(wide >= decision)


def test_rule_on_hand_made_energies() -> None:
    energy = np.array([0, 0, 10, 10, 10, 0, 0, 0], dtype=np.float32)  # mean 3.75
    # threshold 5 + 0.5 * 3.75 = 6.875: frames 2-4 are above
    assert vad_decision(energy, VadOptions(5.0, 0.5)).tolist() == [0, 0, 1, 1, 1, 0, 0, 0]
    # one frame each side, 0.6: 2 of 3 above -> voiced; 1 of 3, 0 of 2 -> not
    assert vad_decision(energy, VadOptions(5.0, 0.0, 1, 0.6)).tolist() == [0, 0, 1, 1, 1, 0, 0, 0]
    # two each side, 0.5: t=1 sees 2 of 4, t=2..4 3 of 5, t=5 2 of 5, t=0 1 of 3
    assert vad_decision(energy, VadOptions(5.0, 0.0, 2, 0.5)).tolist() == [0, 1, 1, 1, 1, 0, 0, 0]
    # two each side, 0.6: 3 of 5 is enough (5 x 0.6f rounds to 3.0 in float32, as in Kaldi), 2 of 4 is not
    assert vad_decision(energy, VadOptions(5.0, 0.0, 2, 0.6)).tolist() == [0, 0, 1, 1, 1, 0, 0, 0]
    assert vad_decision(np.zeros(0), VadOptions()).shape == (0,)


def test_vad_conf(tmp_path: Path) -> None:
    assert read_vad_conf(REPO / "conf" / "vad.conf") == VadOptions(5.5, 0.5, 0, 0.6)
    assert (REPO / "pyfunc" / "conf" / "vad.conf").read_text() == (REPO / "conf" / "vad.conf").read_text()
    conf = tmp_path / "vad.conf"
    conf.write_text("--vad-frames-context=2  # each side\n--vad-proportion-threshold=0.5\n")
    assert read_vad_conf(conf) == VadOptions(5.0, 0.5, 2, 0.5)
    for text, message in (("--vad-energy-thresh=1\n", "vad.conf:1: unknown VAD option --vad-energy-thresh"),
                          ("\n--vad-frames-context=1.5\n", "vad.conf:2: --vad-frames-context: expected int"),
                          ("--vad-proportion-threshold=1\n", "between 0 and 1"),
                          ("--vad-energy-mean-scale=-1\n", "at least 0"),
                          ("vad-energy-threshold 5\n", "vad.conf:1: expected '--option=value'")):
        conf.write_text(text)
        with pytest.raises(ConfigError, match=message):
            read_vad_conf(conf)


def test_select_voiced_frames_keeps_exactly_the_voiced_rows(caplog: pytest.LogCaptureFixture) -> None:
    feats = np.arange(12, dtype=np.float32).reshape(6, 2)
    vad = np.array([0, 1, 1, 0, 1, 0], dtype=np.float32)
    assert np.array_equal(select_voiced_frames(feats, vad, "u1"), feats[[1, 2, 4]])
    with pytest.raises(DataError, match="u1: the voice-activity decision has 5 frames, the features 6"):
        select_voiced_frames(feats, vad[:5], "u1")
    with pytest.raises(DataError, match="u2: no frame of 6 is judged voiced"):
        select_voiced_frames(feats, np.zeros(6, np.float32), "u2")
    items = [("u1", feats), ("u2", feats), ("u3", feats)]
    vads = {"u1": vad, "u2": np.zeros(6, np.float32), "u3": np.ones(6, np.float32)}
    with pytest.raises(DataError, match="u2: no frame"):
        select_voiced_table(items, vads)
    with caplog.at_level(logging.WARNING):
        kept = select_voiced_table(items, vads, skip_bad=True)
    assert sorted(kept) == ["u1", "u3"] and np.array_equal(kept["u3"], feats)
    assert "left out 1 utterance(s)" in caplog.text and "u2" in caplog.text


def test_voiced_samples_keeps_the_samples_of_voiced_frames() -> None:
    samples = np.arange(1000, dtype=np.float32)  # 25 ms / 10 ms at 16 kHz: 1 + (1000 - 400) // 160 = 4 frames
    vad = np.array([1, 0, 0, 1], dtype=np.float32)
    kept = voiced_samples(samples, vad, {}, "u")
    assert np.array_equal(kept, np.concatenate([samples[:160], samples[480:]]))  # frame 3 owns the tail
    with pytest.raises(DataError, match="u: the voice-activity decision has 3 frames, the 1000 samples give 4"):
        voiced_samples(samples, vad[:3], {}, "u")


def _data_dir(root: Path) -> Path:
    """Three utterances: silence-tone-silence, all tone, and digital silence."""
    wavs = {"a": _signal(1), "b": _signal(2, silence=0.0), "c": np.zeros(8000, np.float32)}
    root.mkdir(parents=True)
    for key, samples in wavs.items():
        write_wav(root / f"{key}.wav", samples, RATE)
    data = root / "data"
    write_data_dir(data, DataDir({k: str(root / f"{k}.wav") for k in wavs}, {k: "s" for k in wavs}))
    return data


def test_vad_stage_writes_kaldi_vectors_of_the_feature_length(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    data = _data_dir(tmp_path / "d")
    conf, vad_conf = REPO / "conf" / "fbank.conf", REPO / "conf" / "vad.conf"
    make_fbank(data, conf, tmp_path / "fbank", tmp_path / "log")
    with caplog.at_level(logging.WARNING):
        assert make_vad(data, vad_conf, conf, num_jobs=2)
    assert "1 utterance(s) have no voiced frame" in caplog.text and ": c" in caplog.text
    feats = kaldiio.load_scp(str(data / "feats.scp"))
    vads = {key: np.asarray(vector) for key, vector in kaldiio.load_scp(str(data / "vad.scp")).items()}
    assert sorted(vads) == ["a", "b", "c"]
    for key in vads:
        assert vads[key].shape == (feats[key].shape[0],) and set(np.unique(vads[key])) <= {0.0, 1.0}
    samples = _signal(1)
    assert np.array_equal(vads["a"], compute_vad(samples, read_kaldi_conf(conf), read_vad_conf(vad_conf)))
    assert vads["b"].all() and not vads["c"].any()
    scp_before = (data / "vad.scp").read_text()
    assert not make_vad(data, vad_conf, conf)  # the stamp: nothing to do
    assert make_vad(data, vad_conf, conf, force=True)  # one job gives the same decisions
    assert {k: v.tolist() for k, v in kaldiio.load_scp(str(data / "vad.scp")).items()} == \
        {k: v.tolist() for k, v in vads.items()} and scp_before != (data / "vad.scp").read_text()
    assert len(list((data / "vad").glob("vad_data.*.ark"))) == 1  # the earlier run's arks are gone


def test_stage3_with_vad_embeds_the_voiced_frames(tmp_path: Path) -> None:
    data = _data_dir(tmp_path / "d")
    conf = REPO / "conf" / "fbank.conf"
    model_dir = tiny_model_dir(tmp_path / "model")
    make_fbank(data, conf, tmp_path / "fbank", tmp_path / "log")
    with pytest.raises(DataError, match="vad.scp: file not found"):
        run_extraction(model_dir, data, tmp_path / "emb", vad=True)
    make_vad(data, REPO / "conf" / "vad.conf", conf)
    with pytest.raises(DataError, match=r"c.*no frame of \d+ is judged voiced"):
        run_extraction(model_dir, data, tmp_path / "emb", vad=True)
    assert run_extraction(model_dir, data, tmp_path / "emb", vad=True, skip_bad=True)
    assert "c " in (tmp_path / "emb" / "skipped_utts").read_text()
    voiced = dict(kaldiio.load_scp(str(tmp_path / "emb" / "xvector.scp")))
    assert sorted(voiced) == ["a", "b"]
    model = load_model(model_dir)
    feats, vads = kaldiio.load_scp(str(data / "feats.scp")), kaldiio.load_scp(str(data / "vad.scp"))
    direct = model.embed_inputs([select_voiced_frames(feats["a"], vads["a"], "a")])[0]
    assert np.allclose(voiced["a"], direct, atol=1e-5)
    whole = model.embed_inputs([feats["a"]])[0]
    assert not np.allclose(voiced["a"], whole, atol=1e-3)
    # toggling --vad recomputes; without it vad.scp is ignored
    assert run_extraction(model_dir, data, tmp_path / "emb", skip_bad=True)
    assert np.allclose(dict(kaldiio.load_scp(str(tmp_path / "emb" / "xvector.scp")))["a"], whole, atol=1e-5)
    assert not run_extraction(model_dir, data, tmp_path / "emb", skip_bad=True)
    # in parallel jobs: each job's split of the data dir carries its utterances' vad.scp (as split_data.sh does)
    assert run_extraction(model_dir, data, tmp_path / "emb2", vad=True, skip_bad=True, num_jobs=2)
    two = dict(kaldiio.load_scp(str(tmp_path / "emb2" / "xvector.scp")))
    assert sorted(two) == ["a", "b"] and np.allclose(two["a"], voiced["a"], atol=1e-5)


def test_embed_with_vad_matches_the_trimmed_file(tmp_path: Path) -> None:
    model_dir = tiny_model_dir(tmp_path / "model")
    tone = _signal(3, silence=0.0, tone=1.5)
    quiet = 0.0001 * np.random.default_rng(4).standard_normal(3 * RATE).astype(np.float32)  # about -80 dBFS
    write_wav(tmp_path / "trimmed.wav", tone, RATE)
    write_wav(tmp_path / "long.wav", np.concatenate([quiet, tone, quiet]), RATE)
    for name in ("trimmed", "long"):
        (tmp_path / f"{name}.list").write_text(f"{tmp_path / name}.wav\n")
        assert tools_main(["embed", str(tmp_path / f"{name}.list"), "--model-dir", str(model_dir), "--out",
                           str(tmp_path / f"{name}.npy"), "--vad"]) == 0
    assert tools_main(["embed", str(tmp_path / "long.list"), "--model-dir", str(model_dir), "--out",
                       str(tmp_path / "plain.npy")]) == 0
    trimmed, long, plain = (np.load(tmp_path / f"{n}.npy")[0] for n in ("trimmed", "long", "plain"))

    def cosine(x: np.ndarray, y: np.ndarray) -> float:
        return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))

    # the voiced frames are the tone's plus the few at its edges whose window reaches into it
    fbank = read_kaldi_conf(REPO / "pyfunc" / "conf" / "fbank.conf")
    decision = compute_vad(np.concatenate([quiet, tone, quiet]), fbank, read_vad_conf(REPO / "conf" / "vad.conf"))
    tone_frames = compute_fbank(tone, fbank).shape[0]
    assert tone_frames <= decision.sum() <= tone_frames + 6
    assert cosine(long, trimmed) > 0.99
    assert cosine(plain, trimmed) < cosine(long, trimmed) - 0.05
    with pytest.raises(ConfigError, match="add --vad"):
        tools_main(["embed", str(tmp_path / "long.list"), "--model-dir", str(model_dir), "--out",
                    str(tmp_path / "x.npy"), "--vad-conf", str(REPO / "conf" / "vad.conf")])


def _is_slice(part: np.ndarray, whole: np.ndarray) -> bool:
    return any(np.array_equal(part, whole[i:i + len(part)]) for i in range(len(whole) - len(part) + 1))


def test_training_chunks_come_from_the_voiced_frames(tmp_path: Path) -> None:
    data = _data_dir(tmp_path / "d")
    for name in ("wav.scp", "utt2spk"):  # a and b only: c has no voiced frame
        lines = (data / name).read_text().splitlines()
        (data / name).write_text("".join(line + "\n" for line in lines if not line.startswith("c ")))
    (data / "spk2utt").write_text("s a b\n")
    conf = REPO / "conf" / "fbank.conf"
    make_fbank(data, conf, tmp_path / "fbank", tmp_path / "log")
    with pytest.raises(DataError, match="vad.scp: file not found; train.vad"):
        load_training_set(data, "features", vad=True)
    make_vad(data, REPO / "conf" / "vad.conf", conf)
    vads = {k: np.asarray(v) for k, v in kaldiio.load_scp(str(data / "vad.scp")).items()}
    feats = {k: np.asarray(v) for k, v in kaldiio.load_scp(str(data / "feats.scp")).items()}
    voiced = select_voiced_frames(feats["a"], vads["a"], "a")
    assert len(voiced) < len(feats["a"])
    chunks = ChunkDataset(load_training_set(data, "features", vad=True), chunk_frames=50)
    for seed in range(5):
        chunk, label = chunks[(0, seed)]
        assert label == 0 and _is_slice(chunk.numpy(), voiced)
    plain = ChunkDataset(load_training_set(data, "features"), chunk_frames=50)
    assert any(not _is_slice(plain[(0, seed)][0].numpy(), voiced) for seed in range(20))
    samples = voiced_samples(read_audio(str(tmp_path / "d" / "a.wav")), vads["a"], read_kaldi_conf(conf), "a")
    waves = ChunkDataset(load_training_set(data, "waveform", vad=True), chunk_frames=50,
                         framing=read_kaldi_conf(conf))
    for seed in range(5):
        assert _is_slice(waves[(0, seed)][0].numpy(), samples)
