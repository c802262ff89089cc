"""Kaldi's table tools without Kaldi: copy-vector, copy-feats, feat-to-dim, feat-to-len, vector-norms,
mean-vector, subset. Each reads an rspecifier and writes a wspecifier (or a wxfilename: ``-`` or a
file) as the Kaldi program of that name does (:mod:`pyfunc.data.table_io`), and returns what it did
for the log line. Values are written as Kaldi's BaseFloat (float32)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import numpy as np

from pyfunc.data.atomic import PathLike
from pyfunc.data.kaldi_text import vector_text
from pyfunc.data.table_io import TableWriter, is_wspecifier, iter_rspecifier, write_binary_output, write_text_output
from pyfunc.data.tables import iter_table_lines
from pyfunc.errors import DataError

logger = logging.getLogger(__name__)

COMPRESSION_METHODS = range(1, 8)  # Kaldi's CompressionMethod: 1 automatic ... 7 one byte in [0, 1]


_KINDS = {1: ("vector", "copy-feats and feat-to-len read matrices"),
          2: ("matrix", "copy-vector and vector-norms read vectors")}


def _arrays(rspecifier: str, ndim: int) -> Iterator[tuple[str, np.ndarray]]:
    """The entries of ``rspecifier``; a DataError naming the key at the first one that is not ``ndim``-D."""
    kind, hint = _KINDS[ndim]
    for key, array in iter_rspecifier(rspecifier):
        if array.ndim != ndim:
            got = f"a matrix of shape {array.shape}" if array.ndim == 2 else f"a vector of dimension {array.shape[0]}"
            raise DataError(f"rspecifier {rspecifier}: key {key!r}: expected a {kind}, got {got} ({hint})")
        yield key, array


def _vectors(rspecifier: str) -> Iterator[tuple[str, np.ndarray]]:
    return _arrays(rspecifier, 1)


def _matrices(rspecifier: str) -> Iterator[tuple[str, np.ndarray]]:
    return _arrays(rspecifier, 2)


def copy_vectors(rspecifier: str, wspecifier: str) -> int:
    """copy-vector: every vector of ``rspecifier`` to ``wspecifier``; returns the count."""
    with TableWriter(wspecifier) as writer:
        for key, vector in _vectors(rspecifier):
            writer.write(key, vector.astype(np.float32, copy=False))
    return writer.count


def copy_feats(rspecifier: str, wspecifier: str, compress: bool = False, compression_method: int = 1) -> int:
    """copy-feats: every matrix of ``rspecifier`` to ``wspecifier``, with ``compress`` in Kaldi's compressed
    form (``compression_method`` 1-7 as Kaldi's ``--compression-method``); returns the count."""
    if compression_method not in COMPRESSION_METHODS:
        raise DataError(f"--compression-method {compression_method}: expected 1 to 7")
    with TableWriter(wspecifier, compression_method=compression_method if compress else None) as writer:
        for key, matrix in _matrices(rspecifier):
            writer.write(key, matrix.astype(np.float32, copy=False))
    return writer.count


def feat_to_dim(rspecifier: str, out: str = "-") -> int:
    """feat-to-dim: the dimension of the first entry to the wxfilename ``out``, or of every entry to ``out`` when
    it is a wspecifier. Vectors count too (their length). Returns the first dimension."""
    first = None
    if is_wspecifier(out):
        with TableWriter(out) as writer:
            for key, array in iter_rspecifier(rspecifier):
                writer.write(key, int(array.shape[-1]))
                first = int(array.shape[-1]) if first is None else first
    else:
        for _, array in iter_rspecifier(rspecifier):
            first = int(array.shape[-1])
            break
    if first is None:
        raise DataError(f"rspecifier {rspecifier}: could not read any entry (empty table?)")
    if not is_wspecifier(out):
        write_text_output(out, f"{first}\n", "dim-wxfilename")
    return first


def feat_to_len(rspecifier: str, wspecifier: str | None = None) -> int:
    """feat-to-len: the frames of every matrix to ``wspecifier`` (key and count), or without one the total
    printed on standard output. Returns the total."""
    total = 0
    if wspecifier is None:
        for _, matrix in _matrices(rspecifier):
            total += matrix.shape[0]
        write_text_output("-", f"{total}\n", "stdout")
        return total
    with TableWriter(wspecifier) as writer:
        for key, matrix in _matrices(rspecifier):
            writer.write(key, int(matrix.shape[0]))
            total += matrix.shape[0]
    return total


def vector_norms(rspecifier: str, wspecifier: str = "ark,t:-") -> int:
    """The L2 norm of every vector (a BaseFloat table, as ``key 12.34567 `` in text); returns the count."""
    with TableWriter(wspecifier) as writer:
        for key, vector in _vectors(rspecifier):
            writer.write(key, np.float32(np.linalg.norm(vector.astype(np.float64))))
    return writer.count


def mean_vector(rspecifier: str, out: str = "-", binary: bool = False) -> tuple[int, np.ndarray]:
    """The mean of every vector of ``rspecifier`` (summed in float64, as Kaldi's ivector-mean) to the
    wxfilename ``out``: Kaldi's text form ``" [ ... ]"`` or, with ``binary``, its binary vector."""
    total, count = None, 0
    for key, vector in _vectors(rspecifier):
        if total is None:
            total = np.zeros(vector.shape[0], np.float64)
        elif vector.shape[0] != total.shape[0]:
            raise DataError(f"rspecifier {rspecifier}: key {key!r}: dimension {vector.shape[0]} differs from "
                            f"the {total.shape[0]} of the earlier vectors")
        total += vector
        count += 1
    if total is None:
        raise DataError(f"rspecifier {rspecifier}: no vectors to average")
    mean = (total / count).astype(np.float32)
    if binary:
        write_binary_output(out, b"\0BFV \4" + np.int32(mean.shape[0]).tobytes() + mean.astype("<f4").tobytes(),
                            "mean-wxfilename")
    else:
        write_text_output(out, vector_text(mean), "mean-wxfilename")
    return count, mean


def read_key_list(path: PathLike) -> set[str]:
    """The keys (first field of every line) of a Kaldi list, table or scp."""
    return {fields[0] for _, fields in iter_table_lines(path)}


def subset_table(rspecifier: str, wspecifier: str, include: PathLike | None = None,
                 exclude: PathLike | None = None) -> tuple[int, int]:
    """The entries of ``rspecifier`` whose key is (``include``) or is not (``exclude``) in a list, in their order.

    Returns (entries written, entries read). Keys of ``include`` that the table lacks are logged.
    """
    if (include is None) == (exclude is None):
        raise DataError("subset: give exactly one of --include FILE and --exclude FILE")
    option, path = ("--include", include) if include is not None else ("--exclude", exclude)
    if not Path(path).is_file():
        raise DataError(f"{option} {path}: file not found")
    keys = read_key_list(path)
    keep = include is not None
    seen = 0
    found: set[str] = set()
    with TableWriter(wspecifier) as writer:
        for key, array in iter_rspecifier(rspecifier):
            seen += 1
            if (key in keys) == keep:
                found.add(key)
                writer.write(key, array.astype(np.float32, copy=False))
    if keep and len(found) < len(keys):
        missing = sorted(keys - found)
        logger.warning("%d key(s) of %s are not in %s, e.g. %s", len(missing), include, rspecifier, missing[:3])
    return writer.count, seen
