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
"""

from __future__ import annotations

import io
import json
import re
import shlex
import shutil
import subprocess
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly
from tqdm import tqdm

from pyfunc.data.atomic import PathLike, atomic_open
from pyfunc.data.audio import SAMPLE_RATE, write_wav
from pyfunc.data.datadir import DataDir, validate_data_dir, write_data_dir
from pyfunc.data.tables import read_scp, read_table, write_table
from pyfunc.data.trials import write_trials
from pyfunc.errors import ConfigError, DataError, PyfuncError

STAMP_VERSION = 1
ESPEAK_RATE = 22050

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
PITCH_RANGE = (20, 80)  # espeak-ng -p, 0..99 around the variant's own pitch
RATE_RANGE = (125, 215)  # espeak-ng -s, words per minute
WORD_GAP_RANGE = (0, 3)  # espeak-ng -g, units of 10 ms
PITCH_JITTER = 4
RATE_JITTER = 8
SNR_RANGE_DB = (30.0, 40.0)
PEAK_RANGE = (0.25, 0.9)
PAD_RANGE_S = (0.05, 0.25)
MAX_TEXT_DRAWS = 30

_NAMES = ("Anna", "Peter", "Maria", "James", "Laura", "Oliver", "Sophie", "Daniel", "Emma", "Thomas", "Lucy",
          "Henry", "Grace", "Samuel", "Clara", "Martin", "Alice", "George", "Nora", "Victor", "Helen", "Oscar",
          "Julia", "Frank", "Rachel", "Simon", "Diana", "Arthur")
_ADJECTIVES = ("old", "quiet", "bright", "heavy", "small", "yellow", "careful", "gentle", "strange", "narrow",
               "cold", "warm", "broken", "shiny", "empty", "famous", "tired", "busy", "green", "wooden",
               "silver", "sudden", "lonely", "clever", "muddy", "tiny", "distant", "purple", "noisy", "soft")
_NOUNS = ("garden", "window", "river", "teacher", "bicycle", "letter", "kitchen", "mountain", "market", "doctor",
          "basket", "village", "painter", "blanket", "tower", "engine", "harbour", "forest", "bridge", "library",
          "candle", "jacket", "station", "island", "orchard", "lantern", "factory", "museum", "piano", "umbrella")
_PLURALS = ("apples", "boxes", "horses", "letters", "candles", "stones", "children", "birds", "tickets",
            "questions", "flowers", "boats", "coins", "books", "chairs", "potatoes", "pencils", "windows",
            "sheep", "bottles")
_VERBS_PAST = ("found", "painted", "carried", "opened", "cleaned", "visited", "repaired", "watched", "followed",
               "described", "borrowed", "noticed", "dropped", "remembered", "moved", "photographed", "sold",
               "built")
_VERBS = ("open", "carry", "clean", "visit", "repair", "watch", "follow", "describe", "borrow", "check", "paint",
          "move", "close", "find", "bring", "measure")
_PLACES = ("near the station", "behind the old church", "across the river", "in the small kitchen",
           "at the top of the hill", "under the bridge", "by the harbour", "inside the museum",
           "along the narrow road", "next to the school", "in the back garden", "on the second floor")
_TIMES = ("yesterday", "this morning", "last winter", "every Sunday", "after dinner", "before sunrise",
          "on Monday", "later tonight", "in the afternoon", "twice a week", "last summer", "at noon")
_RELATIVES = ("brother", "sister", "neighbour", "uncle", "aunt", "friend", "cousin", "grandmother", "boss")
_TEMPLATES = (
    "{name} {verb_past} the {adj} {noun} {place}.",
    "{Time}, {name} {verb_past} a {adj} {noun}.",
    "Please {verb} the {adj} {noun} {place}.",
    "Did {name} really {verb} the {noun} {time}?",
    "There were {num} {plural} {place}.",
    "My {relative} {verb_past} {num} {plural} {time}.",
    "{name} told {name2} that the {noun} was {adj} {time}.",
    "I think the {noun} {place} is too {adj} for {name}.",
    "How many {plural} did you {verb} {time}?",
    "{name} and {name2} {verb_past} the {noun} together {time}.",
    "Nobody knew why the {noun} {place} was so {adj}.",
    "After the {adj} storm, the {noun} looked {adj2}.",
    "Call me {time} if the {noun} is still {adj}.",
    "The {adj} {noun} costs {num} dollars {place}.",
    "We should {verb} the {noun} before {name} comes back.",
    "Is the {noun} {place} as {adj} as my {relative} said?",
)


class SynthesisError(PyfuncError):
    """espeak-ng is missing, or synthesising an utterance failed."""


@dataclass(frozen=True)
class SpeakerSpec:
    """The espeak-ng settings that make one synthetic speaker."""

    speaker: str
    subset: str  # "train" or "test"
    index: int  # position among all speakers; seeds the speaker's utterances
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
    def combination(self) -> tuple[str, str, int, int, int]:
        """The settings that identify the voice (all but the names)."""
        return (self.accent, self.variant, self.pitch, self.rate, self.word_gap)


@dataclass(frozen=True)
class UtteranceResult:
    utt: str
    speaker: str
    path: str
    duration: float
    text: str


def speaker_ids(prefix: str, count: int) -> list[str]:
    """Fixed-width speaker ids (``tr001`` ...) so utterance ids sort by speaker."""
    width = max(3, len(str(count)))
    return [f"{prefix}{i:0{width}d}" for i in range(1, count + 1)]


def make_speaker_specs(num_train: int, num_test: int, random_seed: int) -> tuple[list[SpeakerSpec], list[SpeakerSpec]]:
    """Draw distinct speakers: train first, then test, no two sharing a (variant, accent) pair.

    Variants are used round-robin in a shuffled order (the first ``len(VARIANTS)`` speakers
    all differ in variant); a reused variant gets an accent it has not had. Pitch and rate
    are a Latin hypercube over all speakers, so every speaker has its own pitch and rate bin.
    """
    total = num_train + num_test
    capacity = len(VARIANTS) * len(ACCENTS)
    if total > capacity:
        raise ConfigError(f"mini corpus: at most {capacity} speakers can be made distinct, asked for {total}")
    rng = np.random.default_rng(np.random.SeedSequence([random_seed, 0]))
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


def make_sentence(rng: np.random.Generator) -> str:
    """One sentence from the built-in templates and word lists."""
    template = _TEMPLATES[rng.integers(len(_TEMPLATES))]
    pick = lambda words: words[rng.integers(len(words))]  # noqa: E731
    name = pick(_NAMES)
    name2 = pick(tuple(n for n in _NAMES if n != name))
    time = pick(_TIMES)
    adj = pick(_ADJECTIVES)
    return template.format(name=name, name2=name2, adj=adj, adj2=pick(tuple(a for a in _ADJECTIVES if a != adj)),
                           noun=pick(_NOUNS), plural=pick(_PLURALS), verb=pick(_VERBS),
                           verb_past=pick(_VERBS_PAST), place=pick(_PLACES), time=time,
                           Time=time[0].upper() + time[1:], relative=pick(_RELATIVES),
                           num=int(rng.integers(2, 100)))


def make_text(rng: np.random.Generator, sentences: int | None = None) -> str:
    """One or two sentences (two with probability 0.4 unless ``sentences`` is given)."""
    if sentences is None:
        sentences = 2 if rng.random() < 0.4 else 1
    return " ".join(make_sentence(rng) for _ in range(sentences))


def espeak_command(espeak: str, spec: SpeakerSpec, text: str, pitch: int, rate: int, amplitude: int) -> list[str]:
    return [espeak, "-v", spec.voice, "-p", str(pitch), "-s", str(rate), "-g", str(spec.word_gap),
            "-a", str(amplitude), "--stdout", text]


def run_espeak(command: list[str], where: str) -> np.ndarray:
    """Run an espeak-ng command that writes a wav to stdout; return float64 samples at 22050 Hz."""
    try:
        result = subprocess.run(command, capture_output=True, timeout=60)
    except FileNotFoundError:
        raise SynthesisError(f"{where}: espeak-ng not found ({command[0]!r}); "
                             "install it with apt-get install espeak-ng") from None
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SynthesisError(f"{where}: espeak-ng failed ({err}); command: {_show(command)}") from None
    message = result.stderr.decode(errors="replace").strip()
    if result.returncode != 0 or not result.stdout:
        raise SynthesisError(f"{where}: espeak-ng exited with code {result.returncode}"
                             f"{': ' + message if message else ''}; command: {_show(command)}")
    try:
        samples, rate = soundfile.read(io.BytesIO(result.stdout), dtype="float64", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as err:
        raise SynthesisError(f"{where}: espeak-ng output is not a wav file ({err}); "
                             f"command: {_show(command)}") from None
    if rate != ESPEAK_RATE or samples.shape[0] == 0:
        raise SynthesisError(f"{where}: espeak-ng gave {samples.shape[0]} samples at {rate} Hz, expected audio at "
                             f"{ESPEAK_RATE} Hz; command: {_show(command)}")
    return samples[:, 0]


def _show(command: list[str]) -> str:
    return shlex.join(command)


def synthesize(spec: SpeakerSpec, text: str, pitch: int, rate: int, espeak: str = "espeak-ng",
               where: str = "") -> np.ndarray:
    """Speech of ``spec`` saying ``text`` at 16 kHz (float64), re-synthesised more softly if it clipped."""
    amplitude = 80
    while True:
        command = espeak_command(espeak, spec, text, pitch, rate, amplitude)
        samples = run_espeak(command, where or spec.speaker)
        if np.max(np.abs(samples)) < 0.999 or amplitude <= 10:
            break
        amplitude //= 2
    return resample_poly(samples, SAMPLE_RATE // 50, ESPEAK_RATE // 50)


def trim_silence(samples: np.ndarray, threshold: float = 0.02, margin_s: float = 0.03) -> np.ndarray:
    """Cut leading and trailing parts quieter than ``threshold`` times the peak, keeping a margin."""
    loud = np.flatnonzero(np.abs(samples) > threshold * np.max(np.abs(samples)))
    if loud.size == 0:
        return samples
    margin = int(margin_s * SAMPLE_RATE)
    return samples[max(0, loud[0] - margin): loud[-1] + margin + 1]


def _utterance_rng(random_seed: int, spec: SpeakerSpec, number: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([random_seed, 1, spec.index, number]))


def make_utterance(spec: SpeakerSpec, number: int, random_seed: int, espeak: str = "espeak-ng",
                   min_duration: float = 1.5, max_duration: float = 6.0) -> tuple[str, np.ndarray]:
    """Text and 16 kHz samples in [-1, 1] of utterance ``number`` of ``spec``, deterministic in ``random_seed``.

    Texts are re-drawn (at most MAX_TEXT_DRAWS times) until the padded utterance lasts
    ``min_duration`` to ``max_duration`` seconds; a last one still too long is cut.
    """
    rng = _utterance_rng(random_seed, spec, number)
    pitch = int(np.clip(spec.pitch + rng.integers(-PITCH_JITTER, PITCH_JITTER + 1), 0, 99))
    rate = int(max(80, spec.rate + rng.integers(-RATE_JITTER, RATE_JITTER + 1)))
    pads = (rng.uniform(*PAD_RANGE_S, size=2) * SAMPLE_RATE).astype(int)
    where = f"speaker {spec.speaker} ({spec.voice}), utterance {number}"
    sentences = None
    for _ in range(MAX_TEXT_DRAWS):
        text = make_text(rng, sentences)
        speech = trim_silence(synthesize(spec, text, pitch, rate, espeak, where))
        duration = (speech.size + pads.sum()) / SAMPLE_RATE
        if min_duration <= duration <= max_duration:
            break
        sentences = 1 if duration > max_duration else 2
    else:
        if duration < min_duration:
            raise SynthesisError(f"{where}: {MAX_TEXT_DRAWS} texts all gave less than {min_duration} s of audio "
                                 f"(last {duration:.2f} s: {text!r})")
        keep = int(max_duration * SAMPLE_RATE) - int(pads.sum())
        fade = min(keep, int(0.05 * SAMPLE_RATE))
        speech = speech[:keep].copy()
        speech[keep - fade:] *= np.linspace(1.0, 0.0, fade)
    audio = np.concatenate([np.zeros(pads[0]), speech, np.zeros(pads[1])])
    audio *= rng.uniform(*PEAK_RANGE) / np.max(np.abs(audio))
    snr_db = rng.uniform(*SNR_RANGE_DB)
    noise_power = np.mean(audio ** 2) / 10 ** (snr_db / 10)
    audio += rng.standard_normal(audio.size) * np.sqrt(noise_power)
    return text, np.clip(audio, -1.0, 1.0)


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


def make_trials(spk2utt: dict[str, list[str]], random_seed: int,
                nontarget_ratio: float = 2.0) -> list[tuple[str, str, bool]]:
    """All target pairs (each unordered pair of utterances of one speaker) plus non-target pairs.

    Non-targets are ``nontarget_ratio`` times the targets (or every cross-speaker pair if
    there are fewer), drawn without replacement; trials are sorted by (enroll, test).
    """
    targets = [(a, b, True) for utts in spk2utt.values() for a, b in combinations(sorted(utts), 2)]
    owner = {utt: spk for spk, utts in spk2utt.items() for utt in utts}
    utts = sorted(owner)
    cross = [(a, b) for a, b in combinations(utts, 2) if owner[a] != owner[b]]
    count = min(len(cross), int(round(nontarget_ratio * len(targets))))
    rng = np.random.default_rng(np.random.SeedSequence([random_seed, 2]))
    picked = rng.choice(len(cross), size=count, replace=False) if count else []
    nontargets = [(cross[i][0], cross[i][1], False) for i in picked]
    return sorted(targets + nontargets)


def check_espeak(espeak: str = "espeak-ng") -> None:
    """Raise SynthesisError unless espeak-ng runs and has every accent and variant used here."""
    if shutil.which(espeak) is None:
        raise SynthesisError(f"espeak-ng not found ({espeak!r}); install it with apt-get install espeak-ng")
    listing = {}
    for kind in ("en", "variant"):
        command = [espeak, f"--voices={kind}"]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise SynthesisError(f"cannot run {_show(command)}: {err}") from None
        if result.returncode != 0:
            raise SynthesisError(f"{_show(command)} exited with code {result.returncode}: {result.stderr.strip()}")
        listing[kind] = result.stdout
    languages = {line.split()[1] for line in listing["en"].splitlines()[1:] if len(line.split()) > 1}
    variant_files = set(re.findall(r"!v/(\S+)", listing["variant"]))
    missing = [a for a in ACCENTS if a not in languages] + [v for v in VARIANTS if v not in variant_files]
    if missing:
        raise SynthesisError(f"{espeak} lacks voices this corpus needs: {', '.join(missing)}")


def _write_subset(path: Path, results: list[UtteranceResult]) -> None:
    wav_scp = {r.utt: str(Path(r.path).resolve()) for r in results}
    utt2spk = {r.utt: r.speaker for r in results}
    utt2dur = {r.utt: r.duration for r in results}
    write_data_dir(path, DataDir(wav_scp, utt2spk, utt2dur))
    write_table(path / "text", {r.utt: r.text for r in results})


def mini_corpus_params(data_root: PathLike, num_train_speakers: int = 100, num_test_speakers: int = 20,
                       utts_per_speaker: int = 20, random_seed: int = 777, test_utts_per_speaker: int | None = None,
                       wav_dir: PathLike | None = None, min_duration: float = 1.5, max_duration: float = 6.0,
                       nontarget_ratio: float = 2.0) -> dict:
    """What ``DATA_ROOT/.done`` records for a corpus made with these arguments (see :func:`make_mini_corpus`)."""
    data_root = Path(data_root).resolve()
    wav_dir = Path(wav_dir).resolve() if wav_dir is not None else data_root / "wav"
    test_utts = utts_per_speaker if test_utts_per_speaker is None else test_utts_per_speaker
    return {"version": STAMP_VERSION, "num_train_speakers": num_train_speakers,
            "num_test_speakers": num_test_speakers, "utts_per_speaker": utts_per_speaker,
            "test_utts_per_speaker": test_utts, "seed": random_seed, "wav_dir": str(wav_dir),
            "min_duration": min_duration, "max_duration": max_duration, "nontarget_ratio": nontarget_ratio}


def why_corpus_not_current(data_root: PathLike, params: dict) -> str | None:
    """None when ``data_root`` holds the corpus ``params`` describe (its ``.done``, lists and wavs); else why not."""
    data_root = Path(data_root).resolve()
    stamp = data_root / ".done"
    needed = [data_root / sub / name for sub in ("train", "test") for name in ("wav.scp", "utt2spk", "spk2utt")]
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
        wavs = [path for sub in ("train", "test") for path in read_scp(data_root / sub / "wav.scp").values()]
    except (OSError, ValueError) as err:
        return f"{stamp} or a wav.scp is unreadable ({err})"
    lost = next((path for path in wavs if not Path(path).is_file()), None)
    return None if lost is None else f"audio file {lost} is missing"


def make_mini_corpus(data_root: PathLike, num_train_speakers: int = 100, num_test_speakers: int = 20,
                     utts_per_speaker: int = 20, random_seed: int = 777, num_jobs: int = 2,
                     test_utts_per_speaker: int | None = None, wav_dir: PathLike | None = None,
                     min_duration: float = 1.5, max_duration: float = 6.0, nontarget_ratio: float = 2.0,
                     espeak: str = "espeak-ng") -> None:
    """Synthesise the mini corpus into ``data_root/{train,test}`` (Kaldi data dirs) and ``test/trials``.

    Does nothing when ``data_root/.done`` records the same parameters; otherwise removes
    ``data_root/train`` and ``data_root/test`` and rebuilds everything. ``test_utts_per_speaker``
    defaults to ``utts_per_speaker``; ``wav_dir`` to ``data_root/wav``. The output does not
    depend on ``num_jobs``.
    """
    params = mini_corpus_params(data_root, num_train_speakers, num_test_speakers, utts_per_speaker, random_seed,
                                test_utts_per_speaker, wav_dir, min_duration, max_duration, nontarget_ratio)
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
    if why_corpus_not_current(data_root, params) is None:
        return
    check_espeak(espeak)
    train_specs, test_specs = make_speaker_specs(num_train_speakers, num_test_speakers, random_seed)
    (data_root / ".done").unlink(missing_ok=True)
    for sub in ("train", "test"):
        if (data_root / sub).exists():
            shutil.rmtree(data_root / sub)
    tasks = [(spec, utts_per_speaker if spec.subset == "train" else test_utts)
             for spec in train_specs + test_specs]
    results: dict[str, list[UtteranceResult]] = {}
    with tqdm(total=sum(n for _, n in tasks), desc="synthesising mini corpus", unit="utt",
              dynamic_ncols=True) as bar:
        if num_jobs == 1:
            for spec, n in tasks:
                results[spec.speaker] = synthesize_speaker(spec, n, random_seed, str(wav_dir), espeak, min_duration,
                                                           max_duration)
                bar.update(n)
        else:
            pool = ProcessPoolExecutor(max_workers=num_jobs)
            try:
                futures = {pool.submit(synthesize_speaker, spec, n, random_seed, str(wav_dir), espeak, min_duration,
                                       max_duration): spec for spec, n in tasks}
                for future in as_completed(futures):
                    spec = futures[future]
                    results[spec.speaker] = future.result()
                    bar.update(len(results[spec.speaker]))
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
    _remove_stale_wavs(wav_dir, {spec.speaker for spec, _ in tasks})
    for subset, specs in (("train", train_specs), ("test", test_specs)):
        _write_subset(data_root / subset, [r for spec in specs for r in results[spec.speaker]])
    spk2utt = {spec.speaker: [r.utt for r in results[spec.speaker]] for spec in test_specs}
    write_trials(data_root / "test" / "trials", make_trials(spk2utt, random_seed, nontarget_ratio))
    write_table(data_root / "speakers.txt",
                [(s.speaker, s.subset, s.accent, s.variant, s.pitch, s.rate, s.word_gap)
                 for s in train_specs + test_specs])
    for subset in ("train", "test"):
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
    for index, (spk, fields) in enumerate(read_table(path, 7, 7).items()):
        subset, accent, variant, pitch, rate, gap = fields
        try:
            specs.append(SpeakerSpec(spk, subset, index, accent, variant, int(pitch), int(rate), int(gap)))
        except ValueError:
            raise DataError(f"{path}: speaker {spk!r}: pitch, rate and word gap must be integers") from None
    return specs


__all__ = ["SpeakerSpec", "SynthesisError", "make_mini_corpus", "make_speaker_specs", "make_trials",
           "make_utterance", "make_text", "check_espeak", "read_speaker_specs", "speaker_ids"]
