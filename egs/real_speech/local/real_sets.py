"""The data directories of the real_speech recipe, made from the checked corpora (stage 0).

Folders under the data root, each a part (:mod:`pyfunc.corpora.parts`: skipped when its ``.done``
stamp records the same parameters, otherwise rebuilt whole and renamed into place), wavs under
``<part>/wav``, all 16 kHz mono 16-bit:

- ``train``: the training speakers of DSPSpeech-20 (``dsp-<id>``) and the Arabic speech commands
  (``ar-<id>``), every recording used once, :attr:`SetSizes.train_words` words joined per utterance;
- ``dev``, ``test_dsp``, ``test_arabic``: the other speakers, :attr:`SetSizes.enrol_utts` enrolment-side
  utterances (``<spk>-e01``...) of :attr:`SetSizes.test_words` words from one half of the vocabulary and
  :attr:`SetSizes.test_utts` test-side ones (``<spk>-t01``...) from the other half; ``trials`` pair every
  enrolment-side utterance with every test-side one of the same corpus, so no trial has a word on both
  sides (text-independent);
- ``train_libri`` (251 LibriSpeech speakers x 1 clip), ``test_libri`` (10 x 10 sentences, every pair once);
- ``augment``: ``musan_noise`` (real noises), ``musan_speech`` (the train-clean-100 clips, for babble),
  ``musan_music`` (the mini corpus's synthetic music) and ``rirs`` (measured and simulated rooms);
- ``train_all`` (train + train_libri) and ``cohort`` (:attr:`SetSizes.cohort_per_speaker` utterances per
  speaker of ``train_all``), rewritten only when their content changes.

Each word set has ``utt2words`` (the words of each utterance, in order); every set has ``utt2src`` (the
source files, percent-encoded: ``dataset/zoom%20in/...``, as Kaldi tables split on spaces).
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import quote

import numpy as np
import soundfile
from real_corpora import (
    CORPORA,
    Checkout,
    Corpus,
    LibriClips,
    Requirements,
    WordCorpus,
    scan_arabic,
    scan_dsp,
    scan_irs,
    scan_librispeech,
    scan_noises,
)
from word_examples import convert_file, make_joined_example, resample

from pyfunc.corpora.noises import MUSIC_SECONDS, MUSIC_STREAM, make_music
from pyfunc.corpora.parallel import run_tasks
from pyfunc.corpora.parts import build_part, part_status, status_line
from pyfunc.corpora.rooms import ROOM_CLASSES, draw_room, simulate_rir
from pyfunc.corpora.streams import BANKS, stream_rng
from pyfunc.data.atomic import PathLike, write_lines
from pyfunc.data.audio import SAMPLE_RATE, write_wav
from pyfunc.data.datadir import DataDir, load_data_dir, subset_per_speaker, validate_data_dir, write_data_dir
from pyfunc.data.tables import write_table
from pyfunc.data.trials import Trial, write_trials
from pyfunc.errors import DataError
from pyfunc.features.augment_offline import combine_data_dirs

logger = logging.getLogger(__name__)

PREP_VERSION = 2  # bump when the way examples are made changes, so that finished parts are rebuilt
PREFIX = {"dsp": "dsp", "arabic": "ar"}
WORD_STREAM = 50  # random streams of this recipe (pyfunc.corpora.streams uses 0-32)
ROOM_STREAM = 51
IR_PRE_SECONDS = 0.002  # kept before a measured IR's peak (its leading silence would delay the speech)
IR_MAX_SECONDS = 3.0


@dataclass(frozen=True)
class SetSizes:
    """How the corpora are split and cut into examples."""

    dsp_dev: int = 4
    dsp_test: int = 10
    arabic_dev: int = 4
    arabic_test: int = 8
    train_words: int = 4
    test_words: int = 3
    enrol_utts: int = 10
    test_utts: int = 10
    cohort_per_speaker: int = 2
    simulated_rooms: int = 40
    music: int = 8
    random_seed: int = 777


@dataclass(frozen=True)
class PrepConfig:
    """Everything stage 0 is told: what the corpora must hold and how they are cut."""

    requirements: Requirements = field(default_factory=Requirements)
    sizes: SetSizes = field(default_factory=SetSizes)


def split_speakers(speakers: list[str], dev: int, test: int, corpus: str) -> dict[str, list[str]]:
    """Sorted ids: the first ones train, the next ``dev`` dev, the last ``test`` test."""
    speakers = sorted(speakers)
    if len(speakers) < dev + test + 1:
        raise DataError(f"{corpus}: {len(speakers)} speakers, at least {dev + test + 1} needed for "
                        f"{dev} dev and {test} test speakers and training")
    cut = len(speakers) - dev - test
    return {"train": speakers[:cut], "dev": speakers[cut:cut + dev], "test": speakers[cut + dev:]}


def _rng(seed: int, stream: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, stream, zlib.crc32(name.encode())])


@dataclass(frozen=True)
class Example:
    """One joined utterance: its speaker, source files and words, in order."""

    utt: str
    speaker: str
    files: tuple[str, ...]
    words: tuple[str, ...]


def train_examples(corpus: WordCorpus, speaker: str, per_example: int, seed: int) -> list[Example]:
    """Every recording of ``speaker`` once, in a seeded random order, ``per_example`` per utterance (a remainder
    of one word joins the last utterance)."""
    spk = f"{PREFIX[corpus.key]}-{speaker}"
    items = [(word, str(path)) for word, paths in sorted(corpus.files[speaker].items()) for path in paths]
    order = _rng(seed, WORD_STREAM, spk).permutation(len(items))
    items = [items[i] for i in order]
    groups = [items[i:i + per_example] for i in range(0, len(items), per_example)]
    if len(groups) > 1 and len(groups[-1]) == 1:
        groups[-2] += groups.pop()
    return [Example(f"{spk}-tr{i + 1:03d}", spk, tuple(p for _, p in g), tuple(w for w, _ in g))
            for i, g in enumerate(groups)]


def vocabulary_halves(vocabulary: list[str]) -> tuple[list[str], list[str]]:
    """The enrolment-side and test-side words: alternate words of the sorted vocabulary (so each side of
    DSPSpeech-20 has Chinese and English words)."""
    return vocabulary[0::2], vocabulary[1::2]


def eval_examples(corpus: WordCorpus, speaker: str, sizes: SetSizes) -> list[Example]:
    """``enrol_utts`` utterances (``-eNN``) from the first half of the vocabulary and ``test_utts`` (``-tNN``)
    from the second, ``test_words`` words each, the half's words in turn with seeded repetitions."""
    spk = f"{PREFIX[corpus.key]}-{speaker}"
    rng = _rng(sizes.random_seed, WORD_STREAM, spk)
    out = []
    for side, half, count in (("e", vocabulary_halves(corpus.vocabulary)[0], sizes.enrol_utts),
                              ("t", vocabulary_halves(corpus.vocabulary)[1], sizes.test_utts)):
        takes = {w: [str(p) for p in rng.permutation(corpus.files[speaker][w])] for w in half
                 if w in corpus.files[speaker]}
        pool = [(w, takes[w][r]) for r in range(max(map(len, takes.values()), default=0)) for w in half
                if w in takes and r < len(takes[w])]  # round-robin over the words
        need = count * sizes.test_words
        if len(pool) < need:
            raise DataError(f"{corpus.name}: speaker {speaker} has {len(pool)} recordings of the "
                            f"{'enrolment' if side == 'e' else 'test'}-side words, at least {need} needed")
        for i in range(count):
            group = pool[i * sizes.test_words:(i + 1) * sizes.test_words]
            out.append(Example(f"{spk}-{side}{i + 1:02d}", spk, tuple(p for _, p in group),
                               tuple(w for w, _ in group)))
    return out


