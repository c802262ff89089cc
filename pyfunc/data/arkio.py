"""Atomic writing of Kaldi binary ark/scp pairs, and in-order merging of scp parts.

The ark holds ``key<space>`` then a Kaldi binary float vector (``FV``/``DV``) or
matrix (``FM``/``DM``) per entry, as Kaldi's ``ark:`` writers do; the scp holds
``key ark_path:byte_offset`` lines. Both are written under temporary names and
renamed into place only when the writer closes without error, so a killed or
failed job leaves no partial files. The ark path written into the scp is made
absolute, so the scp reads from any working directory (kaldiio and Kaldi both
resolve relative ark paths against the working directory, not the scp's folder).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, TextIO

import numpy as np
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

    def __init__(self, ark_path: PathLike, scp_path: PathLike, require_sorted: bool = True) -> None:
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
