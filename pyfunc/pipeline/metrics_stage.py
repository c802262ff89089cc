"""Stage 6: EER, minDCF, Cllr, min Cllr and actual DCF of score files, written as a results table, with plots.

Stage 6 only reports: the operating point that ``verify`` decides with is set on purpose by
``steps/calibrate.py`` (:mod:`pyfunc.pipeline.calibrate_stage`), never by an evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from pyfunc.data.atomic import PathLike
from pyfunc.data.dirnames import data_dir_name
from pyfunc.errors import ConfigError, DataError
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


def results_table(data_root: PathLike | None, model_dirs: Sequence[PathLike], lists: Sequence[PathLike],
                  scorings: Sequence[str], out: PathLike, p_targets: Sequence[float] = DEFAULT_P_TARGETS,
                  plot_dir: PathLike | None = None, combined: bool = True) -> list[dict]:
    """Stage 6 over several trial lists and model dirs: one table ``out`` (and ``out_LIST`` per list; without
    ``combined`` only those, leaving ``out``, the table of the default test sets, as it is).

    A list is a data dir: a name under ``data_root``, or a path of its own (``data_root`` None), so
    that lists of several corpora's data roots share one table. List ``L`` (the data dir's name) has
    its trials in ``L/trials`` and, for each model dir ``M`` and scoring ``S``, its scores in
    ``M/scores/L_S``; scorings a model dir has no score file for (a calibration that was not made)
    are left out, but each list needs at least one score file. With ``plot_dir``, each list's DET
    curves and score histograms are drawn there.
    """
    if not lists or not scorings or not model_dirs:
        raise ConfigError("give at least one trial list, one scoring and one model dir")
    rows = []
    for data_dir in (Path(data_root) / item if data_root is not None else Path(item) for item in lists):
        name = data_dir_name(data_dir)
        candidates = [Path(m) / "scores" / f"{name}_{scoring}" for m in model_dirs for scoring in scorings]
        files = [path for path in candidates if path.is_file()]
        if not files:
            raise DataError(f"no score file for the list {name}: looked for {', '.join(map(str, candidates))}")
        trials = data_dir / "trials"
        list_rows = evaluate_stage(trials, files, f"{out}_{name}", p_targets=p_targets, plot_dir=plot_dir)
        rows += list_rows
    if combined:
        write_results(out, rows)
    return rows