def eval_trials(examples: list[Example]) -> list[Trial]:
    """Every enrolment-side utterance against every test-side one (the examples of one corpus)."""
    enrol = sorted((e for e in examples if e.utt.rsplit("-", 1)[1].startswith("e")), key=lambda e: e.utt)
    test = sorted((e for e in examples if e.utt.rsplit("-", 1)[1].startswith("t")), key=lambda e: e.utt)
    return [(a.utt, b.utt, a.speaker == b.speaker) for a in enrol for b in test]


def all_pairs_trials(utt2spk: dict[str, str]) -> list[Trial]:
    """Every pair of different utterances once (sorted ids, the first enrolment)."""
    utts = sorted(utt2spk)
    return [(a, b, utt2spk[a] == utt2spk[b]) for i, a in enumerate(utts) for b in utts[i + 1:]]


def _build_word_set(part_dir: Path, params: dict, examples: list[Example], trials: list[Trial], num_jobs: int,
                    desc: str) -> None:
    def build(tmp: Path, final: Path) -> None:
        tasks = [(list(e.files), str(tmp / "wav" / f"{e.utt}.wav"), f"{desc}: {e.utt}") for e in examples]
        durations = run_tasks(make_joined_example, tasks, num_jobs, desc, unit="utt")
        data = DataDir({e.utt: str(final / "wav" / f"{e.utt}.wav") for e in examples},
                       {e.utt: e.speaker for e in examples}, {e.utt: d for e, d in zip(examples, durations)})
        write_data_dir(tmp, data)
        write_table(tmp / "utt2words", {e.utt: list(e.words) for e in examples})
        write_table(tmp / "utt2src", {e.utt: [quote(p) for p in e.files] for e in examples})
        if trials:
            write_trials(tmp / "trials", trials)

    build_part(part_dir, params, build)


