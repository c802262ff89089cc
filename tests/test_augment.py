"""Augmentation: SNR scaling, reverberation, the six-way online augmenter, offline utt2aug copies."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile

from pyfunc.config import AugmentConfig
from pyfunc.data.audio import read_audio, write_wav
from pyfunc.data.datadir import DataDir, load_data_dir, split_data_dir, validate_data_dir, write_data_dir
from pyfunc.errors import ConfigError, DataError
from pyfunc.features.augment import (
    AUG_TYPES,
    AudioSource,
    Clip,
    WaveAugmenter,
    add_noise,
    build_augmenter,
    fit_noise,
    level_db,
    reverberate,
    scale_noise,
    snr_db,
)
from pyfunc.features.augment_offline import (
    apply_augment_spec,
    combine_data_dirs,
    format_spec,
    make_augmented_copies,
    parse_augment_spec,
    read_utt2aug,
    split_utt2aug,
    utt_rng,
)
from pyfunc.training.examples import ChunkDataset, TrainingSet, chunk_samples

RATE = 16000
SEGMENT = chunk_samples(200)  # 32240 samples, the seed's training segment


def sine(n: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(n) / RATE)


def synthetic_rir(length: int, lag: int, random_seed: int, tail: float = 0.3) -> np.ndarray:
    """A direct path (1.0 at ``lag``) followed by an exponentially decaying random tail."""
    rng = np.random.default_rng(random_seed)
    rir = np.zeros(length)
    rir[lag] = 1.0
    t = np.arange(length - lag - 1)
    rir[lag + 1:] = tail * np.exp(-t / (0.05 * RATE)) * rng.standard_normal(t.size)
    return rir


def write_float_wav(path: Path, samples: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, samples, RATE, subtype="FLOAT")
    return str(path)


def write_source_dir(root: Path, name: str, signals: dict[str, np.ndarray]) -> Path:
    wavs = {key: write_float_wav(root / "wav" / name / f"{key}.wav", sig) for key, sig in signals.items()}
    write_data_dir(root / name, DataDir(wavs, {k: k for k in wavs}))
    return root / name


@pytest.fixture
def aug_cfg(tmp_path: Path) -> AugmentConfig:
    """Tiny MUSAN-like data dirs (noise, music, 9 talkers of speech) and 3 synthetic RIRs."""
    rng = np.random.default_rng(0)
    root = tmp_path / "corpora"
    # One noise shorter than a segment (wrap-padded), two longer (cropped).
    write_source_dir(root / "musan", "musan_noise", {
        "noise-a": 0.1 * rng.standard_normal(RATE), "noise-b": 0.3 * rng.standard_normal(3 * RATE),
        "noise-c": 0.05 * rng.standard_normal(int(2.5 * RATE))})
    write_source_dir(root / "musan", "musan_music", {
        "music-a": sine(4 * RATE, 220.0, 0.4) + sine(4 * RATE, 330.0, 0.2), "music-b": sine(3 * RATE, 523.0, 0.3)})
    write_source_dir(root / "musan", "musan_speech", {
        f"speech-{i}": sine(int((1.5 + 0.3 * i) * RATE), 100.0 + 20 * i, 0.2) * (1 + 0.5 * sine(
            int((1.5 + 0.3 * i) * RATE), 3.0 + i, 1.0)) for i in range(9)})
    write_source_dir(root, "rirs", {f"smallroom-Room00{i}-00001": synthetic_rir(2000 + 500 * i, 10 * i, i)
                                    for i in range(1, 4)})
    return AugmentConfig(enabled=True, musan_dir=str(root / "musan"), rir_dir=str(root / "rirs"))


@pytest.fixture
def speech_dir(tmp_path: Path) -> Path:
    """A clean data dir whose ids change order when suffixed (``+`` sorts before ``-``; upper before lower)."""
    wavs, utt2spk = {}, {}
    for i, (spk, utt) in enumerate([("spk1", "spk1-a"), ("spk1", "spk1-a+b"), ("spk1", "spk1-B"),
                                    ("spk2", "spk2-x"), ("spk2", "spk2-x.1")]):
        path = tmp_path / "wav" / f"{utt}.wav"
        write_wav(path, (sine(RATE + 1000 * i, 150.0 + 30 * i, 0.3)).astype(np.float32))
        wavs[utt], utt2spk[utt] = str(path), spk
    write_data_dir(tmp_path / "train", DataDir(wavs, utt2spk, {u: 1.0 for u in wavs}))
    return tmp_path / "train"


# ----------------------------------------------------------------------------------------- pure functions


@pytest.mark.parametrize("snr", [0.0, 5.0, 10.0, 13.0, 20.0])
@pytest.mark.parametrize("noise_amp", [0.1, 1.0, 3.0])
def test_add_noise_reaches_the_requested_snr(snr: float, noise_amp: float) -> None:
    # The seed's 1e-4 floor biases the measured SNR for signals near -40 dB, so the levels here are well above it.
    rng = np.random.default_rng(1)
    x = sine(RATE, 300.0, 0.8) + sine(RATE, 450.0, 0.3)
    noise = noise_amp * rng.standard_normal(RATE)
    y = add_noise(x, noise, snr)
    assert y.shape == x.shape
    assert abs(snr_db(x, y - x) - snr) < 0.5
    # The seed's formula, exactly.
    clean_db = 10 * np.log10(np.mean(x ** 2) + 1e-4)
    noise_db = 10 * np.log10(np.mean(noise ** 2) + 1e-4)
    np.testing.assert_allclose(y - x, np.sqrt(10 ** ((clean_db - noise_db - snr) / 10)) * noise, rtol=1e-9, atol=1e-12)


def test_add_noise_scales_each_talker_against_the_clean_signal() -> None:
    rng = np.random.default_rng(2)
    x = sine(8000, 200.0, 0.6)
    noises = [rng.standard_normal(8000) * a for a in (0.1, 1.0, 2.0)]
    snrs = [13.0, 16.5, 20.0]
    y = add_noise(x, noises, snrs)
    expected = x + sum(scale_noise(x, n, s) for n, s in zip(noises, snrs))
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-12)
    for n, s in zip(noises, snrs):
        assert abs(snr_db(x, scale_noise(x, n, s)) - s) < 0.5
    assert level_db(np.zeros(10)) == pytest.approx(-40.0)
    with pytest.raises(ValueError, match="noise has shape"):
        add_noise(x, np.ones(10), 5.0)


def test_reverberate_delta_at_lag_zero_gives_back_x() -> None:
    x = np.random.default_rng(3).standard_normal(5000)
    for amp in (1.0, 0.25, -3.0):
        rir = np.zeros(300)
        rir[0] = amp
        np.testing.assert_allclose(reverberate(x, rir), x * np.sign(amp), rtol=0, atol=1e-9)


@pytest.mark.parametrize("lag", [0, 7, 40])
def test_reverberate_keeps_length_and_direct_path_alignment(lag: int) -> None:
    x = np.random.default_rng(4).standard_normal(6000)
    rir = synthetic_rir(1500, lag, random_seed=lag)
    y = reverberate(x, rir)
    assert y.shape == x.shape
    xcorr = [np.dot(y[k:], x[: len(x) - k]) for k in range(200)]
    assert int(np.argmax(xcorr)) == lag
    np.testing.assert_allclose(y, np.convolve(x, rir / np.sqrt(np.sum(rir ** 2)))[: len(x)], rtol=0, atol=1e-9)


def test_reverberate_normalises_the_rir_to_unit_energy() -> None:
    rir = synthetic_rir(800, 5, random_seed=9)
    impulse = np.zeros(2000)
    impulse[0] = 1.0
    out = reverberate(impulse, rir)
    assert np.sum(out ** 2) == pytest.approx(1.0, abs=1e-9)
    x = np.random.default_rng(5).standard_normal(3000)
    np.testing.assert_allclose(reverberate(x, 7.5 * rir), reverberate(x, rir), rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="non-zero energy"):
        reverberate(x, np.zeros(10))


def test_fit_noise_crops_at_the_seed_offset_or_wraps() -> None:
    noise = np.arange(100, dtype=np.float64)
    np.testing.assert_array_equal(fit_noise(noise, 30, 0.5), noise[35:65])  # int(0.5 * 70)
    np.testing.assert_array_equal(fit_noise(noise, 30, 0.0), noise[:30])
    np.testing.assert_array_equal(fit_noise(noise, 250, 0.9), np.concatenate([noise, noise, noise[:50]]))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        fit_noise(noise, 30, 1.0)


def test_windowed_reads_equal_whole_file_reads(tmp_path: Path) -> None:
    noise = np.random.default_rng(6).standard_normal(5000) * 0.1
    path = write_float_wav(tmp_path / "n.wav", noise)
    small_cache = AudioSource(max_cached_frames=100)
    for length, start in ((300, 0.0), (300, 0.77), (4999, 0.5), (5000, 0.3), (12000, 0.4)):
        expected = fit_noise(noise.astype(np.float32).astype(np.float64), length, start)
        np.testing.assert_array_equal(small_cache.fitted(path, length, start), expected)
        np.testing.assert_array_equal(AudioSource().fitted(path, length, start), expected)
    stereo = tmp_path / "stereo.wav"
    soundfile.write(stereo, np.zeros((100, 2)), RATE)
    with pytest.raises(DataError, match="stereo.wav: augmentation audio must be 16000 Hz mono"):
        AudioSource().whole(str(stereo))


# ----------------------------------------------------------------------------------------- online augmenter


def test_augmenter_draws_six_types_equally_and_deterministically(aug_cfg: AugmentConfig) -> None:
    aug = WaveAugmenter.from_config(aug_cfg)
    rng = np.random.default_rng(11)
    draws = 3000
    counts = Counter(aug.draw_spec(rng)["type"] for _ in range(draws))
    assert set(counts) == set(AUG_TYPES)
    for kind in AUG_TYPES:  # binomial sd is 20.4; 100 is about 5 sd
        assert abs(counts[kind] - draws / 6) < 100, counts
    x = sine(SEGMENT, 250.0, 0.4).astype(np.float32)
    first = [aug(x, np.random.default_rng(s)) for s in range(12)]
    again = [WaveAugmenter.from_config(aug_cfg)(x, np.random.default_rng(s)) for s in range(12)]
    for a, b in zip(first, again):
        assert a.dtype == np.float32 and a.shape == x.shape and np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)
    assert sum(not np.array_equal(a, x) for a in first) >= 6


def test_each_type_applies_its_spec(aug_cfg: AugmentConfig) -> None:
    aug = WaveAugmenter.from_config(aug_cfg)
    x = (sine(SEGMENT, 180.0, 0.5) + sine(SEGMENT, 1200.0, 0.1)).astype(np.float32)
    x64 = x.astype(np.float64)
    read = lambda p: soundfile.read(p, dtype="float64")[0]  # noqa: E731
    ranges = {"noise": (0.0, 15.0), "music": (5.0, 15.0), "speech": (13.0, 20.0)}
    for random_seed, kind in enumerate(AUG_TYPES):
        spec = aug.draw_spec(np.random.default_rng(random_seed), kind)
        assert spec["type"] == kind
        out = aug.apply(x, spec)
        if kind == "none":
            assert spec["steps"] == [] and np.array_equal(out, x)
        elif kind == "reverb":
            (step,) = spec["steps"]
            assert step["rir"] in aug.sources["rir"]
            np.testing.assert_allclose(out, reverberate(x64, read(step["rir"])), atol=1e-6)
        else:
            expected = x64
            names = {"noise": ["noise"], "music": ["music"], "babble": ["speech"], "television": ["speech", "music"]}
            assert len(spec["steps"]) == len(names[kind])
            for step, name in zip(spec["steps"], names[kind]):
                noises = []
                for source in step["sources"]:
                    assert source["wav"] in aug.sources[name]
                    assert ranges[name][0] <= source["snr"] <= ranges[name][1]
                    noises.append(fit_noise(read(source["wav"]), SEGMENT, source["start"]))
                expected = expected + sum(scale_noise(expected, n, s["snr"]) for n, s in zip(noises, step["sources"]))
                if name != "speech":
                    assert len(step["sources"]) == 1
            np.testing.assert_allclose(out, expected, atol=1e-6)
            if kind in ("noise", "music"):
                assert abs(snr_db(x64, out - x64) - spec["steps"][0]["sources"][0]["snr"]) < 0.5


def test_babble_uses_three_to_eight_distinct_talkers(aug_cfg: AugmentConfig) -> None:
    """The default is the seed's ``random.randint(3, 8)``: both ends drawn, nothing outside (9 files here)."""
    assert AugmentConfig().babble_speakers == [3, 8]
    aug = WaveAugmenter.from_config(aug_cfg)
    rng = np.random.default_rng(12)
    sizes = Counter()
    for _ in range(600):
        for kind in ("babble", "television"):
            files = [s["wav"] for s in aug.draw_spec(rng, kind)["steps"][0]["sources"]]
            assert len(set(files)) == len(files)
            sizes[len(files)] += 1
    assert set(sizes) == {3, 4, 5, 6, 7, 8}
    assert min(sizes.values()) > 1200 / 6 / 2  # each count about equally likely


