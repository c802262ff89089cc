"""The legacy decision threshold of a model: ``MODEL_DIR/threshold.yaml``.

Earlier versions of stage 6 wrote it for every model directory whose raw cosine scores
(``MODEL_DIR/scores/<test>_cosine``) they evaluated: the EER threshold of that evaluation,
with the score file, trials file and metrics it came from, replaced by whichever test set
was scored last. Stage 6 no longer writes it; the operating point is now set on purpose
in ``MODEL_DIR/calibration.yaml`` (:mod:`pyfunc.scoring.operating_point`), which reads this
file only for model directories that have no calibration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from pyfunc.data.atomic import PathLike
from pyfunc.errors import ConfigError

THRESHOLD_NAME = "threshold.yaml"


@dataclass(frozen=True)
class StoredThreshold:
    """A threshold read back from ``threshold.yaml``."""

    threshold: float
    path: Path
    score_file: str
    trials: str
    eer_percent: float


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
