"""VoxCeleb1/2, MUSAN and RIRS_NOISES data preparation on tiny fake trees (egs/voxceleb/local/voxceleb.py,
musan.py; the generic pieces in pyfunc/data/corpus_files.py and m4a.py)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from fake_trees import (
    make_fake_musan,
    make_fake_rirs,
    make_fake_trial_list,
    make_fake_voxceleb1,
    make_fake_voxceleb2,
    make_voices,
    synthesize_speech,
)

from pyfunc.data import audio as audio_module
from pyfunc.data import m4a
from pyfunc.data.audio import read_audio
from pyfunc.data.corpus_files import make_trial_subset
from pyfunc.data.datadir import load_data_dir, validate_data_dir
from pyfunc.data.m4a import convert_m4a_tree
from pyfunc.data.tables import read_map, read_scp
from pyfunc.data.trials import read_trials
from pyfunc.errors import ConfigError, DataError, PyfuncError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "egs" / "voxceleb" / "local"))  # the recipe's modules, as its scripts import them

import voxceleb  # noqa: E402
from musan import prepare_musan, prepare_rirs  # noqa: E402
from voxceleb import (  # noqa: E402
    convert_trials,
    find_speaker_roots,
    prepare_vox1,
    prepare_vox1_trials,
    prepare_vox2_dev,
    trials_path,
)

HAVE_FFMPEG = shutil.which("ffmpeg") is not None
needs_ffmpeg = pytest.mark.skipif(not HAVE_FFMPEG, reason="ffmpeg is not installed")


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _c_sorted(keys: list[str]) -> bool:
    return [k.encode() for k in keys] == sorted(k.encode() for k in keys)


# ----------------------------------------------------------------------------------------------
# Fake trees


def test_fake_voxceleb1_layout_is_deterministic(tmp_path):
    a = make_fake_voxceleb1(tmp_path / "a", speakers=3, videos=2, utts=2, random_seed=7, test_speakers=1)
    b = make_fake_voxceleb1(tmp_path / "b", speakers=3, videos=2, utts=2, random_seed=7, test_speakers=1)
    assert a.speakers == ["id10001", "id10002", "id10003"]
    assert a.speaker_roots == [tmp_path / "a" / "vox1_dev_wav" / "wav", tmp_path / "a" / "vox1_test_wav" / "wav"]
    assert len(a.files) == 12 and sorted(a.files) == sorted(b.files)
    for utt, path in a.files.items():
        speaker, video, stem = utt.split("/")
        root = a.speaker_roots[1] if speaker == "id10003" else a.speaker_roots[0]
        assert path == root / speaker / video / f"{stem}.wav" and len(video) == 11
        info = soundfile.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert 1.5 <= info.duration <= 3.0
        assert path.read_bytes() == b.files[utt].read_bytes()


def _long_term_spectrum(path: Path) -> np.ndarray:
    x, _ = soundfile.read(path)
    frames = np.lib.stride_tricks.sliding_window_view(x, 512)[::160] * np.hanning(512)
    power = np.abs(np.fft.rfft(frames)) ** 2
    energy = power.sum(1)
    spectrum = np.log(power[energy > np.median(energy)].mean(0) + 1e-8)[:200]
    return spectrum - spectrum.mean()


def test_fake_speakers_are_distinguishable(tmp_path):
    """Nearest neighbour on a plain long-term spectrum finds the speaker most of the time."""
    corpus = make_fake_voxceleb1(tmp_path, speakers=8, videos=2, utts=2, random_seed=5)
    utts = sorted(corpus.files)
    feats = np.array([_long_term_spectrum(corpus.files[u]) for u in utts])
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    scores = feats @ feats.T
    np.fill_diagonal(scores, -np.inf)
    speakers = np.array([u.split("/")[0] for u in utts])
    accuracy = float(np.mean(speakers[scores.argmax(1)] == speakers))
    assert accuracy >= 0.75, accuracy
    same = speakers[:, None] == speakers[None, :]
    off_diagonal = ~np.eye(len(utts), dtype=bool)
    assert scores[same & off_diagonal].mean() > scores[~same].mean() + 0.05


def test_voices_differ_in_f0_and_formants():
    voices = make_voices(6, random_seed=1)
    f0 = sorted(v.f0 for v in voices)
    scale = sorted(v.formant_scale for v in voices)
    assert 85 <= f0[0] and f0[-1] <= 280 and min(np.diff(np.log(f0))) > 0
    assert 0.82 <= scale[0] and scale[-1] <= 1.22
    rng = np.random.default_rng(0)
    x = synthesize_speech(voices[0], 2.0, rng)
    assert x.dtype == np.float32 and x.size == 32000 and 0.29 <= np.abs(x).max() <= 0.81


def test_fake_trial_list_format(tmp_path):
    corpus = make_fake_voxceleb1(tmp_path / "vox1", speakers=3, videos=2, utts=2)
    lines = make_fake_trial_list(tmp_path / "veri_test2.txt", tmp_path / "vox1", n=12, random_seed=1)
    text = _lines(tmp_path / "veri_test2.txt")
    assert len(text) == 12 and len({(a, b) for _, a, b in lines}) == 12
    assert {label for label, _, _ in lines} == {0, 1} and sum(label for label, _, _ in lines) == 6
    for line, (label, enroll, test) in zip(text, lines):
        assert line == f"{label} {enroll}.wav {test}.wav"
        assert enroll in corpus.files and test in corpus.files and enroll != test
        assert (enroll.split("/")[0] == test.split("/")[0]) == bool(label)
    assert make_fake_trial_list(tmp_path / "again.txt", corpus, n=12, random_seed=1) == lines


def test_fake_rirs_have_direct_path_and_decay(tmp_path):
    base = make_fake_rirs(tmp_path, rooms=1, rirs_per_room=1)
    for room_type in ("smallroom", "mediumroom", "largeroom"):
        rir, rate = soundfile.read(base / "simulated_rirs" / room_type / "Room001" / "Room001-00001.wav")
        assert rate == 16000 and rir.size == 4800
        peak = int(np.argmax(np.abs(rir)))
        assert peak < 120 and np.all(rir[:peak] == 0)
        tail = rir[peak + 1:]
        assert np.sum(tail[:800] ** 2) > 4 * np.sum(tail[-800:] ** 2) > 0


# ----------------------------------------------------------------------------------------------
# VoxCeleb1


@pytest.fixture
def vox1(tmp_path):
    corpus = make_fake_voxceleb1(tmp_path / "vox1", speakers=4, videos=2, utts=2, random_seed=3, test_speakers=2)
    return corpus


def test_prepare_vox1_from_split_roots(vox1, tmp_path):
    out = tmp_path / "data" / "vox1"
    prepare_vox1([tmp_path / "vox1"], out)
    data = validate_data_dir(out)
    assert data.utts == sorted(vox1.files) and len(data.utts) == 16
    assert data.utt2spk == vox1.utt2spk
    for utt in data.utts:
        assert utt.startswith(data.utt2spk[utt] + "/")
        assert data.wav_scp[utt] == str(vox1.files[utt]) and os.path.isabs(data.wav_scp[utt])
        assert data.utt2dur[utt] == pytest.approx(soundfile.info(vox1.files[utt]).duration, abs=1e-3)
    assert _c_sorted([line.split()[0] for line in _lines(out / "wav.scp")])
    spk2utt = {line.split()[0]: line.split()[1:] for line in _lines(out / "spk2utt")}
    assert list(spk2utt) == ["id10001", "id10002", "id10003", "id10004"]
    assert all(len(u) == 4 for u in spk2utt.values())
    # The two roots given one by one give the same files, and num_jobs does not change them.
    other = tmp_path / "data" / "vox1_b"
    prepare_vox1(vox1.speaker_roots, other, num_jobs=2)
    for name in ("wav.scp", "utt2spk", "spk2utt", "utt2dur"):
        assert (other / name).read_bytes() == (out / name).read_bytes()


def test_find_speaker_roots(vox1, tmp_path):
    assert find_speaker_roots(tmp_path / "vox1") == vox1.speaker_roots
    assert find_speaker_roots(vox1.speaker_roots[0]) == [vox1.speaker_roots[0]]
    (tmp_path / "empty" / "a" / "b").mkdir(parents=True)
    with pytest.raises(DataError, match="no speaker folders"):
        find_speaker_roots(tmp_path / "empty")
    with pytest.raises(DataError, match="folder not found"):
        find_speaker_roots(tmp_path / "nowhere")


def test_prepare_vox1_errors(vox1, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(vox1.speaker_roots[0], copy / "wav")
    with pytest.raises(DataError, match=r"found twice: .*00001\.wav and .*00001\.wav"):
        prepare_vox1([tmp_path / "vox1", copy], tmp_path / "data" / "dup")
    bad = vox1.files[sorted(vox1.files)[0]]
    soundfile.write(bad, np.zeros(8000), 8000, subtype="PCM_16")
    with pytest.raises(DataError, match=rf"{bad}: expected sample rate 16000 Hz, got 8000 Hz"):
        prepare_vox1([tmp_path / "vox1"], tmp_path / "data" / "bad_rate")
    spaced = tmp_path / "with space"
    make_fake_voxceleb1(spaced, speakers=1, videos=1, utts=1)
    with pytest.raises(DataError, match="whitespace"):
        prepare_vox1([spaced], tmp_path / "data" / "spaced")


def test_convert_trials(vox1, tmp_path):
    data = tmp_path / "data" / "vox1"
    prepare_vox1([tmp_path / "vox1"], data)
    lines = make_fake_trial_list(tmp_path / "meta" / "veri_test2.txt", vox1, n=20, random_seed=2)
    out = trials_path(data, "vox1_o")
    assert out == data / "trials" / "vox1_o"
    assert convert_trials(tmp_path / "meta" / "veri_test2.txt", data, out) == 20
    assert _lines(out) == [f"{e} {t} {'target' if lab else 'nontarget'}" for lab, e, t in lines]
    assert read_trials(out) == [(e, t, bool(lab)) for lab, e, t in lines]
    validate_data_dir(data)  # a trials folder does not disturb the data directory check


def test_convert_trials_errors(vox1, tmp_path):
    data = tmp_path / "data" / "vox1"
    prepare_vox1([tmp_path / "vox1"], data)
    utts = sorted(vox1.files)
    listing = tmp_path / "list.txt"
    listing.write_text(f"1 {utts[0]}.wav {utts[1]}.wav\n0 {utts[0]}.wav id10099/abcdefghijk/00001.wav\n")
    with pytest.raises(DataError, match=rf"{listing}:2: utterance 'id10099/abcdefghijk/00001' is not in .*utt2spk"):
        convert_trials(listing, data, tmp_path / "trials")
    assert not (tmp_path / "trials").exists()
    other = next(u for u in utts if not u.startswith("id10001/"))
    listing.write_text(f"1 {utts[0]}.wav {utts[1]}.wav\n1 {utts[0]}.wav {other}.wav\n")
    with pytest.raises(DataError, match=rf"{listing}:2: target trial but the speakers are id10001 and "):
        convert_trials(listing, data, tmp_path / "trials")
    listing.write_text(f"target {utts[0]}.wav {utts[1]}.wav\n")
    with pytest.raises(DataError, match=rf"{listing}:1: expected '1\|0 enroll.wav test.wav'"):
        convert_trials(listing, data, tmp_path / "trials")


def test_prepare_vox1_trials_and_subset(vox1, tmp_path):
    data = tmp_path / "data" / "vox1"
    prepare_vox1([tmp_path / "vox1"], data)
    meta = tmp_path / "meta"
    meta.mkdir()
    with pytest.raises(DataError, match="none of veri_test2.txt, list_test_all2.txt, list_test_hard2.txt found"):
        prepare_vox1_trials(meta, data)
    make_fake_trial_list(meta / "veri_test2.txt", vox1, n=10, random_seed=3)
    make_fake_trial_list(meta / "list_test_hard2.txt", vox1, n=14, random_seed=4)
    report = prepare_vox1_trials(meta, data)
    assert report.written == {"vox1_o": (data / "trials" / "vox1_o", 10), "vox1_h": (data / "trials" / "vox1_h", 14)}
    assert report.missing == [meta / "list_test_all2.txt"]
    subset = make_trial_subset(data, data / "trials" / "vox1_o", tmp_path / "data" / "vox1_o")
    named = {u for e, t, _ in read_trials(data / "trials" / "vox1_o") for u in (e, t)}
    assert set(subset.utt2spk) == named
    checked = validate_data_dir(tmp_path / "data" / "vox1_o")
    assert checked.utt2dur == {u: pytest.approx(d, abs=1e-3) for u, d in load_data_dir(data).utt2dur.items()
                               if u in named}
    assert (tmp_path / "data" / "vox1_o" / "trials").read_text() == (data / "trials" / "vox1_o").read_text()


# ----------------------------------------------------------------------------------------------
# VoxCeleb2


def test_prepare_vox2_dev_wav(tmp_path):
    corpus = make_fake_voxceleb2(tmp_path / "vox2", speakers=3, videos=2, utts=2)
    assert corpus.speakers == ["id00012", "id00017", "id00022"]
    out = tmp_path / "data" / "vox2_dev"
    (out / "split2").mkdir(parents=True)
    (out / "feats.scp").write_text("stale\n")
    prepare_vox2_dev(tmp_path / "vox2", out)
    data = validate_data_dir(out)
    assert not (out / "feats.scp").exists() and not (out / "split2").exists()
    assert data.utt2spk == corpus.utt2spk and len(data.utts) == 12
    assert data.wav_scp == {u: str(p) for u, p in corpus.files.items()}
    assert set(data.utt2dur) == set(data.utts)


def test_vox2_root_must_be_the_dev_folder(tmp_path, caplog):
    """The corpus root holds dev/ and test/: its test speakers are refused; the dev folder (or its aac/wav
    folder) is taken, and counts unlike the released 5 994 speakers / 1 092 009 utterances are a warning."""
    corpus = make_fake_voxceleb2(tmp_path / "vox2", speakers=2, videos=1, utts=2)
    test_file = tmp_path / "vox2" / "test" / "wav" / "id00099" / "abcdefghijk" / "00001.wav"
    test_file.parent.mkdir(parents=True)
    shutil.copy(next(iter(corpus.files.values())), test_file)
    with pytest.raises(DataError, match=r"test/wav: speaker folders outside VoxCeleb2's dev/ folder"):
        prepare_vox2_dev(tmp_path / "vox2", tmp_path / "data" / "a")
    assert not (tmp_path / "data" / "a").exists()
    for root in (tmp_path / "vox2" / "dev", tmp_path / "vox2" / "dev" / "wav"):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            data = prepare_vox2_dev(root, tmp_path / "data" / root.name)
        assert data.utt2spk == corpus.utt2spk
        assert "2 speakers and 4 utterances, but the released dev set has 5994 and 1092009" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        voxceleb.report_vox2_counts(5994, 1092009, "x")
    assert "5994 speakers and 1092009 utterances, as released" in caplog.text and "WARNING" not in caplog.text


def read_trial_lines(path):
    return [(label, e.rsplit(".", 1)[0], t.rsplit(".", 1)[0])
            for label, e, t in (line.split() for line in path.read_text().splitlines())]


def test_training_speakers_must_not_be_in_the_trial_lists(tmp_path):
    """VoxCeleb1's test set given as VoxCeleb2: the Vox1-O speakers would be training speakers. Stage 0 stops."""
    vox1 = make_fake_voxceleb1(tmp_path / "vox1", speakers=3, videos=2, utts=2, test_speakers=1)
    make_fake_trial_list(tmp_path / "vox1" / "veri_test2.txt", vox1, n=8)
    args = ["--vox1-root", tmp_path / "vox1" / "vox1_dev_wav", tmp_path / "vox1" / "vox1_test_wav",
            "--meta-dir", tmp_path / "vox1", "--lists", "vox1_o", "--data", tmp_path / "data", "--nj", "1"]
    result = _run_local("prepare_voxceleb.py", "--vox2-root", tmp_path / "vox1" / "vox1_dev_wav" / "wav", *args)
    assert result.returncode == 1
    speakers = {vox1.utt2spk[u] for _, e, t in read_trial_lines(tmp_path / "vox1" / "veri_test2.txt") for u in (e, t)}
    both = sorted(speakers - {"id10003"})  # the two dev speakers; id10003 is the test speaker
    assert (f"error: {tmp_path / 'data' / 'vox1' / 'trials' / 'vox1_o'}: {len(both)} of its {len(speakers)} "
            f"speakers are also training speakers in {tmp_path / 'data' / 'vox2_dev' / 'utt2spk'}, e.g. {both}"
            ) in result.stderr
    make_fake_voxceleb2(tmp_path / "vox2", speakers=2, videos=1, utts=2)
    result = _run_local("prepare_voxceleb.py", "--vox2-root", tmp_path / "vox2", *args)
    assert result.returncode == 0, result.stderr


