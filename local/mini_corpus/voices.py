"""Synthetic espeak-ng speakers and the partition of the voice space between the corpus parts.

A speaker is an English accent, a voice variant (timbre), a pitch, a rate and a word gap
(:class:`SpeakerSpec`). The mini corpus's original ``train``/``test`` speakers
(:func:`make_speaker_specs`) use every variant x accent pair with pitch 20-80 and rate
125-215. The other parts split the space (:func:`voice_partition`):

- ``test_unseen`` uses only the :data:`HELD_OUT_VARIANTS` (with any accent), with pitch and
  rate in :data:`UNSEEN_PITCH` / :data:`UNSEEN_RATE`, bands outside :data:`WIDE_PITCH` /
  :data:`WIDE_RATE` with room for the per-utterance jitter, so no utterance of a held-out
  speaker has a pitch or rate that a training utterance has;
- every other variant x accent pair, less the pairs of the ``test`` speakers, is dealt out
  (shuffled by the random seed) to ``dev`` (:data:`DEV_PAIR_COUNT` pairs), to the babble
  talkers of each noise bank (:data:`BABBLE_PAIR_COUNT` pairs each) and to the wide training
  sets (the rest), so these sets share no pair and no speaker with each other or with ``test``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pyfunc.corpora.streams import MINI_SPEAKERS, PARTITION, stream_rng
from pyfunc.errors import ConfigError

# English voices of espeak-ng that read English text intelligibly.
ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029",
           "en-us-nyc")
# Voice variants (files under espeak-ng-data/voices/!v) that sound like a person; robotic,
# echoing, whispering and duplicate variants are left out.
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Alex", "Andy", "Denis", "Diogo", "Gene", "Henrique",
    "Hugo", "Lee", "Marco", "Mario", "Michael", "Mike", "Nguyen", "antonio", "benjamin", "boris", "croak",
    "david", "ed", "edward", "grandpa", "gustave", "iven", "klatt", "klatt2", "klatt3", "klatt4", "marcelo",
    "max", "michel", "miguel", "paul", "pedro", "quincy", "rob", "robert", "sandro", "travis", "victor",
    "adam", "john", "norbert", "pablo",
    "f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "aunty", "belinda", "grandma", "linda",
    "anika", "steph", "steph2", "steph3", "shelby",
)
PITCH_RANGE = (20, 80)  # espeak-ng -p, 0..99 around the variant's own pitch (original train/test)
RATE_RANGE = (125, 215)  # espeak-ng -s, words per minute (original train/test)
WORD_GAP_RANGE = (0, 3)  # espeak-ng -g, units of 10 ms
PITCH_JITTER = 4  # per-utterance change of pitch, +-
RATE_JITTER = 8  # per-utterance change of rate, +-
MIN_RATE = 80

# Variants no training speaker uses, for test_unseen. Variants whose espeak-ng files differ only
# in pitch (quincy and robert) are held out together; the others have formants of their own.
HELD_OUT_VARIANTS = ("m6", "Gene", "Lee", "gustave", "iven", "travis", "quincy", "robert", "f3", "Annie",
                     "grandma", "shelby")
# Speaker pitch and rate bands (inclusive): training, dev and babble talkers draw from the wide
# ones, test_unseen from the held-out ones, at least 2 x jitter + 1 away.
WIDE_PITCH = ((14, 86),)
WIDE_RATE = ((120, 230),)
UNSEEN_PITCH = ((0, 5), (95, 99))
UNSEEN_RATE = ((90, 103), (247, 280))
DEV_PAIR_COUNT = 16
BABBLE_PAIR_COUNT = 8
BABBLE_BANKS = ("augment", "test_hard", "dev")

Pair = tuple[str, str]  # (variant, accent)
Bands = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class SpeakerSpec:
    """The espeak-ng settings that make one synthetic speaker."""

    speaker: str
    subset: str  # the corpus part: "train", "test", "train_wide", "test_unseen", "dev", "babble_<bank>"
    index: int  # position among the speakers of its draw; seeds the speaker's utterances
    accent: str
    variant: str
    pitch: int
    rate: int
    word_gap: int

    @property
    def voice(self) -> str:
        """The ``-v`` argument of espeak-ng."""
        return f"{self.accent}+{self.variant}"

    @property
    def pair(self) -> Pair:
        return (self.variant, self.accent)

    @property
    def combination(self) -> tuple[str, str, int, int, int]:
        """The settings that identify the voice (all but the names)."""
        return (self.accent, self.variant, self.pitch, self.rate, self.word_gap)


def utterance_voice(spec: SpeakerSpec, rng: np.random.Generator) -> tuple[int, int]:
    """Pitch and rate of one utterance: the speaker's, jittered (two draws from ``rng``)."""
    pitch = int(np.clip(spec.pitch + rng.integers(-PITCH_JITTER, PITCH_JITTER + 1), 0, 99))
    rate = int(max(MIN_RATE, spec.rate + rng.integers(-RATE_JITTER, RATE_JITTER + 1)))
    return pitch, rate


def speaker_ids(prefix: str, count: int) -> list[str]:
    """Fixed-width speaker ids (``tr001`` ...) so utterance ids sort by speaker."""
    width = max(3, len(str(count)))
    return [f"{prefix}{i:0{width}d}" for i in range(1, count + 1)]


