"""Tiny fake VoxCeleb1/2, MUSAN and RIRS_NOISES trees, in the released layouts, for tests.

The audio is synthesised (no external tool): each speaker is a source-filter "voice"
with its own fundamental frequency, vocal-tract length (formant scale), spectral tilt
and breathiness; an utterance is a run of vowel-like syllables with a wandering pitch
contour and light background noise, 1.5 to 3 s by default. Speakers are spread over
f0 and formant scale by a Latin hypercube, so a tiny model can tell them apart, while
the vowels and pitch vary within a speaker. Everything is seeded: one seed, the same
bytes. Writing a few dozen files takes well under a second (m4a encoding, through
ffmpeg, a little more).

Trees made (see each function): ``wav/id10001/<video>/00001.wav`` (VoxCeleb1),
``dev/aac/id00012/<video>/00001.m4a`` or ``dev/wav/...wav`` (VoxCeleb2),
``musan/{noise,music,speech}/<source>/*.wav``,
``RIRS_NOISES/simulated_rirs/{smallroom,mediumroom,largeroom}/RoomNNN/RoomNNN-NNNNN.wav``
and official-format trial lists (``1 id10001/abc/00001.wav id10001/def/00002.wav``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import sosfilt

from pyfunc.data.atomic import PathLike, write_lines
from pyfunc.data.audio import SAMPLE_RATE, write_wav
from pyfunc.errors import ConfigError, PyfuncError

# Peterson & Barney (1952) average male formants F1-F3 (Hz) of eight English vowels.
VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (660, 1720, 2410),
          (490, 1350, 1690), (640, 1190, 2390), (440, 1020, 2240))
F4 = 3500.0
BANDWIDTHS = (80.0, 100.0, 140.0, 200.0)
F0_RANGE = (85.0, 280.0)
FORMANT_SCALE_RANGE = (0.82, 1.22)
TILT_RANGE = (0.90, 0.97)  # pole of the one-pole glottal low-pass
BREATH_RANGE = (0.01, 0.08)
DURATION_RANGE = (1.5, 3.0)
_VIDEO_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
ROOM_RT60 = {"smallroom": (0.15, 0.3), "mediumroom": (0.3, 0.6), "largeroom": (0.6, 1.0)}
RIR_SECONDS = 0.3


@dataclass(frozen=True)
class Voice:
    """The parameters of one synthetic speaker."""

    f0: float
    formant_scale: float
    tilt: float
    breath: float


@dataclass
class FakeCorpus:
    """A fake corpus on disk: its root, the folders holding speaker folders, and its files by utterance id."""

    root: Path
    speaker_roots: list[Path]
    files: dict[str, Path]

    @property
    def utt2spk(self) -> dict[str, str]:
        return {utt: utt.split("/", 1)[0] for utt in sorted(self.files)}

    @property
    def speakers(self) -> list[str]:
        return sorted(set(self.utt2spk.values()))


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


def _latin(rng: np.random.Generator, count: int, low: float, high: float) -> np.ndarray:
    return low + (rng.permutation(count) + rng.random(count)) / count * (high - low)


def make_voices(count: int, random_seed: int) -> list[Voice]:
    """``count`` voices, each in its own f0 bin (log scale) and its own formant-scale bin."""
    rng = _rng(random_seed, 100)
    f0 = np.exp(_latin(rng, count, np.log(F0_RANGE[0]), np.log(F0_RANGE[1])))
    scale = _latin(rng, count, *FORMANT_SCALE_RANGE)
    tilt = rng.uniform(*TILT_RANGE, size=count)
    breath = rng.uniform(*BREATH_RANGE, size=count)
    return [Voice(float(f0[i]), float(scale[i]), float(tilt[i]), float(breath[i])) for i in range(count)]


def _resonators(formants: list[float], rate: int) -> np.ndarray:
    """Second-order sections of a cascade of unit-gain-at-DC resonators at ``formants``."""
    sos = []
    for freq, bw in zip(formants, BANDWIDTHS):
        r = np.exp(-np.pi * bw / rate)
        a1, a2 = -2 * r * np.cos(2 * np.pi * min(freq, 0.45 * rate) / rate), r * r
        sos.append([1 + a1 + a2, 0.0, 0.0, 1.0, a1, a2])
    return np.asarray(sos)


def synthesize_speech(voice: Voice, seconds: float, rng: np.random.Generator, rate: int = SAMPLE_RATE,
                      snr_db: float = 35.0) -> np.ndarray:
    """``seconds`` of vowel-like syllables in ``voice``: float32 samples, peak 0.3 to 0.8."""
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    f0 = voice.f0 * rng.uniform(0.95, 1.05)
    contour = f0 * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.4, 1.2) * t + rng.uniform(0, 2 * np.pi)))
    contour *= 1 + 0.012 * np.sin(2 * np.pi * rng.uniform(4.5, 6.5) * t) - 0.08 * t / max(seconds, 1e-3)
    cycles = np.cumsum(contour) / rate
    pulses = np.diff(np.floor(cycles), prepend=0.0)  # one impulse per glottal cycle
    source = sosfilt([[1 - voice.tilt, 0, 0, 1, -voice.tilt, 0]], pulses)
    source = source / (np.std(source) + 1e-9) + voice.breath * 3 * rng.standard_normal(n)
    out = np.zeros(n)
    start = int(rng.uniform(0.05, 0.15) * rate)
    while start < n - int(0.08 * rate):
        length = min(int(rng.uniform(0.12, 0.28) * rate), n - start)
        vowel = VOWELS[rng.integers(len(VOWELS))]
        formants = [f * voice.formant_scale * rng.uniform(0.97, 1.03) for f in (*vowel, F4)]
        segment = sosfilt(_resonators(formants, rate), source[start:start + length])
        ramp = min(length // 2, int(0.025 * rate))
        envelope = np.ones(length)
        envelope[:ramp] = np.sin(np.linspace(0, np.pi / 2, ramp)) ** 2
        envelope[length - ramp:] = envelope[:ramp][::-1]
        out[start:start + length] += segment * envelope * rng.uniform(0.6, 1.0)
        gap = rng.uniform(0.15, 0.3) if rng.random() < 0.2 else rng.uniform(0.02, 0.08)
        start += length + int(gap * rate)
    out /= np.max(np.abs(out)) + 1e-9
    noise_power = np.mean(out ** 2) / 10 ** (snr_db / 10)
    out += rng.standard_normal(n) * np.sqrt(noise_power)
    out *= rng.uniform(0.3, 0.8) / np.max(np.abs(out))
    return out.astype(np.float32)


def _video_ids(rng: np.random.Generator, count: int) -> list[str]:
    ids: list[str] = []
    while len(ids) < count:
        video = "".join(_VIDEO_CHARS[i] for i in rng.integers(len(_VIDEO_CHARS), size=11))
        if video not in ids:
            ids.append(video)
    return sorted(ids)


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if value < 1:
            raise ConfigError(f"fake corpus: {name} must be at least 1, got {value}")


def _encode_m4a(ffmpeg: str, wav: Path, m4a: Path) -> None:
    tmp = m4a.with_name(f".{m4a.name}.tmp")
    command = [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(wav), "-c:a", "aac", "-b:a", "48k", "-f", "ipod",
               str(tmp)]
    result = subprocess.run(command, capture_output=True)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise PyfuncError(f"{m4a}: ffmpeg could not encode m4a: {result.stderr.decode(errors='replace').strip()}")
    os.replace(tmp, m4a)
    wav.unlink()


def _make_speaker_tree(root: Path, speaker_roots: dict[str, Path], voices: dict[str, Voice], videos: int,
                       utts: int, random_seed: int, ext: str, durations: tuple[float, float]) -> FakeCorpus:
    """Write ``speaker_root/spk/video/NNNNN.wav`` for every speaker; m4a conversion is left to the caller."""
    files: dict[str, Path] = {}
    for index, (speaker, speaker_root) in enumerate(speaker_roots.items()):
        for v, video in enumerate(_video_ids(_rng(random_seed, 1, index), videos)):
            for u in range(1, utts + 1):
                rng = _rng(random_seed, 2, index, v, u)
                audio = synthesize_speech(voices[speaker], rng.uniform(*durations), rng)
                path = speaker_root / speaker / video / f"{u:05d}.{ext}"
                path.parent.mkdir(parents=True, exist_ok=True)
                write_wav(path.with_suffix(".wav"), audio)
                files[f"{speaker}/{video}/{u:05d}"] = path
    roots = sorted(set(speaker_roots.values()))
    return FakeCorpus(root, roots, dict(sorted(files.items())))


def make_fake_voxceleb1(root: PathLike, speakers: int = 4, videos: int = 2, utts: int = 3, random_seed: int = 0,
                        test_speakers: int = 0, durations: tuple[float, float] = DURATION_RANGE) -> FakeCorpus:
    """A VoxCeleb1-like tree: speakers ``id10001``..., ``videos`` videos each, ``utts`` wav files per video.

    With ``test_speakers`` 0 everything goes in ``root/wav``; otherwise the last
    ``test_speakers`` speakers go in ``root/vox1_test_wav/wav``, the others in
    ``root/vox1_dev_wav/wav`` (the two released archives).
    """
    _check_counts(speakers=speakers, videos=videos, utts=utts)
    if not 0 <= test_speakers <= speakers:
        raise ConfigError(f"fake corpus: test_speakers must be 0 to {speakers}, got {test_speakers}")
    root = Path(os.path.abspath(root))
    names = [f"id{10001 + i}" for i in range(speakers)]
    if test_speakers:
        dev, test = root / "vox1_dev_wav" / "wav", root / "vox1_test_wav" / "wav"
        where = {name: (test if i >= speakers - test_speakers else dev) for i, name in enumerate(names)}
    else:
        where = {name: root / "wav" for name in names}
    voices = dict(zip(names, make_voices(speakers, random_seed)))
    return _make_speaker_tree(root, where, voices, videos, utts, random_seed, "wav", durations)


def make_fake_voxceleb2(root: PathLike, speakers: int = 4, videos: int = 2, utts: int = 3, random_seed: int = 1,
                        as_m4a: bool = False, durations: tuple[float, float] = DURATION_RANGE) -> FakeCorpus:
    """A VoxCeleb2-dev-like tree: speakers ``id00012``, ``id00017``, ...

    ``as_m4a``: AAC files in ``root/dev/aac/<spk>/<video>/00001.m4a`` as released (needs
    ffmpeg; PyfuncError otherwise); else wav files in ``root/dev/wav/...`` (a converted tree).
    """
    _check_counts(speakers=speakers, videos=videos, utts=utts)
    ffmpeg = shutil.which("ffmpeg") if as_m4a else None
    if as_m4a and ffmpeg is None:
        raise PyfuncError("ffmpeg is not installed: it is needed to make m4a files (apt-get install ffmpeg)")
    root = Path(os.path.abspath(root))
    names = [f"id{12 + 5 * i:05d}" for i in range(speakers)]
    speaker_root = root / "dev" / ("aac" if as_m4a else "wav")
    voices = dict(zip(names, make_voices(speakers, random_seed)))
    corpus = _make_speaker_tree(root, {n: speaker_root for n in names}, voices, videos, utts, random_seed,
                                "m4a" if as_m4a else "wav", durations)
    if as_m4a:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(lambda p: _encode_m4a(ffmpeg, p.with_suffix(".wav"), p), corpus.files.values()))
    return corpus


def _noise(rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    """White, pink-ish or brown-ish noise, sometimes band-passed or in bursts."""
    white = rng.standard_normal(n)
    kind = rng.integers(3)
    if kind == 1:
        x = sosfilt([[1, 0, 0, 1, -0.9, 0]], white)
    elif kind == 2:
        x = sosfilt([[1, 0, 0, 1, -0.995, 0]], white)
    else:
        x = white
    if rng.random() < 0.5:
        x = sosfilt(_resonators([rng.uniform(300, 4000)], rate), x)
    if rng.random() < 0.5:
        bursts = np.repeat(rng.random(n // (rate // 10) + 1) < 0.5, rate // 10)[:n]
        x = x * (0.2 + bursts)
    return x


def _music(rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    """Notes of harmonic tones on a beat, with decaying envelopes."""
    out = np.zeros(n)
    beat = int(rate * 60 / rng.uniform(80, 160))
    base = rng.uniform(110, 330)
    for start in range(0, n, beat):
        length = min(n - start, 2 * beat)
        t = np.arange(length) / rate
        for semitones in rng.choice([0, 3, 4, 7, 10, 12], size=rng.integers(1, 4), replace=False):
            f = base * 2 ** (semitones / 12)
            tone = sum(np.sin(2 * np.pi * f * k * t) / k ** 1.5 for k in range(1, 6))
            out[start:start + length] += tone * np.exp(-t * rng.uniform(2, 6))
    return out


def make_fake_musan(root: PathLike, files_per_source: int = 2, seconds: float = 4.0, random_seed: int = 2) -> Path:
    """A MUSAN-like tree under ``root/musan``; returns that folder.

    noise/free-sound and noise/sound-bible, music/fma and music/rfm, speech/librivox and
    speech/us-gov: ``files_per_source`` files of ``seconds`` each, named as in MUSAN
    (``noise-free-sound-0000.wav``). Speech is synthetic voices of their own.
    """
    _check_counts(files_per_source=files_per_source)
    musan = Path(os.path.abspath(root)) / "musan"
    sources = {"noise": ("free-sound", "sound-bible"), "music": ("fma", "rfm"), "speech": ("librivox", "us-gov")}
    voices = make_voices(2 * files_per_source, random_seed + 1000)
    n = int(seconds * SAMPLE_RATE)
    for c, (category, names) in enumerate(sources.items()):
        for s, source in enumerate(names):
            for i in range(files_per_source):
                rng = _rng(random_seed, 3, c, s, i)
                if category == "noise":
                    audio = _noise(rng, n, SAMPLE_RATE)
                elif category == "music":
                    audio = _music(rng, n, SAMPLE_RATE)
                else:
                    audio = synthesize_speech(voices[s * files_per_source + i], seconds, rng).astype(np.float64)
                audio = audio * rng.uniform(0.3, 0.8) / (np.max(np.abs(audio)) + 1e-9)
                write_wav(musan / category / source / f"{category}-{source}-{i:04d}.wav", audio.astype(np.float32))
    return musan


def make_fake_rirs(root: PathLike, rooms: int = 2, rirs_per_room: int = 2, random_seed: int = 3) -> Path:
    """A RIRS_NOISES-like tree: ``root/RIRS_NOISES/simulated_rirs/<type>/RoomNNN/RoomNNN-NNNNN.wav``.

    Each RIR is 0.3 s: a direct-path impulse after a short delay, then exponentially decaying
    noise (RT60 by room type). Returns the ``RIRS_NOISES`` folder.
    """
    _check_counts(rooms=rooms, rirs_per_room=rirs_per_room)
    base = Path(os.path.abspath(root)) / "RIRS_NOISES"
    n = int(RIR_SECONDS * SAMPLE_RATE)
    for r, (room_type, rt60_range) in enumerate(ROOM_RT60.items()):
        for room in range(1, rooms + 1):
            for k in range(1, rirs_per_room + 1):
                rng = _rng(random_seed, 4, r, room, k)
                delay = int(rng.integers(8, 120))
                rt60 = rng.uniform(*rt60_range)
                t = np.arange(n - delay - 1) / SAMPLE_RATE
                rir = np.zeros(n)
                rir[delay] = 1.0
                tail = rng.standard_normal(t.size) * np.exp(-6.908 * t / rt60) * rng.uniform(0.1, 0.3)
                rir[delay + 1:] = np.clip(tail, -0.7, 0.7)  # the direct path stays the peak
                rir *= 0.9 / np.max(np.abs(rir))
                name = f"Room{room:03d}"
                write_wav(base / "simulated_rirs" / room_type / name / f"{name}-{k:05d}.wav", rir.astype(np.float32))
    return base


def make_fake_trial_list(path: PathLike, vox1_root: PathLike | FakeCorpus, n: int = 20, random_seed: int = 4,
                         target_fraction: float = 0.5) -> list[tuple[int, str, str]]:
    """Write an official-format trial list (``1 id10001/abc/00001.wav id10001/def/00002.wav``) of
    ``n`` distinct pairs of the wav files under ``vox1_root``, about ``target_fraction`` of them
    targets (at least one of each kind when ``n >= 2``), in random order. Returns the lines as tuples.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "egs" / "voxceleb" / "local"))
    from voxceleb import scan_audio_tree

    if isinstance(vox1_root, FakeCorpus):
        utts = sorted(vox1_root.files)
    else:
        utts = sorted(scan_audio_tree([vox1_root], ("wav",), desc="fake trials").files["wav"])
    by_speaker: dict[str, list[str]] = {}
    for utt in utts:
        by_speaker.setdefault(utt.split("/", 1)[0], []).append(utt)
    speakers = sorted(by_speaker)
    target_pairs = sum(len(u) * (len(u) - 1) // 2 for u in by_speaker.values())
    nontarget_pairs = (len(utts) ** 2 - sum(len(u) ** 2 for u in by_speaker.values())) // 2
    targets = int(round(n * target_fraction))
    if n >= 2:
        targets = min(max(targets, 1), n - 1)
    if targets > target_pairs or n - targets > nontarget_pairs:
        raise ConfigError(f"fake trial list: {n} trials with {targets} targets asked for, but {vox1_root} has only "
                          f"{target_pairs} target and {nontarget_pairs} non-target pairs")
    rng = _rng(random_seed, 5)
    chosen: set[tuple[str, str]] = set()
    lines: list[tuple[int, str, str]] = []
    for label in rng.permutation([1] * targets + [0] * (n - targets)):
        while True:
            if label:
                spk = speakers[rng.integers(len(speakers))]
                if len(by_speaker[spk]) < 2:
                    continue
                a, b = rng.choice(by_speaker[spk], size=2, replace=False)
            else:
                s1, s2 = rng.choice(len(speakers), size=2, replace=False)
                a = by_speaker[speakers[s1]][rng.integers(len(by_speaker[speakers[s1]]))]
                b = by_speaker[speakers[s2]][rng.integers(len(by_speaker[speakers[s2]]))]
            if (a, b) not in chosen and (b, a) not in chosen:
                chosen.add((a, b))
                lines.append((int(label), str(a), str(b)))
                break
    write_lines(path, (f"{label} {a}.wav {b}.wav" for label, a, b in lines))
    return lines


__all__ = ["FakeCorpus", "Voice", "make_fake_musan", "make_fake_rirs", "make_fake_trial_list",
           "make_fake_voxceleb1", "make_fake_voxceleb2", "make_voices", "synthesize_speech"]
