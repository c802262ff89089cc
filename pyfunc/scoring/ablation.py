"""The ablation table: each technique's EER and minDCF as the mean and spread over training seeds.

``local/run_ablation.sh`` trains (or derives) one model directory per technique and training seed,
evaluates each with stages 3-6 (``MODEL_DIR/results``) and writes a manifest, one row per line,
tab-separated::

    label <TAB> cosine scoring <TAB> AS-norm scoring <TAB> MODEL_DIR [MODEL_DIR ...]

The scorings are the suffixes of the score files (``cosine``, ``asnorm``, ``cosine-qmf``, ...), the
model directories one per seed. For every test set, each cell is the mean over the seeds and the
sample standard deviation (n - 1; 0 for a single seed), read from the rows of each model's results
table whose score file is ``MODEL_DIR/scores/<test set>_<scoring>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from pyfunc.data.atomic import PathLike, write_lines
from pyfunc.errors import DataError
from pyfunc.scoring.results_summary import RESULTS_NAME, ResultRow, parse_results

SCORING_KINDS = ("cosine", "AS-norm")


@dataclass(frozen=True)
class AblationRow:
    """One technique: its label, the score-file suffix of each kind of scoring, one model dir per seed."""

    label: str
    scorings: tuple[str, str]  # cosine, AS-norm
    model_dirs: tuple[Path, ...]


def read_manifest(path: PathLike) -> list[AblationRow]:
    """The rows of an ablation manifest; a DataError names a malformed line."""
    path = Path(path)
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 4 or not all(f.strip() for f in fields):
            raise DataError(f"{path}:{number}: expected label, cosine scoring, AS-norm scoring and model dirs, "
                            f"tab-separated; got {line!r}")
        label, cosine, asnorm, dirs = (f.strip() for f in fields)
        rows.append(AblationRow(label, (cosine, asnorm), tuple(Path(d) for d in dirs.split())))
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def _score_rows(model_dir: Path) -> dict[str, ResultRow]:
    """The rows of ``model_dir/results`` by score-file name (``<test set>_<scoring>``), this model's only."""
    results = model_dir / RESULTS_NAME
    if not results.is_file():
        raise DataError(f"{results}: not found (stages 3-6 of this model have not run)")
    return {Path(row.score_file).name: row for row in parse_results(results)
            if Path(row.score_file).parent.parent.name == model_dir.name}


def seed_values(row: AblationRow, test_set: str, kind: int, p_target: float) -> list[tuple[float, float]]:
    """``(EER %, minDCF at p_target)`` of each seed's model for ``test_set`` and scoring ``kind``
    (0: cosine, 1: AS-norm)."""
    values = []
    for model_dir in row.model_dirs:
        name = f"{test_set}_{row.scorings[kind]}"
        found = _score_rows(model_dir).get(name)
        if found is None:
            raise DataError(f"{model_dir / RESULTS_NAME}: no row for the score file {name}")
        if p_target not in found.min_dcf:
            raise DataError(f"{model_dir / RESULTS_NAME}: no minDCF(p={p_target:g}) column")
        values.append((found.eer_percent, found.min_dcf[p_target]))
    return values


def mean_spread(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (0 for a single value)."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0


def _cell(values: Sequence[float], digits: int) -> str:
    mean, spread = mean_spread(values)
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


def ablation_tables(rows: Sequence[AblationRow], test_sets: Sequence[str], p_target: float = 0.01) -> str:
    """Two Markdown tables, EER (%) and minDCF, with a column per test set and scoring kind."""
    cells = {(i, s, k): seed_values(row, s, k, p_target) for i, row in enumerate(rows)
             for s in test_sets for k in range(len(SCORING_KINDS))}
    header = ["technique", "seeds"] + [f"{s} {kind}" for s in test_sets for kind in SCORING_KINDS]
    rule = "|---|---:|" + "---:|" * (len(header) - 2)
    parts = []
    for title, metric, digits in (("EER (%), mean ± standard deviation over the seeds", 0, 2),
                                  (f"minDCF (p={p_target:g}), mean ± standard deviation over the seeds", 1, 3)):
        lines = [f"{title}:", "", "| " + " | ".join(header) + " |", rule]
        for i, row in enumerate(rows):
            values = [_cell([v[metric] for v in cells[(i, s, k)]], digits)
                      for s in test_sets for k in range(len(SCORING_KINDS))]
            lines.append("| " + " | ".join([row.label.replace("|", "\\|"), str(len(row.model_dirs))] + values)
                         + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def write_ablation_table(manifest: PathLike, test_sets: Sequence[str], out: PathLike | None = None,
                         p_target: float = 0.01) -> str:
    """The tables of ``manifest`` (written to ``out`` when given, atomically)."""
    if not test_sets:
        raise DataError("no test sets given")
    table = ablation_tables(read_manifest(manifest), test_sets, p_target)
    if out is not None:
        write_lines(out, table.rstrip("\n").split("\n"))
    return table
