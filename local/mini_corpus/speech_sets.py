"""Synthesising a set of espeak-ng speakers into a Kaldi data dir: train_wide, test_unseen and dev.

A set is made by a :class:`SetRecipe`: which random stream seeds its utterances, which
sentence generators read them, whether each is cut to a window (test_unseen: 1.5-3 s,
dev: 1-3 s) and whether some are degraded with a noise bank (dev). Utterance ``j`` of a
speaker draws everything from ``SeedSequence([random_seed, stream, speaker index, j])``
(degradations from their own stream), so the set is the same whatever the number of jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyfunc.corpora.streams import stream_rng
from pyfunc.data.audio import SAMPLE_RATE, write_wav
from pyfunc.data.datadir import DataDir, write_data_dir
from pyfunc.data.tables import write_table
from pyfunc.data.trials import write_trials
from pyfunc.features.augment import AudioSource

from .banks import NoiseBank
from .degrade import Condition, degrade, draw_cut_start, write_conditions
from .mini import make_trials, render_utterance
from .texts import GENERATORS, mixed_text
from .voices import SpeakerSpec

CUT_MARGIN_S = 0.3  # a cut utterance is synthesised at least this much longer than its cut


@dataclass(frozen=True)
class SetRecipe:
    """How the utterances of a set are made."""

    stream: int
    generators: tuple[str, ...]
    min_duration: float = 1.5
    max_duration: float = 6.0
    cut: tuple[float, float] | None = None  # window length range in seconds
    degrade_stream: int | None = None
    degrade_probability: float = 0.0
    bank: NoiseBank | None = None


@dataclass(frozen=True)
class SetUtterance:
    utt: str
    speaker: str
    relpath: str  # wav path relative to the part folder
    duration: float
    sentence: str
    condition: Condition | None


def utterance_id(spec: SpeakerSpec, number: int) -> str:
    return f"{spec.speaker}-{number:03d}"


def synthesize_set_speaker(spec: SpeakerSpec, num_utts: int, random_seed: int, recipe: SetRecipe, out_dir: str,
                           espeak: str = "espeak-ng") -> list[SetUtterance]:
    """Synthesise (and cut, and perhaps degrade) the utterances of one speaker into ``out_dir/wav/<spk>/``."""
    generators = tuple(GENERATORS[name] for name in recipe.generators)
    # A cut needs a few seconds of speech: two sentences first, three when too short, one when too long.
    counts = {None: None, 1: 1, 2: 2} if recipe.cut is None else {None: 2, 1: 1, 2: 3}
    text = lambda rng, sentences: mixed_text(generators, rng, counts[sentences])  # noqa: E731
    source = AudioSource()
    read = lambda path, where: source.whole(path)  # noqa: E731
    out = []
    for number in range(1, num_utts + 1):
        utt = utterance_id(spec, number)
        rng = stream_rng(random_seed, recipe.stream, spec.index, number)
        min_duration, size = recipe.min_duration, 0
        if recipe.cut is not None:
            size = int(round(rng.uniform(*recipe.cut) * SAMPLE_RATE))
            min_duration = max(min_duration, size / SAMPLE_RATE + CUT_MARGIN_S)
        sentence, audio = render_utterance(spec, rng, text, f"speaker {spec.speaker} ({spec.voice}), utterance "
                                           f"{number}", espeak, min_duration, max(recipe.max_duration, min_duration))
        start = 0
        if recipe.cut is not None:
            start = draw_cut_start(rng, audio.size, size)
            audio = audio[start:start + size]
        condition = None
        if recipe.degrade_stream is not None:
            condition = Condition(utt, "clean", start / SAMPLE_RATE, audio.size / SAMPLE_RATE)
            drng = stream_rng(random_seed, recipe.degrade_stream, spec.index, number)
            if recipe.bank is not None and drng.random() < recipe.degrade_probability:
                audio, drawn = degrade(audio, drng, recipe.bank, read)
                condition = Condition(utt, "degraded", condition.start, condition.duration, **drawn)
        relpath = f"wav/{spec.speaker}/{utt}.wav"
        write_wav(Path(out_dir) / relpath, np.clip(audio, -1.0, 1.0))
        out.append(SetUtterance(utt, spec.speaker, relpath, audio.size / SAMPLE_RATE, sentence, condition))
    return out


def write_speech_set(tmp_dir: Path, part_dir: Path, specs: list[SpeakerSpec], utterances: list[SetUtterance],
                     random_seed: int, trials_stream: int | None = None, nontarget_ratio: float = 2.0,
                     cut: bool = False) -> None:
    """Write the data dir of a set into ``tmp_dir`` (wav.scp pointing into ``part_dir``), with its tables.

    ``text`` for uncut sets, else ``sentences`` (the sentence read, of which the wav is a
    cut); ``speakers.txt``; ``utt2condition`` when conditions were drawn; ``trials`` (all
    target pairs and ``nontarget_ratio`` times as many non-target pairs) with ``trials_stream``.
    """
    data = DataDir({u.utt: str(part_dir / u.relpath) for u in utterances}, {u.utt: u.speaker for u in utterances},
                   {u.utt: u.duration for u in utterances})
    write_data_dir(tmp_dir, data)
    write_table(tmp_dir / ("sentences" if cut else "text"), {u.utt: u.sentence for u in utterances})
    write_table(tmp_dir / "speakers.txt",
                [(s.speaker, s.subset, s.accent, s.variant, s.pitch, s.rate, s.word_gap) for s in specs])
    conditions = [u.condition for u in utterances if u.condition is not None]
    if conditions:
        write_conditions(tmp_dir / "utt2condition", conditions)
    if trials_stream is not None:
        write_trials(tmp_dir / "trials", make_trials(data.spk2utt, random_seed, nontarget_ratio, trials_stream))
