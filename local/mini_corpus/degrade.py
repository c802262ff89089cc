"""Degrading clean speech for the evaluation sets: a 1-3 s cut, room reverberation, additive noise or babble.

Levels use the seed's ``level_db`` (``10 log10(mean(x^2) + 1e-4)``) and ``scale_noise``
(:mod:`pyfunc.features.augment`), applied with speech and noise brought to 0 dB (mean square 1),
where the 1e-4 floor changes a level by less than 0.02 dB: the drawn SNR is the power ratio of
the speech (reverberated if it was) to the noise in the result. The mixture is then scaled to a
random peak, which leaves that ratio as it is.

Each degraded utterance gets a row of ``utt2condition`` (:class:`Condition`):
``utt condition start duration snr noise sources room rt60``, ``-`` where not applicable;
``condition`` is ``clean`` or ``degraded``, ``start`` and ``duration`` the cut in seconds in
the source utterance (to the sample), ``noise`` the noise kind (``white`` ... ``crackle``, or ``babble``),
``sources`` the noise file or babble talker ids (comma-separated), ``room`` the room id
and ``rt60`` its measured RT60 in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyfunc.data.atomic import PathLike
from pyfunc.data.audio import SAMPLE_RATE, read_audio
from pyfunc.data.tables import read_text_table, write_table
from pyfunc.errors import DataError
from pyfunc.features.augment import fit_noise, reverberate, scale_noise

from .banks import NoiseBank

SNR_RANGE = (0.0, 15.0)
BABBLE_TALKERS = (3, 6)
REVERB_PROBABILITY = 0.5
PEAK_RANGE = (0.25, 0.9)


@dataclass(frozen=True)
class Condition:
    """How one utterance of an evaluation set was made (a row of ``utt2condition``)."""

    utt: str
    condition: str  # "clean" or "degraded"
    start: float
    duration: float
    snr: float | None = None
    noise: str | None = None
    sources: tuple[str, ...] = ()
    room: str | None = None
    rt60: float | None = None

    def row(self) -> tuple:
        show = lambda value, fmt: "-" if value is None else format(value, fmt)  # noqa: E731
        return (self.utt, self.condition, _exact(self.start), _exact(self.duration), show(self.snr, ".2f"),
                self.noise or "-", ",".join(self.sources) or "-", self.room or "-", show(self.rt60, ".3f"))


def _exact(seconds: float) -> str:
    """A time that is a whole number of 16 kHz samples, to the sample (at most 7 decimals)."""
    return format(seconds, ".7f").rstrip("0").rstrip(".") or "0"


def write_conditions(path: PathLike, conditions: list[Condition]) -> None:
    write_table(path, sorted(c.row() for c in conditions))


def read_conditions(path: PathLike) -> dict[str, Condition]:
    """Read ``utt2condition`` as :func:`write_conditions` wrote it."""
    out = {}
    for utt, fields in read_text_table(path, 9, 9).items():
        condition, start, duration, snr, noise, sources, room, rt60 = fields
        number = lambda text: None if text == "-" else float(text)  # noqa: E731
        try:
            out[utt] = Condition(utt, condition, float(start), float(duration), number(snr),
                                 None if noise == "-" else noise, () if sources == "-" else tuple(sources.split(",")),
                                 None if room == "-" else room, number(rt60))
        except ValueError:
            raise DataError(f"{path}: {utt}: start, duration, snr and rt60 must be numbers") from None
    return out


def draw_cut(rng: np.random.Generator, length: int, seconds: tuple[float, float]) -> tuple[int, int]:
    """A window (start, size in samples) of a duration drawn in ``seconds``, inside ``length`` samples."""
    size = min(length, int(round(rng.uniform(*seconds) * SAMPLE_RATE)))
    return draw_cut_start(rng, length, size), size


def draw_cut_start(rng: np.random.Generator, length: int, size: int) -> int:
    """Where a window of ``size`` samples starts, uniformly inside ``length`` samples."""
    return int(rng.integers(0, max(0, length - size) + 1))


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr: float) -> tuple[np.ndarray, np.ndarray]:
    """``speech`` scaled to 0 dB plus ``noise`` scaled to ``snr`` dB below it: (mixture, scaled noise).

    Both are brought to 0 dB (mean square 1) before :func:`scale_noise`, so its 1e-4 level
    floor changes neither level by more than 0.001 dB.
    """
    speech = _unit(np.asarray(speech, dtype=np.float64))
    scaled = scale_noise(speech, _unit(np.asarray(noise, dtype=np.float64)), snr)
    return speech + scaled, scaled


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.mean(x ** 2))


def degrade(speech: np.ndarray, rng: np.random.Generator, bank: NoiseBank, read=read_audio,
            reverb_probability: float = REVERB_PROBABILITY, snr_range: tuple[float, float] = SNR_RANGE,
            babble_talkers: tuple[int, int] = BABBLE_TALKERS) -> tuple[np.ndarray, dict]:
    """Reverberate (with ``reverb_probability``) and add noise or babble (even odds) at an SNR in ``snr_range``.

    Returns the result (float64, peak drawn in PEAK_RANGE) and the drawn conditions
    (``snr``, ``noise``, ``sources``, ``room``, ``rt60``). Babble is 3-6 talkers of the bank,
    each at a random place in its recording and at equal level, summed.
    """
    length = speech.shape[0]
    room = None
    if rng.random() < reverb_probability:
        room = sorted(bank.rirs)[int(rng.integers(len(bank.rirs)))]
        speech = reverberate(_unit(speech), read(bank.rirs[room], f"room {room}"))
    if rng.random() < 0.5:
        ids = sorted(bank.noises)
        chosen = [ids[int(rng.integers(len(ids)))]]
        noise = fit_noise(read(bank.noises[chosen[0]], chosen[0]), length, float(rng.random()))
        kind = bank.kinds[chosen[0]]
    else:
        talkers = sorted(bank.babble)
        count = min(len(talkers), int(rng.integers(babble_talkers[0], babble_talkers[1] + 1)))
        chosen = sorted(talkers[int(i)] for i in rng.choice(len(talkers), size=count, replace=False))
        noise = sum(_unit(fit_noise(read(bank.babble[t], t), length, float(rng.random()))) for t in chosen)
        kind = "babble"
    snr = float(rng.uniform(*snr_range))
    mixture, _ = mix_at_snr(speech, noise, snr)
    mixture *= rng.uniform(*PEAK_RANGE) / np.max(np.abs(mixture))
    return mixture, {"snr": snr, "noise": kind, "sources": tuple(chosen), "room": room,
                     "rt60": None if room is None else bank.rt60[room]}
