"""Issue 23: audio at another sample rate (8 kHz telephone speech) in a data directory, resampled by
stages 1 and 3 with --resample and refused without it, with a message naming the file and the fix."""

from __future__ import annotations

import json
import re
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile
import torch
import torchaudio.functional as AF

from pyfunc.cli import job_worker
from pyfunc.config import Config
from pyfunc.data.audio import write_wav
from pyfunc.data.datadir import DataDir, write_data_dir
from pyfunc.errors import DataError
from pyfunc.features.kaldi_fbank import compute_fbank, read_kaldi_conf
from pyfunc.models.aam_softmax import AAMSoftmax
from pyfunc.models.model_dir import build_encoder, load_model_dir, save_model_dir
from pyfunc.pipeline.extract_stage import extract_stamp_spec, run_extraction
from pyfunc.pipeline.fbank_stage import fbank_stamp_spec, make_fbank
from pyfunc.pipeline.stamps import FBANK_STAMP

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf" / "fbank.conf"
SECONDS = 1.2


def _tone(rate: int, freq: float = 1000.0) -> np.ndarray:
    t = np.arange(int(SECONDS * rate)) / rate
    return 0.5 * np.sin(2 * np.pi * freq * t)


def _data_dir(root: Path, rates: dict[str, int]) -> Path:
    """A data dir with one 1 kHz tone per utterance, at the given rates (utt -> Hz)."""
    wav_scp = {}
    for utt, rate in rates.items():
        write_wav(root / "wav" / f"{utt}.wav", _tone(rate), rate)
        wav_scp[utt] = str(root / "wav" / f"{utt}.wav")
    write_data_dir(root / "data", DataDir(wav_scp, {utt: "spk1" for utt in rates}))
    return root / "data"


def _resampled_from_file(path: Path, rate: int = 16000) -> np.ndarray:
    """The reference: the file's samples resampled here, independently of the stage."""
    samples, found = soundfile.read(path, dtype="float64")
    return AF.resample(torch.from_numpy(samples), found, rate).numpy().astype(np.float32)


def _feats(data: Path) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in kaldiio.load_scp(str(data / "feats.scp")).items()}


def test_stage1_refuses_8khz_naming_the_file_the_rates_and_the_fix(tmp_path: Path) -> None:
    data = _data_dir(tmp_path, {"phone1": 8000, "wide1": 16000})
    with pytest.raises(DataError) as caught:
        make_fbank(data, CONF, tmp_path / "fbank", tmp_path / "log")
    message = str(caught.value)
    assert message.startswith(f"{data / 'wav.scp'}: 1 of 2 utterance(s) have bad input")
    assert "wav.scp: phone1: expected sample rate 16000 Hz, got 8000 Hz" in message  # (the job's split of it)
    assert "--resample true" in message
    assert f"sox {tmp_path / 'wav' / 'phone1.wav'} -r 16000 OUT.wav" in message and "ffmpeg -i" in message
    assert "wide1" not in message  # only the bad utterance is listed
    assert not (data / "feats.scp").exists()


def test_stage1_resample_gives_the_fbank_of_the_16khz_signal(tmp_path: Path) -> None:
    data = _data_dir(tmp_path, {"phone1": 8000, "wide1": 16000})
    assert make_fbank(data, CONF, tmp_path / "fbank", tmp_path / "log", resample=True)
    feats = _feats(data)
    options = read_kaldi_conf(CONF)
    reference = compute_fbank(_resampled_from_file(tmp_path / "wav" / "phone1.wav"), options)
    np.testing.assert_allclose(feats["phone1"], reference, rtol=0, atol=1e-4)
    wide = compute_fbank(_tone(16000).astype(np.float32), options)
    # 1.2 s at 8 kHz becomes 19200 samples: (19200 - 400) // 160 + 1 = 118 frames, as at 16 kHz
    assert feats["phone1"].shape == wide.shape == feats["wide1"].shape == (118, 80)
    mel_peak = np.argmax(wide.mean(axis=0))
    assert np.argmax(feats["phone1"].mean(axis=0)) == mel_peak
    # the 1 kHz tone's bin: Kaldi's mel scale, 80 bins over 20-7600 Hz
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731
    delta = (mel(7600) - mel(20)) / 81
    centres = mel(20) + delta * (np.arange(80) + 1)
    assert mel_peak == np.argmin(np.abs(centres - mel(1000)))
    # away from the ends (where the resampling filter sees zeros beyond the signal) the tone made at 8 kHz
    # and resampled has the log mel energies of the same tone made at 16 kHz, in every bin
    np.testing.assert_allclose(feats["phone1"][5:-5], feats["wide1"][5:-5], rtol=0, atol=0.02)