def test_segmented_musan_gives_one_noise_per_segment(tmp_path: Path) -> None:
    """With the seed's musan_split as a segments file, the augmenter draws 5 s segments (hand-computed spans),
    reads them in place, and the offline spec reproduces the online samples; a dir without segments uses files."""
    rng = np.random.default_rng(3)
    audio = {"noise": {"noise-long": 0.2 * rng.standard_normal(184000), "noise-short": rng.standard_normal(64000)},
             "music": {"music-a": sine(128000, 330.0, 0.3)},
             "speech": {f"speech-{i}": sine(320000, 120.0 + 15 * i, 0.2) for i in range(2)}}
    for category, files in audio.items():
        for stem, samples in files.items():
            write_float_wav(tmp_path / "musan" / category / "src" / f"{stem}.wav", samples)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "egs" / "voxceleb" / "local"))
    from musan import prepare_musan  # the VoxCeleb recipe's MUSAN lists

    prepare_musan(tmp_path / "musan", tmp_path / "data")
    long_wav = str(tmp_path / "musan" / "noise" / "src" / "noise-long.wav")
    cfg = AugmentConfig(musan_dir=str(tmp_path / "data"))
    aug = WaveAugmenter.from_config(cfg, types=("noise", "music", "babble"))
    # 11.5 s: segments at 0, 3 and 6 s; the 4 s file gives none; 8 s: one; 20 s: 0, 3, ..., 12 s (5 each).
    assert aug.sources["noise"] == [Clip(long_wav, 0, 80000), Clip(long_wav, 48000, 128000),
                                    Clip(long_wav, 96000, 176000)]
    assert len(aug.sources["music"]) == 1 and len(aug.sources["speech"]) == 10
    x = sine(SEGMENT, 200.0, 0.5).astype(np.float32)
    x64 = x.astype(np.float64)
    whole = read_audio(long_wav).astype(np.float64)
    seen = set()
    for random_seed in range(60):
        spec = aug.draw_spec(np.random.default_rng(random_seed), "noise")
        (source,) = spec["steps"][0]["sources"]
        begin, end = source["segment"]
        seen.add((begin, end))
        noise = fit_noise(whole[begin:end], SEGMENT, source["start"])
        np.testing.assert_allclose(aug.apply(x, spec), x64 + scale_noise(x64, noise, source["snr"]), atol=1e-6)
        text = format_spec(spec)
        assert parse_augment_spec(text) == spec
        np.testing.assert_array_equal(apply_augment_spec(x, text), aug.apply(x, spec))
    assert seen == {(0, 80000), (48000, 128000), (96000, 176000)}
    babble = aug.draw_spec(np.random.default_rng(0), "babble")["steps"][0]["sources"]
    assert len({(s["wav"], tuple(s["segment"])) for s in babble}) == len(babble) >= 3
    # A segment beyond its file is an error naming the file.
    bad = {"type": "noise", "steps": [{"op": "add", "sources": [
        {"wav": long_wav, "segment": [150000, 190000], "start": 0.5, "snr": 5.0}]}]}
    with pytest.raises(DataError, match=r"noise-long.wav: segment \[150000, 190000\) samples is not within"):
        aug.apply(x, bad)