def _fake_m4a_tree(root: Path) -> int:
    """m4a files that are not audio: enough to test what happens before decoding."""
    count = 0
    for spk in ("id00012", "id00017"):
        for video in ("21Uxsk56VDQ", "abcdefghijk"):
            (root / "dev" / "aac" / spk / video).mkdir(parents=True)
            for u in (1, 2):
                (root / "dev" / "aac" / spk / video / f"{u:05d}.m4a").write_bytes(b"not audio")
                count += 1
    return count


def test_vox2_m4a_pipe_entries(tmp_path, monkeypatch):
    count = _fake_m4a_tree(tmp_path / "vox2")
    monkeypatch.setattr(m4a.shutil, "which", lambda name: "/usr/bin/" + name)
    out = tmp_path / "data" / "vox2_dev"
    (out).mkdir(parents=True)
    (out / "utt2dur").write_text("stale 1.0\n")
    data = prepare_vox2_dev(tmp_path / "vox2", out)
    assert len(data.utts) == count and not (out / "utt2dur").exists()
    scp = read_scp(out / "wav.scp")
    path = tmp_path / "vox2" / "dev" / "aac" / "id00012" / "21Uxsk56VDQ" / "00001.m4a"
    assert scp["id00012/21Uxsk56VDQ/00001"] == f"ffmpeg -nostdin -v error -i {path} -f wav -ac 1 -ar 16000 - |"
    assert read_map(out / "utt2spk")["id00017/abcdefghijk/00002"] == "id00017"
    with pytest.raises(DataError, match=r"no .wav files in speaker/video/ folders \(found 8 .m4a files\)"):
        prepare_vox2_dev(tmp_path / "vox2", tmp_path / "data" / "x", audio="wav")
    with pytest.raises(ConfigError, match="audio must be one of auto, wav, m4a, got 'aac'"):
        prepare_vox2_dev(tmp_path / "vox2", tmp_path / "data" / "x", audio="aac")


