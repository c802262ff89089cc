"""What a recipe is made of besides the shared stages: its settings, and the steps the stages are built from.

A recipe's ``run.sh`` gives :class:`RecipeSettings` (its data paths, configs, defaults, its stage-0 command
and extras) to ``steps/run_stages.py``; :mod:`pyfunc.pipeline.stage_table` turns them into
:class:`Step` lists, one per stage. A step is the argv of a ``steps/`` (or ``local/``) script, the
``stage N: ...`` line logged before it, and the ``--status`` check of what it reads and writes
(:mod:`pyfunc.pipeline.status`), so running a stage and asking what it would do come from one list.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from pyfunc.config import Config
from pyfunc.config_overrides import read_config_with_overrides
from pyfunc.data.dirnames import data_dir_name
from pyfunc.data.enroll_sets import why_enroll_set_not_current
from pyfunc.pipeline.status import (
    TO_MAKE,
    TO_REDO,
    UP_TO_DATE,
    RecipeStatus,
    check_derived,
    check_stage0_command,
    check_unstamped,
)

STAGE0_CHECKS = ("dirs", "status")  # how --status judges a recipe's stage 0 (see stage0_checks)


@dataclass(frozen=True)
class EnrollSet:
    """A test set of enrolled models stage 0 derives: ``per_model`` utterances per model, from ``src``'s trials."""

    src: Path
    out: Path
    per_model: int = 3


@dataclass
class RecipeSettings:
    """Everything a recipe decides; the stages are the same for every recipe.

    ``tests`` are data dirs with trials; each is scored with its own embeddings, or with those of
    ``embedding_set`` (one data dir holding the utterances of every list, e.g. VoxCeleb1's
    ``vox1_eval``) when given. ``dev`` (with trials) is scored like a test set and calibrates stage 6.
    ``stage0`` is the recipe's data preparation command (its ``local/`` script); ``stage0_check`` says how
    ``--status`` judges it: ``dirs`` (the data dirs ``stage0_makes``, no stamp) or ``status`` (the command's own
    answer to ``--status true``: :func:`pyfunc.pipeline.status.check_stage0_command`). ``enroll_sets``: test sets
    of enrolled models that stage 0 derives, after its command, from a data dir with trials
    (``steps/make_enroll_trials.py``; e.g. the mini corpus's ``test_enroll3`` from ``test``).
    """

    data: Path
    exp: Path
    config: Path
    train_data: Path
    tests: list[Path]
    cohort: Path
    fbank_conf: Path
    feat_dir: Path
    musan_dir: Path  # train.augment.musan_dir of the effective config
    rir_dir: Path  # train.augment.rir_dir
    stage0: list[str]
    stage0_check: str = "dirs"
    stage0_makes: list[Path] = field(default_factory=list)
    enroll_sets: list[EnrollSet] = field(default_factory=list)
    lm_config: Path | None = None
    overrides: list[str] = field(default_factory=list)
    embedding_set: Path | None = None
    dev: Path | None = None
    cohort_per_speaker: int = 0  # > 0: stage 0 makes COHORT from this many utterances per training speaker
    model_dir: Path | None = None
    untrained: bool = True
    eval_features: str = "always"  # stage 1 makes the fbank of the evaluation sets: always | frontend (if fbank)
    embedding_mean: bool = True
    aug_kinds: list[str] = field(default_factory=list)  # fbank front end: Kaldi-style offline copies
    aug_subset: int = 0
    aug_seed: int = 0
    nj: int = 1
    cmd: str = ""
    device: str = "auto"
    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str = "localhost:29400"
    skip_bad_audio: bool = False
    force: bool = False
    resample: bool = False  # stages 1 and 3: audio at another sample rate is resampled, not refused
    vad: bool = False  # stage 1 computes DATA/vad.scp of every set trained on or evaluated
    vad_conf: Path = Path("conf/vad.conf")  # its options (steps/compute_vad.py --conf)
    allow_pipes: str = "false"  # true | false | auto (when the training set's wav.scp holds pipe commands)
    compress: bool = False
    top_n: int | None = None
    plots: bool = True
    combined_results: bool = True  # stage 6 writes MODEL/results too (false: only results_<list>, a --test-data run)
    script: str = "run.sh"  # the name its log lines start with


@dataclass
class Step:
    """One command of a stage: the line logged before it, its argv (None: only the line), its --status check."""

    stage: int
    log: str | None
    argv: list[str] | None = None
    check: Callable[[RecipeStatus], object] | None = None


@dataclass(frozen=True)
class Training:
    """One run of stage 2: a config trained into ``exp`` (from ``init``'s model, for fine-tuning)."""

    config: Path
    exp: Path
    init: Path | None = None

    @property
    def effective(self) -> Path:
        """Where stage 2 writes the effective config it trains with."""
        return self.exp / "conf" / "train.yaml"


def trainings(s: RecipeSettings) -> list[Training]:
    """Stage 2's runs: the config into EXP and, with ``lm_config``, large-margin fine-tuning into EXP/lm."""
    runs = [Training(s.config, s.exp)]
    if s.lm_config is not None:
        runs.append(Training(s.lm_config, s.exp / "lm", s.exp))
    return runs


