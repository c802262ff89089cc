"""Atomic writing of Kaldi binary ark/scp pairs, and in-order merging of scp parts.

The ark holds ``key<space>`` then a Kaldi binary float vector (``FV``/``DV``) or
matrix (``FM``/``DM``; with ``compress``, Kaldi's compressed matrix ``CM``/``CM2`` as
``copy-feats --compress=true`` writes it: one byte per value and a few per column,
about a quarter of float32) per entry, as Kaldi's ``ark:`` writers do; the scp holds
``key ark_path:byte_offset`` lines. Both are written under temporary names and
renamed into place only when the writer closes without error, so a killed or
failed job leaves no partial files. The ark path written into the scp is made
absolute, so the scp reads from any working directory (kaldiio and Kaldi both
resolve relative ark paths against the working directory, not the scp's folder).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, NamedTuple, TextIO

import numpy as np
from kaldiio.compression_header import kAutomaticMethod
from kaldiio.matio import write_array

from pyfunc.data.atomic import PathLike, atomic_open, temporary_name
from pyfunc.data.audio import is_pipe, pipes_allowed
from pyfunc.data.tables import KeyChecker, iter_table_lines
from pyfunc.errors import DataError

_FLOAT_TYPES = (np.float32, np.float64)


def check_ark_entry(entry: str, where: str) -> None:
    """Refuse an scp entry that kaldiio would run as a shell command (``cmd |``) or read from stdin.

    kaldiio executes ``... |`` entries through the shell; scp files are data, so such
    entries are only accepted when the user allowed pipes (``--allow-pipes``).
    """
    text = entry.strip()
    if is_pipe(text) and not pipes_allowed():
        raise DataError(f"{where}: entry {text!r} is a pipe command; run with --allow-pipes to execute it")
    if text in ("-", "") or text.startswith("-:"):
        raise DataError(f"{where}: entry {text!r} reads standard input; expected ark_path:byte_offset")


def _check_key(key: str, where: str) -> None:
    if not isinstance(key, str) or not key or any(c.isspace() for c in key):
        raise DataError(f"{where}: invalid key {key!r} (must be a non-empty string without whitespace)")


class ArkScpWriter:
    """Write ``key -> float32/float64 vector or matrix`` entries to a Kaldi ark and its scp, atomically.

    >>> with ArkScpWriter("feats.ark", "feats.scp") as write:
    ...     write("utt1", np.zeros((10, 80), np.float32))

    Keys must be unique and, with ``require_sorted`` (the default), in ``LC_ALL=C sort``
    order, as Kaldi's sorted-scp readers require. On leaving the block without an
    exception the ark, then the scp, are renamed into place (an existing scp is removed
    first, so it never points into a replaced ark); after an exception nothing is left.
    """

    def __init__(self, ark_path: PathLike, scp_path: PathLike, require_sorted: bool = True,
                 compress: bool = False) -> None:
        self.compress = compress  # matrices as Kaldi's compressed matrices (kaldiio's kAutomaticMethod, as Kaldi's)
        self.ark_path = Path(ark_path).absolute()
        self.scp_path = Path(scp_path)
        self._ark: BinaryIO | None = None
        self._scp: TextIO | None = None
        self._tmp: list[Path] = []
        self._keys = KeyChecker(require_sorted, order_hint="keys must be written in LC_ALL=C sort order")
        self.count = 0

    def __enter__(self) -> "ArkScpWriter":
        for path in (self.ark_path, self.scp_path):
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            for path in (self.ark_path, self.scp_path):
                self._tmp.append(temporary_name(path))  # with the umask's permissions
            self._ark = open(self._tmp[0], "wb")
            self._scp = open(self._tmp[1], "w", encoding="utf-8")
        except BaseException:
            self._cleanup()
            raise
        return self

    def __call__(self, key: str, array: np.ndarray) -> None:
        """Append one entry."""
        if self._ark is None or self._scp is None:
            raise RuntimeError("ArkScpWriter is not open; use it in a 'with' block")
        where = f"{self.scp_path}"
        _check_key(key, where)
        self._keys.check(key, where)
        array = np.asarray(array)
        if array.dtype.type not in _FLOAT_TYPES or array.ndim not in (1, 2):
            raise DataError(f"{where}: key {key!r}: expected a float32/float64 vector or matrix, got "
                            f"{array.dtype} array of shape {array.shape}")
        if not np.isfinite(array).all():
            raise DataError(f"{where}: key {key!r}: array contains NaN or infinity")
        self._ark.write(key.encode("utf-8") + b" ")
        offset = self._ark.tell()
        if self.compress and array.ndim == 2:
            write_array(self._ark, np.ascontiguousarray(array), compression_method=kAutomaticMethod)
        else:
            write_array(self._ark, np.ascontiguousarray(array))
        self._scp.write(f"{key} {self.ark_path}:{offset}\n")
        self._keys.add(key)
        self.count += 1

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                assert self._ark is not None and self._scp is not None
                for handle in (self._ark, self._scp):
                    handle.flush()
                    os.fsync(handle.fileno())
                    handle.close()
                self.scp_path.unlink(missing_ok=True)
                os.replace(self._tmp[0], self.ark_path)
                os.replace(self._tmp[1], self.scp_path)
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        for handle in (self._ark, self._scp):
            if handle is not None and not handle.closed:
                handle.close()
        for path in self._tmp:
            path.unlink(missing_ok=True)
        self._tmp = []
        self._ark = self._scp = None


def merge_scps(parts: list[PathLike], out_scp: PathLike) -> int:
    """Concatenate scp ``parts`` in order into ``out_scp`` (atomically); return the number of entries.

    The merged keys must be unique and in ``LC_ALL=C sort`` order (parts of a sorted
    split, merged in job order), else DataError naming the part, line and key.
    """
    check_key = KeyChecker(order_hint="parts must be merged in sorted order")
    lines: list[str] = []
    for part in parts:
        part = Path(part)
        for number, fields in iter_table_lines(part):
            if len(fields) < 2:
                raise DataError(f"{part}:{number}: expected 'key ark_path:offset', got {' '.join(fields)!r}")
            check_key(fields[0], f"{part}:{number}")
            lines.append(f"{fields[0]} {' '.join(fields[1:])}\n")
    with atomic_open(out_scp) as handle:
        handle.writelines(lines)
    return len(lines)


class MatrixHeader(NamedTuple):
    """Where the rows of a binary Kaldi matrix lie in its ark: ``kind`` ``FM``/``DM`` (float32/float64 rows from
    ``data_offset``) or ``CM`` (Kaldi's kSpeechFeature compression: the per-column headers from ``data_offset``,
    then one byte per value, column after column; ``min_value`` and ``range`` scale the headers)."""

    rows: int
    cols: int
    kind: str
    data_offset: int
    min_value: float = 0.0
    range: float = 0.0


_PLAIN_TYPES = {"FM": np.dtype("<f4"), "DM": np.dtype("<f8")}


def _ark_position(entry: str) -> tuple[str, int] | None:
    path, _, offset = entry.rpartition(":")
    return (path, int(offset)) if path and offset.isdigit() else None


def read_matrix_header(entry: str) -> MatrixHeader | None:
    """The header of the matrix at an ``ark_path:offset`` entry when it is a binary ``FM``/``DM`` matrix or a
    ``CM`` compressed one, whose rows can then be read alone (:func:`read_matrix_rows`); None for anything
    else (``CM2``/``CM3`` of very short matrices, vectors, other entry forms), which is read whole."""
    position = _ark_position(entry)
    if position is None:
        return None
    path, offset = position
    with open(path, "rb") as handle:
        handle.seek(offset)
        head = handle.read(21)
    if len(head) >= 15 and head[:2] == b"\0B" and head[2:5].decode("latin-1")[:2] in _PLAIN_TYPES \
            and head[4:6] == b" \4" and head[10] == 4:
        rows, cols = struct.unpack("<i", head[6:10])[0], struct.unpack("<i", head[11:15])[0]
        return MatrixHeader(rows, cols, head[2:4].decode(), offset + 15)
    if len(head) == 21 and head[:5] == b"\0BCM ":
        min_value, value_range, rows, cols = struct.unpack("<ffii", head[5:21])
        return MatrixHeader(rows, cols, "CM", offset + 21, min_value, value_range)
    return None


def read_matrix_rows(entry: str, header: MatrixHeader, start: int, count: int) -> np.ndarray:
    """Rows ``start .. start + count - 1`` of the matrix at ``entry`` as float32: only their bytes of a plain
    matrix; of a ``CM`` matrix its one-byte values (a quarter of the float32 size), of which only those rows are
    decoded, as Kaldi (and kaldiio, bit for bit) decode them."""
    if start < 0 or count < 1 or start + count > header.rows:
        raise DataError(f"{entry}: rows {start}..{start + count - 1} of a {header.rows}-row matrix")
    path, _ = _ark_position(entry)  # type: ignore[misc]
    if header.kind == "CM":
        sizes = 8 * header.cols, header.rows * header.cols
    else:
        row_bytes = header.cols * _PLAIN_TYPES[header.kind].itemsize
        sizes = count * row_bytes,
    with open(path, "rb") as handle:
        handle.seek(header.data_offset + (0 if header.kind == "CM" else start * row_bytes))
        blocks = [handle.read(size) for size in sizes]
    if [len(b) for b in blocks] != list(sizes):
        raise DataError(f"{entry}: truncated ark: the {header.kind} matrix of {header.rows} x {header.cols} "
                        "is cut short")
    if header.kind != "CM":
        return np.frombuffer(blocks[0], dtype=_PLAIN_TYPES[header.kind]).reshape(count, header.cols).astype(
            np.float32)
    percentiles = np.frombuffer(blocks[0], dtype="<u2").astype(np.float32)
    percentiles = (header.min_value + percentiles * header.range / 65535.0).reshape(header.cols, 4)
    p0, p25, p75, p100 = (percentiles[:, i:i + 1] for i in range(4))
    values = np.frombuffer(blocks[1], dtype=np.uint8).reshape(header.cols, header.rows)[:, start:start + count]
    values = values.astype(np.float32)
    decoded = np.where(values <= 64, p0 + (p25 - p0) * values * (1 / 64.0),
                       np.where(values <= 192, p25 + (p75 - p25) * (values - 64.0) * (1 / 128.0),
                                p75 + (p100 - p75) * (values - 192.0) * (1 / 63.0)))
    return np.ascontiguousarray(decoded.T, dtype=np.float32)