def test_vox2_m4a_without_ffmpeg(tmp_path, monkeypatch):
    count = _fake_m4a_tree(tmp_path / "vox2")
    monkeypatch.setattr(m4a.shutil, "which", lambda name: None)
    root = str(tmp_path / "vox2")
    message = (f"found {count} .m4a files under {root} but ffmpeg is not installed; install it "
               "(apt-get install ffmpeg) or convert to wav first")
    with pytest.raises(PyfuncError) as err:
        prepare_vox2_dev(root, tmp_path / "data" / "vox2_dev")
    assert str(err.value) == message
    assert not (tmp_path / "data" / "vox2_dev" / "wav.scp").exists()
    with pytest.raises(PyfuncError, match="but ffmpeg is not installed"):
        convert_m4a_tree(root, tmp_path / "wav")


@needs_ffmpeg
def test_vox2_m4a_decode_and_convert(tmp_path, monkeypatch):
    corpus = make_fake_voxceleb2(tmp_path / "vox2", speakers=2, videos=1, utts=2, as_m4a=True)
    assert all(p.suffix == ".m4a" and p.is_file() for p in corpus.files.values())
    prepare_vox2_dev(tmp_path / "vox2", tmp_path / "data" / "m4a")
    scp = read_scp(tmp_path / "data" / "m4a" / "wav.scp")
    monkeypatch.setattr(audio_module, "_ALLOW_PIPES", True)
    utt = sorted(scp)[0]
    piped = read_audio(scp[utt], where=utt)
    assert 1.4 <= piped.size / 16000 <= 3.2

    aac = tmp_path / "vox2" / "dev" / "aac"
    wav = tmp_path / "vox2" / "dev" / "wav"
    report = convert_m4a_tree(aac, wav, num_jobs=2)
    assert (report.converted, report.skipped) == (4, 0)
    converted = wav / (utt + ".wav")
    info = soundfile.info(converted)
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    np.testing.assert_allclose(read_audio(str(converted)), piped, atol=1e-4)
    assert not list(wav.rglob(".*"))  # no temporary files left
    assert convert_m4a_tree(aac, wav).skipped == 4

    out = tmp_path / "data" / "vox2_dev"
    prepare_vox2_dev(tmp_path / "vox2", out)  # auto: every m4a has its wav
    data = validate_data_dir(out)
    assert data.wav_scp[utt] == str(converted) and data.utt2dur[utt] == pytest.approx(info.duration, abs=1e-3)
    converted.unlink()
    with pytest.raises(DataError, match="1 m4a have no wav"):
        prepare_vox2_dev(tmp_path / "vox2", out)
    assert len(prepare_vox2_dev(tmp_path / "vox2", out, audio="wav").utts) == 3
    assert len(prepare_vox2_dev(tmp_path / "vox2", out, audio="m4a").utts) == 4


