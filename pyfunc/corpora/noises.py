"""Synthetic noise and music recordings (numpy only): stand-ins for MUSAN's noise and music parts.

Noise kinds (:data:`NOISE_KINDS`): white; pink, brown, blue (power spectra 1/f, 1/f^2, f);
band (white noise in a random band); hum (mains hum at 50 or 60 Hz with harmonics over
faint pink noise); fan (low-passed noise with a blade tone that wobbles); modulated (pink
noise swelling and fading at 0.2-3 Hz, like traffic or wind); crackle (sparse decaying clicks
over faint pink noise, like rain on a roof or a fire). Music: a random key, scale and tempo;
a chord progression, a melody and a bass line of additive-synthesis notes with their own
timbre and envelope, and, in most pieces, a drum pattern (kick, snare, hi-hat).

Every function draws only from the ``rng`` it is given and returns float64 samples at
16 kHz with peak 0.5.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from pyfunc.data.audio import SAMPLE_RATE

PEAK = 0.5
# The synthetic music pieces: their length, and the sub-stream of a bank's random stream
# (:data:`pyfunc.corpora.streams.BANKS`) they are drawn from (the mini corpus's banks and egs/real_speech).
MUSIC_SECONDS = 6.0
MUSIC_STREAM = 2


def _normalise(x: np.ndarray) -> np.ndarray:
    return x * (PEAK / np.max(np.abs(x)))


def _shaped(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Gaussian noise whose power spectrum goes as ``f ** exponent`` (0 white, -1 pink, -2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    gain = np.zeros_like(freqs)
    gain[1:] = (freqs[1:] / 1000.0) ** (exponent / 2.0)
    gain[freqs < 20.0] = 0.0  # no DC or sub-audio drift
    return np.fft.irfft(spectrum * gain, n)


def _band(rng: np.random.Generator, n: int) -> np.ndarray:
    low = float(np.exp(rng.uniform(np.log(80.0), np.log(2500.0))))
    high = min(7800.0, low * float(np.exp(rng.uniform(np.log(1.5), np.log(6.0)))))
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    edge = 0.1 * (high - low)
    gain = np.clip(np.minimum(freqs - low, high - freqs) / edge + 1.0, 0.0, 1.0)
    return np.fft.irfft(spectrum * gain, n)


def _hum(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    mains = float(rng.choice([50.0, 60.0]))
    drift = 1.0 + 0.002 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t)
    decay = rng.uniform(0.5, 1.5)
    hum = sum(k ** -decay * rng.uniform(0.5, 1.0)
              * np.sin(2 * np.pi * mains * k * drift * t + rng.uniform(0, 2 * np.pi)) for k in range(1, 9))
    pink = _shaped(rng, n, -1.0)
    return hum / np.std(hum) + rng.uniform(0.05, 0.3) * pink / np.std(pink)


def _fan(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    noise = _shaped(rng, n, rng.uniform(-2.0, -1.0))
    blade = rng.uniform(80.0, 400.0)
    wobble = 1.0 + 0.01 * np.sin(2 * np.pi * rng.uniform(0.1, 1.0) * t)
    tone = np.sin(2 * np.pi * blade * wobble * t) + 0.4 * np.sin(4 * np.pi * blade * wobble * t)
    return noise / np.std(noise) + rng.uniform(0.1, 0.6) * tone / np.std(tone)


def _modulated(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    rate = rng.uniform(0.2, 3.0)
    envelope = 1.0 + rng.uniform(0.4, 0.9) * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
    return _shaped(rng, n, rng.uniform(-1.5, -0.5)) * envelope


def _crackle(rng: np.random.Generator, n: int) -> np.ndarray:
    clicks = np.zeros(n)
    count = int(rng.uniform(5, 40) * n / SAMPLE_RATE)
    clicks[rng.integers(0, n, size=count)] = rng.uniform(-1.0, 1.0, size=count)
    tail = np.exp(-np.arange(int(0.01 * SAMPLE_RATE)) / (rng.uniform(0.0005, 0.003) * SAMPLE_RATE))
    crackle = np.convolve(clicks, tail * rng.standard_normal(tail.size))[:n]
    pink = _shaped(rng, n, -1.0)
    return crackle / (np.std(crackle) + 1e-12) + rng.uniform(0.05, 0.3) * pink / np.std(pink)


NOISES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "white": lambda rng, n: rng.standard_normal(n),
    "pink": lambda rng, n: _shaped(rng, n, -1.0),
    "brown": lambda rng, n: _shaped(rng, n, -2.0),
    "blue": lambda rng, n: _shaped(rng, n, 1.0),
    "band": _band,
    "hum": _hum,
    "fan": _fan,
    "modulated": _modulated,
    "crackle": _crackle,
}
NOISE_KINDS = tuple(NOISES)


def make_noise(kind: str, rng: np.random.Generator, seconds: float) -> np.ndarray:
    """``seconds`` of noise of ``kind`` (one of :data:`NOISE_KINDS`), peak 0.5."""
    return _normalise(NOISES[kind](rng, int(seconds * SAMPLE_RATE)))


SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10), "pentatonic": (0, 2, 4, 7, 9)}


def _note(timbre: tuple[np.ndarray, float, float], midi: float, seconds: float) -> np.ndarray:
    """One note of ``timbre`` (harmonic amplitudes, attack and decay times in seconds)."""
    amplitudes, attack, decay = timbre
    n = max(1, int(seconds * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    f0 = 440.0 * 2.0 ** ((midi - 69) / 12.0)
    wave = sum(a * np.sin(2 * np.pi * f0 * (k + 1) * t) for k, a in enumerate(amplitudes) if f0 * (k + 1) < 7500)
    envelope = np.minimum(t / attack, 1.0) * np.exp(-t / decay)
    return wave * envelope


def _timbre(rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    harmonics = int(rng.integers(2, 9))
    amplitudes = np.arange(1, harmonics + 1) ** -rng.uniform(0.7, 2.0) * rng.uniform(0.5, 1.0, harmonics)
    return amplitudes, float(rng.uniform(0.005, 0.08)), float(rng.uniform(0.15, 1.2))


def _drums(rng: np.random.Generator, n: int, beat: int) -> np.ndarray:
    out = np.zeros(n)
    t = np.arange(int(0.25 * SAMPLE_RATE)) / SAMPLE_RATE
    kick = np.sin(2 * np.pi * (50 * t + 60 * 0.03 * (1 - np.exp(-t / 0.03)))) * np.exp(-t / 0.12)  # 110 -> 50 Hz
    snare = rng.standard_normal(t.size) * np.exp(-t / 0.05)
    hat = np.diff(rng.standard_normal(t.size + 1)) * np.exp(-t / 0.015)
    kicks = (0, 2) if rng.random() < 0.5 else (0, 1.5, 2)
    for start in range(0, n, 4 * beat):
        for position, hit, gain in ([(k, kick, 1.0) for k in kicks] + [(1, snare, 0.5), (3, snare, 0.5)]
                                    + [(h / 2, hat, 0.2) for h in range(8)]):
            at = start + int(position * beat)
            if at < n:
                piece = hit[: n - at]
                out[at:at + piece.size] += gain * piece
    return out


def make_music(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """``seconds`` of synthetic music (chords, melody, bass, mostly drums), peak 0.5."""
    n = int(seconds * SAMPLE_RATE)
    beat = int(SAMPLE_RATE * 60.0 / rng.uniform(70.0, 150.0))
    root = int(rng.integers(45, 58))
    scale = SCALES[str(rng.choice(sorted(SCALES)))]
    pitches = [root + 12 * octave + step for octave in range(3) for step in scale]
    out = np.zeros(n)

    def place(note: np.ndarray, at: int, gain: float) -> None:
        if at < n:
            piece = note[: n - at]
            out[at:at + piece.size] += gain * piece

    chord_timbre, melody_timbre, bass_timbre = _timbre(rng), _timbre(rng), _timbre(rng)
    progression = rng.integers(0, len(scale), size=4)
    for bar, start in enumerate(range(0, n, 4 * beat)):
        degree = int(progression[bar % 4])
        for k in (0, 2, 4):
            midi = pitches[degree + k + len(scale)]
            place(_note(chord_timbre, midi, 4 * beat / SAMPLE_RATE), start, 0.25)
        place(_note(bass_timbre, pitches[degree] - 12, 2 * beat / SAMPLE_RATE), start, 0.5)
        place(_note(bass_timbre, pitches[degree] - 12, 2 * beat / SAMPLE_RATE), start + 2 * beat, 0.5)
    position, index = 0, int(rng.integers(len(scale), 2 * len(scale)))
    while position < n:
        length = int(beat * float(rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0])))
        index = int(np.clip(index + rng.integers(-2, 3), 0, len(pitches) - 1))
        if rng.random() < 0.85:
            place(_note(melody_timbre, pitches[index] + 12, length / SAMPLE_RATE), position, 0.4)
        position += length
    if rng.random() < 0.75:
        out += rng.uniform(0.3, 0.8) * _drums(rng, n, beat) * np.max(np.abs(out)) / 2
    return _normalise(out)