def test_augmenter_in_chunk_dataset_is_reproducible(aug_cfg: AugmentConfig, speech_dir: Path) -> None:
    data = load_data_dir(speech_dir)
    utts = data.utts
    tset = TrainingSet(utts, [data.wav_scp[u] for u in utts], np.zeros(len(utts), dtype=np.int64), ["s"], "waveform",
                       str(speech_dir / "wav.scp"))
    dataset = ChunkDataset(tset, 200, augment=build_augmenter(aug_cfg))
    for item in [(0, 5), (3, 123), (4, 2**40)]:
        a, _ = dataset[item]
        b, _ = dataset[item]
        assert a.shape == (SEGMENT,) and bool((a == b).all())
    assert build_augmenter(AugmentConfig(enabled=False)) is None


def test_augmenter_config_errors(aug_cfg: AugmentConfig, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="musan_dir: not set"):
        WaveAugmenter.from_config(AugmentConfig(rir_dir=aug_cfg.rir_dir))
    with pytest.raises(ConfigError, match=r"musan_music/wav.scp: not found"):
        WaveAugmenter.from_config(AugmentConfig(musan_dir=str(tmp_path), rir_dir=aug_cfg.rir_dir))
    bad = AugmentConfig(musan_dir=aug_cfg.musan_dir, rir_dir=aug_cfg.rir_dir, snr_music=[15.0, 5.0])
    with pytest.raises(ConfigError, match="snr_music: low 15.0 is above high 5.0"):
        WaveAugmenter.from_config(bad)
    # Only the sources of the requested types are needed.
    assert WaveAugmenter.from_config(AugmentConfig(rir_dir=aug_cfg.rir_dir), types=["none", "reverb"]).types == (
        "none", "reverb")