@needs_ffmpeg
def test_convert_m4a_reports_failures(tmp_path):
    _fake_m4a_tree(tmp_path / "vox2")
    with pytest.raises(DataError, match=r"8 of 8 conversions failed, e\.g\. .*00001\.m4a: ffmpeg exited with code"):
        convert_m4a_tree(tmp_path / "vox2", tmp_path / "wav", num_jobs=2)
    assert not list((tmp_path / "wav").rglob("*.wav")) and not list((tmp_path / "wav").rglob(".*"))


# ----------------------------------------------------------------------------------------------
# MUSAN and RIRS_NOISES


def test_prepare_musan_whole_files(tmp_path):
    musan = make_fake_musan(tmp_path / "corpora", files_per_source=2, seconds=3.0)
    assert musan == tmp_path / "corpora" / "musan"
    out = prepare_musan(tmp_path / "corpora", tmp_path / "data", segment_seconds=0)
    expected = {"noise": ("free-sound", "sound-bible"), "music": ("fma", "rfm"), "speech": ("librivox", "us-gov")}
    for category, sources in expected.items():
        data = validate_data_dir(tmp_path / "data" / f"musan_{category}")
        utts = sorted(f"{category}-{s}-{i:04d}" for s in sources for i in range(2))
        assert data.utts == utts and out[category].utts == utts
        assert data.utt2spk == {u: u for u in utts}
        assert data.wav_scp[utts[0]] == str(musan / category / sources[0] / f"{utts[0]}.wav")
        assert all(d == pytest.approx(3.0) for d in data.utt2dur.values())
        assert not (tmp_path / "data" / f"musan_{category}" / "segments").exists()
    again = prepare_musan(musan, tmp_path / "data2", segment_seconds=0)  # the musan folder itself works too
    assert again["noise"].wav_scp == out["noise"].wav_scp
    shutil.rmtree(musan / "music")
    with pytest.raises(DataError, match="not a MUSAN folder"):
        prepare_musan(musan, tmp_path / "data3")
    # The seed's split needs files longer than 5 s: 3 s files give no segment, which is an error.
    with pytest.raises(DataError, match=r"noise: no file longer than 5 s"):
        prepare_musan(make_fake_musan(tmp_path / "short", files_per_source=1, seconds=3.0), tmp_path / "data4")