def config_sets(s: RecipeSettings, run: Training) -> list[str]:
    """The overrides of a training run's effective config: the augmentation sources, the model it starts
    from (fine-tuning), ``train.vad`` (with ``vad``), then the recipe's ``--overrides``."""
    sets = [f"train.augment.musan_dir={s.musan_dir.absolute()}", f"train.augment.rir_dir={s.rir_dir.absolute()}"]
    if run.init is not None:
        sets.append(f"train.init_model={run.init.absolute()}")
    if s.vad:  # the voiced frames of stage 1's vad.scp
        sets.append("train.vad=true")
    return [*sets, *s.overrides]


def effective_config(s: RecipeSettings, run: Training) -> Config:
    """The config ``run`` trains with, as stage 2 writes it."""
    return read_config_with_overrides(run.config, config_sets(s, run))


def final_model(s: RecipeSettings) -> Path:
    """The model stage 2 ends with: EXP, or EXP/lm after fine-tuning."""
    return trainings(s)[-1].exp


def models(s: RecipeSettings) -> list[Path]:
    """The model dirs of stages 3-6: ``model_dir``, else the final model (and EXP/untrained)."""
    if s.model_dir is not None:
        return [s.model_dir]
    return [final_model(s), s.exp / "untrained"] if s.untrained else [final_model(s)]


def unique(paths: Sequence[Path]) -> list[Path]:
    """``paths`` without repeats, in order."""
    out: list[Path] = []
    for path in paths:
        if path not in out:
            out.append(path)
    return out


def evaluated(s: RecipeSettings) -> list[Path]:
    """The data dirs with trials that stages 4-5 score: the test sets and the dev set."""
    return unique([*s.tests, *([s.dev] if s.dev is not None else [])])


def embedding_dirs(s: RecipeSettings) -> list[Path]:
    """The data dirs stage 3 embeds for scoring (the cohort aside)."""
    return [s.embedding_set] if s.embedding_set is not None else evaluated(s)


def embeddings_of(s: RecipeSettings, model: Path, trials_dir: Path) -> Path:
    """The embedding dir a trials dir is scored with."""
    return model / "embeddings" / data_dir_name(s.embedding_set or trials_dir)


def folder_of(data_dir: Path) -> Path:
    """The folder holding ``data_dir``, with ``.`` and ``..`` resolved as :func:`data_dir_name` resolves them
    (``data/x/sub/..`` is ``data/x``, in ``data``)."""
    return Path(os.path.normpath(data_dir)).parent


def pipe_commands(data_dir: Path) -> list[str]:
    """The entries of ``data_dir/wav.scp`` that are pipe commands (``... |``)."""
    wav_scp = data_dir / "wav.scp"
    if not wav_scp.is_file():
        return []
    with open(wav_scp, encoding="utf-8") as handle:
        entries = (line.split(None, 1) for line in handle)
        return [entry[1].strip() for entry in entries if len(entry) == 2 and entry[1].rstrip().endswith("|")]


def allows_pipes(s: RecipeSettings) -> bool:
    """``--allow-pipes``: true, false, or auto (when the training set's wav.scp holds pipe commands)."""
    if s.allow_pipes == "auto":
        return bool(pipe_commands(s.train_data))
    return s.allow_pipes == "true"


def pipe_program(command: str) -> str:
    """The program a wav.scp pipe command runs first (``ffmpeg -i x.m4a ... - |`` -> ``ffmpeg``)."""
    words = shlex.split(command.rstrip().rstrip("|"))
    return words[0] if words else ""


def redo_options(s: RecipeSettings) -> list[str]:
    """The bad-audio, force, pipe and resampling options stages 1 and 3 pass on."""
    return [flag for flag, on in (("--skip-bad-audio", s.skip_bad_audio), ("--force", s.force),
                                  ("--allow-pipes", allows_pipes(s)), ("--resample", s.resample)) if on]


# ---------------------------------------------------------------------------------------------
# Stage 0 as --status sees it


def stage0_checks(s: RecipeSettings, status: RecipeStatus) -> None:
    """What the recipe's stage-0 command would do, as ``stage0_check`` says to judge it."""
    if s.stage0_check == "status":
        check_stage0_command(status, s.stage0, str(s.data))
    else:
        fails = "" if s.stage0_makes else "stage 0 makes nothing with these options (see --help)"
        check_unstamped(status, 0, "data preparation", str(s.data), s.stage0_makes, fails)


def cohort_check(s: RecipeSettings, status: RecipeStatus) -> None:
    """Stage 0's cohort: ``cohort_per_speaker`` utterances of each training speaker."""
    check_derived(status, 0, "cohort", [s.train_data / "utt2spk"], [s.cohort / "utt2spk"])


ENROLL_FILES = ("wav.scp", "utt2spk", "spk2utt", "utt2dur", "enroll", "trials")  # what make_enroll_trials writes


def enroll_check(enroll: EnrollSet, status: RecipeStatus) -> None:
    """Stage 0's set of enrolled models: up to date when the files steps/make_enroll_trials.py would write hold
    what it would write (it rewrites nothing then), as :func:`pyfunc.data.enroll_sets.why_enroll_set_not_current`
    compares them; redone when stage 0's command remakes its source."""
    reads = [enroll.src / name for name in ("wav.scp", "utt2spk", "utt2dur", "trials")]

    def own() -> tuple[str, str]:
        if not (enroll.out / "utt2spk").is_file():
            return TO_MAKE, f"{enroll.out / 'utt2spk'} is missing"
        reason = why_enroll_set_not_current(enroll.src, enroll.out, enroll.per_model)
        return (UP_TO_DATE, "") if reason is None else (TO_REDO, reason)
    status.check(0, "enrolled models", str(enroll.out), reads, [enroll.out / name for name in ENROLL_FILES], own)
