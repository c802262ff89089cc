"""A model's operating point: ``MODEL_DIR/calibration.yaml``, set on purpose from a development set.

``steps/calibrate.py`` writes it from the scored trials of a named development set, and
nothing else changes it (stage 6 only reports), so the decisions of ``python -m pyfunc
verify`` stay put until the user recalibrates. It holds one of:

* ``kind: logistic``: a linear calibration of the score (and quality measures) to a
  log-likelihood ratio (:mod:`pyfunc.scoring.calibration`); the decision is "same speaker"
  when the LLR reaches the Bayes threshold ``-logit(p_target)``.
* ``kind: eer`` or ``kind: min_dcf``: a threshold on the raw score, the EER point or the
  minDCF point (at ``p_target``) of the development trials.

It also records the development set, the model it was fitted for (``model.pt``'s SHA-256,
the scoring protocol, whether and which embedding mean was subtracted) and the date; a
model or mean that changed since makes it unusable (:func:`check_fits_model`).

Model directories of earlier versions may instead hold ``threshold.yaml``, the EER threshold
that stage 6 used to rewrite at every evaluation; it is read when there is no
``calibration.yaml``, and says so.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from pyfunc.data.atomic import PathLike, atomic_open
from pyfunc.data.digest import file_sha256
from pyfunc.errors import ConfigError, DataError
from pyfunc.scoring.calibration import QUALITY_MEASURES, LinearCalibration, feature_names
from pyfunc.scoring.embedding_mean import EmbeddingMean
from pyfunc.scoring.threshold import THRESHOLD_NAME, read_threshold

CALIBRATION_NAME = "calibration.yaml"
KINDS = ("logistic", "eer", "min_dcf")
SCORINGS = ("cosine", "asnorm")
VERIFY_MEASURES = ("duration", "magnitude")  # quality measures verify can compute without a cohort


@dataclass(frozen=True)
class OperatingPoint:
    """A decision rule read back from ``calibration.yaml`` (or a legacy ``threshold.yaml``)."""

    kind: str  # logistic, eer, min_dcf
    threshold: float  # on the LLR for logistic, on the raw score otherwise
    path: Path
    scoring: str = "cosine"
    p_target: float | None = None
    calibration: LinearCalibration | None = None
    measures: tuple[str, ...] = ()
    max_duration: float = 20.0
    dev_trials: str = "?"
    dev_scores: str = "?"
    model_sha256: str | None = None
    subtract_mean: bool = False
    mean_sha256: str | None = None
    written: str = "?"
    legacy: bool = False
    extra: dict = field(default_factory=dict)

    def describe(self) -> str:
        """Where the operating point came from, in words (what ``verify`` prints)."""
        if self.legacy:
            return (f"EER threshold of {self.dev_scores} (EER {self.extra.get('eer_percent', math.nan):.2f}%), "
                    f"from {self.path}: a legacy file that stage 6 of earlier versions rewrote at every evaluation; "
                    f"set an operating point on purpose with steps/calibrate.py")
        if self.kind == "logistic":
            rule = (f"on the LLR: the Bayes threshold -logit({self.p_target:g}) of a logistic calibration of "
                    f"{self.scoring} scores" + (f" with quality measures {', '.join(self.measures)}"
                                               if self.measures else ""))
        else:
            name = "EER" if self.kind == "eer" else f"minDCF (p={self.p_target:g})"
            rule = f"on the {self.scoring} score: the {name} threshold"
        return f"{rule} of {self.dev_scores} against {self.dev_trials}, from {self.path}, {self.written}"


def _check_choice(value: Any, choices: Sequence[str], path: Path, key: str) -> str:
    if value not in choices:
        raise ConfigError(f"{path}: {key}: {value!r} is not one of {', '.join(choices)}")
    return str(value)


def _number(value: Any, path: Path, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{path}: {key}: expected a finite number, got {value!r}")
    return float(value)


def _mapping(value: Any, path: Path, key: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {key}: expected a mapping, got {type(value).__name__}")
    return value


def write_operating_point(path: PathLike, point: dict) -> Path:
    """Write a ``calibration.yaml`` mapping (as :func:`read_operating_point` reads it) atomically, dated."""
    path = Path(path)
    payload = {**point, "written": time.strftime("%Y-%m-%d %H:%M:%S")}
    with atomic_open(path) as handle:
        handle.write("# The operating point of a model (steps/calibrate.py): python -m pyfunc verify decides with it.\n"
                     "# Stage 6 never changes it; run steps/calibrate.py again to set another.\n")
        yaml.safe_dump(payload, handle, sort_keys=False)
    return path


def parse_operating_point(data: Any, path: Path) -> OperatingPoint:
    """Check a ``calibration.yaml`` mapping; ConfigError names the file and key at fault."""
    data = _mapping(data, path, "top level")
    kind = _check_choice(data.get("kind"), KINDS, path, "kind")
    scoring = _check_choice(data.get("scoring", "cosine"), SCORINGS, path, "scoring")
    threshold = _number(data.get("threshold"), path, "threshold")
    p_target = data.get("p_target")
    if kind != "eer" or p_target is not None:
        p_target = _number(p_target, path, "p_target")
    calibration, measures, max_duration = None, (), 20.0
    if kind == "logistic":
        cal = _mapping(data.get("calibration"), path, "calibration")
        quality = _mapping(data.get("quality", {}), path, "quality")
        measures = tuple(quality.get("measures", ()))
        for measure in measures:
            _check_choice(measure, QUALITY_MEASURES, path, "quality.measures")
        max_duration = _number(quality.get("max_duration", 20.0), path, "quality.max_duration")
        features = cal.get("features")
        if features != feature_names(measures):
            raise ConfigError(f"{path}: calibration.features: {features!r} are not the features of the quality "
                              f"measures {list(measures)}: {feature_names(measures)}")
        weights = cal.get("weights")
        if not isinstance(weights, list) or len(weights) != len(features):
            raise ConfigError(f"{path}: calibration.weights: expected {len(features)} numbers, got {weights!r}")
        calibration = LinearCalibration(tuple(features),
                                        np.array([_number(w, path, "calibration.weights") for w in weights]),
                                        _number(cal.get("bias"), path, "calibration.bias"))
    dev = _mapping(data.get("dev", {}), path, "dev")
    model = _mapping(data.get("model", {}), path, "model")
    subtract_mean = model.get("subtract_mean", False)
    if not isinstance(subtract_mean, bool):
        raise ConfigError(f"{path}: model.subtract_mean: expected true or false, got {subtract_mean!r}")
    return OperatingPoint(kind, threshold, path, scoring, p_target, calibration, measures, max_duration,
                          str(dev.get("trials", "?")), str(dev.get("scores", "?")), model.get("sha256"),
                          subtract_mean, model.get("mean_sha256"), str(data.get("written", "?")),
                          extra={"dev": dev, "model": model})


def read_operating_point(model_dir: PathLike) -> OperatingPoint | None:
    """``MODEL_DIR/calibration.yaml``, else a legacy ``threshold.yaml`` (marked ``legacy``), else None."""
    model_dir = Path(model_dir)
    path = model_dir / CALIBRATION_NAME
    if path.is_file():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        return parse_operating_point(data, path)
    old = read_threshold(model_dir)
    if old is None:
        return None
    return OperatingPoint("eer", old.threshold, old.path, dev_trials=old.trials, dev_scores=old.score_file,
                          legacy=True, extra={"eer_percent": old.eer_percent})


def missing_description(model_dir: PathLike) -> str:
    """Why a model directory has no operating point, and what sets one."""
    model_dir = Path(model_dir)
    return (f"none: neither {model_dir / CALIBRATION_NAME} nor {model_dir / THRESHOLD_NAME} exists (set one with "
            f"steps/calibrate.py --model-dir {model_dir} --trials DEV/trials --scores {model_dir}/scores/DEV_cosine, "
            f"or pass a threshold)")


def check_usable_by(tool: str, point: OperatingPoint, model_dir: PathLike, mean: EmbeddingMean | None) -> None:
    """DataError when ``tool`` (``verify``, ``identify``: cosine scores and :data:`VERIFY_MEASURES`) cannot decide
    with ``point``: fitted for another model or mean (:func:`check_fits_model`), or for other scores or measures."""
    check_fits_model(point, model_dir, mean)
    if point.scoring != "cosine" or set(point.measures) - set(VERIFY_MEASURES):
        raise DataError(f"{point.path} calibrates {point.scoring} scores with the quality measures "
                        f"{', '.join(point.measures) or 'none'}; {tool} computes cosine scores and the "
                        f"measures {', '.join(VERIFY_MEASURES)} only")


def check_fits_model(point: OperatingPoint, model_dir: PathLike, mean: EmbeddingMean | None) -> None:
    """DataError when ``point`` was fitted for another ``model.pt`` or another embedding mean than the
    model directory scores with now (``mean``: the mean it subtracts, or None). Legacy thresholds
    recorded neither and pass."""
    if point.legacy:
        return
    model_dir = Path(model_dir)
    if point.model_sha256 is not None and point.model_sha256 != file_sha256(model_dir / "model.pt"):
        raise DataError(f"out of date: {model_dir / 'model.pt'} changed after {point.path} was made; "
                        "recalibrate with steps/calibrate.py")
    if point.subtract_mean != (mean is not None):
        now = "subtracts" if mean is not None else "does not subtract"
        then = "with" if point.subtract_mean else "without"
        raise DataError(f"{point.path} was fitted on scores {then} embedding mean subtraction, but {model_dir} "
                        f"{now} the mean now (score.subtract_mean); recalibrate with steps/calibrate.py")
    if mean is not None and point.mean_sha256 is not None and point.mean_sha256 != file_sha256(mean.path):
        raise DataError(f"out of date: {mean.path} changed after {point.path} was made; recalibrate with "
                        "steps/calibrate.py")
