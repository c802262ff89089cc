"""Embedding tables (stage 3's ``xvector.scp``/``xvector_crops.scp``): reading into arrays, writing."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import kaldiio
import numpy as np

from pyfunc.data.arkio import ArkScpWriter, check_ark_entry
from pyfunc.data.atomic import PathLike
from pyfunc.data.tables import read_scp
from pyfunc.errors import DataError

logger = logging.getLogger(__name__)

XVECTOR_SCP = "xvector.scp"
CROPS_SCP = "xvector_crops.scp"


def open_scp(scp_path: PathLike):
    """kaldiio's lazy table of ``scp_path`` (DataError when missing or malformed).

    Entries that kaldiio would run as shell commands are refused unless pipes are allowed.
    (Whether stage 3's inputs changed since it wrote the scp is the stage drivers' check:
    :func:`pyfunc.pipeline.score_stage.refuse_stale_embeddings`.)
    """
    scp_path = Path(scp_path)
    if not scp_path.is_file():
        raise DataError(f"{scp_path}: file not found")
    for key, entry in read_scp(scp_path).items():
        check_ark_entry(entry, f"{scp_path}: key {key!r}")
    try:
        return kaldiio.load_scp(str(scp_path), max_cache_fd=4)
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"{scp_path}: not a valid scp file ({err})") from None


def _load_entry(table, scp_path: Path, key: str):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # kaldiio warns before re-raising; our message says it all
            return table[key]
    except Exception as err:  # noqa: BLE001 - kaldiio raises many kinds for a bad ark
        raise DataError(f"{scp_path}: key {key!r}: cannot read its ark entry ({type(err).__name__}: {err})") \
            from None


def iter_scp_arrays(scp_path: PathLike, keys: Sequence[str] | None = None, ndim: int = 1, table=None):
    """Yield ``(key, array)`` for ``keys`` (default: every key, in scp order), checking each has ``ndim``
    dimensions and the same trailing dimension; DataError names the scp and key at fault.
    ``table``: ``open_scp(scp_path)`` when the caller has it already."""
    scp_path = Path(scp_path)
    table = open_scp(scp_path) if table is None else table
    if keys is None:
        keys = list(table)
    dim = None
    for key in keys:
        if key not in table:
            raise DataError(f"{scp_path}: no entry for utterance {key!r}")
        array = np.asarray(_load_entry(table, scp_path, key))
        kind = "vector" if ndim == 1 else "matrix"
        if array.ndim != ndim or array.shape[-1] == 0 or (ndim == 2 and array.shape[0] == 0):
            raise DataError(f"{scp_path}: key {key!r}: expected a non-empty {kind}, got shape {array.shape}")
        if dim is None:
            dim = array.shape[-1]
        elif array.shape[-1] != dim:
            raise DataError(f"{scp_path}: key {key!r}: dimension {array.shape[-1]} differs from the {dim} "
                            "of the earlier entries")
        if not np.isfinite(array).all():
            raise DataError(f"{scp_path}: key {key!r}: contains NaN or infinity")
        yield key, array


def load_embeddings(scp_path: PathLike, keys: Sequence[str] | None = None, table=None
                    ) -> tuple[list[str], np.ndarray]:
    """Read one vector per key from ``scp_path``: ``(keys, float32 array num_keys x dim)``.

    ``keys`` selects (and orders) the rows; by default every entry in scp order. A missing
    key, an unreadable ark or an entry that is not a vector of the common dimension is a
    DataError naming the scp and the key. ``table``: see :func:`iter_scp_arrays`.
    """
    out_keys, rows = [], []
    for key, array in iter_scp_arrays(scp_path, keys, ndim=1, table=table):
        out_keys.append(key)
        rows.append(array.astype(np.float32, copy=False))
    if not rows:
        raise DataError(f"{scp_path}: no embeddings")
    return out_keys, np.stack(rows)


def write_vectors(scp_path: PathLike, keys: Iterable[str], array: np.ndarray,
                  ark_path: PathLike | None = None) -> None:
    """Write row ``i`` of ``array`` under ``keys[i]`` to an ark/scp pair atomically (keys sorted, unique).

    The ark defaults to ``scp_path`` with the suffix ``.ark``.
    """
    scp_path = Path(scp_path)
    ark_path = Path(ark_path) if ark_path is not None else scp_path.with_suffix(".ark")
    keys = list(keys)
    if len(keys) != len(array):
        raise DataError(f"{scp_path}: {len(keys)} keys for {len(array)} rows")
    with ArkScpWriter(ark_path, scp_path) as write:
        for key, row in zip(keys, array):
            write(key, row)
