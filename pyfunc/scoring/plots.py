"""PNG plots (matplotlib, Agg, no pyplot state): DET curves, score histograms, learning curves.

* :func:`plot_det`: the DET curves of several systems on one test set, on
  normal-deviate (probit) axes, each with its EER point (circle) and minDCF
  point (square) marked.
* :func:`plot_score_histograms`: target and non-target score histograms, one
  panel per system, with the EER threshold.
* :func:`plot_learning_curve`: loss, accuracy and learning rate per epoch from
  ``EXP/log/history.tsv``, and the EER per evaluated epoch when the history has
  an ``eer`` column (epochs without an evaluation hold ``-``, ``nan`` or nothing).

Every file is written atomically. Curve colours come from :data:`COLORS`, in order.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from pyfunc.data.atomic import PathLike, atomic_path
from pyfunc.errors import DataError
from pyfunc.scoring.metrics import compute_eer, compute_min_dcf, read_labelled_trials, roc_curve, sort_trials
from pyfunc.scoring.score_files import scores_for_trials

logger = logging.getLogger(__name__)

# matplotlib's "tab10" colours: one per system, in order.
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")

LINE_STYLES = ("-", "--", "-.")  # after ten systems the colours repeat with another line style

TARGET_COLOR = "#2ca02c"

NONTARGET_COLOR = "#d62728"

DET_TICKS = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8)

DPI = 100


def new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415 (heavy, plots only)
    from matplotlib.figure import Figure  # noqa: PLC0415 (heavy, plots only)

    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, path: PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)
    return path


def probit(p: np.ndarray | float) -> np.ndarray:
    """The standard normal quantile (normal deviate) of probabilities."""
    from scipy.stats import norm  # noqa: PLC0415 (heavy, plots only)

    return norm.ppf(p)


def det_curve(scores, labels=None) -> tuple[np.ndarray, np.ndarray]:
    """``(fpr, fnr)`` at every threshold (the trials up to each one, in ascending score order, rejected),
    from accepting everything to rejecting everything."""
    st = sort_trials(scores, labels) if labels is not None else scores
    fnr = np.r_[0.0, np.cumsum(st.labels, dtype=np.int64) / st.num_target]
    fpr = np.r_[1.0, 1 - np.cumsum(~st.labels, dtype=np.int64) / st.num_nontarget]
    return fpr, fnr


def _thin(x: np.ndarray, y: np.ndarray, step: float = 2e-3) -> tuple[np.ndarray, np.ndarray]:
    """Drop points closer than ``step`` (axis units) on a monotone curve; keeps the ends."""
    if x.size <= 2:
        return x, y
    cells = np.stack([np.round(x / step), np.round(y / step)], axis=1)
    keep = np.r_[True, np.any(cells[1:] != cells[:-1], axis=1)]
    keep[-1] = True
    return x[keep], y[keep]


def _operating_points(st) -> dict[str, tuple[float, float, float]]:
    """The EER point (fpr, fnr, eer) and the minDCF(0.01) point (fpr, fnr, minDCF) of sorted trials."""
    fpr, tpr, _ = roc_curve(st)
    fnr = 1 - tpr
    index = int(np.nanargmin(np.abs(fnr - fpr)))
    eer, _ = compute_eer(st)
    min_dcf, _ = compute_min_dcf(st, None, 0.01)
    fnrs = np.cumsum(st.labels, dtype=np.int64) / float(st.num_target)
    fprs = 1 - np.cumsum(~st.labels, dtype=np.int64) / float(st.num_nontarget)
    best = int(np.argmin(fnrs * 0.01 + fprs * 0.99))
    return {"eer": (float(fpr[index]), float(fnr[index]), eer),
            "min_dcf": (float(fprs[best]), float(fnrs[best]), min_dcf)}


def plot_det(systems: Sequence[tuple[str, np.ndarray, np.ndarray]], out: PathLike, title: str = "DET") -> Path:
    """DET curves of ``(name, scores, labels)`` systems on one figure, EER and minDCF(0.01) points marked."""
    if not systems:
        raise DataError(f"{out}: no systems to plot")
    sorted_trials = [sort_trials(scores, labels) for _, scores, labels in systems]
    smallest = min(min(st.num_target, st.num_nontarget) for st in sorted_trials)
    low = max(DET_TICKS[0], 0.5 / smallest)
    low = max(t for t in DET_TICKS if t <= low)
    operating_points = [_operating_points(st) for st in sorted_trials]
    high = 0.8 if any(points["eer"][2] > 35 for points in operating_points) else 0.6
    clip_lo, clip_hi = low / 2, 1 - (1 - high) / 2
    figure = new_figure(7.0, 6.5)
    axes = figure.add_subplot(1, 1, 1)
    for i, ((name, _, _), st, points) in enumerate(zip(systems, sorted_trials, operating_points)):
        color, style = COLORS[i % len(COLORS)], LINE_STYLES[(i // len(COLORS)) % len(LINE_STYLES)]
        fpr, fnr = det_curve(st)
        x, y = _thin(probit(np.clip(fpr, clip_lo, clip_hi)), probit(np.clip(fnr, clip_lo, clip_hi)))
        e_fpr, e_fnr, eer = points["eer"]
        d_fpr, d_fnr, dcf = points["min_dcf"]
        axes.plot(x, y, color=color, linestyle=style, linewidth=2.0, label=f"{name}  EER {eer:.2f}%  minDCF {dcf:.3f}")
        axes.plot(probit(np.clip(e_fpr, clip_lo, clip_hi)), probit(np.clip(e_fnr, clip_lo, clip_hi)), "o",
                  color=color, markersize=9, markeredgecolor="black")
        axes.plot(probit(np.clip(d_fpr, clip_lo, clip_hi)), probit(np.clip(d_fnr, clip_lo, clip_hi)), "s",
                  color=color, markersize=8, markeredgecolor="black")
    lim = (float(probit(low)), float(probit(high)))
    axes.plot(lim, lim, color="#aaaaaa", linewidth=0.8, linestyle=":")
    ticks = [t for t in DET_TICKS if low <= t <= high]
    labels = [f"{100 * t:g}" for t in ticks]
    axes.set_xticks(probit(np.array(ticks)), labels)
    axes.set_yticks(probit(np.array(ticks)), labels)
    axes.set_xlim(*lim)
    axes.set_ylim(*lim)
    axes.set_xlabel("false acceptance rate (%)")
    axes.set_ylabel("false rejection rate (%)")
    axes.set_title(f"{title}\n(circle: EER point, square: minDCF point, p_target 0.01)", fontsize=10)
    axes.grid(True, color="#dddddd", linewidth=0.6)
    axes.set_aspect("equal")
    axes.legend(loc="upper right", fontsize=7.5, framealpha=0.9)
    figure.tight_layout()
    return save_figure(figure, out)


def plot_score_histograms(systems: Sequence[tuple[str, np.ndarray, np.ndarray]], out: PathLike,
                          title: str = "scores", bins: int = 60) -> Path:
    """Target and non-target score histograms (densities), one panel per ``(name, scores, labels)`` system,
    with the EER threshold as a dashed line."""
    if not systems:
        raise DataError(f"{out}: no systems to plot")
    columns = min(2, len(systems))
    rows = math.ceil(len(systems) / columns)
    figure = new_figure(5.2 * columns, 3.4 * rows + 0.4)
    for i, (name, scores, labels) in enumerate(systems):
        st = sort_trials(scores, labels)
        eer, threshold = compute_eer(st)
        axes = figure.add_subplot(rows, columns, i + 1)
        edges = np.linspace(st.scores[0], st.scores[-1], bins + 1) if st.scores[-1] > st.scores[0] else bins
        axes.hist(st.scores[~st.labels], bins=edges, density=True, color=NONTARGET_COLOR, alpha=0.55,
                  label=f"non-target ({st.num_nontarget})")
        axes.hist(st.scores[st.labels], bins=edges, density=True, color=TARGET_COLOR, alpha=0.55,
                  label=f"target ({st.num_target})")
        if math.isfinite(threshold):
            axes.axvline(threshold, color="black", linestyle="--", linewidth=1.0,
                         label=f"EER threshold {threshold:.3f}")
        axes.set_title(f"{name}  (EER {eer:.2f}%)", fontsize=9)
        axes.set_xlabel("score")
        axes.set_ylabel("density")
        axes.legend(fontsize=7)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return save_figure(figure, out)


def stage6_plots(trials: PathLike, score_files: Sequence[PathLike], out_dir: PathLike,
                 names: Sequence[str] | None = None) -> list[Path]:
    """Stage 6's figures for one trials file: ``det_<test>.png`` and ``scores_<test>.png`` in ``out_dir``.

    ``<test>`` is the name of the folder holding the trials file (e.g. ``test`` for data/mini/test/trials).
    """
    enrolls, tests, labels = read_labelled_trials(trials)
    systems = []
    for i, score_file in enumerate(score_files):
        scores = scores_for_trials(score_file, trials, enrolls, tests)
        systems.append((names[i] if names else system_label(score_file), scores, labels))
    test = Path(trials).resolve().parent.name or "trials"
    out_dir = Path(out_dir)
    written = [plot_det(systems, out_dir / f"det_{test}.png", title=f"DET: {test} ({len(labels)} trials)"),
               plot_score_histograms(systems, out_dir / f"scores_{test}.png", title=f"scores: {test}")]
    logger.info("wrote %s", ", ".join(map(str, written)))
    return written


def system_label(score_file: PathLike) -> str:
    """A short name for a score file: ``MODEL_DIR <name>`` for ``MODEL_DIR/scores/<name>``, else the path."""
    path = Path(score_file)
    if path.parent.name == "scores":
        return f"{path.parent.parent.as_posix()} {path.name}"
    return path.as_posix()
