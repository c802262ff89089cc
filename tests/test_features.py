"""Stage 1: Kaldi-compatible fbank, equal to torchaudio's Kaldi fbank, any number of jobs."""

from __future__ import annotations

from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile
import torch
import torchaudio.compliance.kaldi as kaldi
from conftest import REPO

from pyfunc.errors import ConfigError
from pyfunc.features.kaldi_fbank import read_kaldi_conf
from pyfunc.pipeline.fbank_stage import make_fbank


def test_conf_parsing(tmp_path: Path) -> None:
    opts = read_kaldi_conf(REPO / "conf" / "fbank.conf")
    assert opts["num_mel_bins"] == 80 and opts["dither"] == 0.0 and opts["window_type"] == "hamming"
    bad = tmp_path / "bad.conf"
    bad.write_text("--num-mel-bins=80\n--num-mel-binz=40\n")
    with pytest.raises(ConfigError, match=r"bad.conf:2: unknown fbank option --num-mel-binz"):
        read_kaldi_conf(bad)
    bad.write_text("--num-mel-bins=eighty\n")
    with pytest.raises(ConfigError, match=r"bad.conf:1: --num-mel-bins: expected int"):
        read_kaldi_conf(bad)


@pytest.mark.parametrize("nj", [1, 3])
def test_make_fbank_equals_torchaudio_kaldi_fbank(tone_data_dir: Path, tmp_path: Path, nj: int) -> None:
    conf = REPO / "conf" / "fbank.conf"
    make_fbank(tone_data_dir, conf, tmp_path / "fbank", tmp_path / "log", num_jobs=nj)
    feats = dict(kaldiio.load_scp(str(tone_data_dir / "feats.scp")))
    frames = dict(line.split() for line in (tone_data_dir / "utt2num_frames").read_text().splitlines())
    wavs = dict(line.split() for line in (tone_data_dir / "wav.scp").read_text().splitlines())
    assert sorted(feats) == sorted(wavs)
    for utt, wav in wavs.items():
        samples, rate = soundfile.read(wav, dtype="int16")
        expected = kaldi.fbank(torch.from_numpy(samples.astype(np.float32)).unsqueeze(0), num_mel_bins=80,
                               frame_length=25, frame_shift=10, low_freq=20, high_freq=7600, dither=0.0,
                               window_type="hamming", energy_floor=0.0, sample_frequency=16000)
        np.testing.assert_allclose(feats[utt], expected.numpy(), rtol=0, atol=1e-5)
        assert int(frames[utt]) == expected.shape[0]
    logs = sorted((tmp_path / "log").glob("make_fbank_data.*.log"))
    assert len(logs) == nj
    # one local job runs in this process (no second torch import), still logging to its job log
    header, *records = logs[0].read_text().splitlines()
    assert header.startswith("# in-process: make_fbank_part" if nj == 1 else "# ")
    assert (nj == 1) != ("pyfunc.cli.job_worker" in header)
    assert any("pyfunc.pipeline.fbank_stage: " in line and "utterances" in line for line in records)


def test_nj_does_not_change_output(tone_data_dir: Path, tmp_path: Path) -> None:
    conf = REPO / "conf" / "fbank.conf"
    out = {}
    for nj in (1, 3):
        make_fbank(tone_data_dir, conf, tmp_path / f"fbank{nj}", tmp_path / "log", num_jobs=nj)
        out[nj] = {k: v.copy() for k, v in kaldiio.load_scp(str(tone_data_dir / "feats.scp")).items()}
    assert list(out[1]) == list(out[3])
    for key in out[1]:
        assert np.array_equal(out[1][key], out[3][key])


def test_in_process_job_logs_its_failure_and_leaves_nothing(tone_data_dir: Path, tmp_path: Path) -> None:
    from pyfunc.errors import DataError

    (tmp_path / "bad.wav").write_text("not audio")
    lines = (tone_data_dir / "wav.scp").read_text().splitlines()
    bad_key = lines[0].split()[0]
    (tone_data_dir / "wav.scp").write_text("\n".join([f"{bad_key} {tmp_path / 'bad.wav'}", *lines[1:]]) + "\n")
    with pytest.raises(DataError, match=rf"(?s)wav.scp: 1 of {len(lines)} .*{bad_key}: cannot read audio"):
        make_fbank(tone_data_dir, REPO / "conf" / "fbank.conf", tmp_path / "fbank", tmp_path / "log", num_jobs=1)
    log = (tmp_path / "log" / "make_fbank_data.1.log").read_text()
    assert "ERROR pyfunc.pipeline.jobs: error: " in log and "bad.wav" in log
    assert not (tone_data_dir / "feats.scp").exists() and list((tmp_path / "fbank").iterdir()) == []


@pytest.mark.parametrize("nj", [1, 2])
def test_compressed_arks_are_kaldi_compressed_and_a_quarter_the_size(tone_data_dir: Path, tmp_path: Path,
                                                                     nj: int) -> None:
    """--compress true: Kaldi's compressed matrices ('CM', as copy-feats --compress=true), about a quarter of
    the float32 bytes, decoding to the plain features within the format's one-byte quantisation."""
    conf = REPO / "conf" / "fbank.conf"
    make_fbank(tone_data_dir, conf, tmp_path / "plain", tmp_path / "log", num_jobs=nj)
    plain = {k: v.copy() for k, v in kaldiio.load_scp(str(tone_data_dir / "feats.scp")).items()}
    assert make_fbank(tone_data_dir, conf, tmp_path / "plain", tmp_path / "log", num_jobs=nj) is False
    assert make_fbank(tone_data_dir, conf, tmp_path / "comp", tmp_path / "log", num_jobs=nj, compress=True)
    entries = dict(line.split() for line in (tone_data_dir / "feats.scp").read_text().splitlines())
    for utt, entry in entries.items():
        path, offset = entry.rsplit(":", 1)
        with open(path, "rb") as handle:
            handle.seek(int(offset))
            assert handle.read(5) == b"\0BCM ", utt  # Kaldi's kSpeechFeature compressed matrix
    compressed = dict(kaldiio.load_scp(str(tone_data_dir / "feats.scp")))
    assert list(compressed) == list(plain)
    for utt, feats in plain.items():
        span = feats.max(axis=0) - feats.min(axis=0)
        assert np.all(np.abs(compressed[utt] - feats) <= span / 60 + 1e-3), utt
    size = {kind: sum(p.stat().st_size for p in (tmp_path / kind).glob("*.ark")) for kind in ("plain", "comp")}
    assert 0.2 < size["comp"] / size["plain"] < 0.35, size
