"""Calibration from a development set: the model's operating point, and calibrated score files.

:func:`calibrate` fits a logistic calibration (or finds the EER / minDCF threshold) on the
scored trials of a development set and writes it as the model's operating point,
``MODEL_DIR/calibration.yaml``, which ``verify`` decides with; or, with ``out``, anywhere
else (e.g. a calibration of AS-norm scores with cohort quality measures, which ``verify``
cannot compute). :func:`apply_calibration` maps the scores of another trial list to LLRs
with it, for stage 6 to report Cllr and actual DCF.

Quality measures are computed per utterance: ``duration`` from ``DATA/utt2dur`` (seconds),
``magnitude`` the L2 norm of the full-utterance embedding after mean subtraction,
``cohort_mean`` the mean of its top-N AS-norm cohort scores (as stage 5 computes them). When the trials name
enrolled speaker models (an ``enroll`` file beside them, :mod:`pyfunc.scoring.enrolment`), a model's duration is
the sum of its enrolment utterances' durations, its magnitude the mean of their embedding norms, and its
cohort_mean that of the model vector stages 4 and 5 score.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from pyfunc.config import load_config
from pyfunc.data.atomic import PathLike
from pyfunc.data.digest import file_sha256
from pyfunc.data.dirnames import data_dir_name
from pyfunc.data.enroll import enroll_beside, read_enroll
from pyfunc.data.tables import read_map
from pyfunc.data.trials import TrialList, read_trial_list
from pyfunc.data.vectors import XVECTOR_SCP, load_embeddings
from pyfunc.errors import ConfigError, DataError
from pyfunc.pipeline.cohort_stage import load_cohort_means
from pyfunc.pipeline.score_stage import refuse_stale_embeddings
from pyfunc.scoring.asnorm import cohort_stats
from pyfunc.scoring.calibration import (
    DEFAULT_L2,
    DEFAULT_MAX_DURATION,
    feature_names,
    fit_logistic,
    quality_features,
)
from pyfunc.scoring.cosine import load_trial_embeddings, raw_scores, trial_indices
from pyfunc.scoring.embedding_mean import EmbeddingMean, mean_for_scoring, subtract_mean
from pyfunc.scoring.enrolment import enrolment_model
from pyfunc.scoring.metrics import (
    bayes_threshold,
    cllr,
    compute_act_dcf,
    compute_eer,
    compute_min_dcf,
    min_cllr,
    sort_trials,
)
from pyfunc.scoring.operating_point import (
    CALIBRATION_NAME,
    KINDS,
    SCORINGS,
    VERIFY_MEASURES,
    check_fits_model,
    parse_operating_point,
    write_operating_point,
)
from pyfunc.scoring.score_files import scores_for_trials, write_scores

logger = logging.getLogger(__name__)

SCORE_TOLERANCE = 1e-6  # score files hold 8 decimals; a recomputed score differs by rounding only


@dataclass(frozen=True)
class QualitySources:
    """Where the quality measures of a trial list's utterances come from."""

    data_dir: Path | None = None  # utt2dur (duration)
    emb_dir: Path | None = None  # xvector.scp (magnitude, cohort_mean)
    cohort_emb_dir: Path | None = None  # cohort xvector.scp (cohort_mean)
    cohort_utt2spk: Path | None = None
    top_n: int = 300
    cohort_data: Path | None = None  # the data dir of the cohort, as given


def scoring_of(score_file: PathLike, scoring: str | None) -> str:
    """``cosine`` or ``asnorm``: ``scoring`` when given, else from the score file's name (``*_cosine``)."""
    if scoring is None:
        name = Path(score_file).name
        scoring = next((s for s in SCORINGS if name.endswith(f"_{s}")), None)
        if scoring is None:
            raise ConfigError(f"{score_file}: cannot tell cosine from AS-norm scores by the name "
                              f"(expected *_cosine or *_asnorm); say which with --scoring")
    if scoring not in SCORINGS:
        raise ConfigError(f"scoring {scoring!r} is not one of {', '.join(SCORINGS)}")
    return scoring