# ----------------------------------------------------------------------------------------- offline copies


def c_sorted(keys: list[str]) -> bool:
    return all(a.encode() < b.encode() for a, b in zip(keys, keys[1:]))


def test_offline_copies_are_sorted_valid_and_reproducible(aug_cfg: AugmentConfig, speech_dir: Path,
                                                          tmp_path: Path) -> None:
    kinds = ("reverb", "noise", "music", "babble", "television")
    out = make_augmented_copies(speech_dir, tmp_path / "aug1", kinds, aug_cfg, random_seed=3)
    assert [p.name for p in out] == [f"train_{k}" for k in kinds]
    clean = load_data_dir(speech_dir)
    for kind, path in zip(kinds, out):
        for name in ("utt2spk", "wav.scp", "spk2utt", "utt2aug", "utt2dur"):
            keys = [line.split()[0] for line in (path / name).read_text().splitlines()]
            assert c_sorted(keys), (name, keys)
            if shutil.which("sort"):
                subprocess.run(["sort", "-C", str(path / name)], env={"LC_ALL": "C"}, check=True)
        data = validate_data_dir(path)
        assert data.utts == sorted(f"{u}-{kind}" for u in clean.utts)
        for utt in clean.utts:  # speaker and original audio unchanged
            assert data.utt2spk[f"{utt}-{kind}"] == clean.utt2spk[utt]
            assert data.wav_scp[f"{utt}-{kind}"] == clean.wav_scp[utt]
        specs = read_utt2aug(path, data.utts)
        assert list(specs) == data.utts
        assert {parse_augment_spec(s)["type"] for s in specs.values()} == {kind}
    # The order changes with the suffix: "spk1-a+b-noise" sorts before "spk1-a-noise".
    noise_keys = read_utt2aug(out[1])
    assert list(noise_keys).index("spk1-a+b-noise") < list(noise_keys).index("spk1-a-noise")
    again = make_augmented_copies(speech_dir, tmp_path / "aug2", kinds, aug_cfg, random_seed=3)
    other = make_augmented_copies(speech_dir, tmp_path / "aug3", kinds, aug_cfg, random_seed=4)
    for a, b, c in zip(out, again, other):
        assert (a / "utt2aug").read_text() == (b / "utt2aug").read_text()
        assert (a / "utt2aug").read_text() != (c / "utt2aug").read_text()
    # A spec depends on (seed, kind, utt) only, not on the other utterances.
    sub = tmp_path / "sub"
    write_data_dir(sub, clean.subset(["spk1-B", "spk2-x"]))
    (sub_noise,) = make_augmented_copies(sub, tmp_path / "aug4", ["noise"], aug_cfg, random_seed=3)
    assert read_utt2aug(sub_noise) == {u: noise_keys[u] for u in ("spk1-B-noise", "spk2-x-noise")}