def _build_converted_set(part_dir: Path, params: dict, files: dict[str, str], utt2spk: dict[str, str],
                         trials: list[Trial], num_jobs: int, desc: str) -> None:
    def build(tmp: Path, final: Path) -> None:
        utts = sorted(files)
        tasks = [(files[u], str(tmp / "wav" / f"{u}.wav"), f"{desc}: {u}") for u in utts]
        durations = run_tasks(convert_file, tasks, num_jobs, desc, unit="file")
        write_data_dir(tmp, DataDir({u: str(final / "wav" / f"{u}.wav") for u in utts}, utt2spk,
                                    dict(zip(utts, durations))))
        write_table(tmp / "utt2src", {u: quote(p) for u, p in files.items()})
        if trials:
            write_trials(tmp / "trials", trials)

    build_part(part_dir, params, build)


def _params(part: str, checkouts: list[Checkout], config: PrepConfig, **extra: object) -> dict:
    return {"part": part, "version": PREP_VERSION, "sizes": asdict(config.sizes),
            "corpora": {c.corpus.key: {"commit": c.commit, "root": str(c.root)} for c in checkouts}, **extra}


def prepare_word_sets(data_root: Path, dsp: WordCorpus, arabic: WordCorpus, checkouts: list[Checkout],
                      config: PrepConfig, num_jobs: int) -> dict[str, list[str]]:
    """``train``, ``dev``, ``test_dsp`` and ``test_arabic``; return the speakers of each (prefixed ids)."""
    sizes = config.sizes
    splits = {"dsp": split_speakers(list(dsp.files), sizes.dsp_dev, sizes.dsp_test, dsp.name),
              "arabic": split_speakers(list(arabic.files), sizes.arabic_dev, sizes.arabic_test, arabic.name)}
    corpora = {"dsp": dsp, "arabic": arabic}
    train = [e for key in ("dsp", "arabic") for s in splits[key]["train"]
             for e in train_examples(corpora[key], s, sizes.train_words, sizes.random_seed)]
    _build_word_set(data_root / "train", _params("train", checkouts, config), train, [], num_jobs, "train")
    evals = {}
    for name, groups in (("dev", [("dsp", "dev"), ("arabic", "dev")]), ("test_dsp", [("dsp", "test")]),
                         ("test_arabic", [("arabic", "test")])):
        examples, trials = [], []
        for key, role in groups:
            group = [e for s in splits[key][role] for e in eval_examples(corpora[key], s, sizes)]
            examples += group
            trials += eval_trials(group)
        _build_word_set(data_root / name, _params(name, checkouts, config), examples, sorted(trials), num_jobs, name)
        evals[name] = sorted({e.speaker for e in examples})
    return {"train": sorted({e.speaker for e in train}), **evals}