def _labels(trials: TrialList) -> np.ndarray:
    if any(label is None for label in trials.labels):
        bad = next(i for i, label in enumerate(trials.labels) if label is None)
        raise DataError(f"{trials.where(bad)}: calibration needs labelled trials (target or nontarget)")
    return np.asarray(trials.labels, dtype=bool)


def utterance_qualities(trials: TrialList, measures: Sequence[str], sources: QualitySources,
                        mean: np.ndarray | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{measure: (enroll side, test side)}`` for every trial (see the module docstring; an enrolled model's
    measures come from its enrolment utterances)."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    keys = trials.utterances
    enroll_file = enroll_beside(trials.path) if trials.path is not None else None
    enrolled = read_enroll(enroll_file).models if enroll_file is not None else {}
    parts = {k: enrolled.get(k, [k]) for k in keys}  # the utterances each key's measures come from
    utts = sorted({u for group in parts.values() for u in group})
    per_utt: dict[str, np.ndarray] = {}
    if "duration" in measures:
        if sources.data_dir is None or not (sources.data_dir / "utt2dur").is_file():
            raise DataError(f"{sources.data_dir}/utt2dur: not found (the duration quality measure reads it)")
        utt2dur = read_map(sources.data_dir / "utt2dur")
        missing = [u for u in utts if u not in utt2dur]
        if missing:
            raise DataError(f"{sources.data_dir / 'utt2dur'}: no duration for utterance {missing[0]!r} "
                            f"({len(missing)} trial utterances missing)")
        try:
            per_utt["duration"] = np.array([sum(float(utt2dur[u]) for u in parts[k]) for k in keys])
        except ValueError as err:
            raise DataError(f"{sources.data_dir / 'utt2dur'}: {err}") from None
    if "magnitude" in measures or "cohort_mean" in measures:
        if sources.emb_dir is None:
            raise ConfigError("the magnitude and cohort_mean quality measures need the trials' embeddings")
        refuse_stale_embeddings(sources.emb_dir)
        if enrolled:  # a model: the mean of its utterances' norms, and its model vector for the cohort
            _, rows = load_embeddings(sources.emb_dir / XVECTOR_SCP, utts)
            rows = subtract_mean(rows, mean).astype(np.float64)
            row = {u: i for i, u in enumerate(utts)}
            norms = np.linalg.norm(rows, axis=1)
            magnitude = np.array([norms[[row[u] for u in parts[k]]].mean() for k in keys])
            full = np.stack([enrolment_model(rows[[row[u] for u in enrolled[k]]], None, f"model {k!r}")[0]
                             if k in enrolled else rows[row[k]] for k in keys])
        else:
            full = load_trial_embeddings(trials, sources.emb_dir, "full", mean).full
            magnitude = np.linalg.norm(full, axis=1)
        if "magnitude" in measures:
            per_utt["magnitude"] = magnitude
        if "cohort_mean" in measures:
            if sources.cohort_emb_dir is None or sources.cohort_utt2spk is None:
                raise ConfigError("the cohort_mean quality measure needs the AS-norm cohort (--cohort-data)")
            refuse_stale_embeddings(sources.cohort_emb_dir)
            _, cohort = load_cohort_means(sources.cohort_emb_dir, sources.cohort_utt2spk, mean)
            per_utt["cohort_mean"] = cohort_stats(full, cohort, sources.top_n)[0]
    ei, ti = trial_indices(trials, keys)
    for measure in measures:
        out[measure] = (per_utt[measure][ei], per_utt[measure][ti])
    return out


def _check_scores_reproduce(trials: TrialList, scores: np.ndarray, score_file: PathLike, emb_dir: Path,
                            mean: np.ndarray | None, model_dir: Path) -> None:
    """DataError unless ``scores`` are what stage 4 gives now with ``model_dir``'s scoring settings."""
    refuse_stale_embeddings(emb_dir)
    again = raw_scores(trials, load_trial_embeddings(trials, emb_dir, "auto", mean))
    diff = np.abs(again - scores)
    if diff.max() > SCORE_TOLERANCE:
        worst = int(np.argmax(diff))
        setting = "with" if mean is not None else "without"
        raise DataError(f"{score_file}: trial {trials.where(worst)} scores {scores[worst]:.6f}, but stage 4 with "
                        f"{model_dir}'s scoring now ({setting} embedding mean subtraction) gives {again[worst]:.6f}; "
                        f"rescore the development set (steps/score.sh) or pass --subtract-mean to match")


def calibrate(model_dir: PathLike, trials_path: PathLike, score_file: PathLike, kind: str = "logistic",
              p_target: float | None = None, prior: float = 0.5, measures: Sequence[str] = (),
              data_dir: PathLike | None = None, emb_dir: PathLike | None = None,
              cohort_data: PathLike | None = None, top_n: int | None = None,
              max_duration: float = DEFAULT_MAX_DURATION, scoring: str | None = None,
              subtract_mean: bool | None = None, out: PathLike | None = None) -> Path:
    """Fit the operating point on a development set's scored trials; write and return its path.

    ``out`` defaults to ``MODEL_DIR/calibration.yaml``, the operating point of ``verify``,
    which must then calibrate what ``verify`` computes: cosine scores, with the model's mean
    subtraction, and no cohort measure. ``data_dir`` (utt2dur) defaults to the folder of the
    trials, ``emb_dir`` to ``MODEL_DIR/embeddings/<its name>``; the cohort is
    ``MODEL_DIR/embeddings/<name of cohort_data>`` with ``cohort_data/utt2spk``.
    """
    model_dir = Path(model_dir)
    config = load_config(model_dir / "config.yaml")
    if kind not in KINDS:
        raise ConfigError(f"calibration kind {kind!r} is not one of {', '.join(KINDS)}")
    scoring = scoring_of(score_file, scoring)
    p_target = float(config.score.p_targets[0]) if p_target is None else float(p_target)
    bayes_threshold(p_target)  # checks 0 < p_target < 1
    measures = tuple(measures)
    feature_names(measures)  # checks the names
    if measures and kind != "logistic":
        raise ConfigError(f"quality measures need the logistic calibration, not a {kind} threshold")
    out = Path(out) if out is not None else model_dir / CALIBRATION_NAME
    for_verify = out.absolute() == (model_dir / CALIBRATION_NAME).absolute()
    if for_verify and (scoring != "cosine" or set(measures) - set(VERIFY_MEASURES)):
        raise ConfigError(f"{out} is the operating point of verify, which computes cosine scores and the quality "
                          f"measures {', '.join(VERIFY_MEASURES)} only (no cohort); write this calibration "
                          "elsewhere with --out")

    trials = read_trial_list(trials_path)
    labels = _labels(trials)
    scores = scores_for_trials(score_file, trials_path, trials.enrolls, trials.tests)
    mean = mean_for_scoring(model_dir, subtract_mean)
    data_dir = Path(data_dir) if data_dir is not None else Path(trials_path).parent
    emb_dir = Path(emb_dir) if emb_dir is not None else model_dir / "embeddings" / data_dir_name(data_dir)
    if scoring == "cosine" and (emb_dir / XVECTOR_SCP).is_file():
        _check_scores_reproduce(trials, scores, score_file, emb_dir, None if mean is None else mean.vector,
                                model_dir)
    elif for_verify:
        raise DataError(f"{emb_dir / XVECTOR_SCP}: not found; the operating point of verify is checked against "
                        "the development set's embeddings (give --embeddings)")
    else:
        logger.info("%s: not checked against the embeddings (%s has none)", score_file, emb_dir)
    sources = _sources(model_dir, data_dir, emb_dir, cohort_data, top_n if top_n is not None
                       else config.score.asnorm_top_n)
    point = _fit(kind, trials, labels, scores, p_target, prior, measures, sources, mean, max_duration)
    point.update({
        "scoring": scoring,
        "dev": {"trials": str(trials_path), "scores": str(score_file), "data": str(data_dir),
                "embeddings": str(emb_dir), **point.pop("dev")},
        "model": {"dir": str(model_dir), "sha256": file_sha256(model_dir / "model.pt"),
                  "protocol": config.extract.protocol, "subtract_mean": mean is not None,
                  "mean_sha256": file_sha256(mean.path) if mean is not None else None},
    })
    parse_operating_point(yaml.safe_load(yaml.safe_dump(point)), out)  # what is written reads back
    write_operating_point(out, point)
    logger.info("%s operating point from %s written to %s", kind, score_file, out)
    return out


def _sources(model_dir: Path, data_dir: Path, emb_dir: Path, cohort_data: PathLike | None,
             top_n: int) -> QualitySources:
    if cohort_data is None:
        return QualitySources(data_dir, emb_dir, top_n=top_n)
    cohort_data = Path(cohort_data)
    return QualitySources(data_dir, emb_dir, model_dir / "embeddings" / data_dir_name(cohort_data),
                          cohort_data / "utt2spk", top_n, cohort_data)


def _fit(kind: str, trials: TrialList, labels: np.ndarray, scores: np.ndarray, p_target: float, prior: float,
         measures: tuple[str, ...], sources: QualitySources, mean: EmbeddingMean | None,
         max_duration: float) -> dict:
    """The operating point's fitted part (kind, threshold, calibration, quality, dev metrics)."""
    st = sort_trials(scores, labels)
    eer, eer_threshold = compute_eer(st)
    min_dcf, dcf_threshold = compute_min_dcf(st, None, p_target)
    dev = {"num_target": st.num_target, "num_nontarget": st.num_nontarget, "eer_percent": eer,
           "min_dcf": min_dcf, "min_cllr": min_cllr(st), "cllr_uncalibrated": cllr(st)}
    point: dict = {"kind": kind, "p_target": p_target}
    if kind == "eer":
        point["threshold"] = eer_threshold
    elif kind == "min_dcf":
        point["threshold"] = dcf_threshold
    else:
        qualities = utterance_qualities(trials, measures, sources, None if mean is None else mean.vector)
        matrix = quality_features(scores, qualities, measures, max_duration)
        calibration = fit_logistic(matrix, labels, prior, features=feature_names(measures))
        llrs = calibration.llrs(matrix)
        threshold = bayes_threshold(p_target)
        point["threshold"] = threshold
        score_threshold = calibration.score_threshold(threshold)
        if score_threshold is not None:
            point["score_threshold"] = score_threshold
        point["calibration"] = {"features": list(calibration.features),
                                "weights": [float(w) for w in calibration.weights], "bias": calibration.bias,
                                "prior": prior, "l2": DEFAULT_L2}
        if measures:
            point["quality"] = {"measures": list(measures), "max_duration": max_duration}
            if "cohort_mean" in measures:
                point["quality"].update(top_n=sources.top_n, cohort_data=str(sources.cohort_data))
        dev.update(cllr=cllr(llrs, labels), act_dcf=compute_act_dcf(llrs, labels, p_target))
        if measures:  # the quality measures reorder the trials: report the new EER too
            dev.update(calibrated_eer_percent=compute_eer(llrs, labels)[0],
                       calibrated_min_dcf=compute_min_dcf(llrs, labels, p_target)[0])
    if kind != "logistic":
        dev["act_dcf"] = _threshold_dcf(st, point["threshold"], p_target)
    point["dev"] = {k: float(v) if isinstance(v, (float, np.floating)) else v for k, v in dev.items()}
    return point


def _threshold_dcf(st, threshold: float, p_target: float) -> float:
    """Normalised DCF at ``p_target`` of accepting the trials scoring >= ``threshold``."""
    shift = bayes_threshold(p_target) - threshold  # move the scores so that the threshold is the Bayes one
    return compute_act_dcf(st.scores + shift, st.labels, p_target)


def apply_calibration(calibration_file: PathLike, trials_path: PathLike, score_file: PathLike, out: PathLike,
                      model_dir: PathLike | None = None, data_dir: PathLike | None = None,
                      emb_dir: PathLike | None = None, cohort_data: PathLike | None = None) -> np.ndarray:
    """Write the calibrated LLRs of the scores of ``trials_path`` to ``out``; return them.

    The model directory, the mean subtraction and the quality measures' settings are the
    calibration's; ``data_dir`` (default: the trials' folder), ``emb_dir`` (default:
    ``MODEL_DIR/embeddings/<its name>``) and ``cohort_data`` (default: the calibration's
    cohort) say where this trial list's measures come from.
    """
    calibration_file = Path(calibration_file)
    try:
        data = yaml.safe_load(calibration_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{calibration_file}: cannot read: {err}") from None
    point = parse_operating_point(data, calibration_file)
    if point.calibration is None:
        raise ConfigError(f"{calibration_file}: a {point.kind} threshold, not a calibration: nothing to apply")
    model_dir = Path(model_dir) if model_dir is not None else Path(point.extra["model"].get("dir", "."))
    mean = mean_for_scoring(model_dir, point.subtract_mean)
    check_fits_model(point, model_dir, mean)
    trials = read_trial_list(trials_path)
    scores = scores_for_trials(score_file, trials_path, trials.enrolls, trials.tests)
    measures = point.measures
    qualities = {}
    if measures:
        data_dir = Path(data_dir) if data_dir is not None else Path(trials_path).parent
        emb_dir = Path(emb_dir) if emb_dir is not None else model_dir / "embeddings" / data_dir_name(data_dir)
        quality = data.get("quality", {})
        cohort_data = cohort_data if cohort_data is not None else quality.get("cohort_data")
        sources = _sources(model_dir, data_dir, emb_dir, cohort_data, int(quality.get("top_n", 300)))
        qualities = utterance_qualities(trials, measures, sources, None if mean is None else mean.vector)
    llrs = point.calibration.llrs(quality_features(scores, qualities, measures, point.max_duration))
    write_scores(out, trials, llrs)
    logger.info("calibrated %d scores of %s with %s into %s", len(llrs), score_file, calibration_file, out)
    return llrs


def describe_calibration(path: PathLike) -> str:
    """A few lines saying what the calibration file at ``path`` holds and how it did on its development set."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    point = parse_operating_point(data, Path(path))
    lines = [f"{path}: {point.describe()}"]
    if point.calibration is not None:
        cal = point.calibration
        terms = " + ".join(f"{w:.6g} * {name}" for w, name in zip(cal.weights, cal.features))
        sign = "-" if cal.bias < 0 else "+"
        lines.append(f"llr = {terms} {sign} {abs(cal.bias):.6g}; same speaker when llr >= {point.threshold:.6g}"
                     + (f" (score >= {data['score_threshold']:.6g})" if "score_threshold" in data else ""))
    else:
        lines.append(f"same speaker when the {point.scoring} score >= {point.threshold:.6g}")
    dev = data.get("dev", {})
    figures = [f"{key} {dev[key]:.4f}" for key in ("eer_percent", "min_dcf", "cllr_uncalibrated", "cllr", "min_cllr",
                                                    "act_dcf", "calibrated_eer_percent", "calibrated_min_dcf")
               if isinstance(dev.get(key), float)]
    lines.append(f"development set ({dev.get('num_target')} target, {dev.get('num_nontarget')} nontarget trials): "
                 + ", ".join(figures))
    return "\n".join(lines) + "\n"