def make_speaker_specs(num_train: int, num_test: int, random_seed: int) -> tuple[list[SpeakerSpec], list[SpeakerSpec]]:
    """Draw the original mini corpus's speakers: train first, then test, no two sharing a (variant, accent) pair.

    Variants are used round-robin in a shuffled order (the first ``len(VARIANTS)`` speakers
    all differ in variant); a reused variant gets an accent it has not had. Pitch and rate
    are a Latin hypercube over all speakers, so every speaker has its own pitch and rate bin.
    """
    total = num_train + num_test
    capacity = len(VARIANTS) * len(ACCENTS)
    if total > capacity:
        raise ConfigError(f"mini corpus: at most {capacity} speakers can be made distinct, asked for {total}")
    rng = stream_rng(random_seed, MINI_SPEAKERS)
    variant_order = rng.permutation(len(VARIANTS))
    accent_orders = [rng.permutation(len(ACCENTS)) for _ in VARIANTS]
    pitch = _latin_hypercube(rng, total, *PITCH_RANGE)
    rate = _latin_hypercube(rng, total, *RATE_RANGE)
    gaps = rng.integers(WORD_GAP_RANGE[0], WORD_GAP_RANGE[1] + 1, size=total)
    names = speaker_ids("tr", num_train) + speaker_ids("te", num_test)
    specs = []
    for k in range(total):
        v = int(variant_order[k % len(VARIANTS)])
        a = int(accent_orders[v][k // len(VARIANTS)])
        specs.append(SpeakerSpec(speaker=names[k], subset="train" if k < num_train else "test", index=k,
                                 accent=ACCENTS[a], variant=VARIANTS[v], pitch=int(pitch[k]), rate=int(rate[k]),
                                 word_gap=int(gaps[k])))
    return specs[:num_train], specs[num_train:]


def _latin_hypercube(rng: np.random.Generator, count: int, low: int, high: int) -> np.ndarray:
    """``count`` integers in [low, high], one from each of ``count`` equal bins, in random order."""
    positions = (rng.permutation(count) + rng.random(count)) / count
    return np.round(low + positions * (high - low)).astype(int)


@dataclass(frozen=True)
class VoicePartition:
    """Which variant x accent pairs each part of the corpus may use (see the module docstring)."""

    test: frozenset[Pair]
    train: tuple[Pair, ...]
    dev: tuple[Pair, ...]
    babble: dict[str, tuple[Pair, ...]]
    unseen: tuple[Pair, ...]


def voice_partition(random_seed: int, num_train_speakers: int = 100, num_test_speakers: int = 20) -> VoicePartition:
    """The partition for the mini corpus drawn with these parameters (its ``test`` pairs are kept out)."""
    _, test_specs = make_speaker_specs(num_train_speakers, num_test_speakers, random_seed)
    test = frozenset(s.pair for s in test_specs)
    candidates = [(v, a) for v in VARIANTS if v not in HELD_OUT_VARIANTS for a in ACCENTS if (v, a) not in test]
    order = [candidates[i] for i in stream_rng(random_seed, PARTITION).permutation(len(candidates))]
    dev = tuple(order[:DEV_PAIR_COUNT])
    babble, start = {}, DEV_PAIR_COUNT
    for bank in BABBLE_BANKS:
        babble[bank] = tuple(order[start:start + BABBLE_PAIR_COUNT])
        start += BABBLE_PAIR_COUNT
    unseen = tuple((v, a) for v in HELD_OUT_VARIANTS for a in ACCENTS)
    return VoicePartition(test=test, train=tuple(order[start:]), dev=dev, babble=babble, unseen=unseen)


def _radical_inverse(index: int, base: int) -> float:
    result, scale = 0.0, 1.0 / base
    while index:
        index, digit = divmod(index, base)
        result += digit * scale
        scale /= base
    return result


def _from_bands(u: float, bands: Bands) -> int:
    """The integer at quantile ``u`` in [0, 1) of the integers of ``bands`` (inclusive ranges)."""
    values = [v for low, high in bands for v in range(low, high + 1)]
    return values[min(int(u * len(values)), len(values) - 1)]


def draw_speakers(prefix: str, subset: str, count: int, pairs: Sequence[Pair], random_seed: int, stream: int,
                  pitch_bands: Bands = WIDE_PITCH, rate_bands: Bands = WIDE_RATE,
                  gap_range: tuple[int, int] = WORD_GAP_RANGE, width: int = 3) -> list[SpeakerSpec]:
    """``count`` distinct speakers ``<prefix>0001``... over ``pairs``, spread evenly over pitch, rate and gap.

    Pairs are dealt in a shuffled order, all before any repeats; pitch, rate and word gap
    are the points of a randomly shifted Halton sequence (bases 2, 3, 5) mapped onto the
    bands, so the first ``n`` speakers of a larger draw are the speakers of a draw of ``n``
    (the sets nest) and each prefix is evenly spread. A point that would repeat an earlier
    speaker's full combination is skipped.
    """
    if count < 1 or not pairs:
        raise ConfigError(f"{subset}: need at least one speaker and one variant x accent pair")
    if count >= 10 ** width:
        raise ConfigError(f"{subset}: at most {10 ** width - 1} speakers, asked for {count}")
    rng = stream_rng(random_seed, stream)
    order = [pairs[i] for i in rng.permutation(len(pairs))]
    shift = rng.random(3)
    specs, seen, point = [], set(), 0
    while len(specs) < count:
        k = len(specs)
        point += 1
        if point > 100 * count + 1000:
            raise ConfigError(f"{subset}: cannot draw {count} distinct speakers from {len(pairs)} pairs")
        u = [(_radical_inverse(point, base) + s) % 1.0 for base, s in zip((2, 3, 5), shift)]
        variant, accent = order[k % len(order)]
        spec = SpeakerSpec(speaker=f"{prefix}{k + 1:0{width}d}", subset=subset, index=k, accent=accent,
                           variant=variant, pitch=_from_bands(u[0], pitch_bands), rate=_from_bands(u[1], rate_bands),
                           word_gap=_from_bands(u[2], (gap_range,)))
        if spec.combination in seen:
            continue
        seen.add(spec.combination)
        specs.append(spec)
    return specs
