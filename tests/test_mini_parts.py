"""Stage 0 beyond the original mini corpus: voice partition, texts, noises, rooms, banks, degraded sets."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import soundfile
from mini_corpus import banks, mini_parts
from mini_corpus.banks import BankSize
from mini_corpus.degrade import mix_at_snr, read_conditions
from mini_corpus.espeak import SynthesisError
from mini_corpus.mini import make_mini_corpus
from mini_corpus.mini_parts import make_mini_parts
from mini_corpus.texts import FUNCTION_WORDS, GENERATORS, NATURE, STORY, TRAIN_GENERATORS, template_fields, tokens
from mini_corpus.voices import (
    HELD_OUT_VARIANTS,
    PITCH_JITTER,
    RATE_JITTER,
    UNSEEN_PITCH,
    UNSEEN_RATE,
    VARIANTS,
    WIDE_PITCH,
    WIDE_RATE,
    draw_speakers,
    make_speaker_specs,
    voice_partition,
)

from pyfunc.config import AugmentConfig
from pyfunc.corpora.noises import NOISE_KINDS, make_music, make_noise
from pyfunc.corpora.parts import read_part_stamp
from pyfunc.corpora.rooms import MIN_DISTANCE, ROOM_CLASSES, WALL_MARGIN, draw_room, simulate_rir
from pyfunc.data.datadir import load_data_dir, validate_data_dir
from pyfunc.data.tables import read_map, read_scp, read_text_table
from pyfunc.data.trials import read_trials
from pyfunc.features.augment import AUG_TYPES, WaveAugmenter, level_db, snr_db

REPO = Path(__file__).resolve().parents[1]
HAVE_ESPEAK = shutil.which("espeak-ng") is not None
needs_espeak = pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is not installed")

TINY_BANKS = {"augment": BankSize(noise=9, music=2, babble=4, rooms=3),
              "test_hard": BankSize(noise=4, music=0, babble=3, rooms=3),
              "dev": BankSize(noise=3, music=0, babble=3, rooms=2)}
TINY = dict(random_seed=5, num_train_speakers=3, num_test_speakers=3, utts_per_speaker=4, wide_speakers=8,
            wide_utts_per_speaker=2, unseen_speakers=3, unseen_utts_per_speaker=3, dev_speakers=3,
            dev_utts_per_speaker=3)
NEW = ("test", "train_wide", "test_unseen", "dev", "augment", "test_hard")


@pytest.fixture(scope="module")
def tiny_banks():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(banks, "BANKS_SIZES", TINY_BANKS)
        yield


@pytest.fixture(scope="module")
def parts(tmp_path_factory, tiny_banks) -> Path:
    if not HAVE_ESPEAK:
        pytest.skip("espeak-ng is not installed")
    root = tmp_path_factory.mktemp("parts") / "mini"
    make_mini_parts(root, parts=NEW, num_jobs=2, **TINY)
    return root


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _audio_hashes(wav_scp: Path) -> set[str]:
    return {_sha(p) for p in read_scp(wav_scp).values()}


# --- the voice partition -------------------------------------------------------------------------------------------

def test_voice_partition_keeps_test_heldout_dev_babble_and_training_pairs_apart() -> None:
    part = voice_partition(777)
    _, test = make_speaker_specs(100, 20, 777)
    assert part.test == {s.pair for s in test}
    groups = {"train": set(part.train), "dev": set(part.dev), **{f"babble_{b}": set(p) for b, p in part.babble.items()}}
    for (name_a, a), (name_b, b) in combinations(groups.items(), 2):
        assert a.isdisjoint(b), (name_a, name_b)
    for name, pairs in groups.items():
        assert pairs.isdisjoint(part.test), name
        assert all(v not in HELD_OUT_VARIANTS for v, _ in pairs), name
    assert {v for v, _ in part.unseen} == set(HELD_OUT_VARIANTS)
    # Every pair of a variant that is not held out goes somewhere.
    union = set().union(*groups.values()) | {p for p in part.test if p[0] not in HELD_OUT_VARIANTS}
    allowed = {(v, a) for v, a in part.unseen} | union
    assert len(union) == (len(VARIANTS) - len(HELD_OUT_VARIANTS)) * 8 and len(allowed) == len(VARIANTS) * 8
    assert len(part.dev) == 16 and all(len(p) == 8 for p in part.babble.values())
    assert voice_partition(777) == part and voice_partition(778).train != part.train


def _utterance_values(base: int, jitter: int, low: int, high: int) -> set[int]:
    """Every value utterance_voice can give a speaker with this base value (jitter, then clipped)."""
    return {min(max(base + d, low), high) for d in range(-jitter, jitter + 1)}


def test_unseen_pitch_and_rate_are_never_met_by_any_training_utterance() -> None:
    part = voice_partition(777)
    training = draw_speakers("tw", "train_wide", 1000, part.train, 777, 11, width=4)
    training += make_speaker_specs(100, 20, 777)[0]  # the original training speakers too
    unseen = draw_speakers("tu", "test_unseen", 200, part.unseen, 777, 13, UNSEEN_PITCH, UNSEEN_RATE)
    for attr, jitter, low, high in (("pitch", PITCH_JITTER, 0, 99), ("rate", RATE_JITTER, 80, 10_000)):
        seen = set().union(*(_utterance_values(getattr(s, attr), jitter, low, high) for s in training))
        held = set().union(*(_utterance_values(getattr(s, attr), jitter, low, high) for s in unseen))
        assert seen.isdisjoint(held), attr
    assert all(s.variant in HELD_OUT_VARIANTS for s in unseen)
    assert {s.pitch for s in unseen} <= set(range(0, 6)) | set(range(95, 100))
    assert {s.rate for s in unseen} <= set(range(90, 104)) | set(range(247, 281))


def test_wide_speakers_nest_cover_every_pair_and_the_wide_ranges() -> None:
    part = voice_partition(777)
    big = draw_speakers("tw", "train_wide", 1000, part.train, 777, 11, width=4)
    assert draw_speakers("tw", "train_wide", 300, part.train, 777, 11, width=4) == big[:300]
    assert len({s.combination for s in big}) == 1000 and len({s.speaker for s in big}) == 1000
    assert {s.pair for s in big} == set(part.train)
    # Pairs are dealt all before any repeats: the first len(pairs) speakers use each once.
    assert len({s.pair for s in big[:len(part.train)]}) == len(part.train)
    pitches, rates = [s.pitch for s in big], [s.rate for s in big]
    assert min(pitches) == WIDE_PITCH[0][0] and max(pitches) == WIDE_PITCH[0][1]
    assert min(rates) == WIDE_RATE[0][0] and max(rates) == WIDE_RATE[0][1]
    # Evenly spread: each tenth of the pitch range holds 7-13 % of the speakers.
    counts = np.histogram(pitches, bins=10, range=(14, 87))[0]
    assert counts.min() >= 70 and counts.max() <= 130
    assert {s.word_gap for s in big} == {0, 1, 2, 3}


# --- sentence generators -------------------------------------------------------------------------------------------

def test_story_generator_gives_the_original_sentences() -> None:
    # Computed with the mini corpus's make_text before the generators moved to texts.py.
    rng = np.random.default_rng(np.random.SeedSequence([777, 1, 0, 1]))
    assert [STORY.text(rng) for _ in range(4)] == [
        "There were 85 chairs inside the museum. Diana told James that the bicycle was careful last winter.",
        "How many coins did you close last summer? We should watch the kitchen before Emma comes back.",
        "Simon and Oscar painted the mountain together later tonight.",
        "There were 20 bottles inside the museum."]


def test_held_out_generator_shares_no_template_and_no_content_word_with_training() -> None:
    training_words = set().union(*(g.vocabulary() for g in TRAIN_GENERATORS))
    assert (NATURE.vocabulary() - FUNCTION_WORDS).isdisjoint(training_words)
    assert all(NATURE.frames().isdisjoint(g.frames()) for g in TRAIN_GENERATORS)
    rng = np.random.default_rng(0)
    for _ in range(300):
        words = set(tokens(NATURE.sentence(rng)))
        assert words - FUNCTION_WORDS and (words - FUNCTION_WORDS).isdisjoint(training_words)
        assert not any(c.isdigit() for c in NATURE.sentence(rng))
    for generator in TRAIN_GENERATORS:
        for _ in range(100):
            assert set(tokens(generator.sentence(rng))).isdisjoint(NATURE.vocabulary() - FUNCTION_WORDS)


def test_every_template_field_is_a_slot_and_sentences_are_filled() -> None:
    rng = np.random.default_rng(1)
    for generator in GENERATORS.values():
        for template in generator.templates:
            for field in template_fields(template):
                assert field in generator.slots or field.lower() in generator.slots, (generator.name, field)
        for _ in range(50):
            sentence = generator.sentence(rng)
            assert "{" not in sentence and sentence[0].isupper() and sentence.endswith((".", "?"))


# --- noises, music, rooms ------------------------------------------------------------------------------------------

def _spectral_slope(x: np.ndarray, low: float = 100.0, high: float = 4000.0) -> float:
    """Slope of log10 power against log10 frequency (Welch average), between ``low`` and ``high`` Hz."""
    frames = x[: x.size // 1024 * 1024].reshape(-1, 1024) * np.hanning(1024)
    power = np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0)
    freqs = np.fft.rfftfreq(1024, 1 / 16000)
    keep = (freqs >= low) & (freqs <= high)
    return float(np.polyfit(np.log10(freqs[keep]), np.log10(power[keep]), 1)[0])


@pytest.mark.parametrize("kind, slope", [("white", 0.0), ("pink", -1.0), ("brown", -2.0), ("blue", 1.0)])
def test_coloured_noise_has_its_spectral_slope(kind: str, slope: float) -> None:
    x = make_noise(kind, np.random.default_rng(3), 4.0)
    assert x.size == 64000 and np.max(np.abs(x)) == pytest.approx(0.5)
    assert _spectral_slope(x) == pytest.approx(slope, abs=0.15)


def test_hum_peaks_at_mains_frequency_and_every_kind_is_distinct() -> None:
    hum = make_noise("hum", np.random.default_rng(4), 4.0)
    spectrum = np.abs(np.fft.rfft(hum))
    peak = np.fft.rfftfreq(hum.size, 1 / 16000)[np.argmax(spectrum)]
    assert min(abs(peak - 50), abs(peak - 60)) < 1.0
    samples = {kind: make_noise(kind, np.random.default_rng(5), 1.0) for kind in NOISE_KINDS}
    assert all(np.isfinite(x).all() and np.std(x) > 0.01 for x in samples.values())
    assert len({x.tobytes() for x in samples.values()}) == len(NOISE_KINDS)


def test_music_is_tonal_not_noise() -> None:
    music = make_music(np.random.default_rng(6), 6.0)
    assert music.size == 96000 and np.max(np.abs(music)) == pytest.approx(0.5)
    flatness = lambda x: np.exp(np.mean(np.log(np.abs(np.fft.rfft(x)) ** 2 + 1e-12))) / np.mean(  # noqa: E731
        np.abs(np.fft.rfft(x)) ** 2)
    assert flatness(music) < 0.1 * flatness(np.random.default_rng(0).standard_normal(96000))


@pytest.mark.parametrize("size_class", sorted(ROOM_CLASSES))
def test_simulated_rir_has_the_direct_path_where_geometry_puts_it_and_decays(size_class: str) -> None:
    room = draw_room("r1", size_class, np.random.default_rng(7))
    for position in (room.source, room.mic):
        assert all(WALL_MARGIN <= c <= d - WALL_MARGIN for c, d in zip(position, room.dims))
    assert room.distance >= MIN_DISTANCE
    rir, rt60 = simulate_rir(room)
    # Direct path: 1/distance (pyroomacoustics' free-field gain) at 40 + distance / 343 m/s * 16000 samples
    # (40: half its 81-tap fractional-delay filter); before it only that filter's small taps.
    at = int(round(40 + room.distance / 343.0 * 16000))
    assert 0.6 / room.distance <= np.max(np.abs(rir[at - 1:at + 2])) <= 1.05 / room.distance
    assert np.max(np.abs(rir[:at - 3])) < 0.2 / room.distance
    assert np.max(np.abs(rir[:max(1, at - 41)])) < 0.02 / room.distance
    # Decay: the energy of the last tenth is tiny against the first tenth; RT60 near Sabine's target.
    tenth = rir.size // 10
    assert np.sum(rir[-tenth:] ** 2) < 1e-3 * np.sum(rir[:tenth] ** 2)
    assert 0.4 * room.target_rt60 <= rt60 <= 2.5 * room.target_rt60


def test_rooms_of_different_random_streams_differ() -> None:
    a = banks.bank_rooms("augment", 777, 12)
    b = banks.bank_rooms("test_hard", 777, 12)
    assert {(r.dims, r.source, r.mic) for r in a}.isdisjoint({(r.dims, r.source, r.mic) for r in b})
    assert [r.size_class for r in a[:3]] == ["small", "medium", "large"]


# --- mixing at an SNR ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("speech_scale", [0.003, 0.3])
@pytest.mark.parametrize("snr", [0.0, 7.5, 15.0])
def test_mix_at_snr_gives_the_drawn_snr_by_the_seeds_level(speech_scale: float, snr: float) -> None:
    rng = np.random.default_rng(8)
    speech = speech_scale * np.sin(np.arange(32000) * 0.05) * rng.uniform(0.2, 1.0, 32000)
    noise = 0.01 * rng.standard_normal(32000)
    mixture, scaled = mix_at_snr(speech, noise, snr)
    clean = mixture - scaled
    assert level_db(clean) == pytest.approx(0.0, abs=0.01)  # speech brought to 0 dB first
    assert snr_db(clean, scaled) == pytest.approx(snr, abs=0.05)
    assert 10 * np.log10(np.mean(clean ** 2) / np.mean(scaled ** 2)) == pytest.approx(snr, abs=0.05)


# --- the built parts -----------------------------------------------------------------------------------------------

@needs_espeak
def test_every_part_is_a_valid_data_dir_with_a_stamp(parts: Path) -> None:
    dirs = ["test_unseen", "dev", "test_hard", "train_wide", "augment/musan_noise", "augment/musan_music",
            "augment/musan_speech", "augment/rirs", "augment_test_hard/rirs", "augment_dev/musan_speech"]
    for name in dirs:
        data = validate_data_dir(parts / name)
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in data.wav_scp.values())
        for path in data.wav_scp.values():
            info = soundfile.info(path)
            assert (info.samplerate, info.channels) == (16000, 1)
    for part in ("test_unseen", "dev", "test_hard", "train_wide", "augment", "augment_test_hard", "augment_dev"):
        stamp = read_part_stamp(parts / part)
        assert stamp is not None and stamp["random_seed"] == 5
    assert not list(parts.glob(".*.partial"))


@needs_espeak
def test_bank_data_dirs_map_each_file_to_itself_and_load_in_the_augmenter(parts: Path) -> None:
    for name in ("musan_noise", "musan_music", "musan_speech", "rirs"):
        utt2spk = read_map(parts / "augment" / name / "utt2spk")
        assert utt2spk and all(u == s for u, s in utt2spk.items())
    kinds = read_map(parts / "augment" / "musan_noise" / "utt2kind")
    assert sorted(set(kinds.values())) == sorted(NOISE_KINDS)
    rooms = read_text_table(parts / "augment" / "rirs" / "rooms", 15, 15)
    assert sorted(r[0] for r in rooms.values()) == ["large", "medium", "small"]
    cfg = AugmentConfig(enabled=True, musan_dir=str(parts / "augment"), rir_dir=str(parts / "augment" / "rirs"),
                        babble_speakers=[3, 4])
    augmenter = WaveAugmenter.from_config(cfg)
    speech, _ = soundfile.read(next(iter(read_scp(parts / "test" / "wav.scp").values())), dtype="float64")
    rng = np.random.default_rng(0)
    for kind in AUG_TYPES:
        out = augmenter.apply(speech, augmenter.draw_spec(rng, kind))
        assert out.shape == speech.shape and np.isfinite(out).all()
        assert (np.max(np.abs(out - speech)) == 0) == (kind == "none"), kind


@needs_espeak
def test_test_unseen_speakers_cuts_texts_and_trials(parts: Path) -> None:
    data = load_data_dir(parts / "test_unseen")
    speakers = read_text_table(parts / "test_unseen" / "speakers.txt", 7, 7)
    assert sorted(speakers) == ["tu001", "tu002", "tu003"] == sorted(data.spk2utt)
    assert all(fields[2] in HELD_OUT_VARIANTS for fields in speakers.values())
    assert all(len(utts) == 3 for utts in data.spk2utt.values())
    for utt, path in data.wav_scp.items():
        assert 1.5 - 1e-3 <= soundfile.info(path).frames / 16000 <= 3.0 + 1e-3, utt
    training_words = set().union(*(g.vocabulary() for g in TRAIN_GENERATORS))
    for sentence in read_scp(parts / "test_unseen" / "sentences").values():
        assert (set(tokens(sentence)) - FUNCTION_WORDS).isdisjoint(training_words)
    trials = read_trials(parts / "test_unseen" / "trials")
    assert sum(lab for *_, lab in trials) == 3 * 3  # every target pair: 3 speakers x C(3, 2)
    assert sum(not lab for *_, lab in trials) == 18  # twice as many non-targets
    assert all(lab == (data.utt2spk[e] == data.utt2spk[t]) for e, t, lab in trials)
    assert trials == sorted(trials)


@needs_espeak
def test_dev_mixes_clean_and_degraded_cuts_with_their_conditions(parts: Path) -> None:
    data = load_data_dir(parts / "dev")
    conditions = read_conditions(parts / "dev" / "utt2condition")
    assert set(conditions) == set(data.utt2spk) and len(conditions) == 9
    assert {c.condition for c in conditions.values()} == {"clean", "degraded"}
    dev_bank = set(read_scp(parts / "augment_dev" / "musan_noise" / "wav.scp")) | set(
        read_scp(parts / "augment_dev" / "musan_speech" / "wav.scp"))
    for utt, c in conditions.items():
        assert 1.0 - 1e-3 <= c.duration <= 3.0 + 1e-3 and data.utt2dur[utt] == pytest.approx(c.duration, abs=1e-3)
        if c.condition == "degraded":
            assert 0.0 <= c.snr <= 15.0 and set(c.sources) <= dev_bank
            assert c.room is None or c.room.startswith("dr")
    trials = read_trials(parts / "dev" / "trials")
    assert sum(lab for *_, lab in trials) == 9 and sum(not lab for *_, lab in trials) == 18


@needs_espeak
def test_test_hard_holds_originals_and_degraded_cuts_and_both_kinds_of_trials(parts: Path) -> None:
    test = load_data_dir(parts / "test")
    hard = load_data_dir(parts / "test_hard")
    degraded = {u for u in hard.utt2spk if u.endswith("-hard")}
    assert degraded == {u + "-hard" for u in test.utt2spk} and len(hard.utt2spk) == 2 * len(test.utt2spk)
    assert {u: hard.wav_scp[u] for u in test.utt2spk} == test.wav_scp
    assert all(hard.utt2spk[u] == test.utt2spk[u[:-5]] for u in degraded)
    test_trials = read_trials(parts / "test" / "trials")
    hard_trials = read_trials(parts / "test_hard" / "trials")
    expected = sorted([(e + "-hard", t + "-hard", lab) for e, t, lab in test_trials]
                      + [(e, t + "-hard", lab) for e, t, lab in test_trials])
    assert hard_trials == expected
    conditions = read_conditions(parts / "test_hard" / "utt2condition")
    assert set(conditions) == set(hard.utt2spk)
    rooms = read_text_table(parts / "augment_test_hard" / "rirs" / "rooms", 15, 15)
    rt60 = {room: float(fields[-1]) for room, fields in rooms.items()}
    kinds = set()
    for utt in degraded:
        c = conditions[utt]
        assert c.condition == "degraded" and 1.0 - 1e-3 <= c.duration <= 3.0 + 1e-3 and 0.0 <= c.snr <= 15.0
        assert c.room is None or c.rt60 == pytest.approx(rt60[c.room], abs=1e-3)
        kinds.add((c.noise == "babble", c.room is not None))
    assert kinds == {(False, False), (False, True), (True, False), (True, True)}


@needs_espeak
def test_test_hard_audio_has_the_snr_its_table_says(parts: Path) -> None:
    hard = load_data_dir(parts / "test_hard")
    conditions = read_conditions(parts / "test_hard" / "utt2condition")
    checked = 0
    for utt, c in conditions.items():
        if c.condition != "degraded" or c.room is not None:
            continue  # a reverberated cut is not its original any more
        original, _ = soundfile.read(hard.wav_scp[utt[:-5]], dtype="float64")
        degraded, _ = soundfile.read(hard.wav_scp[utt], dtype="float64")
        start = int(round(c.start * 16000))
        clean = original[start:start + degraded.size]
        gain = np.dot(degraded, clean) / np.dot(clean, clean)  # the mixture is gain x (speech + noise)
        noise = degraded - gain * clean
        assert 10 * np.log10(np.sum((gain * clean) ** 2) / np.sum(noise ** 2)) == pytest.approx(c.snr, abs=0.5), utt
        checked += 1
    assert checked >= 3


@needs_espeak
def test_banks_talkers_rooms_and_files_are_disjoint_from_each_other_and_the_speakers(parts: Path) -> None:
    talkers = {b: read_text_table(parts / d / "musan_speech" / "speakers.txt", 7, 7)
               for b, d in mini_parts.BANK_DIRS.items()}
    pairs = {b: {(f[2], f[1]) for f in t.values()} for b, t in talkers.items()}
    speakers = {name: read_text_table(parts / name / "speakers.txt", 7, 7)
                for name in ("train_wide", "test_unseen", "dev")}
    speakers["test"] = {s: (s, "test", spec.accent, spec.variant) for s, spec in
                        ((x.speaker, x) for x in make_speaker_specs(3, 3, 5)[1])}
    speaker_pairs = {name: {(f[2], f[1]) for f in t.values()} for name, t in speakers.items()}
    everyone = {**{f"bank {b}": p for b, p in pairs.items()}, **speaker_pairs}
    for (a, pa), (b, pb) in combinations(everyone.items(), 2):
        assert pa.isdisjoint(pb), (a, b)
    ids = [set(t) for t in talkers.values()] + [set(t) for t in speakers.values()]
    assert sum(len(i) for i in ids) == len(set().union(*ids))
    for kind in ("musan_noise", "musan_speech", "rirs"):
        hashes = [_audio_hashes(parts / d / kind / "wav.scp") for d in mini_parts.BANK_DIRS.values()]
        keys = [set(read_scp(parts / d / kind / "wav.scp")) for d in mini_parts.BANK_DIRS.values()]
        for a, b in combinations(range(3), 2):
            assert hashes[a].isdisjoint(hashes[b]) and keys[a].isdisjoint(keys[b]), kind
    geometry = [{tuple(f[1:14]) for f in read_text_table(parts / d / "rirs" / "rooms", 15, 15).values()}
                for d in mini_parts.BANK_DIRS.values()]
    assert all(geometry[a].isdisjoint(geometry[b]) for a, b in combinations(range(3), 2))


@needs_espeak
def test_train_wide_uses_training_pairs_generators_and_durations(parts: Path) -> None:
    data = load_data_dir(parts / "train_wide")
    speakers = read_text_table(parts / "train_wide" / "speakers.txt", 7, 7)
    assert sorted(speakers) == [f"tw{i:04d}" for i in range(1, 9)] == sorted(data.spk2utt)
    train_pairs = set(voice_partition(5, 3, 3).train)
    assert all((f[2], f[1]) in train_pairs for f in speakers.values())
    assert all(1.5 - 1e-3 <= d <= 6.0 + 1e-3 for d in data.utt2dur.values())
    assert set(read_scp(parts / "train_wide" / "text")) == set(data.utt2spk)
    assert not (parts / "train_wide" / "trials").exists()


@needs_espeak
def test_parts_are_the_same_whatever_the_number_of_jobs(parts: Path, tmp_path: Path, tiny_banks) -> None:
    again = tmp_path / "mini"
    make_mini_parts(again, parts=("test_unseen", "dev", "augment"), num_jobs=1, **TINY)
    for name in ("test_unseen", "dev", "augment/musan_noise", "augment/musan_music", "augment/musan_speech",
                 "augment/rirs"):
        first, second = read_scp(parts / name / "wav.scp"), read_scp(again / name / "wav.scp")
        assert first.keys() == second.keys()
        assert all(_sha(first[k]) == _sha(second[k]) for k in first), name
    for name in ("test_unseen/trials", "dev/utt2condition", "dev/sentences", "augment/rirs/rooms"):
        assert (parts / name).read_bytes() == (again / name).read_bytes(), name


@needs_espeak
def test_stamps_skip_work_and_changed_parameters_rebuild_only_that_part(parts: Path, tmp_path: Path,
                                                                          tiny_banks) -> None:
    root = tmp_path / "copy"
    small = {**TINY, "unseen_speakers": 2, "unseen_utts_per_speaker": 2}
    make_mini_parts(root, parts=("test_unseen", "dev"), num_jobs=2, **small)
    wav = next(iter(read_scp(root / "dev" / "wav.scp").values()))
    before = os.stat(wav).st_mtime_ns
    # Same parameters: nothing is done, so not even espeak-ng is needed.
    make_mini_parts(root, parts=("test_unseen", "dev"), num_jobs=2, espeak="/nonexistent/espeak-ng", **small)
    assert os.stat(wav).st_mtime_ns == before
    (root / "test_unseen" / "feats.scp").write_text("x y\n")
    make_mini_parts(root, parts=("test_unseen", "dev"), num_jobs=2, **{**small, "unseen_speakers": 3})
    assert sorted(load_data_dir(root / "test_unseen").spk2utt) == ["tu001", "tu002", "tu003"]
    assert not (root / "test_unseen" / "feats.scp").exists() and os.stat(wav).st_mtime_ns == before
    # A failing build leaves the old part's files, no stamp and no partial folder.
    with pytest.raises(SynthesisError, match="espeak-ng not found"):
        make_mini_parts(root, parts=("test_unseen",), num_jobs=2, espeak="/nonexistent/espeak-ng",
                        **{**small, "unseen_speakers": 4})
    assert not (root / "test_unseen" / ".done").exists() and not list(root.glob(".*.partial"))


@needs_espeak
def test_test_alone_is_the_test_of_the_full_corpus(tmp_path: Path) -> None:
    small = dict(num_train_speakers=3, num_test_speakers=2, utts_per_speaker=2, random_seed=9)
    make_mini_corpus(tmp_path / "full", num_jobs=2, **small)
    make_mini_corpus(tmp_path / "alone", num_jobs=2, make_train=False, **small)
    assert not (tmp_path / "alone" / "train").exists() and not (tmp_path / "alone" / "wav" / "tr001").exists()
    full, alone = read_scp(tmp_path / "full" / "test" / "wav.scp"), read_scp(tmp_path / "alone" / "test" / "wav.scp")
    assert full.keys() == alone.keys() and all(_sha(full[k]) == _sha(alone[k]) for k in full)
    assert (tmp_path / "full" / "test" / "trials").read_bytes() == (tmp_path / "alone" / "test" / "trials").read_bytes()
    # Asking for the test set alone where the full corpus is keeps the full corpus.
    wav = tmp_path / "full" / "wav" / "tr001" / "tr001-001.wav"
    make_mini_corpus(tmp_path / "full", num_jobs=2, make_train=False, espeak="/nonexistent/espeak-ng", **small)
    assert wav.is_file()


def test_test_hard_without_test_is_a_clear_error(tmp_path: Path) -> None:
    from pyfunc.errors import ConfigError

    with pytest.raises(ConfigError, match="test_hard degrades the mini corpus's test set.*build it first"):
        make_mini_parts(tmp_path, parts=("test_hard",))
    with pytest.raises(ConfigError, match="unknown part.*nosuch"):
        make_mini_parts(tmp_path, parts=("nosuch",))


def test_cli_rejects_unknown_parts_with_exit_1(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "local" / "make_mini_corpus.py"), "--data-root",
                           str(tmp_path / "mini"), "--parts", "test,bogus"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 1 and proc.stderr.startswith("error: ") and "bogus" in proc.stderr
