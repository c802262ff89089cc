"""Stage 6: EER, minDCF, Cllr, min Cllr and actual DCF of score files, written as a results table, with plots.

Stage 6 only reports: the operating point that ``verify`` decides with is set on purpose by
``steps/calibrate.py`` (:mod:`pyfunc.pipeline.calibrate_stage`), never by an evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from pyfunc.data.atomic import PathLike
from pyfunc.errors import ConfigError
from pyfunc.scoring.metrics import evaluate_score_files, write_results
from pyfunc.scoring.plots import stage6_plots

DEFAULT_P_TARGETS = (0.01, 0.05)


def evaluate_stage(trials: PathLike, score_files: Sequence[PathLike], out: PathLike,
                   names: Sequence[str] | None = None, p_targets: Sequence[float] = DEFAULT_P_TARGETS,
                   plot_dir: PathLike | None = None) -> list[dict]:
    """Metrics of each score file against ``trials``, written to ``out`` (one row per file).

    With ``plot_dir``, also draws the DET curves and score histograms there. Returns the rows
    (see :func:`pyfunc.scoring.metrics.evaluate_score_files`).
    """
    rows = evaluate_score_files(trials, score_files, p_targets, names=names)
    write_results(out, rows)
    if plot_dir is not None:
        stage6_plots(trials, score_files, plot_dir, names)
    return rows


def results_table(data_root: PathLike, scores_dir: PathLike, lists: Sequence[str], scorings: Sequence[str],
                  out: PathLike, p_targets: Sequence[float] = DEFAULT_P_TARGETS) -> list[dict]:
    """One table over several trial lists: ``DATA_ROOT/LIST/trials`` scored in ``SCORES_DIR/LIST_SCORING``."""
    if not lists or not scorings:
        raise ConfigError("give at least one trial list and one scoring")
    rows = []
    for name in lists:
        files = [Path(scores_dir) / f"{name}_{scoring}" for scoring in scorings]
        rows += evaluate_score_files(Path(data_root) / name / "trials", files, p_targets)
    write_results(out, rows)
    return rows
