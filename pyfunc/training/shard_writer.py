"""Write a training data directory as shards (:mod:`pyfunc.data.shards`) and their ``shards.list``.

The utterances are shuffled once (``random_seed``) before they are cut into shards, so that every
shard mixes speakers; the labels are those stage 2 gives (sorted speaker ids -> 0..N-1,
:func:`pyfunc.training.examples.load_training_set`), and the same utterances are left out
(``skipped_utts``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import kaldiio
import numpy as np
from tqdm import tqdm

from pyfunc.data.arkio import check_ark_entry
from pyfunc.data.atomic import PathLike, write_lines
from pyfunc.data.audio import check_wav_entry
from pyfunc.data.shards import FEATS_SUFFIX, LABEL_SUFFIX, ShardRecord, matrix_bytes, write_shard
from pyfunc.errors import DataError
from pyfunc.training.examples import TrainingSet, load_training_set

logger = logging.getLogger(__name__)

LIST_NAME = "shards.list"


def _record(data: TrainingSet, index: int) -> ShardRecord:
    utt, entry = data.utts[index], data.entries[index]
    label = int(data.labels[index])
    speaker = data.speakers[label]
    if data.mode == "features":
        check_ark_entry(entry, f"{data.source}: {utt}")
        try:
            matrix = kaldiio.load_mat(entry)
        except Exception as err:  # kaldiio raises many kinds on a broken ark
            raise DataError(f"{data.source}: {utt}: cannot read features {entry!r}: {err}") from None
        return ShardRecord(utt, speaker, label, FEATS_SUFFIX, matrix_bytes(matrix))
    check_wav_entry(data.source, utt, entry)  # exists, readable header, not truncated
    suffix = Path(entry).suffix.lower() or ".wav"
    if suffix in (FEATS_SUFFIX, LABEL_SUFFIX):
        raise DataError(f"{data.source}: {utt}: audio file {entry!r}: the suffix {suffix} is reserved in shards")
    return ShardRecord(utt, speaker, label, suffix, Path(entry).read_bytes())


def make_shards(data_dir: PathLike, out_dir: PathLike, utts_per_shard: int = 1000, features: bool = False,
                random_seed: int = 0, progress: bool = True) -> Path:
    """Write ``out_dir/shard_NNNNNN.tar`` of ``utts_per_shard`` utterances each (the last may hold fewer)
    from wav.scp (or, with ``features``, feats.scp) and ``out_dir/shards.list`` (absolute paths); return the
    list's path. Each file is written atomically, the list last."""
    if utts_per_shard < 1:
        raise DataError(f"utterances per shard must be at least 1, got {utts_per_shard}")
    data = load_training_set(data_dir, "features" if features else "waveform")
    out_dir = Path(out_dir).absolute()
    order = np.random.default_rng(random_seed).permutation(len(data.utts))
    paths = []
    with tqdm(total=len(order), unit="utt", desc="shards", disable=not progress or None) as bar:
        for start in range(0, len(order), utts_per_shard):
            path = out_dir / f"shard_{len(paths):06d}.tar"
            records = []
            for index in order[start:start + utts_per_shard]:
                records.append(_record(data, int(index)))
                bar.update(1)
            write_shard(path, records)
            paths.append(path)
    list_path = out_dir / LIST_NAME
    write_lines(list_path, [str(p) for p in paths])
    logger.info("wrote %d shards of %d utterances (%d speakers) and %s", len(paths), len(order),
                len(data.speakers), list_path)
    return list_path