def test_offline_spec_gives_the_online_samples(aug_cfg: AugmentConfig, speech_dir: Path, tmp_path: Path) -> None:
    kinds = ("reverb", "noise", "music", "babble", "television")
    out = make_augmented_copies(speech_dir, tmp_path / "aug", kinds, aug_cfg, random_seed=8)
    online = WaveAugmenter.from_config(aug_cfg)
    clean = load_data_dir(speech_dir)
    for kind, path in zip(kinds, out):
        specs = read_utt2aug(path)
        for utt in clean.utts:
            spec_text = specs[f"{utt}-{kind}"]
            drawn = online.draw_spec(utt_rng(8, kind, utt), kind)
            assert format_spec(drawn) == spec_text and json.loads(spec_text) == drawn
            x = read_audio(clean.wav_scp[utt])
            got = apply_augment_spec(x, spec_text)
            assert got.dtype == np.float32 and got.shape == x.shape
            np.testing.assert_array_equal(got, online.apply(x, drawn))
            assert not np.array_equal(got, x)
            if kind == "babble":
                assert 3 <= len(drawn["steps"][0]["sources"]) <= 8


def test_read_utt2aug_names_bad_lines(tmp_path: Path) -> None:
    good = format_spec({"type": "noise", "steps": [{"op": "add", "sources": [{"wav": "/n.wav", "start": 0.5,
                                                                                "snr": 3.0}]}]})
    (tmp_path / "utt2aug").write_text(f"b {good}\na {good}\n")
    with pytest.raises(DataError, match=r"utt2aug:2: key 'a' is out of order"):
        read_utt2aug(tmp_path)
    (tmp_path / "utt2aug").write_text(f"a {good}\nb {good.replace('0.5', '1.5')}\n")
    with pytest.raises(DataError, match=r"utt2aug:2: bad augmentation spec \('start' must be a number in \[0, 1\)"):
        read_utt2aug(tmp_path)
    (tmp_path / "utt2aug").write_text(f"a {good}\nb {{not json\n")
    with pytest.raises(DataError, match=r"utt2aug:2: bad augmentation spec \(not JSON"):
        read_utt2aug(tmp_path)
    (tmp_path / "utt2aug").write_text(f"a {good}\nc {good}\n")
    assert set(read_utt2aug(tmp_path, ["a", "c"])) == {"a", "c"}
    with pytest.raises(DataError, match=r"utt2aug: 1 utterance\(s\) not in utt2spk, e.g. \['c'\]"):
        read_utt2aug(tmp_path, ["a", "b"])
    assert read_utt2aug(tmp_path / "nowhere") == {}