def libri_utt(path: Path) -> tuple[str, str]:
    """(utterance id, speaker id) of a LibriSpeech clip ``<spk>-<chapter>-<n>.flac``."""
    return f"lib-{path.stem}", f"lib-{path.stem.split('-')[0]}"


def prepare_libri_sets(data_root: Path, libri: LibriClips, checkout: Checkout, config: PrepConfig,
                       num_jobs: int) -> None:
    """``train_libri`` (one clip per train-clean-100 speaker) and ``test_libri`` (test-other, all pairs)."""
    for name, paths in (("train_libri", list(libri.train.values())),
                        ("test_libri", [p for clips in libri.test.values() for p in clips])):
        files = {libri_utt(p)[0]: str(p) for p in paths}
        utt2spk = {libri_utt(p)[0]: libri_utt(p)[1] for p in paths}
        trials = all_pairs_trials(utt2spk) if name == "test_libri" else []
        _build_converted_set(data_root / name, _params(name, [checkout], config), files, utt2spk, trials,
                             num_jobs, name)


def make_ir(path: str, out_path: str) -> float:
    """A measured IR as 16 kHz mono: its first channel, from :data:`IR_PRE_SECONDS` before its peak, cut where
    its energy has decayed by 60 dB (at most :data:`IR_MAX_SECONDS`), peak 0.9. A process-pool task."""
    samples, rate = soundfile.read(path, dtype="float64", always_2d=True)
    ir = resample(samples[:, 0], int(rate))
    start = max(0, int(np.argmax(np.abs(ir))) - round(IR_PRE_SECONDS * SAMPLE_RATE))
    ir = ir[start:]
    energy = np.cumsum(ir[::-1] ** 2)[::-1]
    below = np.flatnonzero(energy < energy[0] * 1e-6)
    ir = ir[:min(int(below[0]) if below.size else ir.size, round(IR_MAX_SECONDS * SAMPLE_RATE))]
    write_wav(out_path, ir / np.max(np.abs(ir)) * 0.9)
    return ir.size / SAMPLE_RATE


def make_room(index: int, random_seed: int, out_path: str) -> float:
    """A simulated room of the mini corpus's kind (:mod:`pyfunc.corpora.rooms`), size classes in turn."""
    classes = list(ROOM_CLASSES)
    spec = draw_room(f"sr{index + 1:02d}", classes[index % len(classes)], stream_rng(random_seed, ROOM_STREAM, index))
    rir, _ = simulate_rir(spec)
    write_wav(out_path, rir / np.max(np.abs(rir)) * 0.9)
    return rir.size / SAMPLE_RATE


def make_music_file(index: int, random_seed: int, out_path: str) -> float:
    """The mini corpus's ``augment`` bank music file ``index`` (the same stream, so the same audio)."""
    audio = make_music(stream_rng(random_seed, BANKS["augment"], MUSIC_STREAM, index), MUSIC_SECONDS)
    write_wav(out_path, audio)
    return audio.size / SAMPLE_RATE


def prepare_augment(data_root: Path, noises: dict[str, Path], libri: LibriClips, irs: dict[str, Path],
                    checkouts: list[Checkout], config: PrepConfig, num_jobs: int) -> None:
    """``augment/{musan_noise,musan_speech,musan_music,rirs}``: whole files, no segments (the augmenter draws a
    window of each); ``rirs/utt2kind`` says measured or simulated."""
    sizes = config.sizes
    speech = {libri_utt(p)[0]: p for p in libri.train.values()}
    music = [f"music{i + 1:02d}" for i in range(sizes.music)]
    rooms = [f"room{i + 1:02d}" for i in range(sizes.simulated_rooms)]

    def build(tmp: Path, final: Path) -> None:
        sections: list[tuple[str, str, Callable, tuple]] = []
        sections += [("musan_noise", u, convert_file, (str(p),)) for u, p in noises.items()]
        sections += [("musan_speech", u, convert_file, (str(p),)) for u, p in speech.items()]
        sections += [("musan_music", u, make_music_file, (i, sizes.random_seed)) for i, u in enumerate(music)]
        sections += [("rirs", u, make_ir, (str(p),)) for u, p in irs.items()]
        sections += [("rirs", u, make_room, (i, sizes.random_seed)) for i, u in enumerate(rooms)]
        tasks = []
        for folder, utt, function, args in sections:
            out = str(tmp / "wav" / folder / f"{utt}.wav")
            tasks.append((function, args + ((out, f"augment {utt}") if function is convert_file else (out,))))
        durations = run_tasks(_run_task, tasks, num_jobs, "augment", unit="file")
        for folder in ("musan_noise", "musan_speech", "musan_music", "rirs"):
            rows = [(utt, d) for (f, utt, _, _), d in zip(sections, durations) if f == folder]
            write_data_dir(tmp / folder, DataDir({u: str(final / "wav" / folder / f"{u}.wav") for u, _ in rows},
                                                 {u: u for u, _ in rows}, dict(rows)))
        write_table(tmp / "musan_noise" / "utt2src", {u: quote(str(p)) for u, p in noises.items()})
        write_table(tmp / "musan_speech" / "utt2src", {u: quote(str(p)) for u, p in speech.items()})
        write_table(tmp / "rirs" / "utt2kind", {**{u: "measured" for u in irs}, **{u: "simulated" for u in rooms}})

    build_part(data_root / "augment", _params("augment", checkouts, config), build)