def test_stage1_stamp_records_resampling(tmp_path: Path) -> None:
    data = _data_dir(tmp_path, {"wide1": 16000, "wide2": 16000})
    plain = fbank_stamp_spec(data, CONF, tmp_path / "fbank")
    assert "resample" not in plain.params  # the stamps of runs before the option stay valid
    assert fbank_stamp_spec(data, CONF, tmp_path / "fbank", resample=True).params == {**plain.params,
                                                                                      "resample": True}
    assert make_fbank(data, CONF, tmp_path / "fbank", tmp_path / "log")
    assert not make_fbank(data, CONF, tmp_path / "fbank", tmp_path / "log")  # up to date
    assert make_fbank(data, CONF, tmp_path / "fbank", tmp_path / "log", resample=True)  # option toggled: redone
    assert json.loads((data / FBANK_STAMP).read_text())["params"]["resample"] is True
    assert not make_fbank(data, CONF, tmp_path / "fbank", tmp_path / "log", resample=True)
    assert make_fbank(data, CONF, tmp_path / "fbank", tmp_path / "log")


def test_stage1_job_worker_passes_resample(tmp_path: Path) -> None:
    data = _data_dir(tmp_path, {"phone1": 8000})
    ark, scp = tmp_path / "out.ark", tmp_path / "out.scp"
    assert job_worker.main(["fbank", "--conf", str(CONF), str(data), str(ark), str(scp)]) == 1
    assert job_worker.main(["fbank", "--conf", str(CONF), "--resample", str(data), str(ark), str(scp)]) == 0
    reference = compute_fbank(_resampled_from_file(tmp_path / "wav" / "phone1.wav"), read_kaldi_conf(CONF))
    np.testing.assert_allclose(kaldiio.load_scp(str(scp))["phone1"], reference, rtol=0, atol=1e-4)


def _seed_model_dir(path: Path) -> Path:
    config = Config()
    config.model.frontend = "seed"
    config.model.channels = 16
    config.model.embed_dim = 8
    torch.manual_seed(0)
    save_model_dir(path, config, build_encoder(config.model), AAMSoftmax(8, 2))
    return path


def test_stage3_resamples_with_the_option_and_refuses_without(tmp_path: Path) -> None:
    data = _data_dir(tmp_path, {"phone1": 8000, "wide1": 16000})
    model_dir = _seed_model_dir(tmp_path / "model")
    out = tmp_path / "emb"
    with pytest.raises(DataError, match=re.escape(f"{data / 'wav.scp'}: phone1: expected sample rate 16000 Hz, "
                                                  f"got 8000 Hz; rerun with --resample true")):
        run_extraction(model_dir, data, out, protocol="full", device="cpu")
    assert not (out / "xvector.scp").exists()
    assert run_extraction(model_dir, data, out, protocol="full", device="cpu", resample=True)
    got = {k: np.asarray(v) for k, v in kaldiio.load_scp(str(out / "xvector.scp")).items()}
    encoder, _ = load_model_dir(model_dir)
    with torch.no_grad():
        expected = encoder(torch.from_numpy(_resampled_from_file(tmp_path / "wav" / "phone1.wav"))[None])[0]
    np.testing.assert_allclose(got["phone1"], expected.numpy(), rtol=1e-4, atol=1e-5)
    assert json.loads((out / ".extract.stamp").read_text())["params"]["resample"] is True
    assert not run_extraction(model_dir, data, out, protocol="full", device="cpu", resample=True)  # up to date
    spec = extract_stamp_spec(model_dir, data, "full", frontend="seed")
    assert "resample" not in spec.params  # without the option the stamp differs: the stage reruns
    assert "resample" not in extract_stamp_spec(model_dir, data, "full", frontend="fbank", table={},
                                                       resample=True).params


def test_stage3_job_worker_passes_resample(tmp_path: Path) -> None:
    data = _data_dir(tmp_path, {"phone1": 8000})
    model_dir = _seed_model_dir(tmp_path / "model")
    args = ["embed", "--model-dir", str(model_dir), "--protocol", "full", "--device", "cpu"]
    assert job_worker.main([*args, str(data), str(tmp_path / "no")]) == 1
    assert job_worker.main([*args, "--resample", str(data), str(tmp_path / "yes")]) == 0
    assert sorted(kaldiio.load_scp(str(tmp_path / "yes" / "xvector.scp"))) == ["phone1"]
