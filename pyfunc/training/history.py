"""The training history ``EXP/log/history.tsv``: one row per epoch, with an EER column once evaluated."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyfunc.data.atomic import PathLike, write_lines
from pyfunc.errors import DataError

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "lr", "examples_per_s")


def _history_rows(path: Path) -> tuple[list[str], dict[int, dict[str, str]]]:
    if not path.is_file():
        return list(HISTORY_COLUMNS), {}
    lines = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    header = lines[0] if lines else list(HISTORY_COLUMNS)
    return header, {int(cells[0]): dict(zip(header, cells)) for cells in lines[1:]}


def _write_history(path: Path, header: list[str], rows: dict[int, dict[str, str]]) -> None:
    write_lines(path, ["\t".join(header)] + ["\t".join(rows[epoch].get(name, "-") for name in header)
                                             for epoch in sorted(rows)])


def append_history(exp_dir: Path, epoch: int, loss: float, accuracy: float, lr: float, speed: float) -> None:
    """One line per epoch in ``exp_dir/log/history.tsv`` (read back for learning curves); an ``eer``
    column, once there, holds ``-`` until :func:`record_eer` fills it in."""
    path = exp_dir / "log" / "history.tsv"
    header, rows = _history_rows(path)
    rows[epoch] = {"epoch": str(epoch), "loss": f"{loss:.6f}", "accuracy": f"{accuracy:.4f}", "lr": f"{lr:.6g}",
                   "examples_per_s": f"{speed:.2f}"}
    _write_history(path, header, rows)


def record_eer(exp_dir: Path, epoch: int, eer: float) -> None:
    """Set the ``eer`` cell (percent) of ``epoch`` in the history, adding the column when missing."""
    path = exp_dir / "log" / "history.tsv"
    header, rows = _history_rows(path)
    if "eer" not in header:
        header.append("eer")
    rows.setdefault(epoch, {"epoch": str(epoch)})["eer"] = f"{eer:.6f}"
    _write_history(path, header, rows)


def read_history(path: PathLike) -> dict[str, np.ndarray]:
    """Columns of a tab-separated history (header line first) as float arrays; ``-``/empty/``nan`` cells
    are NaN. A DataError names a bad line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no training history (it is written at the end of each epoch)")
    lines = [(number, line.rstrip("\n").split("\t"))
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if line.strip()]
    if len(lines) < 2:
        raise DataError(f"{path}: no epochs yet")
    header = [name.strip().lower() for name in lines[0][1]]
    if "epoch" not in header:
        raise DataError(f"{path}:{lines[0][0]}: header has no 'epoch' column: {' '.join(header)}")
    columns: dict[str, list[float]] = {name: [] for name in header}
    for number, cells in lines[1:]:
        if len(cells) > len(header):
            raise DataError(f"{path}:{number}: {len(cells)} fields, the header has {len(header)}")
        cells += [""] * (len(header) - len(cells))
        for name, cell in zip(header, cells):
            cell = cell.strip()
            try:
                columns[name].append(float("nan") if cell in ("", "-") else float(cell))
            except ValueError:
                raise DataError(f"{path}:{number}: {name} {cell!r} is not a number") from None
    return {name: np.asarray(values, dtype=np.float64) for name, values in columns.items()}
