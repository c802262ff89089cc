"""Stage 0 beyond the original mini corpus: wide training sets, held-out tests, a dev set and noise banks.

Parts (folders under ``data_root``; each a Kaldi data dir with its wavs under ``wav/``, or
a folder of data dirs; each skipped when its ``.done`` stamp records the same parameters
and replaced as a whole otherwise, :mod:`pyfunc.corpora.parts`):

- ``train_wide`` (any name): ``num_speakers`` speakers (``tw0001``...) spread over every
  training variant x accent pair and the wide pitch and rate bands, ``utts_per_speaker``
  utterances each of 1.5-6 s from the training sentence generators (``text``);
- ``test_unseen``: speakers ``tu001``... of the held-out voice space, reading the held-out
  generator, each utterance cut to 1.5-3 s; ``trials`` with every target pair and twice as
  many non-target pairs;
- ``dev``: speakers ``dv001``... on voice pairs of their own, 1-3 s cuts, half of them
  degraded with the ``dev`` bank (``utt2condition``), ``trials`` as for test_unseen;
- ``augment``, ``augment_test_hard``, ``augment_dev``: the noise banks
  (:mod:`mini_corpus.banks`); ``augment`` is what training augmentation reads;
- ``test_hard``: the original test set degraded with its bank (:mod:`mini_corpus.mini_hard`).

Voices follow :func:`mini_corpus.voices.voice_partition` of the original corpus's
parameters (``num_train_speakers``, ``num_test_speakers``, ``random_seed``), whose test
speakers' pairs no other part uses.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from pyfunc.corpora import streams
from pyfunc.corpora.parallel import run_tasks
from pyfunc.corpora.parts import build_part, part_status, read_part_stamp, status_line
from pyfunc.data.atomic import PathLike
from pyfunc.errors import ConfigError

from .banks import BANKS_SIZES, bank_tasks, make_bank_item, read_bank, write_bank_tables
from .mini import check_espeak, make_mini_corpus, mini_corpus_params, why_corpus_not_current
from .mini_hard import degrade_speaker, hard_tasks, write_hard_set
from .speech_sets import SetRecipe, synthesize_set_speaker, write_speech_set
from .texts import HELD_OUT_GENERATORS, TRAIN_GENERATORS
from .voices import (
    UNSEEN_PITCH,
    UNSEEN_RATE,
    SpeakerSpec,
    VoicePartition,
    draw_speakers,
    voice_partition,
)

logger = logging.getLogger(__name__)

PARTS_VERSION = 1
BANK_DIRS = {"augment": "augment", "test_hard": "augment_test_hard", "dev": "augment_dev"}
ORIGINAL_PARTS = ("train", "test")
NEW_PARTS = ("train_wide", "test_unseen", "dev", "augment", "test_hard")
ALL_PARTS = ORIGINAL_PARTS + NEW_PARTS
UNSEEN_CUT = (1.5, 3.0)
DEV_CUT = (1.0, 3.0)
CUT_SOURCE_MAX = 10.0  # longest utterance synthesised for a cut (slow speakers read long)
DEV_DEGRADE_PROBABILITY = 0.5


def _base_params(random_seed: int, num_train_speakers: int, num_test_speakers: int) -> dict:
    return {"version": PARTS_VERSION, "random_seed": random_seed, "num_train_speakers": num_train_speakers,
            "num_test_speakers": num_test_speakers}


def bank_params(bank: str, random_seed: int = 777, num_train_speakers: int = 100, num_test_speakers: int = 20
                ) -> dict:
    """What the stamp of the noise bank ``bank`` records."""
    return {**_base_params(random_seed, num_train_speakers, num_test_speakers), "bank": bank,
            "sizes": asdict(BANKS_SIZES[bank])}


def speech_set_params(part: str, num_speakers: int, utts_per_speaker: int, random_seed: int = 777,
                      num_train_speakers: int = 100, num_test_speakers: int = 20, bank: dict | None = None) -> dict:
    """What the stamp of a synthesised set (train_wide, test_unseen, dev: with its bank's stamp) records."""
    params = {**_base_params(random_seed, num_train_speakers, num_test_speakers), "part": part,
              "num_speakers": num_speakers, "utts_per_speaker": utts_per_speaker}
    return {**params, "bank": bank} if part == "dev" else params


def hard_params(test_stamp: dict, bank: dict | None, random_seed: int = 777, num_train_speakers: int = 100,
                num_test_speakers: int = 20) -> dict:
    """What the stamp of test_hard records: the original test set's and its bank's parameters."""
    test_params = {k: v for k, v in test_stamp.items() if k not in ("make_train", "utts_per_speaker")}
    return {**_base_params(random_seed, num_train_speakers, num_test_speakers), "part": "test_hard",
            "test": test_params, "bank": bank}


def make_bank(data_root: PathLike, bank: str, random_seed: int = 777, num_train_speakers: int = 100,
              num_test_speakers: int = 20, num_jobs: int = 2, espeak: str = "espeak-ng") -> Path:
    """Build the noise bank ``bank`` (augment, test_hard or dev) under ``data_root``; return its folder."""
    bank_dir = Path(data_root).resolve() / BANK_DIRS[bank]
    params = bank_params(bank, random_seed, num_train_speakers, num_test_speakers)
    partition = voice_partition(random_seed, num_train_speakers, num_test_speakers)

    def build(tmp: Path, final: Path) -> None:
        check_espeak(espeak)
        tasks, layout = bank_tasks(bank, partition, random_seed, tmp, espeak)
        results = run_tasks(make_bank_item, tasks, num_jobs, f"noise bank {bank}", unit="file")
        write_bank_tables(tmp, final, layout, results)

    build_part(bank_dir, params, build)
    return bank_dir


def _make_speech_set(part_dir: Path, params: dict, specs: list[SpeakerSpec], utts_per_speaker: int,
                     random_seed: int, recipe: SetRecipe, trials_stream: int | None, num_jobs: int,
                     espeak: str) -> Path:
    def build(tmp: Path, final: Path) -> None:
        check_espeak(espeak)
        tasks = [(spec, utts_per_speaker, random_seed, recipe, str(tmp), espeak) for spec in specs]
        results = run_tasks(synthesize_set_speaker, tasks, num_jobs, f"synthesising {part_dir.name}",
                            sizes=[utts_per_speaker] * len(specs))
        write_speech_set(tmp, final, specs, [u for speaker in results for u in speaker], random_seed,
                         trials_stream, cut=recipe.cut is not None)

    if utts_per_speaker < 1 or (trials_stream is not None and utts_per_speaker < 2):
        raise ConfigError(f"{part_dir.name}: need at least {2 if trials_stream is not None else 1} utterances "
                          f"per speaker, got {utts_per_speaker}")
    build_part(part_dir, params, build)
    return part_dir


def wide_train_speakers(partition: VoicePartition, num_speakers: int, random_seed: int) -> list[SpeakerSpec]:
    """The speakers of a wide training set; the first n of a larger set are those of a set of n."""
    return draw_speakers("tw", "train_wide", num_speakers, partition.train, random_seed, streams.WIDE_SPEAKERS,
                         width=4)


def unseen_speakers(partition: VoicePartition, num_speakers: int, random_seed: int) -> list[SpeakerSpec]:
    return draw_speakers("tu", "test_unseen", num_speakers, partition.unseen, random_seed, streams.UNSEEN_SPEAKERS,
                         UNSEEN_PITCH, UNSEEN_RATE)


def dev_speakers(partition: VoicePartition, num_speakers: int, random_seed: int) -> list[SpeakerSpec]:
    return draw_speakers("dv", "dev", num_speakers, partition.dev, random_seed, streams.DEV_SPEAKERS)


def make_wide_train(data_root: PathLike, num_speakers: int = 300, utts_per_speaker: int = 6, name: str = "train_wide",
                    random_seed: int = 777, num_train_speakers: int = 100, num_test_speakers: int = 20,
                    num_jobs: int = 2, espeak: str = "espeak-ng") -> Path:
    """Build a wide training set ``data_root/<name>`` (see the module docstring); return its folder."""
    partition = voice_partition(random_seed, num_train_speakers, num_test_speakers)
    params = speech_set_params("train_wide", num_speakers, utts_per_speaker, random_seed, num_train_speakers,
                               num_test_speakers)
    recipe = SetRecipe(streams.WIDE_UTTERANCES, tuple(g.name for g in TRAIN_GENERATORS))
    return _make_speech_set(Path(data_root).resolve() / name, params,
                            wide_train_speakers(partition, num_speakers, random_seed), utts_per_speaker, random_seed,
                            recipe, None, num_jobs, espeak)


def make_unseen_test(data_root: PathLike, num_speakers: int = 24, utts_per_speaker: int = 8,
                     random_seed: int = 777, num_train_speakers: int = 100, num_test_speakers: int = 20,
                     num_jobs: int = 2, espeak: str = "espeak-ng") -> Path:
    """Build ``data_root/test_unseen`` (see the module docstring); return its folder."""
    partition = voice_partition(random_seed, num_train_speakers, num_test_speakers)
    params = speech_set_params("test_unseen", num_speakers, utts_per_speaker, random_seed, num_train_speakers,
                               num_test_speakers)
    recipe = SetRecipe(streams.UNSEEN_UTTERANCES, tuple(g.name for g in HELD_OUT_GENERATORS),
                       max_duration=CUT_SOURCE_MAX, cut=UNSEEN_CUT)
    return _make_speech_set(Path(data_root).resolve() / "test_unseen", params,
                            unseen_speakers(partition, num_speakers, random_seed), utts_per_speaker, random_seed,
                            recipe, streams.UNSEEN_TRIALS, num_jobs, espeak)


def make_dev(data_root: PathLike, num_speakers: int = 16, utts_per_speaker: int = 8, random_seed: int = 777,
             num_train_speakers: int = 100, num_test_speakers: int = 20, num_jobs: int = 2,
             espeak: str = "espeak-ng") -> Path:
    """Build ``data_root/dev`` and its noise bank ``augment_dev`` (see the module docstring); return its folder."""
    bank_dir = make_bank(data_root, "dev", random_seed, num_train_speakers, num_test_speakers, num_jobs, espeak)
    partition = voice_partition(random_seed, num_train_speakers, num_test_speakers)
    params = speech_set_params("dev", num_speakers, utts_per_speaker, random_seed, num_train_speakers,
                               num_test_speakers, read_part_stamp(bank_dir))
    recipe = SetRecipe(streams.DEV_UTTERANCES, tuple(g.name for g in TRAIN_GENERATORS),
                       max_duration=CUT_SOURCE_MAX, cut=DEV_CUT,
                       degrade_stream=streams.DEV_DEGRADATIONS, degrade_probability=DEV_DEGRADE_PROBABILITY,
                       bank=read_bank(bank_dir))
    return _make_speech_set(Path(data_root).resolve() / "dev", params,
                            dev_speakers(partition, num_speakers, random_seed), utts_per_speaker, random_seed,
                            recipe, streams.DEV_TRIALS, num_jobs, espeak)


def make_hard_test(data_root: PathLike, random_seed: int = 777, num_train_speakers: int = 100,
                   num_test_speakers: int = 20, num_jobs: int = 2, espeak: str = "espeak-ng") -> Path:
    """Build ``data_root/test_hard`` (and its bank) from ``data_root/test``, which must exist; return its folder."""
    data_root = Path(data_root).resolve()
    original = read_part_stamp(data_root)
    if (original is None or not (data_root / "test" / "trials").is_file()
            or (original.get("seed"), original.get("num_train_speakers"), original.get("num_test_speakers"))
            != (random_seed, num_train_speakers, num_test_speakers)):
        raise ConfigError(f"{data_root}/test: test_hard degrades the mini corpus's test set, which is missing or "
                          f"made with other parameters; build it first (part 'test', random seed {random_seed}, "
                          f"{num_train_speakers} train and {num_test_speakers} test speakers)")
    bank_dir = make_bank(data_root, "test_hard", random_seed, num_train_speakers, num_test_speakers, num_jobs,
                         espeak)
    params = hard_params(original, read_part_stamp(bank_dir), random_seed, num_train_speakers, num_test_speakers)
    bank = read_bank(bank_dir)
    test_dir = data_root / "test"

    def build(tmp: Path, final: Path) -> None:
        tasks = hard_tasks(test_dir, random_seed, bank, tmp)
        results = run_tasks(degrade_speaker, tasks, num_jobs, "degrading test_hard", sizes=[len(t[1]) for t in tasks])
        write_hard_set(tmp, final, test_dir, results)

    build_part(data_root / "test_hard", params, build)
    return data_root / "test_hard"


def make_mini_parts(data_root: PathLike, parts: Sequence[str] = ALL_PARTS, random_seed: int = 777,
                    num_jobs: int = 2, num_train_speakers: int = 100, num_test_speakers: int = 20,
                    utts_per_speaker: int = 20, test_utts_per_speaker: int | None = None,
                    wav_dir: PathLike | None = None, wide_speakers: int = 300, wide_utts_per_speaker: int = 6,
                    wide_name: str = "train_wide",
                    unseen_speakers: int = 24, unseen_utts_per_speaker: int = 8, dev_speakers: int = 16,
                    dev_utts_per_speaker: int = 8, espeak: str = "espeak-ng") -> dict[str, Path]:
    """Build the named parts of the mini corpus (any of :data:`ALL_PARTS`); return their folders by part.

    ``train`` and ``test`` are the original corpus (:func:`mini_corpus.mini.make_mini_corpus`
    with ``num_train_speakers``, ``num_test_speakers``, ``utts_per_speaker``, ``test_utts_per_speaker``;
    ``test`` alone synthesises only the test speakers). ``test_hard`` needs ``test``: built
    in this call or before with the same parameters.
    """
    unknown = [p for p in parts if p not in ALL_PARTS]
    if unknown:
        raise ConfigError(f"mini corpus: unknown part(s) {', '.join(unknown)}; choose from {', '.join(ALL_PARTS)}")
    data_root = Path(data_root).resolve()
    common = dict(random_seed=random_seed, num_train_speakers=num_train_speakers,
                  num_test_speakers=num_test_speakers, num_jobs=num_jobs, espeak=espeak)
    out: dict[str, Path] = {}
    if "train" in parts or "test" in parts:
        make_mini_corpus(data_root, num_train_speakers=num_train_speakers, num_test_speakers=num_test_speakers,
                         utts_per_speaker=utts_per_speaker, random_seed=random_seed, num_jobs=num_jobs,
                         test_utts_per_speaker=test_utts_per_speaker, wav_dir=wav_dir, espeak=espeak,
                         make_train="train" in parts)
        out.update({p: data_root / p for p in ORIGINAL_PARTS if p in parts})
    if "train_wide" in parts:
        out["train_wide"] = make_wide_train(data_root, wide_speakers, wide_utts_per_speaker, wide_name, **common)
    if "test_unseen" in parts:
        out["test_unseen"] = make_unseen_test(data_root, unseen_speakers, unseen_utts_per_speaker, **common)
    if "dev" in parts:
        out["dev"] = make_dev(data_root, dev_speakers, dev_utts_per_speaker, **common)
    if "augment" in parts:
        out["augment"] = make_bank(data_root, "augment", **common)
    if "test_hard" in parts:
        out["test_hard"] = make_hard_test(data_root, **common)
    return out


def expected_stamps(data_root: PathLike, parts: Sequence[str], random_seed: int = 777,
                    num_train_speakers: int = 100, num_test_speakers: int = 20, wide_speakers: int = 300,
                    wide_utts_per_speaker: int = 6, wide_name: str = "train_wide", unseen_speakers: int = 24,
                    unseen_utts_per_speaker: int = 8, dev_speakers: int = 16, dev_utts_per_speaker: int = 8
                    ) -> dict[Path, dict]:
    """The stamps :func:`make_mini_parts` would leave in each folder of ``parts`` (but ``train`` and ``test``),
    its noise banks included, as far as they are known now: dev and test_hard record their banks' stamps
    and test_hard the test set's, so those are left out while a bank or the test set is missing."""
    root = Path(data_root).resolve()
    common = dict(random_seed=random_seed, num_train_speakers=num_train_speakers, num_test_speakers=num_test_speakers)
    out: dict[Path, dict] = {}
    banks = {"augment": "augment", "dev": "dev", "test_hard": "test_hard"}
    for part, bank in banks.items():
        if part in parts:
            out[root / BANK_DIRS[bank]] = bank_params(bank, **common)
    if "train_wide" in parts:
        out[root / wide_name] = speech_set_params("train_wide", wide_speakers, wide_utts_per_speaker, **common)
    if "test_unseen" in parts:
        out[root / "test_unseen"] = speech_set_params("test_unseen", unseen_speakers, unseen_utts_per_speaker,
                                                      **common)
    dev_bank = read_part_stamp(root / BANK_DIRS["dev"])
    if "dev" in parts and dev_bank is not None:
        out[root / "dev"] = speech_set_params("dev", dev_speakers, dev_utts_per_speaker, bank=dev_bank, **common)
    hard_bank, test = read_part_stamp(root / BANK_DIRS["test_hard"]), read_part_stamp(root)
    if "test_hard" in parts and hard_bank is not None and test is not None:
        out[root / "test_hard"] = hard_params(test, hard_bank, **common)
    return out


def _corpus_status(root: Path, params: dict, subsets: tuple[str, ...]) -> str:
    """The ``--status`` line of the original corpus: up to date when ``DATA/.done`` records ``params`` (as
    :func:`make_mini_corpus` decides), writing the data dirs ``subsets``."""
    reason = why_corpus_not_current(root, params, subsets)
    state = "up to date" if reason is None else (
        f"{'to make' if not (root / '.done').exists() else 'to redo'}: {reason}")
    return status_line(root, state, "mini corpus", [root / sub for sub in subsets])


def mini_status(data_root: PathLike, parts: Sequence[str], wide_name: str = "train_wide", random_seed: int = 777,
                num_train_speakers: int = 100, num_test_speakers: int = 20, utts_per_speaker: int = 20,
                test_utts_per_speaker: int | None = None, wav_dir: PathLike | None = None,
                wide_speakers: int = 300, wide_utts_per_speaker: int = 6, unseen_speakers: int = 24,
                unseen_utts_per_speaker: int = 8, dev_speakers: int = 16, dev_utts_per_speaker: int = 8
                ) -> list[str]:
    """``local/make_mini_corpus.py --status true``: one line per folder :func:`make_mini_parts` would write
    (:func:`pyfunc.corpora.parts.status_line`), from the stamps it leaves; reads, writes nothing."""
    data = Path(data_root)
    train_set = "train" if "train" in parts else wide_name
    corpus = {"num_train_speakers": num_train_speakers, "num_test_speakers": num_test_speakers,
              "utts_per_speaker": utts_per_speaker, "random_seed": random_seed,
              "test_utts_per_speaker": test_utts_per_speaker, "wav_dir": wav_dir}
    full = mini_corpus_params(data, **corpus)
    if train_set == "train" or why_corpus_not_current(data, full) is None:
        lines = [_corpus_status(data, full, ("train", "test"))]
    else:
        lines = [_corpus_status(data, mini_corpus_params(data, make_train=False, **corpus), ("test",))]
    stamps = expected_stamps(data, parts, wide_name=wide_name, random_seed=random_seed,
                             num_train_speakers=num_train_speakers, num_test_speakers=num_test_speakers,
                             wide_speakers=wide_speakers, wide_utts_per_speaker=wide_utts_per_speaker,
                             unseen_speakers=unseen_speakers, unseen_utts_per_speaker=unseen_utts_per_speaker,
                             dev_speakers=dev_speakers, dev_utts_per_speaker=dev_utts_per_speaker)
    part_dirs = [data / BANK_DIRS[b] for b in ("augment", "dev", "test_hard")]
    part_dirs += [data / name for name in (train_set, "test_unseen", "dev", "test_hard") if name != "train"]
    for part_dir in dict.fromkeys(part_dirs):
        lines.append(status_line(part_dir, part_status(part_dir, stamps.get(part_dir.resolve())), "mini corpus part"))
    return lines