def _run_task(function: Callable, args: tuple) -> float:
    return function(*args)


def write_if_changed(out_dir: Path, make: Callable[[], None], expected: DataDir) -> bool:
    """Run ``make`` (which writes ``out_dir``) unless ``out_dir`` already holds ``expected``; keeps stamps valid."""
    if (out_dir / "utt2spk").is_file():
        try:
            old = load_data_dir(out_dir, features=False)
        except DataError:
            old = None
        if old is not None and (old.wav_scp, old.utt2spk, old.utt2dur) == (
                expected.wav_scp, expected.utt2spk, {k: round(v, 3) for k, v in expected.utt2dur.items()}):
            logger.info("%s: up to date", out_dir)
            return False
    make()
    return True


def prepare_combined(data_root: Path, config: PrepConfig) -> None:
    """``train_all`` = ``train`` + ``train_libri``; ``cohort`` = the first utterances of each ``train_all`` speaker.

    The cohort spans every training speaker, the 251 LibriSpeech ones included (one clip each): AS-norm's
    top-N then picks the cohort speakers closest to each side, words or read sentences alike.
    """
    parts = [load_data_dir(data_root / name, features=False) for name in ("train", "train_libri")]
    union = DataDir({k: v for p in parts for k, v in p.wav_scp.items()},
                    {k: v for p in parts for k, v in p.utt2spk.items()},
                    {k: v for p in parts for k, v in p.utt2dur.items()})
    inputs = [data_root / "train", data_root / "train_libri"]
    write_if_changed(data_root / "train_all", lambda: combine_data_dirs(data_root / "train_all", inputs), union)
    validate_data_dir(data_root / "train_all", check_wavs=False)
    subset_per_speaker(data_root / "train_all", data_root / "cohort", config.sizes.cohort_per_speaker)


def write_sources(data_root: Path, checkouts: list[Checkout]) -> None:
    """``SOURCES.md``: each corpus's URL, commit, licence, what was used and what a partial mirror lacked."""
    lines = ["# Sources of data/ (written by egs/real_speech/local/prepare_data.py)", ""]
    for checkout in checkouts:
        corpus = checkout.corpus
        lines += [f"## {corpus.name}", "",
                  f"- repository: {corpus.url.removesuffix('.git')}",
                  f"- commit: {checkout.commit or 'none checked (a plain folder: ' + str(checkout.root) + ')'}",
                  f"- licence: {corpus.licence}",
                  f"- used: {corpus.used}",
                  f"- checkout: {checkout.root}"]
        if checkout.absent:
            lines.append(f"- absent from the source (a partial mirror), not used: {', '.join(checkout.absent)}")
        lines.append("")
    write_lines(data_root / "SOURCES.md", lines)


DATA_DIRS = ("train", "train_libri", "train_all", "cohort", "dev", "test_dsp", "test_arabic", "test_libri",
             "augment/musan_noise", "augment/musan_speech", "augment/musan_music", "augment/rirs")


