"""Kaldi's text forms of vectors, matrices and numbers, byte for byte (what an ``ark,t:`` archive holds).

Kaldi writes a text archive entry as ``key``, one space, then the object
(``TableWriterArchiveImpl::Write``). Before the object, ``InitKaldiOutputStream`` raises
the stream's precision to 7, so every number is C++'s ``os << x`` with precision 7 and
the default float field, which is C's ``%.7g`` (``1.234568``, ``1e-05``, ``inf``; glibc
prints a NaN with the sign bit set as ``-nan``). Then:

- a vector (``VectorBase::Write``): ``" [ "``, each element followed by ``" "``, ``"]\\n"``;
- a matrix (``MatrixBase::Write``): ``" ["``, per row ``"\\n  "`` and each element followed
  by ``" "``, then ``"]\\n"``; a matrix without columns is ``" [ ]\\n"``;
- a number (``BasicHolder::Write``): the number, ``" "``, ``"\\n"``.

So ``copy-vector ark:in.ark ark,t:-`` prints ``utt1  [ 0.5 -1.25 ]`` (two spaces) and
``feat-to-len scp:feats.scp ark,t:-`` prints ``utt1 312 `` (a trailing space).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from pyfunc.errors import DataError


def format_real(value: float) -> str:
    """``value`` as Kaldi's text streams print it: C's ``%.7g`` (``-nan`` for a NaN with the sign bit)."""
    value = float(value)
    if math.isnan(value):
        return "-nan" if math.copysign(1.0, value) < 0 else "nan"
    return "%.7g" % value


def _row_text(row: np.ndarray) -> str:
    values = row.tolist()
    if np.isfinite(row).all():
        return "".join(["%.7g " % v for v in values])
    return "".join([format_real(v) + " " for v in values])


def vector_text(vector: np.ndarray) -> str:
    """A vector as ``VectorBase::Write`` writes it in text mode: ``" [ 1 2.5 ]\\n"``."""
    return " [ " + _row_text(np.asarray(vector).reshape(-1)) + "]\n"


def matrix_text(matrix: np.ndarray) -> str:
    """A matrix as ``MatrixBase::Write`` writes it in text mode: ``" [\\n  1 2 \\n  3 4 ]\\n"``."""
    matrix = np.asarray(matrix)
    if matrix.shape[1] == 0:
        return " [ ]\n"
    return " [" + "".join(["\n  " + _row_text(row) for row in matrix]) + "]\n"


def object_text(array: np.ndarray) -> str:
    """A vector or a matrix in Kaldi's text form."""
    return vector_text(array) if np.ndim(array) == 1 else matrix_text(array)


def number_text(value: int | float) -> str:
    """An integer or real table value as ``BasicHolder::Write`` writes it: ``"312 \\n"``, ``"0.5 \\n"``."""
    text = str(int(value)) if isinstance(value, (int, np.integer)) else format_real(value)
    return text + " \n"


def read_text_object(first: bytes, readline: Callable[[], bytes], where: str) -> np.ndarray:
    """Parse a text vector or matrix whose first line (from its ``[``) is ``first``; ``readline`` gives the rest.

    ``[ a b ]`` on one line is a vector, ``[`` followed by rows on their own lines a
    matrix (as Kaldi writes them). Returns float32; DataError names ``where`` when the
    text is not a bracketed list of numbers or the rows differ in length.
    """
    text = first.lstrip()
    if not text.startswith(b"["):
        raise DataError(f"{where}: expected a Kaldi object ('[' or a binary '\\0B' header), "
                        f"got {first[:20]!r}")
    lines = [text[1:]]
    while b"]" not in lines[-1]:
        line = readline()
        if not line:
            raise DataError(f"{where}: text object not closed by ']' before the end of the input")
        lines.append(line)
    last, _, rest = lines[-1].partition(b"]")
    if rest.strip():
        raise DataError(f"{where}: unexpected {rest.strip()[:20]!r} after ']'")
    lines[-1] = last
    try:
        rows = [[float(token) for token in line.split()] for line in lines]
    except ValueError as err:
        raise DataError(f"{where}: not a number in a text object ({err})") from None
    if len(lines) == 1:
        return np.asarray(rows[0], dtype=np.float32)
    rows = [row for row in rows if row]
    if len({len(row) for row in rows}) > 1:
        raise DataError(f"{where}: text matrix rows differ in length ({sorted({len(row) for row in rows})})")
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(rows[0]) if rows else 0)
