"""The stages of the two recipes as ``--status`` checks (:mod:`pyfunc.pipeline.status`).

Each function lists the steps its ``run.sh`` runs for the same options, in the same order,
with the same paths: stage 1's data dirs and feature folders, the model directories of
stages 3-6, ``MODEL/embeddings/<data dir name>``, ``MODEL/scores/<trials dir name>_cosine``
and ``_asnorm``, the results files. A change to a recipe's stages needs the same change here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from pyfunc.config import training_table
from pyfunc.config_overrides import read_config_with_overrides
from pyfunc.corpora.mini import mini_corpus_params, why_corpus_not_current
from pyfunc.corpora.mini_parts import BANK_DIRS, expected_stamps
from pyfunc.data.atomic import PathLike
from pyfunc.pipeline.cohort_stage import COHORT_SCP
from pyfunc.pipeline.status import (
    RecipeStatus,
    check_corpus_part,
    check_derived,
    check_extraction,
    check_fbank,
    check_metrics,
    check_mini_corpus,
    check_nothing,
    check_scoring,
    check_training,
    check_unstamped,
)


def _unique(paths: Sequence[PathLike]) -> list[Path]:
    out: list[Path] = []
    for path in map(Path, paths):
        if path not in out:
            out.append(path)
    return out


def _cohort_embeddings(status: RecipeStatus, model: Path, cohort: Path, skip_bad: bool = False,
                       force: bool = False) -> None:
    """steps/extract.sh --cohort: the cohort's full-utterance embeddings, then its speaker means."""
    out = model / "embeddings" / cohort.name
    check_extraction(status, model, cohort, out, skip_bad, force, protocol="full")
    check_derived(status, 3, "cohort means", [out / "xvector.scp", cohort / "utt2spk"], [out / COHORT_SCP])


def _evaluation(status: RecipeStatus, models: Sequence[Path], trials_dirs: Sequence[Path], cohort: Path,
                embeddings: str | None = None) -> None:
    """Stages 4 and 5 as steps/score.sh and steps/score_norm.sh run them."""
    for model in models:
        for trials_dir in trials_dirs:
            emb = model / "embeddings" / (embeddings or trials_dir.name)
            check_scoring(status, 4, trials_dir / "trials", [emb], model / "scores" / f"{trials_dir.name}_cosine")
    for model in models:
        for trials_dir in trials_dirs:
            emb = model / "embeddings" / (embeddings or trials_dir.name)
            check_scoring(status, 5, trials_dir / "trials", [emb, model / "embeddings" / cohort.name],
                          model / "scores" / f"{trials_dir.name}_asnorm", [cohort / "utt2spk", model / "config.yaml"])


def _score_files(models: Sequence[Path], trials_dir: Path, scorings: Sequence[str] = ("cosine", "asnorm")
                 ) -> list[Path]:
    return [model / "scores" / f"{trials_dir.name}_{kind}" for model in models for kind in scorings]


def effective_config(config: PathLike, data: Path, overrides: Sequence[str]):
    """The config stage 2 writes: the YAML, the augmentation sources of stage 0 (DATA/augment), the overrides."""
    sets = [f"train.augment.musan_dir={data.absolute() / 'augment'}",
            f"train.augment.rir_dir={data.absolute() / 'augment' / 'rirs'}"]
    return read_config_with_overrides(config, [*sets, *overrides])


