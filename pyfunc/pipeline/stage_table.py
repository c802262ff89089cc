"""The stages of every recipe, in one place: what each runs, reads and writes.

:data:`STAGES` lists them: number, name, summary, inputs, outputs, and the function that builds the
stage's :class:`~pyfunc.pipeline.recipe_plan.Step` list from a recipe's settings. ``steps/run_stages.py``
runs those steps (``run.sh``, ``egs/*/run.sh``), prints what each would do (``--status true``: every step's
check, :mod:`pyfunc.pipeline.status`) and prints this table (``--help``). Adding a stage is one entry here
and its builder; a recipe only gives its settings.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pyfunc.config import load_config, training_table
from pyfunc.data.badinput import SKIPPED_NAME
from pyfunc.data.dirnames import data_dir_name
from pyfunc.pipeline.cohort_stage import COHORT_SCP
from pyfunc.pipeline.recipe_plan import (
    RecipeSettings,
    Step,
    allows_pipes,
    cohort_check,
    config_sets,
    effective_config,
    embedding_dirs,
    embeddings_of,
    enroll_check,
    evaluated,
    folder_of,
    models,
    redo_options,
    stage0_checks,
    trainings,
    unique,
)
from pyfunc.pipeline.status import (
    TO_MAKE,
    TO_REDO,
    UP_TO_DATE,
    RecipeStatus,
    StageCheck,
    check_derived,
    check_extraction,
    check_fbank,
    check_metrics,
    check_nothing,
    check_scoring,
    check_training,
    check_unstamped,
)
from pyfunc.pipeline.vad_stage import VAD_SCP, VAD_STAMP, vad_stamp_spec
from pyfunc.scoring.embedding_mean import MEAN_NAME

QUALITY_MEASURES = "duration,magnitude,cohort_mean"  # stage 6's AS-norm calibration


@dataclass(frozen=True)
class Stage:
    """One stage of the recipes: its number, name, what it does, what it reads and writes, its steps."""

    number: int
    name: str
    summary: str
    inputs: str
    outputs: str
    steps: Callable[[RecipeSettings], list[Step]]


def _flag(on: bool) -> str:
    return "true" if on else "false"


# ---------------------------------------------------------------------------------------------
# Stage 0: the recipe's own data preparation


def data_steps(s: RecipeSettings) -> list[Step]:
    steps = [Step(0, f"stage 0: data preparation ({s.data})", s.stage0, lambda st: stage0_checks(s, st))]
    for e in s.enroll_sets:  # after the command that makes their sources
        steps.append(Step(0, f"stage 0: enrolled models of {e.out} ({e.per_model} utterances each, from {e.src})",
                          ["steps/make_enroll_trials.py", "--per-model", str(e.per_model), str(e.src), str(e.out)],
                          lambda st, e=e: enroll_check(e, st)))
    if s.cohort_per_speaker > 0:
        steps.append(Step(0, None, ["steps/subset_data_dir.py", "--per-speaker", str(s.cohort_per_speaker),
                                    str(s.train_data), str(s.cohort)], lambda st: cohort_check(s, st)))
    return steps


# ---------------------------------------------------------------------------------------------
# Stages 1 and 2: features, the effective configs, training


def config_step(s: RecipeSettings, run_index: int, stage: int) -> Step:
    """Writing the effective config of stage 2's run ``run_index`` (0: the config, 1: the fine-tuning), as a
    step of ``stage`` (stage 1 writes the first when its augmented copies read it; the driver writes it once)."""
    run = trainings(s)[run_index]
    argv = ["steps/make_config.py", *(a for o in config_sets(s, run) for a in ("--set", o)), str(run.config),
            str(run.effective)]
    return Step(stage, f"writing the effective config {run.effective}", argv)


def _fbank_step(s: RecipeSettings, data_dir: Path, log: str | None = None) -> Step:
    argv = ["steps/make_fbank.py", "--nj", str(s.nj), "--cmd", s.cmd, "--conf", str(s.fbank_conf),
            "--compress", _flag(s.compress), *redo_options(s), str(data_dir), str(s.feat_dir / data_dir_name(data_dir)),
            str(s.feat_dir / "log")]
    return Step(1, log, argv, lambda st: check_fbank(st, data_dir, s.feat_dir / data_dir_name(data_dir), s.fbank_conf,
                                                     s.skip_bad_audio, s.force, s.compress, s.resample))


def _vad_step(s: RecipeSettings, data_dir: Path) -> Step:
    """Voice activity of ``data_dir`` (steps/compute_vad.py, after its fbank: the frames must match), checked by its
    stamp ``DATA/.vad.stamp`` as make_vad reads it."""
    scp = data_dir / VAD_SCP
    reads = [data_dir / "wav.scp", data_dir / "utt2spk", data_dir / SKIPPED_NAME, s.vad_conf, s.fbank_conf]

    def own() -> tuple[str, str]:
        if s.force:
            return (TO_REDO if scp.exists() else TO_MAKE), "--force true"
        spec = vad_stamp_spec(data_dir, s.vad_conf, s.fbank_conf, data_dir / "vad", s.skip_bad_audio, s.resample)
        reason = spec.why_not_current(data_dir / VAD_STAMP)
        if reason is None:
            return UP_TO_DATE, ""
        return (TO_REDO, reason) if scp.exists() else (TO_MAKE, f"{scp} is missing")

    def check(st: RecipeStatus) -> StageCheck:
        return st.check(1, "voice activity", str(data_dir), reads, [scp], own)
    argv = ["steps/compute_vad.py", "--conf", str(s.vad_conf), "--fbank-conf", str(s.fbank_conf), "--nj", str(s.nj),
            "--cmd", s.cmd, *redo_options(s), str(data_dir)]
    return Step(1, f"stage 1: voice activity of {data_dir} ({s.vad_conf})", argv, check)


def offline_augmentation(s: RecipeSettings) -> bool:
    """Stage 1 makes Kaldi-style augmented copies of the training set: with ``aug_kinds`` and the fbank front end."""
    return bool(s.aug_kinds) and effective_config(s, trainings(s)[0]).model.frontend == "fbank"


def training_data(s: RecipeSettings) -> Path:
    """The data dir stage 2 trains on: the training set, or it combined with its augmented copies."""
    if offline_augmentation(s):
        return folder_of(s.train_data) / f"{data_dir_name(s.train_data)}_combined"
    return s.train_data


def feature_steps(s: RecipeSettings) -> list[Step]:
    configs = [effective_config(s, run) for run in trainings(s)]
    reads_feats = any(training_table(c) == "feats.scp" for c in configs)
    frontend = configs[0].model.frontend
    train, steps, done = s.train_data, [], set()

    def fbank(data_dir: Path, log: str) -> None:
        if data_dir not in done:
            done.add(data_dir)
            steps.append(_fbank_step(s, data_dir, log))

    if reads_feats:
        fbank(train, f"stage 1: fbank of {train}")
    if offline_augmentation(s):
        parent, kinds, name = folder_of(train), ",".join(s.aug_kinds), data_dir_name(train)
        aug, combined = parent / f"{name}_aug", training_data(s)
        copies = [parent / f"{name}_{kind}" for kind in s.aug_kinds]
        steps.append(config_step(s, 0, 1))
        steps.append(Step(1, f"stage 1: augmented copies of {train} ({kinds}), {s.aug_subset} kept (0: all)",
                          ["steps/augment_data_dir.py", "--config", str(trainings(s)[0].effective), "--kinds", kinds,
                           "--random-seed", str(s.aug_seed), str(train), str(parent)],
                          lambda st: check_unstamped(st, 1, "augmented copies", str(aug), [*copies, aug])))
        steps.append(Step(1, None, ["steps/combine_data_dirs.py", "--subset", str(s.aug_subset), "--random-seed",
                                    str(s.aug_seed), str(aug), *map(str, copies)]))
        if reads_feats:
            fbank(aug, f"stage 1: fbank of the augmented audio of {aug}")
        steps.append(Step(1, None, ["steps/combine_data_dirs.py", str(combined), str(train), str(aug)],
                          lambda st: check_unstamped(st, 1, "combine", str(combined), [combined])))
    if s.eval_features == "always" or frontend == "fbank":
        for data_dir in [*embedding_dirs(s), s.cohort]:
            fbank(data_dir, f"stage 1: fbank of {data_dir}")
    if s.vad:  # after the fbank of each set (its frame counts are checked), on the dir stage 2 trains on
        steps += [_vad_step(s, d) for d in unique([training_data(s), *embedding_dirs(s), s.cohort])]
    if not steps:
        why = f"the {frontend} front end reads wav.scp; augmentation is on the fly"
        steps.append(Step(1, f"stage 1: nothing to do ({why})", None,
                          lambda st: check_nothing(st, 1, "fbank", f"{why}; nothing to do")))
    return steps


def training_steps(s: RecipeSettings) -> list[Step]:
    """Stage 2: each run of :func:`~pyfunc.pipeline.recipe_plan.trainings` (the fine-tuning is the same
    stage again with another config, starting from the first run's model)."""
    data = training_data(s)
    launch = ["--nproc-per-node", str(s.nproc_per_node), "--nnodes", str(s.nnodes), "--node-rank", str(s.node_rank),
              "--rdzv-endpoint", s.rdzv_endpoint]
    pipes = ["--allow-pipes"] if allows_pipes(s) else []
    steps = []
    for index, run in enumerate(trainings(s)):
        what = "training" if run.init is None else f"large-margin fine-tuning of {run.init}"
        config = effective_config(s, run)
        reads = ([run.init / "model.pt"] if run.init is not None else []) + ([data / VAD_SCP] if s.vad else [])
        steps.append(config_step(s, index, 2))
        steps.append(Step(2, f"stage 2: {what} on {data} ({s.nnodes} node(s) x {s.nproc_per_node} process(es)), "
                             f"log in {run.exp / 'log' / 'train.log'}",
                          ["steps/train.sh", *launch, "--", "--config", str(run.effective), "--data", str(data),
                           "--exp", str(run.exp), "--device", s.device, "--fbank-conf", str(s.fbank_conf), *pipes],
                          lambda st, c=config, e=run.exp, r=reads: check_training(st, c, data, e, s.fbank_conf, r)))
    return steps


# ---------------------------------------------------------------------------------------------
# Stages 3-6: embeddings, scoring, calibration and metrics


def embedding_steps(s: RecipeSettings) -> list[Step]:
    dirs, steps = embedding_dirs(s), []
    opts = " ".join([*redo_options(s), *(["--vad"] if s.vad else [])])
    for model in models(s):
        def checks(st: RecipeStatus, model: Path = model) -> None:
            for data_dir in dirs:
                check_extraction(st, model, data_dir, model / "embeddings" / data_dir_name(data_dir), s.skip_bad_audio,
                                 s.force, resample=s.resample, vad=s.vad)
            out = model / "embeddings" / data_dir_name(s.cohort)  # the cohort: full utterances, then its speaker means
            check_extraction(st, model, s.cohort, out, s.skip_bad_audio, s.force, protocol="full",
                             resample=s.resample, vad=s.vad)
            check_derived(st, 3, "cohort means", [out / "xvector.scp", s.cohort / "utt2spk"], [out / COHORT_SCP])
        steps.append(Step(3, f"stage 3: embeddings of {' '.join(map(str, dirs))} and the cohort {s.cohort} with "
                             f"{model}",
                          ["steps/extract.sh", "--nj", str(s.nj), "--cmd", s.cmd, "--device", s.device, "--opts", opts,
                           "--cohort", str(s.cohort), str(model), *map(str, dirs)], checks))
        if s.embedding_mean:
            cohort_emb = model / "embeddings" / data_dir_name(s.cohort)
            steps.append(Step(3, None, ["steps/compute_embedding_mean.py", "--model-dir", str(model), "--embeddings",
                                        str(cohort_emb)],
                              lambda st, m=model, e=cohort_emb: check_derived(
                                  st, 3, "embedding mean", [e / "xvector.scp"], [m / MEAN_NAME])))
    return steps


def _embedding_option(s: RecipeSettings) -> list[str]:
    return ["--embeddings", data_dir_name(s.embedding_set)] if s.embedding_set is not None else []


def _names(dirs: list[Path]) -> str:
    return " ".join(data_dir_name(d) for d in dirs)


def scoring_inputs(model: Path) -> list[Path]:
    """What stages 4-5 read from the model dir beside the embeddings: its config (``score.subtract_mean``, the
    AS-norm top N) and the embedding mean it may subtract (make's rule: a newer one means scores to redo)."""
    return [model / "config.yaml", model / MEAN_NAME]


def cosine_steps(s: RecipeSettings) -> list[Step]:
    evals, steps = evaluated(s), []
    for model in models(s):
        def checks(st: RecipeStatus, model: Path = model) -> None:
            for trials_dir in evals:
                check_scoring(st, 4, trials_dir / "trials", [embeddings_of(s, model, trials_dir)],
                              model / "scores" / f"{data_dir_name(trials_dir)}_cosine", scoring_inputs(model))
        steps.append(Step(4, f"stage 4: cosine scoring of {_names(evals)} with {model}",
                          ["steps/score.sh", *_embedding_option(s), str(model), *map(str, evals)], checks))
    return steps


def configured_top_n(model: Path) -> int | None:
    """The AS-norm top N of ``model``'s config (stage 5's default); None before the model exists."""
    config = model / "config.yaml"
    return load_config(config).score.asnorm_top_n if config.is_file() else None


def asnorm_steps(s: RecipeSettings) -> list[Step]:
    evals, steps = evaluated(s), []
    top_n = ["--top-n", str(s.top_n)] if s.top_n is not None else []
    for model in models(s):
        def checks(st: RecipeStatus, model: Path = model) -> None:
            top = s.top_n if s.top_n is not None else configured_top_n(model)
            for trials_dir in evals:
                check_scoring(st, 5, trials_dir / "trials",
                              [embeddings_of(s, model, trials_dir), model / "embeddings" / data_dir_name(s.cohort)],
                              model / "scores" / f"{data_dir_name(trials_dir)}_asnorm",
                              [s.cohort / "utt2spk", *scoring_inputs(model)], top)
        steps.append(Step(5, f"stage 5: AS-norm scoring of {_names(evals)} with {model} (cohort: the "
                             f"{data_dir_name(s.cohort)} speakers)",
                          ["steps/score_norm.sh", "--cohort", str(s.cohort), *_embedding_option(s), *top_n, str(model),
                           *map(str, evals)], checks))
    return steps


def scorings(s: RecipeSettings) -> list[str]:
    """The score files stage 6 reports: cosine and AS-norm, and their calibrated LLRs with a dev set."""
    return ["cosine", "cosine-cal", "asnorm", "asnorm-qmf"] if s.dev is not None else ["cosine", "asnorm"]


def metrics_steps(s: RecipeSettings) -> list[Step]:
    steps, tests, dev = [], s.tests, s.dev
    if dev is not None:
        for model in models(s):  # the operating point, and AS-norm with quality measures
            for scoring, suffix, made, extra in (
                    ("cosine", "cal", "calibration.yaml", ["--operating-point", "true"]),
                    ("asnorm", "qmf", "calibration_asnorm-qmf.yaml",
                     ["--scoring", "asnorm", "--quality", QUALITY_MEASURES, "--cohort", str(s.cohort)])):
                reads = [model / "scores" / f"{data_dir_name(d)}_{scoring}" for d in [dev, *tests]]
                outs = [model / made, *(model / "scores" / f"{data_dir_name(d)}_{scoring}-{suffix}" for d in tests)]
                steps.append(Step(6, f"stage 6: calibration of {model} on {dev}" if scoring == "cosine" else None,
                                  ["steps/calibrate.sh", *extra, *_embedding_option(s), str(model), str(dev),
                                   *map(str, tests)],
                                  lambda st, r=reads, o=outs: check_derived(st, 6, "calibration", r, o)))
    ms, kinds = models(s), scorings(s)
    per_list = [ms[0] / f"results_{data_dir_name(d)}" for d in tests]
    results = [ms[0] / "results", *per_list] if s.combined_results else per_list  # what it writes
    combined = [] if s.combined_results else ["--combined", "false"]
    score_files = [m / "scores" / f"{data_dir_name(d)}_{k}" for d in tests for m in ms for k in kinds]
    plots = ["--plot-dir", str(ms[0] / "plots")] if s.plots else []
    steps.append(Step(6, f"stage 6: EER, minDCF, Cllr and actual DCF of {_names(tests)}",
                      ["steps/results_table.py", "--lists", ",".join(str(d) for d in tests), "--scorings",
                       ",".join(kinds), *plots, *combined,
                       "--out", str(ms[0] / "results"), *map(str, ms)],
                      lambda st: check_metrics(st, [d / "trials" for d in tests], score_files, results)))
    return steps


STAGES: tuple[Stage, ...] = (
    Stage(0, "data preparation", "the recipe's own local/ command (then the test sets of enrolled models it derives: "
          "steps/make_enroll_trials.py, and the AS-norm cohort when the recipe takes it from the training set: "
          "steps/subset_data_dir.py)",
          "the corpus", "DATA/<set>/{wav.scp, utt2spk, spk2utt, utt2dur, trials, enroll}", data_steps),
    Stage(1, "features", "Kaldi fbank (steps/make_fbank.py) of the "
          "training set when stage 2 reads feats.scp, of the evaluation sets and the cohort (with the fbank front "
          "end, or always, as the recipe says); with --aug-kinds and the fbank front end, augmented copies of the "
          "training set (the effective config, steps/augment_data_dir.py, steps/combine_data_dirs.py); with --vad, "
          "the voice activity of every set trained on or evaluated (steps/compute_vad.py)",
          "wav.scp (+ utt2aug)", "DATA/<set>/{feats.scp, utt2num_frames, vad.scp}, FEAT_DIR/*.ark", feature_steps),
    Stage(2, "training", "the effective config (steps/make_config.py: the YAML, the augmentation sources, "
          "--overrides) in EXP/conf/train.yaml, then steps/train.sh (torchrun steps/train.py); with --lm-config the "
          "same again with that config, starting from EXP, into EXP/lm (large-margin fine-tuning)",
          "feats.scp | wav.scp, utt2spk", "EXP/{config.yaml, model.pt, models/epoch_N.pt}, EXP/untrained",
          training_steps),
    Stage(3, "embeddings", "steps/extract.sh of the evaluation sets and the AS-norm cohort (full utterances, then "
          "its speaker means); the cohort's embedding mean (steps/compute_embedding_mean.py) where the recipe "
          "uses it", "model dir, feats.scp | wav.scp",
          "MODEL/embeddings/<set>/{xvector.scp, xvector_crops.scp}, MODEL/embedding_mean.vec", embedding_steps),
    Stage(4, "cosine scoring", "steps/score.sh of every trial list", "trials, xvector.scp",
          "MODEL/scores/<list>_cosine", cosine_steps),
    Stage(5, "AS-norm scoring", "steps/score_norm.sh of every trial list against the cohort's speaker means",
          "trials, xvector.scp, the cohort's spk_xvector.scp", "MODEL/scores/<list>_asnorm", asnorm_steps),
    Stage(6, "calibration and metrics", "with a dev set, steps/calibrate.sh (the operating point; AS-norm with "
          "quality measures); then steps/results_table.py: EER, minDCF, Cllr, actual DCF of every list and scoring",
          "trials, score files", "MODEL/calibration.yaml, MODEL/results (not for a recipe's --test-data DIR), "
          "MODEL/results_<list>, MODEL/plots",
          metrics_steps),
)
LAST_STAGE = STAGES[-1].number


def stage_steps(s: RecipeSettings, number: int) -> list[Step]:
    """The steps of stage ``number`` for the recipe ``s``, in the order they run."""
    return STAGES[number].steps(s)


def recipe_status(s: RecipeSettings, stage: int, stop_stage: int) -> RecipeStatus:
    """What every step of every stage would do now (stages outside ``stage``..``stop_stage`` shown too)."""
    status = RecipeStatus(stage, stop_stage)
    for entry in STAGES:
        for step in entry.steps(s):
            if step.check is not None:
                step.check(status)
    return status


def describe_stages() -> str:
    """The stage table as ``--help`` prints it."""
    lines = ["Stages (pyfunc/pipeline/stage_table.py; --stage N --stop-stage M runs N..M):"]
    for entry in STAGES:
        lines += textwrap.wrap(f"{entry.name}: {entry.summary}", 108, initial_indent=f"  {entry.number}  ",
                               subsequent_indent="     ")
        lines += textwrap.wrap(f"reads {entry.inputs}; writes {entry.outputs}", 108, initial_indent="     ",
                               subsequent_indent="       ")
    return "\n".join(lines) + "\n"
