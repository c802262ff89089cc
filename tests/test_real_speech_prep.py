"""Stage 0 of egs/real_speech on tiny fake corpora: git repositories made here, in each corpus's layout."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "egs" / "real_speech" / "local"))

import real_corpora  # noqa: E402
import word_examples  # noqa: E402
from real_corpora import CORPORA, Requirements, fetch_corpus, scan_dsp  # noqa: E402
from real_sets import PrepConfig, SetSizes, prepare_data  # noqa: E402

from pyfunc.data.datadir import load_data_dir, validate_data_dir  # noqa: E402
from pyfunc.data.tables import read_map  # noqa: E402
from pyfunc.data.trials import read_trials  # noqa: E402
from pyfunc.errors import DataError  # noqa: E402

RATE = 16000
DSP_SPEAKERS = ["15300000001", "15300000002", "15300000003", "15300000004", "15300000005"]
AR_SPEAKERS = [f"{i:08d}" for i in range(1, 6)]
AR_WORDS = ["backward", "cancel", "yes", "zoom in"]
TINY_REQ = Requirements(dsp_speakers=5, dsp_files_per_speaker=12, arabic_speakers=5, arabic_files_per_speaker=12,
                        words_per_speaker=4, libri_test_speakers=3, libri_test_utts_per_speaker=3,
                        libri_train_speakers=4, esc_clips=4, background_noises=2)
TINY_SIZES = SetSizes(dsp_dev=1, dsp_test=2, arabic_dev=1, arabic_test=2, train_words=4, test_words=2, enrol_utts=2,
                      test_utts=2, simulated_rooms=1, music=1)


def word(seed: int, f0: float, rate: int = RATE) -> np.ndarray:
    """0.3 s of faint noise, 0.4 s of a tone, 0.3 s of faint noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.4 * rate)) / rate
    tone = 0.5 * np.sin(2 * np.pi * f0 * t) * np.hanning(t.size)
    quiet = lambda: 0.001 * rng.standard_normal(int(0.3 * rate))  # noqa: E731
    return np.concatenate([quiet(), tone, quiet()])


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


