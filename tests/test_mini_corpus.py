"""The espeak-ng mini corpus: determinism, audio format, durations, data dirs, trials, speakers."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import soundfile
from mini_corpus import mini
from mini_corpus.espeak import run_espeak
from mini_corpus.mini import (
    SpeakerSpec,
    SynthesisError,
    make_mini_corpus,
    make_speaker_specs,
    make_trials,
    make_utterance,
    read_speaker_specs,
)

from pyfunc.data.datadir import load_data_dir, validate_data_dir
from pyfunc.data.tables import read_map, read_scp
from pyfunc.data.trials import read_trials

REPO = Path(__file__).resolve().parents[1]
HAVE_ESPEAK = shutil.which("espeak-ng") is not None
needs_espeak = pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is not installed")

TINY = dict(num_train_speakers=3, num_test_speakers=2, utts_per_speaker=4, random_seed=5)
LISTS = ("train/wav.scp", "train/utt2spk", "train/spk2utt", "train/utt2dur", "train/text",
         "test/wav.scp", "test/utt2spk", "test/spk2utt", "test/utt2dur", "test/text", "test/trials", "speakers.txt")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    if not HAVE_ESPEAK:
        pytest.skip("espeak-ng is not installed")
    root = tmp_path_factory.mktemp("mini") / "a"
    make_mini_corpus(root, num_jobs=2, **TINY)
    return root


def _digest(root: Path) -> dict[str, str]:
    """sha256 of every list (with the root path taken out) and every wav, by relative path."""
    out = {}
    for name in LISTS:
        out[name] = hashlib.sha256((root / name).read_bytes().replace(str(root).encode(), b"ROOT")).hexdigest()
    for wav in sorted((root / "wav").rglob("*.wav")):
        out[str(wav.relative_to(root))] = hashlib.sha256(wav.read_bytes()).hexdigest()
    return out


@needs_espeak
def test_same_seed_gives_identical_files_whatever_num_jobs(corpus: Path, tmp_path: Path) -> None:
    again = tmp_path / "b"
    make_mini_corpus(again, num_jobs=1, **TINY)
    first, second = _digest(corpus), _digest(again)
    assert len([k for k in first if k.endswith(".wav")]) == 3 * 4 + 2 * 4
    assert first == second
    other = tmp_path / "c"
    make_mini_corpus(other, num_jobs=1, **{**TINY, "random_seed": 6})
    third = _digest(other)
    assert all(first[k] != third[k] for k in first if k.endswith(".wav"))


@needs_espeak
def test_audio_is_16k_mono_int16_within_duration_range_and_noisy(corpus: Path) -> None:
    for subset in ("train", "test"):
        data = load_data_dir(corpus / subset)
        for utt, path in data.wav_scp.items():
            assert Path(path).is_absolute() and Path(path) == corpus / "wav" / data.utt2spk[utt] / f"{utt}.wav"
            info = soundfile.info(path)
            assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "WAV")
            samples, _ = soundfile.read(path, dtype="float64")
            assert 1.5 <= len(samples) / 16000 <= 6.0
            assert data.utt2dur[utt] == pytest.approx(len(samples) / 16000, abs=1e-3)
            peak = np.max(np.abs(samples))
            assert 0.2 <= peak <= 0.95
            # The first 50 ms lie in the leading pad: white noise only, 30-40 dB below the speech.
            lead = samples[:800]
            assert np.count_nonzero(lead) > 700
            snr = 10 * np.log10(np.mean(samples ** 2) / np.mean(lead ** 2))
            assert 27.0 < snr < 43.0, (utt, snr)


@needs_espeak
def test_data_dirs_validate_and_ids_follow_kaldi_convention(corpus: Path) -> None:
    train = validate_data_dir(corpus / "train")
    test = validate_data_dir(corpus / "test")
    assert sorted(train.spk2utt) == ["tr001", "tr002", "tr003"]
    assert sorted(test.spk2utt) == ["te001", "te002"]
    for data in (train, test):
        assert all(len(utts) == 4 for utts in data.spk2utt.values())
        assert all(utt.startswith(spk + "-") for utt, spk in data.utt2spk.items())
    texts = read_scp(corpus / "test" / "text")
    assert set(texts) == set(test.utt2spk) and all(t.endswith((".", "?")) for t in texts.values())
    stamp = json.loads((corpus / ".done").read_text())
    assert stamp["seed"] == 5 and stamp["num_train_speakers"] == 3 and stamp["test_utts_per_speaker"] == 4


@needs_espeak
def test_trials_hold_all_target_pairs_and_only_known_utterances(corpus: Path) -> None:
    utt2spk = read_map(corpus / "test" / "utt2spk")
    trials = read_trials(corpus / "test" / "trials")
    pairs = [(e, t) for e, t, _ in trials]
    assert len(set(pairs)) == len(pairs)
    for enroll, test, label in trials:
        assert enroll in utt2spk and test in utt2spk and enroll != test
        assert label == (utt2spk[enroll] == utt2spk[test])
    targets = {frozenset(p) for p, (_, _, lab) in zip(pairs, trials) if lab}
    expected = {frozenset(p) for spk in ("te001", "te002")
                for p in combinations([u for u in utt2spk if utt2spk[u] == spk], 2)}
    assert targets == expected and len(expected) == 12
    # 2 x 12 non-targets asked for, but only 4 x 4 = 16 cross-speaker pairs exist.
    assert sum(not lab for *_, lab in trials) == 16


def test_make_trials_counts_and_determinism() -> None:
    spk2utt = {f"s{i}": [f"s{i}-{j}" for j in range(5)] for i in range(6)}
    trials = make_trials(spk2utt, random_seed=3)
    targets = [t for t in trials if t[2]]
    nontargets = [t for t in trials if not t[2]]
    assert len(targets) == 6 * 10 and len(nontargets) == 120
    assert all(e.split("-")[0] != t.split("-")[0] for e, t, _ in nontargets)
    assert len({(e, t) for e, t, _ in trials}) == 180 and trials == sorted(trials)
    assert make_trials(spk2utt, random_seed=3) == trials and make_trials(spk2utt, random_seed=4) != trials


def test_default_speakers_are_distinct_spread_and_disjoint() -> None:
    train, test = make_speaker_specs(100, 20, random_seed=777)
    assert len(train) == 100 and len(test) == 20
    specs = train + test
    assert len({s.speaker for s in specs}) == 120
    assert {s.speaker for s in train}.isdisjoint({s.speaker for s in test})
    assert len({(s.variant, s.accent) for s in specs}) == 120
    assert {s.combination for s in train}.isdisjoint({s.combination for s in test})
    assert len({s.variant for s in specs[:len(mini.VARIANTS)]}) == len(mini.VARIANTS)
    assert all(s.accent in mini.ACCENTS and s.variant in mini.VARIANTS for s in specs)
    pitches = sorted(s.pitch for s in specs)
    rates = sorted(s.rate for s in specs)
    assert pitches[0] <= 22 and pitches[-1] >= 78 and rates[0] <= 128 and rates[-1] >= 212
    assert len(set(pitches)) >= 50 and len(set(rates)) >= 70
    assert make_speaker_specs(100, 20, random_seed=777) == (train, test)
    assert make_speaker_specs(100, 20, random_seed=778) != (train, test)


@needs_espeak
def test_speakers_file_matches_specs(corpus: Path) -> None:
    train, test = make_speaker_specs(3, 2, random_seed=5)
    assert read_speaker_specs(corpus / "speakers.txt") == train + test


@needs_espeak
def test_stamp_skips_work_and_changed_parameters_rebuild(tmp_path: Path) -> None:
    root = tmp_path / "mini"
    small = dict(num_train_speakers=3, num_test_speakers=2, utts_per_speaker=2, random_seed=1)
    make_mini_corpus(root, num_jobs=1, **small)
    wav = root / "wav" / "tr001" / "tr001-001.wav"
    before = wav.stat().st_mtime_ns
    # Same parameters: nothing is done, so not even espeak-ng is needed.
    make_mini_corpus(root, num_jobs=2, espeak="/nonexistent/espeak-ng", **small)
    assert wav.stat().st_mtime_ns == before
    # A missing wav file makes the stamp void.
    (root / "wav" / "te002" / "te002-002.wav").unlink()
    make_mini_corpus(root, num_jobs=1, **small)
    assert (root / "wav" / "te002" / "te002-002.wav").is_file()
    (root / "train" / "feats.scp").write_text("tr001-001 x.ark:1\n")
    make_mini_corpus(root, num_jobs=1, **{**small, "num_train_speakers": 2})
    assert not (root / "train" / "feats.scp").exists()
    assert not (root / "wav" / "tr003").exists()
    assert sorted(load_data_dir(root / "train").spk2utt) == ["tr001", "tr002"]
    assert json.loads((root / ".done").read_text())["num_train_speakers"] == 2


def test_missing_espeak_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SynthesisError, match="espeak-ng not found.*apt-get install espeak-ng"):
        make_mini_corpus(tmp_path / "mini", espeak="/nonexistent/espeak-ng", **TINY)
    with pytest.raises(SynthesisError, match="speaker x: espeak-ng not found"):
        run_espeak(["/nonexistent/espeak-ng", "--stdout", "hello"], "speaker x")


def test_failing_synthesis_names_speaker_utterance_and_command() -> None:
    false = shutil.which("false")
    if false is None:
        pytest.skip("no 'false' command")
    spec = SpeakerSpec("tr007", "train", 6, "en-us", "m3", 50, 160, 1)
    with pytest.raises(SynthesisError, match=r"speaker tr007 \(en-us\+m3\), utterance 3: .*exited with code 1.*"
                                             r"command: .*false -v en-us\+m3"):
        make_utterance(spec, 3, random_seed=0, espeak=false)


@needs_espeak
def test_failure_in_a_parallel_job_stops_the_run(tmp_path: Path) -> None:
    fake = tmp_path / "espeak-ng"
    fake.write_text(f'#!/bin/sh\ncase "$1" in --voices=*) exec {shutil.which("espeak-ng")} "$@";; esac\n'
                    'echo "synthesis broke" >&2\nexit 3\n')
    fake.chmod(0o755)
    with pytest.raises(SynthesisError, match=r"speaker t[re]\d+ \(.*\), utterance 1: espeak-ng exited with code 3: "
                                             r"synthesis broke; command: .*espeak-ng -v"):
        make_mini_corpus(tmp_path / "mini", num_jobs=2, espeak=str(fake), **TINY)
    assert not (tmp_path / "mini" / ".done").exists()


def test_bad_parameters_are_config_errors(tmp_path: Path) -> None:
    from pyfunc.errors import ConfigError

    with pytest.raises(ConfigError, match="num_test_speakers"):
        make_mini_corpus(tmp_path, num_train_speakers=3, num_test_speakers=1)
    with pytest.raises(ConfigError, match="at most"):
        make_speaker_specs(len(mini.VARIANTS) * len(mini.ACCENTS), 1, random_seed=0)


@needs_espeak
def test_too_long_utterances_are_cut_to_the_maximum() -> None:
    spec = SpeakerSpec("tr001", "train", 0, "en", "m1", 50, 140, 2)
    text, audio = make_utterance(spec, 1, random_seed=0, min_duration=0.5, max_duration=1.2)
    assert text and 0.5 * 16000 <= len(audio) <= 1.2 * 16000
    _, again = make_utterance(spec, 1, random_seed=0, min_duration=0.5, max_duration=1.2)
    assert np.array_equal(audio, again)


def test_cli_reports_errors_and_exits_1(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "local" / "make_mini_corpus.py"), "--data-root", str(tmp_path / "mini"),
         "--espeak", "/nonexistent/espeak-ng", "--train-speakers", "2", "--test-speakers", "2",
         "--utts-per-speaker", "2"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and "espeak-ng not found" in proc.stderr
    assert not (tmp_path / "mini" / ".done").exists()
