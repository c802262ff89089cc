"""The stages of the two recipes as ``--status`` checks (:mod:`pyfunc.pipeline.status`).

Each function lists the steps its ``run.sh`` runs for the same options, in the same order,
with the same paths: stage 1's data dirs and feature folders, the model directories of
stages 3-6, ``MODEL/embeddings/<data dir name>``, ``MODEL/scores/<trials dir name>_cosine``
and ``_asnorm``, the results files. A change to a recipe's stages needs the same change here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from pyfunc.config import read_config_yaml
from pyfunc.config_overrides import apply_overrides
from pyfunc.corpora.mini import mini_corpus_params
from pyfunc.data.atomic import PathLike
from pyfunc.pipeline.status import (
    RecipeStatus,
    check_extraction,
    check_fbank,
    check_metrics,
    check_mini_corpus,
    check_nothing,
    check_scoring,
    check_training,
    check_unstamped,
)
from pyfunc.scoring.threshold import THRESHOLD_NAME


def _unique(paths: Sequence[PathLike]) -> list[Path]:
    out: list[Path] = []
    for path in map(Path, paths):
        if path not in out:
            out.append(path)
    return out


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


def _score_files(models: Sequence[Path], trials_dir: Path) -> list[Path]:
    return [model / "scores" / f"{trials_dir.name}_{kind}" for model in models for kind in ("cosine", "asnorm")]


def mini_recipe_status(stage: int, stop_stage: int, data: PathLike, exp: PathLike, config: PathLike,
                       fbank_conf: PathLike, models: Sequence[PathLike], test_data: Sequence[PathLike],
                       cohort_data: PathLike, fbank_data: Sequence[PathLike] | None = None,
                       results: Sequence[PathLike] | None = None, corpus: dict | None = None,
                       skip_bad: bool = False, force: bool = False) -> RecipeStatus:
    """The top-level run.sh: the mini corpus, fbank of ``fbank_data`` (default DATA/train and DATA/test),
    training on DATA/train, embeddings of every test set and the cohort with every model, their scores,
    and per test set a results table (``results``, one per test set; default MODELS[0]/results for one).
    ``corpus``: make_mini_corpus's size and random seed arguments."""
    data, exp, cohort = Path(data), Path(exp), Path(cohort_data)
    models, tests = _unique(models), _unique(test_data)
    results = [Path(r) for r in results] if results else [models[0] / "results"]
    if len(results) != len(tests):
        raise ValueError(f"{len(results)} results files for {len(tests)} test sets")
    status = RecipeStatus(stage, stop_stage)
    check_mini_corpus(status, data, mini_corpus_params(data, **(corpus or {})))
    for data_dir in _unique(fbank_data or [data / "train", data / "test"]):
        check_fbank(status, data_dir, exp / "fbank" / data_dir.name, fbank_conf, skip_bad, force)
    check_training(status, config, data / "train", exp, fbank_conf)
    for model in models:
        for data_dir in _unique([*tests, cohort]):
            check_extraction(status, model, data_dir, model / "embeddings" / data_dir.name, skip_bad, force)
    _evaluation(status, models, tests, cohort)
    for trials_dir, out in zip(tests, results):
        check_metrics(status, [trials_dir / "trials"], _score_files(models, trials_dir), [out],
                      [model / THRESHOLD_NAME for model in models])
    return status


def voxceleb_recipe_status(stage: int, stop_stage: int, data: PathLike, exp: PathLike, config: PathLike,
                           overrides: Sequence[str], feat_dir: PathLike, fbank_conf: PathLike, lists: Sequence[str],
                           aug_kinds: Sequence[str], cohort_per_spk: int = 0, model_dir: PathLike | None = None,
                           corpora: dict[str, str] | None = None) -> RecipeStatus:
    """egs/voxceleb/run.sh: stage 0 from the corpora given (``corpora``: vox1, vox2, musan, rirs roots), stage 1
    for the fbank front end (VoxCeleb2 dev, its augmented copies and their combination, the cohort,
    VoxCeleb1), training, the embeddings of DATA/vox1 and the cohort, and every trial list's scores."""
    data, exp = Path(data), Path(exp)
    corpora = {k: v for k, v in (corpora or {}).items() if v}
    status = RecipeStatus(stage, stop_stage)
    lists_dirs = [data / name for name in lists]
    made = []
    if corpora.get("vox2"):
        made += [data / "vox2_dev"] + ([data / "vox2_cohort"] if cohort_per_spk > 0 else [])
    if corpora.get("vox1"):
        made += [data / "vox1", *lists_dirs]
    made += [data / f"musan_{kind}" for kind in ("noise", "music", "speech")] if corpora.get("musan") else []
    made += [data / "rirs"] if corpora.get("rirs") else []
    fails = "" if corpora else "stage 0 needs the corpora: give --vox1-root, --vox2-root, --musan-root, --rirs-root"
    check_unstamped(status, 0, "data preparation", str(data), made or [data / "vox2_dev", data / "vox1"], fails)
    sets = [f"train.augment.musan_dir={data.absolute()}", f"train.augment.rir_dir={data.absolute() / 'rirs'}"]
    effective = apply_overrides(read_config_yaml(config), [*sets, *overrides], str(config))
    fbank = effective.model.frontend == "fbank"
    cohort = data / ("vox2_cohort" if cohort_per_spk > 0 else "vox2_dev")

    def features(data_dir: Path) -> None:
        check_fbank(status, data_dir, Path(feat_dir) / data_dir.name, fbank_conf)

    if fbank:
        features(data / "vox2_dev")
        if aug_kinds:
            copies = [data / f"vox2_dev_{kind}" for kind in aug_kinds] + [data / "vox2_dev_aug"]
            check_unstamped(status, 1, "augmented copies", str(data / "vox2_dev_aug"), copies)
            features(data / "vox2_dev_aug")
            check_unstamped(status, 1, "combine", str(data / "vox2_dev_combined"), [data / "vox2_dev_combined"])
        if cohort_per_spk > 0:
            features(data / "vox2_cohort")
        features(data / "vox1")
    else:
        check_nothing(status, 1, "fbank", f"the {effective.model.frontend} front end reads wav.scp; nothing to do")
    train_data = data / ("vox2_dev_combined" if fbank and aug_kinds else "vox2_dev")
    check_training(status, effective, train_data, exp, fbank_conf)
    model = Path(model_dir) if model_dir else exp
    for data_dir in _unique([data / "vox1", cohort]):
        check_extraction(status, model, data_dir, model / "embeddings" / data_dir.name)
    _evaluation(status, [model], lists_dirs, cohort, embeddings="vox1")
    check_metrics(status, [d / "trials" for d in lists_dirs], [f for d in lists_dirs for f in _score_files([model], d)],
                  [*(model / f"results_{name}" for name in lists), model / "results"], [model / THRESHOLD_NAME])
    return status