def commit_all(root: Path, message: str = "data") -> str:
    if not (root / ".git").exists():
        git("init", "-q", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", message, cwd=root)
    return git("rev-parse", "HEAD", cwd=root)


def make_dsp(root: Path, speakers: list[str] = DSP_SPEAKERS, reps: int = 3) -> Path:
    for s, speaker in enumerate(speakers):
        for w in range(4):
            for r in range(1, reps + 1):
                path = root / "speech_data" / speaker / f"{speaker}-{w:02d}-{r:02d}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                soundfile.write(path, word(s * 100 + w * 10 + r, 150 + 40 * s + 15 * w), RATE, subtype="PCM_16")
    (root / "LICENSE").write_text("MIT\n")
    return root


def make_arabic(root: Path) -> Path:
    for s, speaker in enumerate(AR_SPEAKERS):
        for w, keyword in enumerate(AR_WORDS):
            for r in range(1, 4):
                path = root / "dataset" / keyword / f"{speaker}_NO_{r:02d}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                soundfile.write(path, word(1000 + s * 100 + w * 10 + r, 170 + 30 * s + 11 * w), RATE)
    (root / "background_noise").mkdir()
    for seed, name in enumerate(("boiler", "street")):
        noise = 0.1 * np.random.default_rng(seed).standard_normal(RATE)
        soundfile.write(root / "background_noise" / f"{name}.wav", noise, RATE)
    return root


def make_libri(root: Path) -> Path:
    test = root / "audio_data" / "librispeech_test-other"
    for s, speaker in enumerate(["367", "533", "1688"]):
        for n in range(3):
            path = test / speaker / f"{speaker}-1000-{n:04d}.flac"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(path, word(2000 + 10 * s + n, 120 + 50 * s), RATE, format="FLAC")
    train = root / "audio_data" / "librispeech_train-clean-100"
    train.mkdir(parents=True)
    for s, speaker in enumerate(["103", "1034", "1040", "1069"]):
        soundfile.write(train / f"{speaker}-1240-0000.flac", word(3000 + s, 140 + 30 * s), RATE, format="FLAC")
    return root


def make_esc(root: Path) -> Path:
    for folder in ("001 - Dog bark", "002 - Rain", "004 - Baby cry", "006 - Person sneeze"):
        (root / folder).mkdir(parents=True)
        for n in range(2):
            noise = 0.2 * np.random.default_rng(n).standard_normal(44100 // 2)
            soundfile.write(root / folder / f"1-{n}-A.ogg", noise, 44100, format="OGG", subtype="VORBIS")
    return root


def make_irs(root: Path) -> Path:
    folder = root / "pymixconsole" / "irs"
    folder.mkdir(parents=True)
    for i, name in enumerate(("hall", "large_room", "medium_room", "small_room", "plate")):
        decay = np.random.default_rng(i).standard_normal((4410, 2)) * np.exp(-np.arange(4410) / 800)[:, None]
        soundfile.write(folder / f"{name}.wav", np.concatenate([np.zeros((441, 2)), decay]), 44100)
    return root


MAKERS = {"dsp": make_dsp, "arabic": make_arabic, "librispeech": make_libri, "esc10": make_esc, "irs": make_irs}


@pytest.fixture(scope="module")
def fake_repos(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """Each corpus as a git repository whose commit holds the data, and a later commit that deletes it."""
    out = {}
    for key, make in MAKERS.items():
        root = tmp_path_factory.mktemp(key)
        make(root)
        pinned = commit_all(root, "data")
        git("rm", "-r", "-q", ".", cwd=root)
        (root / "README.md").write_text("moved\n")
        commit_all(root, "data gone")  # as for ESC-10: the clips are only in the pinned commit
        out[key] = (root, pinned)
    return out


def pinned(key: str, commit: str) -> real_corpora.Corpus:
    return dataclasses.replace(CORPORA[key], commit=commit)


@pytest.fixture(scope="module")
def prepared(fake_repos, tmp_path_factory) -> Path:
    downloads = tmp_path_factory.mktemp("downloads")
    data = tmp_path_factory.mktemp("data") / "data"
    checkouts = {key: fetch_corpus(pinned(key, commit), downloads, source=str(root))
                 for key, (root, commit) in fake_repos.items()}
    prepare_data(data, checkouts, PrepConfig(TINY_REQ, TINY_SIZES), num_jobs=1)
    return data


# ----------------------------------------------------------------------------------------------
# Trimming and joining words


def test_speech_span_finds_the_tone_within_a_frame():
    rule = word_examples.TrimRule(margin=0.0)
    t = np.arange(int(0.6 * RATE)) / RATE
    tone = 0.3 * np.sin(2 * np.pi * 300 * t)
    signal = np.concatenate([np.zeros(8000), tone, np.zeros(8000)])
    start, end = word_examples.speech_span(signal, RATE, rule)
    frame = int(rule.frame * RATE)
    assert abs(start - 8000) <= frame and abs(end - (8000 + tone.size)) <= frame
    # a click well before the word is not the word; the margin widens the span on both sides
    clicked = signal.copy()
    clicked[1000:1040] = 0.9
    assert word_examples.speech_span(clicked, RATE, rule) == (start, end)
    wide = word_examples.speech_span(signal, RATE, word_examples.TrimRule(margin=0.05))
    assert wide == (start - 800, end + 800)


def test_join_words_uses_the_quietest_stretch_as_gap():
    loud, quiet = 0.5 * np.ones(1600), 0.001 * np.ones(3200)
    recording = np.concatenate([loud, quiet, loud])
    gap = word_examples.quietest_window(recording, 1600)
    assert gap.size == 1600 and np.max(np.abs(gap)) <= 0.001
    joined = word_examples.join_words([loud, loud], [gap])
    assert joined.size == 3 * 1600 and abs(joined[0]) < 0.01 and np.max(np.abs(joined[1600:3200])) <= 0.001


def test_esc_clip_at_44k_is_resampled_to_16k(tmp_path):
    t = np.arange(44100) / 44100
    soundfile.write(tmp_path / "clip.ogg", 0.5 * np.sin(2 * np.pi * 1000 * t), 44100, format="OGG", subtype="VORBIS")
    seconds = word_examples.convert_file(str(tmp_path / "clip.ogg"), str(tmp_path / "clip.wav"), "ESC-10")
    info = soundfile.info(tmp_path / "clip.wav")
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert abs(info.frames - 16000) <= 1 and seconds == pytest.approx(1.0, abs=1e-3)
    samples, _ = soundfile.read(tmp_path / "clip.wav")
    assert np.argmax(np.abs(np.fft.rfft(samples))) * 16000 / samples.size == pytest.approx(1000, abs=2)


# ----------------------------------------------------------------------------------------------
# Getting the corpora


def test_clone_at_the_pinned_commit_and_reuse(fake_repos, tmp_path, caplog):
    root, commit = fake_repos["irs"]
    corpus = pinned("irs", commit)
    checkout = fetch_corpus(corpus, tmp_path, source=str(root))
    assert checkout.commit == commit and checkout.root == tmp_path / "pymixconsole"
    assert git("rev-parse", "HEAD", cwd=checkout.root) == commit
    assert (checkout.root / "pymixconsole" / "irs" / "hall.wav").is_file()  # gone from the repository's HEAD
    with caplog.at_level(logging.INFO):
        fetch_corpus(corpus, tmp_path, source=str(root))
    assert "already at" in caplog.text


def test_mirror_without_the_commit_is_refused_by_name(fake_repos, tmp_path):
    root, _ = fake_repos["esc10"]
    mirror = tmp_path / "mirror"
    subprocess.run(["git", "clone", "-q", "--bare", str(root), str(mirror / "karolpiczak+ESC-10" / "repo")],
                   check=True)
    missing = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(DataError, match=f"ESC-10: .* does not hold the pinned commit {missing}"):
        fetch_corpus(pinned("esc10", missing), tmp_path / "dl", mirror=mirror)
    with pytest.raises(DataError, match="DSPSpeech-20: no git repository of zhongyuchen/DSPSpeech-20 in the mirror"):
        fetch_corpus(CORPORA["dsp"], tmp_path / "dl", mirror=mirror)


def test_partial_mirror_leaves_absent_blobs_out(fake_repos, tmp_path):
    root, commit = fake_repos["arabic"]
    mirror = tmp_path / "mirror" / "arabic-speech-commands-dataset.git"
    git("init", "-q", "--bare", str(mirror), cwd=tmp_path)
    git("push", "-q", str(mirror), f"{commit}:refs/heads/main", cwd=root)  # few objects: stored loose
    blob = git("rev-parse", f"{commit}:background_noise/street.wav", cwd=root)
    (mirror / "objects" / blob[:2] / blob[2:]).unlink()
    checkout = fetch_corpus(pinned("arabic", commit), tmp_path / "dl", mirror=tmp_path / "mirror")
    assert checkout.absent == ["background_noise/street.wav"]
    assert sorted(p.name for p in (checkout.root / "background_noise").iterdir()) == ["boiler.wav"]
    assert len(list((checkout.root / "dataset").glob("*/*.wav"))) == 60
    with pytest.raises(DataError, match="arabic-speech-commands: 1 files found under background_noise/, at least 2"):
        real_corpora.scan_noises(make_esc(tmp_path / "esc"), checkout.root, TINY_REQ)


def test_plain_folder_is_used_as_it_is(tmp_path, caplog):
    make_irs(tmp_path / "irs")
    with caplog.at_level(logging.INFO):
        checkout = fetch_corpus(CORPORA["irs"], tmp_path / "dl", source=str(tmp_path / "irs"))
    assert checkout.commit is None and checkout.root == (tmp_path / "irs").resolve()
    assert "no commit was checked" in caplog.text


def test_short_or_missing_corpus_is_refused_by_name(tmp_path):
    make_dsp(tmp_path / "dsp", DSP_SPEAKERS[:3])
    with pytest.raises(DataError, match="DSPSpeech-20: 3 speakers found under speech_data/, at least 5 needed"):
        scan_dsp(tmp_path / "dsp", TINY_REQ)
    make_dsp(tmp_path / "dsp", DSP_SPEAKERS[3:], reps=2)
    with pytest.raises(DataError, match="DSPSpeech-20: speaker 15300000004 has 8 files, at least 12 needed"):
        scan_dsp(tmp_path / "dsp", TINY_REQ)
    with pytest.raises(DataError, match="pymixconsole impulse responses: .*hall.wav not found"):
        real_corpora.scan_irs(tmp_path, TINY_REQ)
    (tmp_path / "dsp" / "speech_data" / DSP_SPEAKERS[0] / f"{DSP_SPEAKERS[0]}-00-01.wav").write_bytes(b"RIFF junk")
    with pytest.raises(DataError, match="DSPSpeech-20: cannot read audio .*-00-01.wav"):
        scan_dsp(tmp_path / "dsp", TINY_REQ)


def test_cli_refuses_a_source_without_the_pinned_commit(fake_repos, tmp_path):
    root, _ = fake_repos["dsp"]
    result = subprocess.run([sys.executable, str(REPO / "egs/real_speech/local/prepare_data.py"), "--source",
                             f"DSPSpeech-20={root}", "--download-dir", str(tmp_path / "dl"), "--data",
                             str(tmp_path / "data")], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 1
    assert f"error: DSPSpeech-20: {root} does not hold the pinned commit {CORPORA['dsp'].commit}" in result.stderr
    assert not (tmp_path / "data").exists()


# ----------------------------------------------------------------------------------------------
# The data directories


def test_counts_and_formats(prepared):
    expected = {  # speakers, utterances, trials, target trials
        "train": (4, 12, 0, 0), "train_libri": (4, 4, 0, 0), "train_all": (8, 16, 0, 0), "cohort": (8, 12, 0, 0),
        "dev": (2, 8, 8, 8), "test_dsp": (2, 8, 16, 8), "test_arabic": (2, 8, 16, 8), "test_libri": (3, 9, 36, 9),
        "augment/musan_noise": (6, 6, 0, 0), "augment/musan_speech": (4, 4, 0, 0),
        "augment/musan_music": (1, 1, 0, 0), "augment/rirs": (5, 5, 0, 0)}
    for name, (speakers, utts, trials, targets) in expected.items():
        data = validate_data_dir(prepared / name)
        assert (len(data.spk2utt), len(data.utt2spk)) == (speakers, utts), name
        if trials:
            labels = [label for _, _, label in read_trials(prepared / name / "trials")]
            assert (len(labels), sum(labels)) == (trials, targets), name
        else:
            assert not (prepared / name / "trials").exists()
        for path in data.wav_scp.values():
            info = soundfile.info(path)
            assert os.path.isabs(path) and (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    train = load_data_dir(prepared / "train")
    assert sorted(train.spk2utt) == ["ar-00000001", "ar-00000002", "dsp-15300000001", "dsp-15300000002"]
    rows = [line.split() for line in (prepared / "train" / "utt2src").read_text().splitlines()]
    used = [path for row in rows for path in row[1:]]
    assert len(rows) == 12 and len(used) == len(set(used)) == 4 * 12  # every recording of a speaker once
    assert any("/zoom%20in/" in path for path in used)
    assert sorted(read_map(prepared / "augment/rirs/utt2kind").values()).count("measured") == 4
    assert not any("plate" in u for u in load_data_dir(prepared / "augment/rirs").utt2spk)
    noises = load_data_dir(prepared / "augment/musan_noise").utt2spk
    assert not any("baby" in u or "sneeze" in u for u in noises) and "bg-street" in noises
    text = (prepared / "SOURCES.md").read_text()
    assert all(c.url.removesuffix(".git") in text for c in CORPORA.values()) and "CC BY 3.0" in text


def test_speakers_disjoint_and_trials_text_independent(prepared):
    speakers = {name: set(load_data_dir(prepared / name).spk2utt)
                for name in ("train", "dev", "test_dsp", "test_arabic", "test_libri", "train_libri")}
    names = sorted(speakers)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not speakers[a] & speakers[b], (a, b)
    for name in ("dev", "test_dsp", "test_arabic"):
        words = {utt: set(line.split()[1:]) for utt, line in
                 ((line.split()[0], line) for line in (prepared / name / "utt2words").read_text().splitlines())}
        trials = read_trials(prepared / name / "trials")
        for enroll, test, _ in trials:
            assert enroll.endswith(("-e01", "-e02")) and test.endswith(("-t01", "-t02"))
            assert not words[enroll] & words[test], (name, enroll, test)
        utt2spk = load_data_dir(prepared / name).utt2spk
        assert all(label == (utt2spk[e] == utt2spk[t]) for e, t, label in trials)
    assert (prepared / "test_arabic" / "utt2words").read_text().count("zoom_in") > 0


def test_rerun_changes_nothing(prepared, fake_repos):
    stamp = json.loads((prepared / "train" / ".done").read_text())
    downloads = Path(stamp["corpora"]["dsp"]["root"]).parent
    outputs = {p: p.stat().st_mtime_ns for p in [*prepared.glob("*/wav.scp"), *prepared.glob("*/trials")]}
    again = {key: fetch_corpus(pinned(key, commit), downloads, source=str(root))
             for key, (root, commit) in fake_repos.items()}
    prepare_data(prepared, again, PrepConfig(TINY_REQ, TINY_SIZES), num_jobs=1)
    assert {p: p.stat().st_mtime_ns for p in outputs} == outputs


def _status(data: Path, downloads: Path, fake_repos, config: PrepConfig, mini: Path | None = None) -> dict[str, str]:
    """prepare_data.py --status true's lines (real_sets.data_status) as {target: state}, for the fake pins."""
    from real_sets import data_status, status_checkouts

    corpora = {key: pinned(key, commit) for key, (_, commit) in fake_repos.items()}
    lines = data_status(data, status_checkouts(downloads, corpora=corpora), config, mini)
    return {line.split("\t")[0]: line.split("\t")[1] for line in lines}


def test_status_from_the_stamps_without_fetching(prepared, fake_repos, tmp_path):
    """--status true: every part up to date after the prepare (the parameters its stamp would record computed
    from the pins and --download-dir, nothing fetched); a changed parameter or a deleted stamp: to redo / to
    make with the reason; train_all and train_mixed by content; the CLI (the real pins): to redo, nothing written."""
    stamp = json.loads((prepared / "train" / ".done").read_text())
    downloads = Path(stamp["corpora"]["dsp"]["root"]).parent
    config = PrepConfig(TINY_REQ, TINY_SIZES)
    before = {p: p.stat().st_mtime_ns for p in prepared.rglob("*") if p.is_file()}
    parts = ["train", "dev", "test_dsp", "test_arabic", "train_libri", "test_libri", "augment", "train_all"]
    assert _status(prepared, downloads, fake_repos, config) == {str(prepared / p): "up to date" for p in parts}

    other = PrepConfig(TINY_REQ, dataclasses.replace(TINY_SIZES, random_seed=1))
    states = _status(prepared, downloads, fake_repos, other)
    redo = "to redo: its parameters, or what it is made from, changed (or a wav file is missing)"
    assert {states[str(prepared / p)] for p in parts[:-1]} == {redo}
    assert states[str(prepared / "train_all")] == "to redo: train, train_libri made again first"

    done = prepared / "test_dsp" / ".done"
    kept, times = done.read_text(), done.stat()
    done.unlink()
    try:
        states = _status(prepared, downloads, fake_repos, config)
    finally:
        done.write_text(kept)
        os.utime(done, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert states[str(prepared / "test_dsp")] == f"to make: {done} is missing"
    assert [p for p in parts if states[str(prepared / p)] != "up to date"] == ["test_dsp"]

    absent = _status(prepared, downloads, fake_repos, config, tmp_path / "no_mini")[str(prepared / "train_mixed")]
    assert absent == f"to make: {tmp_path / 'no_mini' / 'train_wide'} is missing (stage 0 synthesises the mini " \
        "corpus's train_wide there)"
    mini = tmp_path / "mini"  # train_mixed: up to date when it is the union of train_all and MINI/train_wide
    (mini / "train_wide").mkdir(parents=True)
    (mini / "train_wide" / "wav.scp").write_text(f"w1 {mini / 'w1.wav'}\n")
    (mini / "train_wide" / "utt2spk").write_text("w1 sw\n")
    mixed = str(prepared / "train_mixed")
    assert _status(prepared, downloads, fake_repos, config, mini)[mixed] == \
        f"to make: {prepared / 'train_mixed' / 'utt2spk'} is missing"
    from pyfunc.features.augment_offline import combine_data_dirs

    combine_data_dirs(prepared / "train_mixed", [prepared / "train_all", mini / "train_wide"])
    try:
        assert _status(prepared, downloads, fake_repos, config, mini)[mixed] == "up to date"
        (mini / "train_wide" / "wav.scp").write_text(f"w2 {mini / 'w2.wav'}\n")
        (mini / "train_wide" / "utt2spk").write_text("w2 sw\n")
        assert _status(prepared, downloads, fake_repos, config, mini)[mixed].startswith(
            "to redo: its wav.scp/utt2spk are not the union of ")
    finally:
        shutil.rmtree(prepared / "train_mixed")  # the shared prepared data as it was

    cli = subprocess.run([sys.executable, str(REPO / "egs/real_speech/local/prepare_data.py"), "--status", "true",
                          "--download-dir", str(downloads), "--data", str(prepared)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert cli.returncode == 0, cli.stderr
    rows = dict(line.split("\t")[:2] for line in cli.stdout.splitlines())
    assert rows[str(prepared / "train")] == redo  # the real pins, not the fake repositories' commits
    assert {p: p.stat().st_mtime_ns for p in prepared.rglob("*") if p.is_file()} == before


def test_training_augmenter_reads_the_augment_folder(prepared):
    from pyfunc.config import AugmentConfig
    from pyfunc.features.augment import WaveAugmenter

    augmenter = WaveAugmenter.from_config(AugmentConfig(enabled=True, musan_dir=str(prepared / "augment"),
                                                        rir_dir=str(prepared / "augment" / "rirs")))
    assert {name: len(sources) for name, sources in augmenter.sources.items()} == {
        "rir": 5, "speech": 4, "music": 1, "noise": 6}
    speech = word(7, 200)
    for kind in ("reverb", "babble", "music", "noise", "television"):
        out = augmenter.apply(speech, augmenter.draw_spec(np.random.default_rng(0), kind))
        assert out.shape == speech.shape and np.isfinite(out).all(), kind


def test_stage0_status_of_the_copied_test_unseen_lists(tmp_path: Path) -> None:
    """DATA/test_unseen holds the mini test_unseen's lists (local/prepare_data.sh copies them): --status compares."""
    from real_sets import UNSEEN_LISTS, lists_status

    source, copy = tmp_path / "mini" / "test_unseen", tmp_path / "data" / "test_unseen"
    assert lists_status(source, copy).startswith(f"to make: {source} is missing")
    source.mkdir(parents=True)
    for name in UNSEEN_LISTS:
        (source / name).write_text(f"{name} line\n")
    assert lists_status(source, copy) == f"to make: {copy / 'wav.scp'} is not {source / 'wav.scp'}"
    copy.mkdir(parents=True)
    for name in UNSEEN_LISTS:
        (copy / name).write_text(f"{name} line\n")
    assert lists_status(source, copy) == "up to date"
    (source / "trials").write_text("a b target\n")
    assert lists_status(source, copy) == f"to redo: {copy / 'trials'} is not {source / 'trials'}"
