"""The learning-curve plot of a training run (loss, accuracy, LR and EER per epoch)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pyfunc.data.atomic import PathLike
from pyfunc.errors import DataError
from pyfunc.scoring.plots import COLORS, new_figure, save_figure
from pyfunc.training.history import read_history


def _eer_column(history: dict[str, np.ndarray]) -> str | None:
    for name in ("eer", "eer_percent", "eer(%)", "val_eer", "eval_eer"):
        if name in history and np.isfinite(history[name]).any():
            return name
    return None


def plot_learning_curve(history_path: PathLike, out: PathLike, title: str = "training") -> Path:
    """Loss, accuracy, learning rate (and EER per evaluated epoch, when recorded) against the epoch."""
    history = read_history(history_path)
    epochs = history["epoch"]
    eer = _eer_column(history)
    panels = [(name, label) for name, label in (("loss", "loss"), ("accuracy", "accuracy (%)"),
                                                ("lr", "learning rate")) if name in history]
    if eer is not None:
        panels.append((eer, "EER (%)"))
    if not panels:
        raise DataError(f"{history_path}: none of the columns loss, accuracy, lr, eer")
    columns = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / columns)
    figure = new_figure(5.0 * columns, 3.3 * rows + 0.4)
    for i, (name, label) in enumerate(panels):
        axes = figure.add_subplot(rows, columns, i + 1)
        values = history[name]
        ok = np.isfinite(values)
        axes.plot(epochs[ok], values[ok], "o-", color=COLORS[i], linewidth=2.0, markersize=4)
        if name == "lr" and (values[ok] > 0).all():
            axes.set_yscale("log")
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.grid(True, color="#dddddd", linewidth=0.6)
    figure.suptitle(f"{title} ({len(epochs)} epoch(s))", fontsize=11)
    figure.tight_layout()
    return save_figure(figure, out)
