"""The seed's on-the-fly waveform augmentation: MUSAN noise, music and babble, and simulated RIRs.

One of six types with equal probability per example: none; reverberation (a
random RIR normalised to unit energy, full convolution cut to the segment
length); babble (3 to 8 MUSAN speech files, both included as in the seed's
``random.randint(3, 8)``, each at its own SNR in 13-20 dB, summed); music (one
file, 5-15 dB); noise (one file, 0-15 dB); "television" (babble, then music
added on top of the babbled signal). Levels use the seed's
``10 log10(mean(x^2) + 1e-4)`` for both signals.

An augmentation is drawn as a *spec* (a plain dict: which files, offsets and
SNRs) and then applied, so the offline path (:mod:`pyfunc.features.augment_offline`)
stores the same specs and gives the same samples. A spec is
``{"type": T, "steps": [step, ...]}`` with steps applied in order::

    {"op": "reverb", "rir": "/path/rir.wav"}
    {"op": "add", "sources": [{"wav": "/path/n.wav", "start": 0.37, "snr": 7.2}, ...]}
    {"op": "add", "sources": [{"wav": "/path/n.wav", "segment": [48000, 128000], "start": 0.37, "snr": 7.2}]}

A noise is a whole file, or with ``segment`` the samples ``[begin, end)`` of it:
a MUSAN data dir with a Kaldi ``segments`` file (the seed's ``musan_split``, 5 s
segments every 3 s; ``prepare_musan`` of ``egs/voxceleb/local/musan.py``) gives one noise
per segment, read in place; without one, each wav.scp file is one noise.
``start`` in [0, 1) places the noise window as the seed does: sample offset
``int(start * (len(noise) - len(x)))`` when the noise is longer than the
segment, else the noise is wrap-padded from its first sample. Arithmetic is in
float64 (the seed reads audio as float64); the augmenter returns float32.

Applying a spec is two parts: :func:`read_spec` reads its audio (a
:class:`DrawnAugment`: the RIR, the noises fitted to the segment, the SNRs) and
:func:`apply_drawn` does the arithmetic. The training loader's workers can stop
after the first (:meth:`WaveAugmenter.draw`) and leave the second to
:mod:`pyfunc.features.batch_augment`, on a whole batch on the training device.
"""

from __future__ import annotations

import logging
import math
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, NamedTuple, Sequence, Union

import numpy as np
import soundfile

from pyfunc.config import AugmentConfig
from pyfunc.data.atomic import PathLike
from pyfunc.data.audio import SAMPLE_RATE, is_pipe
from pyfunc.data.segments import SEGMENTS, read_segments
from pyfunc.data.tables import read_scp
from pyfunc.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

AUG_TYPES = ("none", "reverb", "babble", "music", "noise", "television")

# MUSAN data dirs under AugmentConfig.musan_dir, by the source they provide.
MUSAN_DIRS = {"noise": "musan_noise", "music": "musan_music", "speech": "musan_speech"}

# Sources each augmentation type draws from.
TYPE_SOURCES = {"none": (), "reverb": ("rir",), "babble": ("speech",), "music": ("music",),
                "noise": ("noise",), "television": ("speech", "music")}

LEVEL_FLOOR = 1e-4  # the seed's floor inside 10 log10(mean(x^2) + 1e-4)


class Clip(NamedTuple):
    """Samples ``[begin, end)`` of the audio file ``wav``: one noise of a segmented source."""

    wav: str
    begin: int
    end: int


Noise = Union[str, Clip]  # a whole file, or a span of one


def level_db(x: np.ndarray) -> float:
    """The seed's signal level ``10 log10(mean(x^2) + 1e-4)`` in dB."""
    x = np.asarray(x, dtype=np.float64)
    return float(10.0 * np.log10(np.mean(x ** 2) + LEVEL_FLOOR))


def snr_db(x: np.ndarray, noise_component: np.ndarray) -> float:
    """SNR of clean ``x`` against an additive ``noise_component``, both levels by :func:`level_db`."""
    return level_db(x) - level_db(noise_component)