def mini_recipe_status(stage: int, stop_stage: int, data: PathLike, exp: PathLike, config: PathLike,
                       fbank_conf: PathLike, models: Sequence[PathLike], test_data: Sequence[PathLike],
                       cohort_data: PathLike, train_set: str = "train_wide", dev_data: PathLike | None = None,
                       lm_config: PathLike | None = None, overrides: Sequence[str] = (), corpus: dict | None = None,
                       parts: dict | None = None, skip_bad: bool = False, force: bool = False,
                       compress: bool = False) -> RecipeStatus:
    """The top-level run.sh: stage 0's corpus parts, fbank of every set, training on DATA/TRAIN_SET (and the
    fine-tuning into EXP/lm with ``lm_config``), embeddings and the cohort's embedding mean, the scores of
    the test sets and ``dev_data``, the calibration on ``dev_data`` and the results tables
    (``MODELS[0]/results`` and ``results_SET``). ``corpus``: make_mini_corpus's size and random seed
    arguments; ``parts``: the sizes of the other parts (pyfunc.corpora.mini_parts.expected_stamps)."""
    data, exp, cohort = Path(data), Path(exp), Path(cohort_data)
    models, tests = _unique(models), _unique(test_data)
    dev = Path(dev_data) if dev_data else None
    evals = _unique([*tests, *([dev] if dev else [])])
    corpus = corpus or {}
    status = RecipeStatus(stage, stop_stage)
    names = ["test", train_set, "test_hard", "test_unseen", "dev", "augment"]
    full = mini_corpus_params(data, **corpus)
    if train_set == "train" or why_corpus_not_current(data, full) is None:
        check_mini_corpus(status, data, full)
    else:
        check_mini_corpus(status, data, mini_corpus_params(data, make_train=False, **corpus), ("test",))
    stamps = expected_stamps(data, names, wide_name=train_set,
                             **{k: v for k, v in corpus.items() if k in ("random_seed", "num_train_speakers",
                                                                         "num_test_speakers")},
                             **(parts or {}))
    part_dirs = [data / BANK_DIRS[b] for b in ("augment", "dev", "test_hard")]
    part_dirs += [data / name for name in (train_set, "test_unseen", "dev", "test_hard") if name != "train"]
    for part_dir in _unique(part_dirs):
        check_corpus_part(status, part_dir, stamps.get(part_dir.resolve()))
    if cohort == data / "cohort":  # steps/subset_data_dir.py: 2 utterances of each training speaker
        check_derived(status, 0, "cohort", [data / train_set / "utt2spk"], [cohort / "utt2spk"])
    trained = effective_config(config, data, overrides)
    lm = effective_config(lm_config, data, [f"train.init_model={exp.absolute()}", *overrides]) if lm_config else None
    reads_feats = any(training_table(c) == "feats.scp" for c in (trained, lm) if c is not None)
    for data_dir in _unique([*([data / train_set] if reads_feats else []), *evals, cohort]):
        check_fbank(status, data_dir, exp / "fbank" / data_dir.name, fbank_conf, skip_bad, force, compress)
    check_training(status, trained, data / train_set, exp, fbank_conf)
    if lm is not None:
        check_training(status, lm, data / train_set, exp / "lm", fbank_conf, reads=[exp / "model.pt"])
    for model in models:
        for data_dir in evals:
            check_extraction(status, model, data_dir, model / "embeddings" / data_dir.name, skip_bad, force)
        _cohort_embeddings(status, model, cohort, skip_bad, force)
        check_derived(status, 3, "embedding mean", [model / "embeddings" / cohort.name / "xvector.scp"],
                      [model / "embedding_mean.vec"])
    _evaluation(status, models, evals, cohort)
    scorings = ["cosine", "asnorm"]
    if dev is not None:
        scorings = ["cosine", "cosine-cal", "asnorm", "asnorm-qmf"]
        for model in models:  # steps/calibrate.sh: the operating point, and AS-norm with quality measures
            for scoring, suffix, made in (("cosine", "cal", "calibration.yaml"),
                                          ("asnorm", "qmf", "calibration_asnorm-qmf.yaml")):
                reads = [model / "scores" / f"{d.name}_{scoring}" for d in [dev, *tests]]
                outs = [model / made, *(model / "scores" / f"{d.name}_{scoring}-{suffix}" for d in tests)]
                check_derived(status, 6, "calibration", reads, outs)
    check_metrics(status, [d / "trials" for d in tests], [f for d in tests for f in _score_files(models, d, scorings)],
                  [models[0] / "results", *(models[0] / f"results_{d.name}" for d in tests)])
    return status