def check_disjoint(data_root: Path, speakers: dict[str, list[str]]) -> None:
    """No speaker in two of train, dev and the test sets (a DataError naming the speakers)."""
    names = sorted(speakers)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = sorted(set(speakers[a]) & set(speakers[b]))
            if shared:
                raise DataError(f"{data_root}: speakers {shared[:5]} are in both {a} and {b}")


def prepare_data(data_root: Path, checkouts: dict[str, Checkout], config: PrepConfig, num_jobs: int) -> list[str]:
    """Check the corpora and write every data dir of the recipe under ``data_root``; return their descriptions."""
    data_root = Path(data_root).resolve()
    req = config.requirements
    dsp = scan_dsp(checkouts["dsp"].root, req)
    arabic = scan_arabic(checkouts["arabic"].root, req)
    libri = scan_librispeech(checkouts["librispeech"].root, req)
    noises = scan_noises(checkouts["esc10"].root, checkouts["arabic"].root, req)
    irs = scan_irs(checkouts["irs"].root, req)
    words = [checkouts["dsp"], checkouts["arabic"]]
    speakers = prepare_word_sets(data_root, dsp, arabic, words, config, num_jobs)
    prepare_libri_sets(data_root, libri, checkouts["librispeech"], config, num_jobs)
    speakers["train_libri"] = sorted({libri_utt(p)[1] for p in libri.train.values()})
    speakers["test_libri"] = sorted({libri_utt(p)[1] for clips in libri.test.values() for p in clips})
    check_disjoint(data_root, {k: v for k, v in speakers.items() if k != "train_libri"})
    check_disjoint(data_root, {k: v for k, v in speakers.items() if k != "train"})
    prepare_augment(data_root, noises, libri, irs, [checkouts[k] for k in ("arabic", "librispeech", "esc10", "irs")],
                    config, num_jobs)
    prepare_combined(data_root, config)
    write_sources(data_root, list(checkouts.values()))
    return describe(data_root, list(DATA_DIRS))


WORD_SETS = ("train", "dev", "test_dsp", "test_arabic")
LIBRI_SETS = ("train_libri", "test_libri")
AUGMENT_KEYS = ("arabic", "librispeech", "esc10", "irs")


def status_checkouts(download_dir: Path, plain: dict[str, Path] | None = None,
                     corpora: dict[str, Corpus] | None = None) -> dict[str, Checkout]:
    """The checkouts :func:`real_corpora.fetch_corpus` would give, without fetching or reading them: each pinned
    corpus at its commit in ``download_dir/<repository name>``, or, for the keys of ``plain``, that folder used as
    it is (no commit); what :func:`_params` records of them is all :func:`data_status` needs (``corpora``: other
    pins than :data:`CORPORA`)."""
    plain = plain or {}
    return {key: (Checkout(corpus, Path(plain[key]).resolve(), None) if key in plain
                  else Checkout(corpus, Path(download_dir).resolve() / corpus.repo, corpus.commit))
            for key, corpus in (corpora or CORPORA).items()}


def _union(names: list[Path]) -> tuple[dict[str, str], dict[str, str]] | None:
    """wav.scp and utt2spk of the data dirs ``names`` together, None when one is missing or unreadable."""
    try:
        parts = [load_data_dir(name, features=False) for name in names]
    except (OSError, ValueError, DataError):
        return None
    return ({k: v for d in parts for k, v in d.wav_scp.items()}, {k: v for d in parts for k, v in d.utt2spk.items()})


def combined_status(out_dir: Path, inputs: list[Path], remade: list[str]) -> str:
    """A data dir combined from ``inputs`` (train_all, train_mixed): up to date when its wav.scp and utt2spk
    equal their union, else to make or to redo and why (``remade``: inputs stage 0 makes again first)."""
    if not (out_dir / "utt2spk").is_file():
        return f"to make: {out_dir / 'utt2spk'} is missing"
    if remade:
        return f"to redo: {', '.join(remade)} made again first"
    union, there = _union(inputs), _union([out_dir])
    if union is None:
        return f"to redo: one of {', '.join(map(str, inputs))} is missing or unreadable"
    if union != there:
        return f"to redo: its wav.scp/utt2spk are not the union of {', '.join(map(str, inputs))}"
    return "up to date"


