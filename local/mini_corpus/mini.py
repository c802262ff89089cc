"""A small synthetic speaker-verification corpus made with espeak-ng (stage 0 of the recipe).

Each speaker is a distinct combination of an espeak-ng voice variant (timbre), an
English accent, a pitch, a speaking rate and a word gap. Every utterance draws a
sentence from built-in word lists and templates, jitters the speaker's pitch and
rate a little, is resampled to 16 kHz, trimmed, padded, scaled to a random level
and given light white noise (30 to 40 dB SNR). Everything is drawn from
``numpy`` generators seeded by ``(random_seed, speaker, utterance)``, so a random seed gives
byte-identical wav files and lists whatever the number of parallel jobs.

Output under ``data_root``: Kaldi data directories ``train`` and ``test`` (wav.scp,
utt2spk, spk2utt, utt2dur, text; ``test/trials``), ``wav/<spk>/<utt>.wav``,
``speakers.txt`` (the speaker specs) and ``.done`` (the parameters, as JSON).

The speakers are drawn in :mod:`mini_corpus.voices`, the sentences in
:mod:`mini_corpus.texts` (``STORY``); the corpus's further parts (wide training sets,
test_unseen, dev, test_hard, noise banks) are made by :mod:`mini_corpus.mini_parts`.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Callable

import numpy as np

from pyfunc.corpora.parallel import run_tasks
from pyfunc.corpora.streams import MINI_TRIALS, MINI_UTTERANCES, stream_rng
from pyfunc.data.atomic import PathLike, atomic_open
from pyfunc.data.audio import SAMPLE_RATE, write_wav
from pyfunc.data.datadir import DataDir, validate_data_dir, write_data_dir
from pyfunc.data.tables import read_scp, read_text_table, write_table
from pyfunc.data.trials import write_trials
from pyfunc.errors import ConfigError, DataError

from .espeak import SynthesisError, check_voices, synthesize_voice, trim_silence
from .texts import STORY
from .voices import (
    ACCENTS,
    VARIANTS,
    SpeakerSpec,
    make_speaker_specs,
    speaker_ids,
    utterance_voice,
)

STAMP_VERSION = 1
SNR_RANGE_DB = (30.0, 40.0)
PEAK_RANGE = (0.25, 0.9)
PAD_RANGE_S = (0.05, 0.25)
MAX_TEXT_DRAWS = 30

TextFunction = Callable[[np.random.Generator, "int | None"], str]


@dataclass(frozen=True)
class UtteranceResult:
    utt: str
    speaker: str
    path: str
    duration: float
    text: str


def make_sentence(rng: np.random.Generator) -> str:
    """One sentence of the original generator (:data:`mini_corpus.texts.STORY`)."""
    return STORY.sentence(rng)


def make_text(rng: np.random.Generator, sentences: int | None = None) -> str:
    """One or two sentences of the original generator (two with probability 0.4 unless ``sentences`` is given)."""
    return STORY.text(rng, sentences)


def synthesize(spec: SpeakerSpec, text: str, pitch: int, rate: int, espeak: str = "espeak-ng",
               where: str = "") -> np.ndarray:
    """Speech of ``spec`` saying ``text`` at 16 kHz (float64), re-synthesised more softly if it clipped."""
    return synthesize_voice(spec.voice, text, pitch, rate, spec.word_gap, espeak, where or spec.speaker)


def _utterance_rng(random_seed: int, spec: SpeakerSpec, number: int) -> np.random.Generator:
    return stream_rng(random_seed, MINI_UTTERANCES, spec.index, number)


def make_utterance(spec: SpeakerSpec, number: int, random_seed: int, espeak: str = "espeak-ng",
                   min_duration: float = 1.5, max_duration: float = 6.0) -> tuple[str, np.ndarray]:
    """Text and 16 kHz samples in [-1, 1] of utterance ``number`` of ``spec``, deterministic in ``random_seed``."""
    return render_utterance(spec, _utterance_rng(random_seed, spec, number), make_text,
                            f"speaker {spec.speaker} ({spec.voice}), utterance {number}", espeak,
                            min_duration, max_duration)


def render_utterance(spec: SpeakerSpec, rng: np.random.Generator, text: TextFunction, where: str,
                     espeak: str = "espeak-ng", min_duration: float = 1.5,
                     max_duration: float = 6.0) -> tuple[str, np.ndarray]:
    """One utterance of ``spec``: its text and 16 kHz samples in [-1, 1], every draw from ``rng``.

    Jitters the speaker's pitch and rate, draws the silent pads, then draws texts with
    ``text(rng, sentences)`` (at most MAX_TEXT_DRAWS times) until the padded utterance lasts
    ``min_duration`` to ``max_duration`` seconds; a last one still too long is cut. The
    audio is scaled to a random peak and given white noise 30-40 dB below it.
    """
    pitch, rate = utterance_voice(spec, rng)
    pads = (rng.uniform(*PAD_RANGE_S, size=2) * SAMPLE_RATE).astype(int)
    sentences = None
    for _ in range(MAX_TEXT_DRAWS):
        sentence = text(rng, sentences)
        speech = trim_silence(synthesize(spec, sentence, pitch, rate, espeak, where))
        duration = (speech.size + pads.sum()) / SAMPLE_RATE
        if min_duration <= duration <= max_duration:
            break
        sentences = 1 if duration > max_duration else 2
    else:
        if duration < min_duration:
            raise SynthesisError(f"{where}: {MAX_TEXT_DRAWS} texts all gave less than {min_duration} s of audio "
                                 f"(last {duration:.2f} s: {sentence!r})")
        keep = int(max_duration * SAMPLE_RATE) - int(pads.sum())
        fade = min(keep, int(0.05 * SAMPLE_RATE))
        speech = speech[:keep].copy()
        speech[keep - fade:] *= np.linspace(1.0, 0.0, fade)
    audio = np.concatenate([np.zeros(pads[0]), speech, np.zeros(pads[1])])
    audio *= rng.uniform(*PEAK_RANGE) / np.max(np.abs(audio))
    snr_db = rng.uniform(*SNR_RANGE_DB)
    noise_power = np.mean(audio ** 2) / 10 ** (snr_db / 10)
    audio += rng.standard_normal(audio.size) * np.sqrt(noise_power)
    return sentence, np.clip(audio, -1.0, 1.0)


def synthesize_speaker(spec: SpeakerSpec, num_utts: int, random_seed: int, wav_dir: str, espeak: str,
                       min_duration: float, max_duration: float) -> list[UtteranceResult]:
    """Synthesise and write all utterances of one speaker (one task of the process pool)."""
    results = []
    width = max(3, len(str(num_utts)))
    for number in range(1, num_utts + 1):
        utt = f"{spec.speaker}-{number:0{width}d}"
        text, audio = make_utterance(spec, number, random_seed, espeak, min_duration, max_duration)
        path = Path(wav_dir) / spec.speaker / f"{utt}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_wav(path, audio)
        results.append(UtteranceResult(utt, spec.speaker, str(path), audio.size / SAMPLE_RATE, text))
    return results


def make_trials(spk2utt: dict[str, list[str]], random_seed: int, nontarget_ratio: float = 2.0,
                stream: int = MINI_TRIALS) -> list[tuple[str, str, bool]]:
    """All target pairs (each unordered pair of utterances of one speaker) plus non-target pairs.

    Non-targets are ``nontarget_ratio`` times the targets (or every cross-speaker pair if
    there are fewer), drawn without replacement from random ``stream``; trials are sorted
    by (enroll, test).
    """
    targets = [(a, b, True) for utts in spk2utt.values() for a, b in combinations(sorted(utts), 2)]
    owner = {utt: spk for spk, utts in spk2utt.items() for utt in utts}
    utts = sorted(owner)
    cross = [(a, b) for a, b in combinations(utts, 2) if owner[a] != owner[b]]
    count = min(len(cross), int(round(nontarget_ratio * len(targets))))
    rng = stream_rng(random_seed, stream)
    picked = rng.choice(len(cross), size=count, replace=False) if count else []
    nontargets = [(cross[i][0], cross[i][1], False) for i in picked]
    return sorted(targets + nontargets)


def check_espeak(espeak: str = "espeak-ng") -> None:
    """Raise SynthesisError unless espeak-ng runs and has every accent and variant of the mini corpus."""
    check_voices(ACCENTS, VARIANTS, espeak)


def _write_subset(path: Path, results: list[UtteranceResult]) -> None:
    wav_scp = {r.utt: str(Path(r.path).resolve()) for r in results}
    utt2spk = {r.utt: r.speaker for r in results}
    utt2dur = {r.utt: r.duration for r in results}
    write_data_dir(path, DataDir(wav_scp, utt2spk, utt2dur))
    write_table(path / "text", {r.utt: r.text for r in results})


def mini_corpus_params(data_root: PathLike, num_train_speakers: int = 100, num_test_speakers: int = 20,
                       utts_per_speaker: int = 20, random_seed: int = 777, test_utts_per_speaker: int | None = None,
                       wav_dir: PathLike | None = None, min_duration: float = 1.5, max_duration: float = 6.0,
                       nontarget_ratio: float = 2.0, make_train: bool = True) -> dict:
    """What ``DATA_ROOT/.done`` records for a corpus made with these arguments (see :func:`make_mini_corpus`)."""
    data_root = Path(data_root).resolve()
    wav_dir = Path(wav_dir).resolve() if wav_dir is not None else data_root / "wav"
    test_utts = utts_per_speaker if test_utts_per_speaker is None else test_utts_per_speaker
    return {"version": STAMP_VERSION, "num_train_speakers": num_train_speakers,
            "num_test_speakers": num_test_speakers, "utts_per_speaker": utts_per_speaker,
            "test_utts_per_speaker": test_utts, "seed": random_seed, "wav_dir": str(wav_dir),
            "min_duration": min_duration, "max_duration": max_duration, "nontarget_ratio": nontarget_ratio,
            **({} if make_train else {"make_train": False})}  # recorded only when off: earlier stamps still match


def why_corpus_not_current(data_root: PathLike, params: dict, subsets: tuple[str, ...] = ("train", "test")
                           ) -> str | None:
    """None when ``data_root`` holds the corpus ``params`` describe (its ``.done``, the lists and wavs of
    ``subsets``); else why not."""
    data_root = Path(data_root).resolve()
    stamp = data_root / ".done"
    needed = [data_root / sub / name for sub in subsets for name in ("wav.scp", "utt2spk", "spk2utt")]
    if not stamp.is_file():
        return f"{stamp} is missing (no complete corpus)"
    missing = [p for p in needed + [data_root / "test" / "trials"] if not p.is_file()]
    if missing:
        return f"{missing[0]} is missing"
    try:
        old = json.loads(stamp.read_text(encoding="utf-8"))
        if old != params:
            changed = sorted(k for k in set(old) | set(params) if old.get(k) != params.get(k)) \
                if isinstance(old, dict) else ["<all>"]
            return f"the corpus parameters changed ({', '.join(changed)})"
        wavs = [path for sub in subsets for path in read_scp(data_root / sub / "wav.scp").values()]
    except (OSError, ValueError) as err:
        return f"{stamp} or a wav.scp is unreadable ({err})"
    lost = next((path for path in wavs if not Path(path).is_file()), None)
    return None if lost is None else f"audio file {lost} is missing"


def make_mini_corpus(data_root: PathLike, num_train_speakers: int = 100, num_test_speakers: int = 20,
                     utts_per_speaker: int = 20, random_seed: int = 777, num_jobs: int = 2,
                     test_utts_per_speaker: int | None = None, wav_dir: PathLike | None = None,
                     min_duration: float = 1.5, max_duration: float = 6.0, nontarget_ratio: float = 2.0,
                     espeak: str = "espeak-ng", make_train: bool = True) -> None:
    """Synthesise the mini corpus into ``data_root/{train,test}`` (Kaldi data dirs) and ``test/trials``.

    Does nothing when ``data_root/.done`` records the same parameters; otherwise removes
    ``data_root/train`` and ``data_root/test`` and rebuilds everything. ``test_utts_per_speaker``
    defaults to ``utts_per_speaker``; ``wav_dir`` to ``data_root/wav``. The output does not
    depend on ``num_jobs``. Without ``make_train`` only ``test`` is synthesised, the same
    ``test`` as with it (the ``num_train_speakers`` training speakers are drawn, not spoken).
    """
    params = mini_corpus_params(data_root, num_train_speakers, num_test_speakers, utts_per_speaker, random_seed,
                                test_utts_per_speaker, wav_dir, min_duration, max_duration, nontarget_ratio,
                                make_train)
    data_root, wav_dir, test_utts = Path(data_root).resolve(), Path(params["wav_dir"]), params["test_utts_per_speaker"]
    checks = [(num_train_speakers >= 1, "num_train_speakers must be at least 1"),
              (num_test_speakers >= 2, "num_test_speakers must be at least 2"),
              (utts_per_speaker >= 2 and test_utts >= 2, "utts per speaker must be at least 2"),
              (num_jobs >= 1, "num_jobs must be at least 1"),
              (0 < min_duration < max_duration and max_duration >= 1.0,
               "need 0 < min_duration < max_duration and max_duration >= 1 s"),
              (nontarget_ratio >= 1, "nontarget_ratio must be at least 1")]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"mini corpus: {message}")
    subsets = ("train", "test") if make_train else ("test",)
    if why_corpus_not_current(data_root, params, subsets) is None:
        return
    full = {k: v for k, v in params.items() if k != "make_train"}
    if not make_train and why_corpus_not_current(data_root, full) is None:
        return  # the full corpus is there, with the same test set
    check_espeak(espeak)
    train_specs, test_specs = make_speaker_specs(num_train_speakers, num_test_speakers, random_seed)
    (data_root / ".done").unlink(missing_ok=True)
    for sub in ("train", "test"):
        if (data_root / sub).exists():
            shutil.rmtree(data_root / sub)
    specs = train_specs + test_specs if make_train else test_specs
    counts = [utts_per_speaker if spec.subset == "train" else test_utts for spec in specs]
    done = run_tasks(synthesize_speaker, [(spec, n, random_seed, str(wav_dir), espeak, min_duration, max_duration)
                                          for spec, n in zip(specs, counts)],
                     num_jobs, "synthesising mini corpus", sizes=counts)
    results = {spec.speaker: result for spec, result in zip(specs, done)}
    _remove_stale_wavs(wav_dir, {spec.speaker for spec in specs})
    for subset, members in (("train", train_specs), ("test", test_specs)):
        if subset in subsets:
            _write_subset(data_root / subset, [r for spec in members for r in results[spec.speaker]])
    spk2utt = {spec.speaker: [r.utt for r in results[spec.speaker]] for spec in test_specs}
    write_trials(data_root / "test" / "trials", make_trials(spk2utt, random_seed, nontarget_ratio))
    write_table(data_root / "speakers.txt",
                [(s.speaker, s.subset, s.accent, s.variant, s.pitch, s.rate, s.word_gap) for s in specs])
    for subset in subsets:
        validate_data_dir(data_root / subset)
    with atomic_open(data_root / ".done") as handle:
        json.dump(params, handle, indent=1, sort_keys=True)
        handle.write("\n")


def _remove_stale_wavs(wav_dir: Path, speakers: set[str]) -> None:
    """Remove speaker folders of an earlier, larger mini corpus from ``wav_dir``."""
    if not wav_dir.is_dir():
        return
    for child in wav_dir.iterdir():
        if child.is_dir() and re.fullmatch(r"t[re]\d{3,}", child.name) and child.name not in speakers:
            shutil.rmtree(child)


def read_speaker_specs(path: PathLike) -> list[SpeakerSpec]:
    """Read ``speakers.txt`` as written by :func:`make_mini_corpus`."""
    specs = []
    for index, (spk, fields) in enumerate(read_text_table(path, 7, 7).items()):
        subset, accent, variant, pitch, rate, gap = fields
        try:
            specs.append(SpeakerSpec(spk, subset, index, accent, variant, int(pitch), int(rate), int(gap)))
        except ValueError:
            raise DataError(f"{path}: speaker {spk!r}: pitch, rate and word gap must be integers") from None
    return specs


__all__ = ["SpeakerSpec", "SynthesisError", "make_mini_corpus", "make_speaker_specs", "make_trials",
           "make_utterance", "make_text", "check_espeak", "read_speaker_specs", "speaker_ids"]