def scale_noise(x: np.ndarray, noise: np.ndarray, snr: float) -> np.ndarray:
    """``noise`` (same length as ``x``) scaled to ``snr`` dB below ``x``, by the seed's formula (float64).

    ``sqrt(10 ** ((level(x) - level(noise) - snr) / 10)) * noise``. Because of the
    1e-4 floor in both levels, the SNR measured afterwards is exact only for
    signals much louder than -40 dB.
    """
    x = np.asarray(x, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    if noise.shape != x.shape:
        raise ValueError(f"noise has shape {noise.shape}, the signal {x.shape}; fit it first (fit_noise)")
    return math.sqrt(10.0 ** ((level_db(x) - level_db(noise) - snr) / 10.0)) * noise


def add_noise(x: np.ndarray, noise: np.ndarray | Sequence[np.ndarray], snr_db: float | Sequence[float]) -> np.ndarray:
    """``x`` plus one noise, or the sum of several, each scaled against ``x`` to its own SNR (float64).

    ``noise`` is one array of ``len(x)`` samples with one ``snr_db``, or a sequence of
    such arrays with a sequence of SNRs (the seed's babble: every talker is scaled
    against the clean signal, then all are summed).
    """
    x = np.asarray(x, dtype=np.float64)
    if isinstance(noise, np.ndarray) and noise.ndim == x.ndim:
        noises, snrs = [noise], [snr_db]
    else:
        noises, snrs = list(noise), list(snr_db)  # type: ignore[arg-type]
    if len(noises) != len(snrs):
        raise ValueError(f"{len(noises)} noises but {len(snrs)} SNRs")
    if not noises:
        return x.copy()
    scaled = [scale_noise(x, n, float(s)) for n, s in zip(noises, snrs)]
    return x + np.sum(np.stack(scaled), axis=0)  # summed first, then added: the seed's order


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve ``x`` with ``rir`` normalised to unit energy; the full convolution cut to ``len(x)`` (float64)."""
    x = np.asarray(x, dtype=np.float64)
    rir = np.asarray(rir, dtype=np.float64)
    if rir.ndim != 1 or rir.size == 0:
        raise ValueError(f"a RIR must be a non-empty 1-d array, got shape {rir.shape}")
    energy = float(np.sum(rir ** 2))
    if not energy > 0.0 or not math.isfinite(energy):
        raise ValueError(f"a RIR must have finite, non-zero energy, got {energy}")
    from scipy.signal import fftconvolve  # noqa: PLC0415 (heavy: 0.7 s of every stage-1 job's start)

    return fftconvolve(x, rir / math.sqrt(energy), mode="full")[: x.shape[0]]


def noise_offset(noise_length: int, length: int, start: float) -> int:
    """The seed's crop offset: ``int(start * (noise_length - length))``, 0 when the noise is not longer."""
    if not 0.0 <= start < 1.0:
        raise ValueError(f"start must be in [0, 1), got {start}")
    return int(start * (noise_length - length)) if noise_length > length else 0


def fit_noise(noise: np.ndarray, length: int, start: float) -> np.ndarray:
    """``length`` samples of ``noise``: a crop at :func:`noise_offset`, or the noise wrap-padded (as the seed)."""
    noise = np.asarray(noise, dtype=np.float64)
    if noise.ndim != 1 or noise.size == 0:
        raise ValueError(f"noise must be a non-empty 1-d array, got shape {noise.shape}")
    offset = noise_offset(noise.shape[0], length, start)
    if noise.shape[0] <= length:
        return np.pad(noise, (0, length - noise.shape[0]), mode="wrap")
    return noise[offset:offset + length]


class AudioSource:
    """Lazy, cached reads of noise and RIR files (16 kHz mono; soundfile).

    File lengths are cached once read from the header; files of at most
    ``max_cached_frames`` samples (RIRs, short noises) are kept decoded in an LRU
    cache of ``cache_samples`` samples in all; windows of longer files are read
    from disk each time (only the samples needed).
    """

    def __init__(self, cache_samples: int = 8_000_000, max_cached_frames: int = 10 * SAMPLE_RATE):
        self.cache_samples = cache_samples
        self.max_cached_frames = max_cached_frames
        self._frames: dict[str, int] = {}
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cached = 0

    def frames(self, path: str) -> int:
        """Number of samples of ``path``; checks it is 16 kHz mono and not empty."""
        if path not in self._frames:
            try:
                info = soundfile.info(path)
            except (RuntimeError, soundfile.LibsndfileError) as err:
                raise DataError(f"{path}: cannot read augmentation audio: {err}") from None
            if info.samplerate != SAMPLE_RATE or info.channels != 1:
                raise DataError(f"{path}: augmentation audio must be {SAMPLE_RATE} Hz mono, "
                                f"got {info.samplerate} Hz, {info.channels} channel(s)")
            if info.frames <= 0:
                raise DataError(f"{path}: augmentation audio is empty")
            self._frames[path] = int(info.frames)
        return self._frames[path]

    def _read(self, path: str, start: int = 0, frames: int = -1) -> np.ndarray:
        try:
            samples, _ = soundfile.read(path, start=start, frames=frames, dtype="float64", always_2d=True)
        except (RuntimeError, soundfile.LibsndfileError, ValueError) as err:
            raise DataError(f"{path}: cannot read augmentation audio: {err}") from None
        if not np.isfinite(samples).all():
            raise DataError(f"{path}: augmentation audio has non-finite samples")
        return samples[:, 0]

    def whole(self, path: str) -> np.ndarray:
        """All samples of ``path`` (float64; do not modify: it may be the cached array)."""
        cached = self._cache.get(path)
        if cached is not None:
            self._cache.move_to_end(path)
            return cached
        total = self.frames(path)
        samples = self._read(path)
        if total <= self.max_cached_frames and total <= self.cache_samples:
            samples.setflags(write=False)
            self._cache[path] = samples
            self._cached += samples.shape[0]
            while self._cached > self.cache_samples:
                _, old = self._cache.popitem(last=False)
                self._cached -= old.shape[0]
        return samples

    def fitted(self, path: str, length: int, start: float, segment: Sequence[int] | None = None) -> np.ndarray:
        """``fit_noise(noise, length, start)`` of the whole file or of its samples ``segment = [begin, end)``,
        reading only the needed window of a long file."""
        total = self.frames(path)
        begin, end = (0, total) if segment is None else (int(segment[0]), int(segment[1]))
        if not 0 <= begin < end <= total:
            raise DataError(f"{path}: segment [{begin}, {end}) samples is not within its {total} samples")
        span = end - begin
        if total <= self.max_cached_frames:
            return fit_noise(self.whole(path)[begin:end], length, start)
        if span <= length:
            return fit_noise(self._checked_read(path, begin, span, total), length, start)
        return self._checked_read(path, begin + noise_offset(span, length, start), length, total)

    def _checked_read(self, path: str, offset: int, frames: int, total: int) -> np.ndarray:
        window = self._read(path, offset, frames)
        if window.shape[0] != frames:
            raise DataError(f"{path}: header says {total} samples but only {offset + window.shape[0]} could be read")
        return window


def load_source_list(data_dir: PathLike, what: str) -> list[Noise]:
    """The noises of a Kaldi data dir, in key order: with a ``segments`` file one :class:`Clip` per segment
    (times rounded to samples), else the audio files of wav.scp (plain files only, not pipes)."""
    data_dir = Path(data_dir)
    scp = data_dir / "wav.scp"
    if not scp.is_file():
        raise ConfigError(f"{scp}: not found; the {what} augmentation needs this data dir (prepare it first)")
    table = read_scp(scp)
    if not table:
        raise DataError(f"{scp}: no entries")
    paths = {}
    for key in sorted(table):
        entry = table[key]
        if is_pipe(entry):
            raise DataError(f"{scp}: {key}: augmentation sources must be audio files, not pipe commands")
        paths[key] = os.path.abspath(entry)
    if not (data_dir / SEGMENTS).is_file():
        return list(paths.values())
    clips: list[Noise] = []
    for utt, segment in read_segments(data_dir / SEGMENTS).items():
        if segment.recording not in paths:
            raise DataError(f"{data_dir / SEGMENTS}: segment {utt!r}: recording {segment.recording!r} is not in {scp}")
        clips.append(Clip(paths[segment.recording], round(segment.start * SAMPLE_RATE),
                          round(segment.end * SAMPLE_RATE)))
    if not clips:
        raise DataError(f"{data_dir / SEGMENTS}: no segments")
    return clips


class ReverbDraw(NamedTuple):
    """A drawn reverberation: the RIR's samples as read (float64; normalised when applied)."""

    rir: np.ndarray


class AddDraw(NamedTuple):
    """A drawn additive step: its noises already fitted to the segment, (k, length) float64, and their SNRs (k,)."""

    noises: np.ndarray
    snrs: np.ndarray


class DrawnAugment(NamedTuple):
    """A spec with its audio read: what is left to do is arithmetic (:func:`apply_drawn`, or batched on a device
    by :mod:`pyfunc.features.batch_augment`)."""

    type: str
    steps: tuple[ReverbDraw | AddDraw, ...]


def read_spec(spec: dict[str, Any], source: AudioSource, length: int) -> DrawnAugment:
    """Read the RIR and noise audio of a spec for a segment of ``length`` samples (noises cropped or wrapped)."""
    steps: list[ReverbDraw | AddDraw] = []
    for step in spec["steps"]:
        if step["op"] == "reverb":
            rir = source.whole(step["rir"])
            energy = float(np.sum(rir ** 2))
            if not energy > 0.0 or not math.isfinite(energy):
                raise DataError(f"{step['rir']}: a RIR must have finite, non-zero energy, got {energy}")
            steps.append(ReverbDraw(rir))
        elif step["op"] == "add":
            noises = [source.fitted(s["wav"], length, float(s["start"]), s.get("segment")) for s in step["sources"]]
            snrs = np.array([float(s["snr"]) for s in step["sources"]], dtype=np.float64)
            stacked = np.stack(noises) if noises else np.zeros((0, length))
            steps.append(AddDraw(stacked, snrs))
        else:
            raise DataError(f"unknown augmentation step {step['op']!r}")
    return DrawnAugment(str(spec.get("type", "")), tuple(steps))


def apply_drawn(x: np.ndarray, drawn: DrawnAugment) -> np.ndarray:
    """Apply the steps of a drawn augmentation to ``x`` in order; float64, same length."""
    out = np.asarray(x, dtype=np.float64)
    for step in drawn.steps:
        if isinstance(step, ReverbDraw):
            out = reverberate(out, step.rir)
        else:
            out = add_noise(out, list(step.noises), list(step.snrs))
    return out


def apply_spec(x: np.ndarray, spec: dict[str, Any], source: AudioSource) -> np.ndarray:
    """Apply a spec (see the module docstring) to ``x``; float64, same length."""
    return apply_drawn(x, read_spec(spec, source, np.asarray(x).shape[0]))


def _range(values: Sequence[Any], key: str, kind: type) -> tuple[Any, Any]:
    if not isinstance(values, (list, tuple)) or len(values) != 2:
        raise ConfigError(f"train.augment.{key}: expected [low, high], got {values!r}")
    try:
        low, high = kind(values[0]), kind(values[1])
    except (TypeError, ValueError):
        raise ConfigError(f"train.augment.{key}: expected two {kind.__name__}s, got {values!r}") from None
    if kind is int and (low != values[0] or high != values[1]):
        raise ConfigError(f"train.augment.{key}: expected two integers, got {values!r}")
    if low > high:
        raise ConfigError(f"train.augment.{key}: low {low} is above high {high}")
    return low, high


class WaveAugmenter:
    """Seed-style augmentation, callable as ``augment(samples, rng) -> samples`` (same length, float32).

    ``sources`` maps "noise", "music", "speech" and "rir" to lists of audio files
    (and the first three also to :class:`Clip` spans of files); only those the
    chosen ``types`` need are required. Everything random comes from the ``rng``
    passed in, so a given generator state gives the same output.
    """

    def __init__(self, sources: dict[str, list[Noise]], babble_speakers: Sequence[int] = (3, 8),
                 snr_babble: Sequence[float] = (13.0, 20.0), snr_music: Sequence[float] = (5.0, 15.0),
                 snr_noise: Sequence[float] = (0.0, 15.0), types: Sequence[str] = AUG_TYPES,
                 cache_samples: int = 8_000_000):
        unknown = [t for t in types if t not in AUG_TYPES]
        if unknown or not types:
            raise ConfigError(f"augmentation types {list(types)!r}: each must be one of {', '.join(AUG_TYPES)}")
        self.types = tuple(types)
        self.sources = {k: list(v) for k, v in sources.items()}
        for kind in self.types:
            for name in TYPE_SOURCES[kind]:
                if not self.sources.get(name):
                    raise ConfigError(f"the {kind} augmentation needs {name} files, none given")
        self.babble_speakers = _range(babble_speakers, "babble_speakers", int)
        if self.babble_speakers[0] < 1:
            raise ConfigError(f"train.augment.babble_speakers: at least 1 talker, got {list(babble_speakers)}")
        self.snr = {"speech": _range(snr_babble, "snr_babble", float),
                    "music": _range(snr_music, "snr_music", float),
                    "noise": _range(snr_noise, "snr_noise", float)}
        speech = self.sources.get("speech", [])
        if speech and len(speech) < self.babble_speakers[1]:
            logger.warning("only %d babble (speech) noises: babble will use at most that many talkers", len(speech))
        self.source = AudioSource(cache_samples)

    @classmethod
    def from_config(cls, cfg: AugmentConfig, types: Sequence[str] = AUG_TYPES) -> "WaveAugmenter":
        """Build from ``AugmentConfig``: MUSAN data dirs under ``musan_dir``, RIRs in the ``rir_dir`` data dir."""
        needed = {name for kind in types if kind in TYPE_SOURCES for name in TYPE_SOURCES[kind]}
        sources: dict[str, list[Noise]] = {}
        for name in sorted(needed):
            if name == "rir":
                if not cfg.rir_dir:
                    raise ConfigError("train.augment.rir_dir: not set; the reverb augmentation needs it")
                sources[name] = load_source_list(cfg.rir_dir, "reverb")
                if any(isinstance(rir, Clip) for rir in sources[name]):
                    raise ConfigError(f"{cfg.rir_dir}: a RIR data dir cannot have a segments file")
            else:
                if not cfg.musan_dir:
                    raise ConfigError("train.augment.musan_dir: not set; the noise, music and babble "
                                      "augmentations need it")
                sources[name] = load_source_list(Path(cfg.musan_dir) / MUSAN_DIRS[name], name)
        return cls(sources, cfg.babble_speakers, cfg.snr_babble, cfg.snr_music, cfg.snr_noise, types)

    def _additive(self, name: str, count: int, rng: np.random.Generator) -> dict[str, Any]:
        files = self.sources[name]
        picks = rng.choice(len(files), size=min(count, len(files)), replace=False)
        low, high = self.snr[name]
        sources = []
        for index in picks:
            noise = files[int(index)]
            start = float(rng.random())
            entry: dict[str, Any] = {"wav": noise} if isinstance(noise, str) else {
                "wav": noise.wav, "segment": [noise.begin, noise.end]}
            sources.append({**entry, "start": start, "snr": float(rng.uniform(low, high))})
        return {"op": "add", "sources": sources}

    def draw_spec(self, rng: np.random.Generator, kind: str | None = None) -> dict[str, Any]:
        """Draw a spec: of type ``kind``, or of a type chosen uniformly among ``self.types``."""
        if kind is None:
            kind = self.types[int(rng.integers(len(self.types)))]
        elif kind not in self.types:
            raise ConfigError(f"augmentation type {kind!r} is not one of {', '.join(self.types)}")
        steps: list[dict[str, Any]] = []
        if kind == "reverb":
            rirs = self.sources["rir"]
            steps.append({"op": "reverb", "rir": rirs[int(rng.integers(len(rirs)))]})
        elif kind in ("babble", "television"):
            low, high = self.babble_speakers
            steps.append(self._additive("speech", int(rng.integers(low, high + 1)), rng))
            if kind == "television":
                steps.append(self._additive("music", 1, rng))
        elif kind in ("music", "noise"):
            steps.append(self._additive(kind, 1, rng))
        return {"type": kind, "steps": steps}

    def apply(self, samples: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
        """Apply a drawn spec; float32, same length."""
        return apply_spec(samples, spec, self.source).astype(np.float32)

    def draw(self, length: int, rng: np.random.Generator, kind: str | None = None) -> DrawnAugment:
        """Draw a spec as :meth:`__call__` does (the same random draws; ``kind`` as in :meth:`draw_spec`) and read
        its audio for ``length`` samples; the arithmetic is left to :func:`apply_drawn` or the batched augmenter."""
        return read_spec(self.draw_spec(rng, kind), self.source, length)

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.apply(samples, self.draw_spec(rng))


def build_augmenter(cfg: AugmentConfig) -> WaveAugmenter | None:
    """The training augmenter of ``cfg``, or None when ``cfg.enabled`` is false."""
    return WaveAugmenter.from_config(cfg) if cfg.enabled else None
