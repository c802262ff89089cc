"""The decision threshold stored with a model: ``MODEL_DIR/threshold.yaml``.

Stage 6 writes it for every model directory whose raw cosine scores it evaluates
(a score file ``MODEL_DIR/scores/<test>_cosine``, as run.sh names stage 4's
output): the EER threshold of that evaluation, with the score file, trials file
and metrics it came from. Normalised scores (``_asnorm``) are on another scale
and never give the threshold. ``python -m pyfunc verify`` and
:meth:`pyfunc.inference.api.SpeakerModel.verify` decide same/different with it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import yaml

from pyfunc.data.atomic import PathLike, atomic_open
from pyfunc.errors import ConfigError

logger = logging.getLogger(__name__)

THRESHOLD_NAME = "threshold.yaml"

RAW_SCORE_SUFFIX = "_cosine"  # stage 4's un-normalised scores, the scores verify computes


@dataclass(frozen=True)
class StoredThreshold:
    """A threshold read back from ``threshold.yaml``."""

    threshold: float
    path: Path
    score_file: str
    trials: str
    eer_percent: float


def model_dir_of_score_file(score_file: PathLike) -> Path | None:
    """``MODEL_DIR`` for ``MODEL_DIR/scores/<name>`` when ``MODEL_DIR/model.pt`` exists, else None."""
    score_file = Path(score_file)
    if score_file.parent.name != "scores":
        return None
    model_dir = score_file.parent.parent
    return model_dir if (model_dir / "model.pt").is_file() else None


def write_threshold(model_dir: PathLike, row: dict, trials: PathLike) -> Path:
    """Write ``MODEL_DIR/threshold.yaml`` (a row of :func:`~pyfunc.scoring.metrics.evaluate_score_files`)."""
    path = Path(model_dir) / THRESHOLD_NAME
    payload = {
        "threshold": float(row["eer_threshold"]),
        "kind": "eer",
        "score_file": str(row["score_file"]),
        "trials": str(trials),
        "eer_percent": float(row["eer_percent"]),
        "min_dcf": {float(p): float(v) for p, v in row["min_dcf"].items()},
        "num_target": int(row["num_target"]),
        "num_nontarget": int(row["num_nontarget"]),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    with atomic_open(path) as handle:
        handle.write("# EER threshold of the model's last evaluation (stage 6); scores >= threshold: same speaker\n")
        yaml.safe_dump(payload, handle, sort_keys=False)
    return path


def store_thresholds(rows: Sequence[dict], trials: PathLike) -> list[Path]:
    """Write ``threshold.yaml`` for each row whose score file is ``MODEL_DIR/scores/*_cosine``; the paths written."""
    written = []
    for row in rows:
        score_file = Path(row["score_file"])
        model_dir = model_dir_of_score_file(score_file)
        if model_dir is None or not score_file.name.endswith(RAW_SCORE_SUFFIX):
            continue
        path = write_threshold(model_dir, row, trials)
        logger.info("EER threshold %.6f of %s stored in %s", row["eer_threshold"], score_file, path)
        written.append(path)
    return written


def read_threshold(model_dir: PathLike) -> StoredThreshold | None:
    """The threshold stored in ``MODEL_DIR/threshold.yaml``, or None when there is none."""
    path = Path(model_dir) / THRESHOLD_NAME
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'threshold' key")
    value = data.get("threshold")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{path}: threshold: expected a number, got {value!r}")
    eer = data.get("eer_percent", float("nan"))
    return StoredThreshold(float(value), path, str(data.get("score_file", "?")), str(data.get("trials", "?")),
                           float(eer) if isinstance(eer, (int, float)) else float("nan"))
