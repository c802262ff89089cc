"""Synthetic inputs of the benchmarks: wav data directories, augmentation sources, trials, embeddings.

Everything is seeded. Speed does not depend on what the audio says, so the audio is
a cheap voice-like signal (a few harmonics with a wandering pitch, plus noise).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyfunc.data.audio import SAMPLE_RATE, write_wav
from pyfunc.data.datadir import DataDir, write_data_dir


def voice_like(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """``seconds`` of a harmonic signal with a slowly varying pitch and light noise, float32 in [-1, 1]."""
    n = max(1, int(seconds * SAMPLE_RATE))
    f0 = rng.uniform(90.0, 250.0) * (1.0 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * np.arange(n) / SAMPLE_RATE))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    wave = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.abs(np.sin(2 * np.pi * 3.0 * np.arange(n) / SAMPLE_RATE))
    wave = 0.08 * wave * envelope + 0.01 * rng.standard_normal(n)
    return np.clip(wave, -1.0, 1.0).astype(np.float32)


def make_wav_data_dir(root: Path, name: str, total_seconds: float | None, utt_seconds: tuple[float, float],
                      random_seed: int, num_utts: int | None = None, utts_per_speaker: int = 2) -> Path:
    """A data dir ``root/name`` of synthetic 16 kHz wavs: ``num_utts`` utterances, or as many as
    it takes to reach ``total_seconds``; lengths uniform in ``utt_seconds``."""
    rng = np.random.default_rng(random_seed)
    wav_scp, utt2spk = {}, {}
    total, index = 0.0, 0
    while (num_utts is not None and index < num_utts) or (num_utts is None and total < total_seconds):
        seconds = float(rng.uniform(*utt_seconds))
        spk = f"spk{index // utts_per_speaker:05d}"
        utt = f"{spk}-{index:06d}"
        path = root / "wav" / name / f"{utt}.wav"
        write_wav(path, voice_like(seconds, rng))
        wav_scp[utt], utt2spk[utt] = str(path), spk
        total += seconds
        index += 1
    data = root / "data" / name
    write_data_dir(data, DataDir(wav_scp, utt2spk))
    return data


def make_augment_sources(root: Path, random_seed: int, scale: float = 1.0) -> tuple[str, str]:
    """MUSAN-like data dirs (``musan_noise``, ``musan_music``, ``musan_speech``) and a RIR data dir.

    Returns ``(musan_dir, rir_dir)`` for :class:`pyfunc.config.AugmentConfig`. File
    lengths are MUSAN-like (seconds to tens of seconds) times ``scale``.
    """
    rng = np.random.default_rng(random_seed)
    musan = root / "musan"

    def source_dir(path: Path, signals: dict[str, np.ndarray]) -> None:
        wavs = {}
        for key, sig in signals.items():
            wav = root / "wav" / path.name / f"{key}.wav"
            write_wav(wav, sig.astype(np.float32))
            wavs[key] = str(wav)
        write_data_dir(path, DataDir(wavs, {k: k for k in wavs}))

    def seconds(low: float, high: float) -> int:
        return max(SAMPLE_RATE // 2, int(rng.uniform(low, high) * scale * SAMPLE_RATE))

    source_dir(musan / "musan_noise", {f"noise-{i:03d}": 0.1 * rng.standard_normal(seconds(5, 20))
                                       for i in range(20)})
    music = {}
    for i in range(10):
        n = seconds(20, 40)
        t = np.arange(n) / SAMPLE_RATE
        music[f"music-{i:03d}"] = 0.2 * np.sin(2 * np.pi * rng.uniform(200, 600) * t) * (1 + np.sin(2 * np.pi * t))
    source_dir(musan / "musan_music", music)
    source_dir(musan / "musan_speech", {f"speech-{i:03d}": voice_like(seconds(10, 30) / SAMPLE_RATE, rng)
                                        for i in range(20)})
    rirs = {}
    for i in range(30):
        n = int(rng.uniform(0.3, 1.0) * SAMPLE_RATE)
        rir = np.exp(-np.arange(n) / (rng.uniform(0.02, 0.1) * SAMPLE_RATE)) * rng.standard_normal(n) * 0.3
        rir[0] = 1.0
        rirs[f"room{i:03d}-00001"] = rir / np.abs(rir).max()
    source_dir(root / "rirs", rirs)
    return str(musan), str(root / "rirs")


def make_trials(num_trials: int, num_utts: int, random_seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Utterance keys and ``num_trials`` random (enroll, test) index pairs over them (no self-trials)."""
    rng = np.random.default_rng(random_seed)
    keys = [f"utt{i:07d}" for i in range(num_utts)]
    enroll = rng.integers(0, num_utts, num_trials)
    test = (enroll + rng.integers(1, num_utts, num_trials)) % num_utts
    return keys, enroll, test


def make_scores(num_trials: int, random_seed: int, target_fraction: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels of a plausible system: target scores above nontarget ones, with overlap and
    ties (scores rounded to 4 decimals, as score files often are)."""
    rng = np.random.default_rng(random_seed)
    labels = rng.random(num_trials) < target_fraction
    scores = np.where(labels, rng.normal(0.6, 0.12, num_trials), rng.normal(0.1, 0.12, num_trials))
    return np.round(scores, 4), labels