def data_status(data_root: Path, checkouts: dict[str, Checkout], config: PrepConfig,
                mini_data: Path | None = None) -> list[str]:
    """``local/prepare_data.py --status true``: one ``--status`` line (:func:`pyfunc.corpora.parts.status_line`)
    per part :func:`prepare_data` builds, from its ``.done`` stamp and the parameters it would record, then
    train_all (and cohort) and, with ``mini_data``, train_mixed by content. Reads no corpus, writes nothing."""
    data_root, resolved = Path(data_root), Path(data_root).resolve()
    words = [checkouts["dsp"], checkouts["arabic"]]
    groups = [(name, words) for name in WORD_SETS] + [(name, [checkouts["librispeech"]]) for name in LIBRI_SETS]
    groups.append(("augment", [checkouts[k] for k in AUGMENT_KEYS]))
    lines, states = [], {}
    for name, used in groups:
        states[name] = part_status(resolved / name, _params(name, used, config))
        made = [data_root / "augment" / d for d in ("musan_noise", "musan_speech", "musan_music", "rirs")] \
            if name == "augment" else []
        lines.append(status_line(data_root / name, states[name], "real_speech part", made))
    remade = [name for name in ("train", "train_libri") if states[name] != "up to date"]
    state = combined_status(data_root / "train_all", [data_root / "train", data_root / "train_libri"], remade)
    if state == "up to date" and not (data_root / "cohort" / "utt2spk").is_file():
        state = f"to make: {data_root / 'cohort' / 'utt2spk'} is missing"
    lines.append(status_line(data_root / "train_all", state, "combine",
                             [data_root / "train_all", data_root / "cohort"]))
    if mini_data is not None:
        inputs = [data_root / "train_all", Path(mini_data) / "train_wide"]
        if not (inputs[1] / "wav.scp").is_file():  # local/prepare_data.sh synthesises it first
            mixed = f"to make: {inputs[1]} is missing (stage 0 synthesises the mini corpus's train_wide there)"
        else:
            mixed = combined_status(data_root / "train_mixed", inputs, ["train_all"] if state != "up to date" else [])
        lines.append(status_line(data_root / "train_mixed", mixed, "combine"))
        lines.append(status_line(data_root / "test_unseen", lists_status(Path(mini_data) / "test_unseen",
                                                                         data_root / "test_unseen"), "copy lists"))
    return lines


UNSEEN_LISTS = ("wav.scp", "utt2spk", "spk2utt", "utt2dur", "trials")  # what stage 0 copies of the mini test_unseen


def lists_status(source: Path, copy: Path) -> str:
    """Whether ``copy`` holds ``source``'s lists (local/prepare_data.sh copies the mini test_unseen's)."""
    if not (source / "wav.scp").is_file():
        return f"to make: {source} is missing (stage 0 synthesises the mini corpus's test_unseen there)"
    differing = [name for name in UNSEEN_LISTS
                 if not (copy / name).is_file() or (copy / name).read_bytes() != (source / name).read_bytes()]
    if not differing:
        return "up to date"
    state = "to make" if not (copy / "wav.scp").is_file() else "to redo"
    return f"{state}: {copy / differing[0]} is not {source / differing[0]}"


def describe(data_root: PathLike, names: list[str]) -> list[str]:
    """One line per data dir: speakers, utterances, trials (target), hours."""
    out = []
    for name in names:
        path = Path(data_root) / name
        data = load_data_dir(path, features=False)
        hours = sum(data.utt2dur.values()) / 3600
        line = f"{name}: {len(data.spk2utt)} speakers, {len(data.utt2spk)} utterances, {hours:.2f} h"
        if (path / "trials").is_file():
            labels = [line.split()[2] for line in (path / "trials").read_text().splitlines()]
            line += f", {len(labels)} trials ({labels.count('target')} target)"
        out.append(line)
    return out


__all__ = ["CORPORA", "DATA_DIRS", "PrepConfig", "SetSizes", "data_status", "describe", "prepare_augment",
           "prepare_combined", "prepare_data", "prepare_libri_sets", "prepare_word_sets", "write_sources"]