def test_prepare_musan_splits_like_the_seed(tmp_path):
    """voxceleb_trainer's musan_split: ``for st in range(0, len(aud) - 80000, 48000): aud[st:st + 80000]``.
    By hand: 5.0 s -> none; 5.001 s and 8.0 s -> [0, 5); 8.001 s -> [0, 5), [3, 8); 11.5 s -> 0, 3 and 6 s."""
    lengths = {"noise": {"noise-a": 5.0, "noise-b": 5.001, "noise-c": 11.5}, "music": {"music-a": 8.0},
               "speech": {"speech-a": 8.001, "speech-b": 4.0}}
    rng = np.random.default_rng(0)
    for category, files in lengths.items():
        for stem, seconds in files.items():
            path = tmp_path / "musan" / category / "src" / f"{stem}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(path, 0.1 * rng.standard_normal(round(seconds * 16000)), 16000, subtype="FLOAT")
    prepare_musan(tmp_path / "musan", tmp_path / "data")
    expected = {"noise": {"noise-b-0000000": ("noise-b", 0, 5), "noise-c-0000000": ("noise-c", 0, 5),
                          "noise-c-0000300": ("noise-c", 3, 8), "noise-c-0000600": ("noise-c", 6, 11)},
                "music": {"music-a-0000000": ("music-a", 0, 5)},
                "speech": {"speech-a-0000000": ("speech-a", 0, 5), "speech-a-0000300": ("speech-a", 3, 8)}}
    for category, segments in expected.items():
        folder = tmp_path / "data" / f"musan_{category}"
        data = validate_data_dir(folder)
        lines = [line.split() for line in (folder / "segments").read_text().splitlines()]
        assert {u: (r, float(s), float(e)) for u, r, s, e in lines} == segments
        assert data.utt2spk == {u: u for u in segments}
        assert data.utt2dur == {u: 5.0 for u in segments}
        recordings = {r for r, _, _ in segments.values()}  # files without a segment are left out of wav.scp
        assert data.wav_scp == {r: str(tmp_path / "musan" / category / "src" / f"{r}.wav") for r in recordings}
    # A segmented dir must stay consistent: a recording of wav.scp without segments is refused, as Kaldi does.
    folder = tmp_path / "data" / "musan_noise"
    (folder / "wav.scp").write_text((folder / "wav.scp").read_text() + "noise-z /x.wav\n")
    with pytest.raises(DataError, match=r"segments: 1 recording\(s\) of wav.scp have no segment"):
        validate_data_dir(folder, check_wavs=False)


