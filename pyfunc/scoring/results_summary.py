"""One Markdown table of every experiment's results (``exp/*/results``), as WeSpeaker and Kaldi recipes report.

Stage 6 writes ``EXP/results``: a header ``system EER(%) minDCF(p=...)... [Cllr minCllr
actDCF(p=...)...]`` and one line per score file. A score file
``MODEL_DIR/scores/<test>_<scoring>`` (run.sh's naming) gives the columns system
(``MODEL_DIR``), test set (``<test>``) and score normalisation (``cosine``: none,
``asnorm``: AS-norm, ``-cal``: calibrated, ``-qmf``: calibrated with quality measures);
other names are shown as they are. A score file listed by several results files is
reported once, from the most recently written one.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from pyfunc.data.atomic import PathLike, write_lines
from pyfunc.errors import DataError

logger = logging.getLogger(__name__)

RESULTS_NAME = "results"

NORM_NAMES = {"cosine": "none", "asnorm": "AS-norm", "snorm": "S-norm", "znorm": "Z-norm", "tnorm": "T-norm",
              "cosine-cal": "calibrated", "asnorm-cal": "AS-norm, calibrated", "cosine-qmf": "QMF",
              "asnorm-qmf": "AS-norm + QMF"}

_DCF_HEADER = re.compile(r"^(minDCF|actDCF)\(p=([0-9.eE+-]+)\)$")


@dataclass(frozen=True)
class ResultRow:
    system: str
    test_set: str
    score_norm: str
    eer_percent: float
    min_dcf: dict[float, float]
    score_file: str
    results_file: Path
    cllr: float | None = None
    min_cllr: float | None = None
    act_dcf: dict[float, float] = field(default_factory=dict)


def describe_score_file(score_file: str) -> tuple[str, str, str]:
    """``(system, test set, score norm)`` of a score file path as stage 6 lists it."""
    path = Path(score_file)
    if path.parent.name == "scores" and "_" in path.name:
        test, scoring = path.name.rsplit("_", 1)
        return path.parent.parent.as_posix(), test, NORM_NAMES.get(scoring, scoring)
    return score_file, "-", "-"


def parse_results(path: PathLike) -> list[ResultRow]:
    """The rows of a stage-6 ``results`` table; a DataError names a malformed line."""
    path = Path(path)
    lines = [(n, line.split()) for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
             if line.strip()]
    if not lines or lines[0][1][:2] != ["system", "EER(%)"]:
        raise DataError(f"{path}:1: not a stage-6 results table (expected a header 'system EER(%) ...')")
    header = lines[0][1]
    for name in header[2:]:
        if name not in ("Cllr", "minCllr") and not _DCF_HEADER.match(name):
            raise DataError(f"{path}:{lines[0][0]}: unexpected column {name!r}")
    numbers = len(header) - 1
    rows = []
    for number, fields in lines[1:]:
        if len(fields) < numbers + 1:
            raise DataError(f"{path}:{number}: expected a system and {numbers} numbers, got {' '.join(fields)!r}")
        system = " ".join(fields[:-numbers])
        try:
            values = [float("nan") if cell == "-" else float(cell) for cell in fields[-numbers:]]
        except ValueError:
            raise DataError(f"{path}:{number}: non-numeric metric in {' '.join(fields[-numbers:])!r}") from None
        dcf: dict[str, dict[float, float]] = {"minDCF": {}, "actDCF": {}}
        cells = dict(zip(header[2:], values[1:]))
        for column, value in cells.items():
            match = _DCF_HEADER.match(column)
            if match:
                dcf[match.group(1)][float(match.group(2))] = value
        name, test, norm = describe_score_file(system)
        cllr, min_cllr = (cells.get(column) for column in ("Cllr", "minCllr"))
        rows.append(ResultRow(name, test, norm, values[0], dcf["minDCF"], system, path,
                              None if cllr is None or cllr != cllr else cllr,
                              None if min_cllr is None or min_cllr != min_cllr else min_cllr, dcf["actDCF"]))
    return rows


def find_results(roots: Iterable[PathLike]) -> list[Path]:
    """Stage-6 ``results`` files: each root that is such a file, and every ``results`` file under each folder."""
    found: list[Path] = []
    for root in roots:
        root = Path(root)
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            found.extend(sorted(p for p in root.rglob(RESULTS_NAME) if p.is_file()))
        else:
            raise DataError(f"{root}: not found")
    return found


def gather_results(roots: Iterable[PathLike]) -> list[ResultRow]:
    """Rows of every results file under ``roots``, one per score file (newest results file wins), sorted."""
    best: dict[str, tuple[float, ResultRow]] = {}
    for path in find_results(roots):
        try:
            rows = parse_results(path)
        except DataError as err:
            logger.warning("skipping %s", err)
            continue
        mtime = path.stat().st_mtime
        for row in rows:
            if row.score_file not in best or best[row.score_file][0] <= mtime:
                best[row.score_file] = (mtime, row)
    return sorted((row for _, row in best.values()), key=lambda r: (r.system, r.test_set, r.score_norm,
                                                                     r.score_file))


def _cell(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.4f}"


def markdown_table(rows: Sequence[ResultRow]) -> str:
    """A Markdown table: system, test set, score norm, EER (%), one minDCF column per p_target, and
    when any row has them Cllr, min Cllr and one actual DCF column per p_target."""
    p_targets = sorted({p for row in rows for p in row.min_dcf})
    llr = any(row.cllr is not None for row in rows)
    header = ["system", "test set", "score norm", "EER (%)"] + [f"minDCF (p={p:g})" for p in p_targets]
    header += ["Cllr", "min Cllr"] + [f"actDCF (p={p:g})" for p in p_targets] if llr else []
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|"]
    for row in rows:
        cells = [row.system, row.test_set, row.score_norm, f"{row.eer_percent:.2f}"]
        cells += [_cell(row.min_dcf.get(p)) for p in p_targets]
        if llr:
            cells += [_cell(row.cllr), _cell(row.min_cllr)] + [_cell(row.act_dcf.get(p)) for p in p_targets]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def summarize(roots: Iterable[PathLike], out: PathLike | None = None) -> str:
    """The Markdown table of every results file under ``roots`` (written to ``out`` when given)."""
    roots = list(roots)
    rows = gather_results(roots)
    if not rows:
        raise DataError(f"no stage-6 results files under {', '.join(map(str, roots))}")
    table = markdown_table(rows)
    if out is not None:
        write_lines(out, table.rstrip("\n").split("\n"))
    return table
