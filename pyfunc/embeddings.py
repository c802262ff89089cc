"""Embeddings in Kaldi ark/scp form: reading into arrays, L2 normalisation, speaker means, writing.

An embedding directory (stage 3) holds ``xvector.scp`` with one raw (not normalised)
float vector per utterance and, for the seed evaluation protocol, ``xvector_crops.scp``
with one ``num_crops x dim`` matrix per utterance.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import kaldiio
import numpy as np

from pyfunc.arkio import ArkScpWriter, check_ark_entry
from pyfunc.errors import DataError
from pyfunc.fileio import PathLike, read_scp
from pyfunc.stamps import EXTRACT_STAMP, refuse_stale

logger = logging.getLogger(__name__)

XVECTOR_SCP = "xvector.scp"
CROPS_SCP = "xvector_crops.scp"


def open_scp(scp_path: PathLike):
    """kaldiio's lazy table of ``scp_path`` (DataError when missing, malformed or stale).

    Entries that kaldiio would run as shell commands are refused unless pipes are
    allowed; an scp that stage 3 wrote is refused once that stage's inputs (model,
    data) changed after it ran (see pyfunc.stamps).
    """
    scp_path = Path(scp_path)
    if not scp_path.is_file():
        raise DataError(f"{scp_path}: file not found")
    for key, entry in read_scp(scp_path).items():
        check_ark_entry(entry, f"{scp_path}: key {key!r}")
    refuse_stale(scp_path.parent / EXTRACT_STAMP, scp_path, "rerun stage 3 (steps/extract_embeddings.py)")
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


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm (norms computed in float64; the dtype of ``x`` is kept).

    A zero row is a DataError: it has no direction to score.
    """
    x = np.asarray(x)
    norms = np.sqrt(np.einsum("...i,...i->...", x, x, dtype=np.float64))
    if (norms == 0).any():
        raise DataError(f"cannot L2-normalise a zero vector (row {int(np.flatnonzero(norms.ravel() == 0)[0])})")
    out = x / norms[..., None]
    return out.astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64, copy=False)


def load_crop_means(scp_path: PathLike, keys: Sequence[str], table=None) -> np.ndarray:
    """For each key, the mean of its L2-normalised crop embeddings (a ``num_crops x dim`` matrix in
    ``scp_path``): ``num_keys x dim`` float64. The mean of the crop cosine matrix of two utterances
    is the dot product of these means, so the crops themselves need not be kept in memory."""
    means = None
    for row, (key, crops) in enumerate(iter_scp_arrays(scp_path, keys, ndim=2, table=table)):
        if means is None:
            means = np.empty((len(keys), crops.shape[1]), dtype=np.float64)
        means[row] = l2_normalise(crops.astype(np.float64)).mean(axis=0)
    if means is None:
        raise DataError(f"{scp_path}: no crop embeddings")
    return means


def speaker_means(keys: Sequence[str], emb: np.ndarray,
                  utt2spk: Mapping[str, str]) -> tuple[list[str], np.ndarray]:
    """Per-speaker mean of the L2-normalised embeddings, L2-normalised again (the AS-norm cohort).

    Returns ``(sorted speakers, float64 array num_speakers x dim)``; every key must be in ``utt2spk``.
    """
    if len(keys) != len(emb):
        raise DataError(f"{len(keys)} keys for {len(emb)} embeddings")
    missing = [key for key in keys if key not in utt2spk]
    if missing:
        raise DataError(f"utterance {missing[0]!r} has no speaker in utt2spk ({len(missing)} such)")
    speakers, index = np.unique(np.asarray([utt2spk[key] for key in keys]), return_inverse=True)
    sums = np.zeros((len(speakers), emb.shape[1]), dtype=np.float64)
    np.add.at(sums, index, l2_normalise(np.asarray(emb, dtype=np.float64)))
    counts = np.bincount(index, minlength=len(speakers))
    return [str(s) for s in speakers], l2_normalise(sums / counts[:, None])


def cohort_from_scp(scp_path: PathLike, utt2spk: Mapping[str, str],
                    block: int = 20000) -> tuple[list[str], np.ndarray]:
    """:func:`speaker_means` of every utterance of ``scp_path``, read in blocks so that a large
    cohort (a million utterances) never sits in memory at once."""
    scp_path = Path(scp_path)
    speakers = sorted(set(utt2spk.values()))
    spk_index = {spk: i for i, spk in enumerate(speakers)}
    sums = counts = None
    keys: list[str] = []
    rows: list[np.ndarray] = []

    def flush() -> None:
        nonlocal sums, counts
        if not rows:
            return
        unit = l2_normalise(np.stack(rows).astype(np.float64))
        if sums is None:
            sums = np.zeros((len(speakers), unit.shape[1]), dtype=np.float64)
            counts = np.zeros(len(speakers), dtype=np.int64)
        index = np.fromiter((spk_index[utt2spk[key]] for key in keys), dtype=np.int64, count=len(keys))
        np.add.at(sums, index, unit)
        counts += np.bincount(index, minlength=len(speakers))
        keys.clear()
        rows.clear()

    total = 0
    for key, vector in iter_scp_arrays(scp_path, None, ndim=1):
        if key not in utt2spk:
            raise DataError(f"{scp_path}: utterance {key!r} has no speaker in the cohort utt2spk")
        keys.append(key)
        rows.append(vector)
        total += 1
        if len(rows) >= block:
            flush()
    flush()
    if sums is None or counts is None:
        raise DataError(f"{scp_path}: no embeddings")
    present = counts > 0
    if not present.all():
        logger.info("%d of %d cohort speakers have no embedding in %s; using the other %d",
                    int((~present).sum()), len(speakers), scp_path, int(present.sum()))
    if total < len(utt2spk):
        logger.info("cohort: %d of the %d utterances of utt2spk have embeddings", total, len(utt2spk))
    kept = [spk for spk, ok in zip(speakers, present) if ok]
    return kept, l2_normalise(sums[present] / counts[present, None])


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