def test_prepare_rirs(tmp_path):
    base = make_fake_rirs(tmp_path / "corpora", rooms=2, rirs_per_room=2)
    data = prepare_rirs(tmp_path / "corpora", tmp_path / "data" / "rirs")
    checked = validate_data_dir(tmp_path / "data" / "rirs")
    utts = sorted(f"{t}-Room{r:03d}-{k:05d}" for t in ("smallroom", "mediumroom", "largeroom")
                  for r in (1, 2) for k in (1, 2))
    assert checked.utts == utts == data.utts
    assert checked.utt2spk == {u: u for u in utts}
    assert checked.wav_scp["largeroom-Room002-00001"] == str(
        base / "simulated_rirs" / "largeroom" / "Room002" / "Room002-00001.wav")
    assert all(d == pytest.approx(0.3) for d in checked.utt2dur.values())
    assert prepare_rirs(base, tmp_path / "data" / "rirs2").wav_scp == data.wav_scp
    with pytest.raises(DataError, match="no simulated_rirs"):
        prepare_rirs(tmp_path, tmp_path / "data" / "rirs3")


# ----------------------------------------------------------------------------------------------
# Command-line scripts


def _run_local(script: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(REPO / "egs" / "voxceleb" / "local" / script), *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=REPO)


def test_cli_prepare_everything(tmp_path):
    vox1 = make_fake_voxceleb1(tmp_path / "vox1", speakers=3, videos=2, utts=2, test_speakers=1)
    make_fake_voxceleb2(tmp_path / "vox2", speakers=2, videos=1, utts=2)
    make_fake_trial_list(tmp_path / "vox1" / "veri_test2.txt", vox1, n=8)
    make_fake_musan(tmp_path / "corpora", files_per_source=1, seconds=1.0)
    make_fake_rirs(tmp_path / "corpora", rooms=1, rirs_per_room=1)
    data = tmp_path / "data"
    result = _run_local("prepare_voxceleb.py", "--vox2-root", tmp_path / "vox2", "--vox1-root",
                  tmp_path / "vox1" / "vox1_dev_wav", tmp_path / "vox1" / "vox1_test_wav",
                  "--meta-dir", tmp_path / "vox1", "--data", data, "--nj", "1")
    assert result.returncode == 0, result.stderr
    assert "list_test_all2.txt not found" in result.stderr
    assert len(validate_data_dir(data / "vox2_dev").utts) == 4
    assert len(validate_data_dir(data / "vox1").utts) == 12
    assert len(read_trials(data / "vox1" / "trials" / "vox1_o")) == 8
    assert len(validate_data_dir(data / "vox1_o").utts) <= 12 and (data / "vox1_o" / "trials").is_file()
    # what stage 3 embeds: the utterances of the lists made (here Vox1-O only), not all of VoxCeleb1
    needed = sorted({u for e, t, _ in read_trials(data / "vox1" / "trials" / "vox1_o") for u in (e, t)})
    assert validate_data_dir(data / "vox1_eval").utts == needed and not (data / "vox1_eval" / "trials").exists()
    assert _run_local("prepare_musan.py", "--nj", "1", "--segment-seconds", "0", tmp_path / "corpora",
                      data).returncode == 0
    assert len(validate_data_dir(data / "musan_speech").utts) == 2
    assert _run_local("prepare_rirs.py", tmp_path / "corpora", data / "rirs").returncode == 0
    assert len(validate_data_dir(data / "rirs").utts) == 3


def test_cli_errors_exit_1(tmp_path):
    result = _run_local("prepare_voxceleb.py", "--vox1-root", tmp_path / "missing", "--data", tmp_path / "data")
    assert result.returncode == 1
    assert f"error: {tmp_path / 'missing'}: folder not found" in result.stderr
    assert "Traceback" not in result.stderr
    result = _run_local("convert_m4a.py", tmp_path, tmp_path / "wav")
    assert result.returncode == 1 and "no .m4a files found" in result.stderr