def voxceleb_recipe_status(stage: int, stop_stage: int, data: PathLike, exp: PathLike, config: PathLike,
                           overrides: Sequence[str], feat_dir: PathLike, fbank_conf: PathLike, lists: Sequence[str],
                           aug_kinds: Sequence[str], cohort_per_spk: int = 0, model_dir: PathLike | None = None,
                           corpora: dict[str, str] | None = None, lm_config: PathLike | None = None,
                           compress: bool = True) -> RecipeStatus:
    """egs/voxceleb/run.sh: stage 0 from the corpora given (``corpora``: vox1, vox2, musan, rirs roots), stage 1
    for the fbank front end (VoxCeleb2 dev, its augmented copies and their combination, the cohort,
    VoxCeleb1's evaluation utterances), training (and the fine-tuning into EXP/lm with ``lm_config``), the
    embeddings of DATA/vox1_eval and the cohort (and its speaker means), and every trial list's scores."""
    data, exp = Path(data), Path(exp)
    corpora = {k: v for k, v in (corpora or {}).items() if v}
    status = RecipeStatus(stage, stop_stage)
    lists_dirs = [data / name for name in lists]
    made = []
    if corpora.get("vox2"):
        made += [data / "vox2_dev"] + ([data / "vox2_cohort"] if cohort_per_spk > 0 else [])
    if corpora.get("vox1"):
        made += [data / "vox1", data / "vox1_eval", *lists_dirs]
    made += [data / f"musan_{kind}" for kind in ("noise", "music", "speech")] if corpora.get("musan") else []
    made += [data / "rirs"] if corpora.get("rirs") else []
    fails = "" if corpora else "stage 0 needs the corpora: give --vox1-root, --vox2-root, --musan-root, --rirs-root"
    check_unstamped(status, 0, "data preparation", str(data), made or [data / "vox2_dev", data / "vox1"], fails)
    sets = [f"train.augment.musan_dir={data.absolute()}", f"train.augment.rir_dir={data.absolute() / 'rirs'}"]
    effective = read_config_with_overrides(config, [*sets, *overrides])
    fbank = effective.model.frontend == "fbank"
    cohort = data / ("vox2_cohort" if cohort_per_spk > 0 else "vox2_dev")

    def features(data_dir: Path) -> None:
        check_fbank(status, data_dir, Path(feat_dir) / data_dir.name, fbank_conf, compress=compress)

    if fbank:
        features(data / "vox2_dev")
        if aug_kinds:
            copies = [data / f"vox2_dev_{kind}" for kind in aug_kinds] + [data / "vox2_dev_aug"]
            check_unstamped(status, 1, "augmented copies", str(data / "vox2_dev_aug"), copies)
            features(data / "vox2_dev_aug")
            check_unstamped(status, 1, "combine", str(data / "vox2_dev_combined"), [data / "vox2_dev_combined"])
        if cohort_per_spk > 0:
            features(data / "vox2_cohort")
        features(data / "vox1_eval")
    else:
        check_nothing(status, 1, "fbank", f"the {effective.model.frontend} front end reads wav.scp; nothing to do")
    train_data = data / ("vox2_dev_combined" if fbank and aug_kinds else "vox2_dev")
    check_training(status, effective, train_data, exp, fbank_conf)
    final = exp
    if lm_config:
        final = exp / "lm"
        lm = read_config_with_overrides(lm_config, [*sets, f"train.init_model={exp.absolute()}", *overrides])
        check_training(status, lm, train_data, final, fbank_conf, reads=[exp / "model.pt"])
    model = Path(model_dir) if model_dir else final
    check_extraction(status, model, data / "vox1_eval", model / "embeddings" / "vox1_eval")
    _cohort_embeddings(status, model, cohort)
    _evaluation(status, [model], lists_dirs, cohort, embeddings="vox1_eval")
    check_metrics(status, [d / "trials" for d in lists_dirs], [f for d in lists_dirs for f in _score_files([model], d)],
                  [*(model / f"results_{name}" for name in lists), model / "results"])
    return status