def test_combine_data_dirs_unites_and_rejects_duplicates(aug_cfg: AugmentConfig, speech_dir: Path,
                                                         tmp_path: Path) -> None:
    reverb, noise = make_augmented_copies(speech_dir, tmp_path / "aug", ["reverb", "noise"], aug_cfg, random_seed=1)
    combined_dir = tmp_path / "train_aug"
    combined = combine_data_dirs(combined_dir, [noise, speech_dir, reverb])
    data = validate_data_dir(combined_dir)
    clean = load_data_dir(speech_dir)
    assert len(data.utts) == 3 * len(clean.utts) and data.utts == sorted(data.utts, key=str.encode)
    assert combined.utt2dur and len(data.utt2dur) == len(data.utts)
    aug = read_utt2aug(combined_dir, data.utts)
    assert aug == {**read_utt2aug(noise), **read_utt2aug(reverb)}
    assert all(u not in aug for u in clean.utts)
    assert sorted(data.spk2utt["spk2"]) == ["spk2-x", "spk2-x-noise", "spk2-x-reverb", "spk2-x.1", "spk2-x.1-noise",
                                            "spk2-x.1-reverb"]
    # Split for parallel jobs: each part gets the utt2aug lines of its utterances.
    parts = split_data_dir(combined_dir, 4)
    split_utt2aug(combined_dir, parts)
    merged = {}
    for part in parts:
        part_aug = read_utt2aug(part, load_data_dir(part).utts)
        merged.update(part_aug)
    assert merged == aug
    # feats.scp in only one input is left out.
    (tmp_path / "feats").mkdir()
    copy = tmp_path / "with_feats"
    shutil.copytree(reverb, copy)
    (copy / "feats.scp").write_text("".join(f"{u} /x.ark:{i}\n" for i, u in enumerate(load_data_dir(copy).utts)))
    assert not combine_data_dirs(tmp_path / "c2", [speech_dir, copy]).feats_scp
    assert not (tmp_path / "c2" / "feats.scp").exists()
    # The same utterance in two inputs.
    dup = tmp_path / "dup"
    shutil.copytree(speech_dir, dup)
    with pytest.raises(DataError, match=r"dup/utt2spk: utterance 'spk1-B' is also in .*train"):
        combine_data_dirs(tmp_path / "c3", [speech_dir, dup])
    assert not (tmp_path / "c3").exists()
    with pytest.raises(DataError, match="already augmented"):
        make_augmented_copies(combined_dir, tmp_path / "aug5", ["noise"], aug_cfg, random_seed=1)


def test_offline_argument_errors(aug_cfg: AugmentConfig, speech_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="AugmentConfig .* is required"):
        make_augmented_copies(speech_dir, tmp_path / "a", ["noise"])
    with pytest.raises(ConfigError, match="distinct kinds"):
        make_augmented_copies(speech_dir, tmp_path / "a", ["noise", "echo"], aug_cfg)
    with pytest.raises(ConfigError, match="distinct kinds"):
        make_augmented_copies(speech_dir, tmp_path / "a", ["noise", "noise"], aug_cfg)
    with pytest.raises(ConfigError, match="non-negative"):
        make_augmented_copies(speech_dir, tmp_path / "a", ["noise"], aug_cfg, random_seed=-1)
    assert not (tmp_path / "a").exists()
