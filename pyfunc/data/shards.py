"""Training shards: tar files of many utterances, read front to back (one open per shard, not per utterance).

A shard's first member is ``__index__.txt`` (one ``utt label`` line per utterance, in order), so a
reader can plan an epoch by reading only that. Then, per utterance, ``{utt}.spk`` (``speaker label``)
and its data: ``{utt}.npy`` (a float32 feature matrix, from feats.scp) or ``{utt}.<suffix>`` (the bytes
of the audio file of wav.scp, e.g. ``.wav``). A shard list (``shards.list``) names one shard per line;
relative paths are relative to the list's folder.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from pyfunc.data.atomic import PathLike, atomic_path
from pyfunc.errors import DataError

INDEX_NAME = "__index__.txt"
LABEL_SUFFIX = ".spk"
FEATS_SUFFIX = ".npy"


@dataclass
class ShardRecord:
    """One utterance of a shard: its data is audio file bytes (``suffix`` e.g. ``.wav``) or a ``.npy`` matrix."""

    utt: str
    speaker: str
    label: int
    suffix: str
    data: bytes

    @property
    def is_features(self) -> bool:
        return self.suffix == FEATS_SUFFIX


@dataclass
class ShardInfo:
    """A shard of a list: its path, where the list names it (``LIST:LINE``) and its index."""

    path: Path
    where: str
    utts: list[str]
    labels: list[int]


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o444, 0  # the same records give the same bytes
    tar.addfile(info, io.BytesIO(data))


def write_shard(path: PathLike, records: Sequence[ShardRecord]) -> None:
    """Write ``records`` as the shard ``path``, atomically."""
    with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        _add(tar, INDEX_NAME, "".join(f"{r.utt} {r.label}\n" for r in records).encode())
        for r in records:
            _add(tar, r.utt + LABEL_SUFFIX, f"{r.speaker} {r.label}\n".encode())
            _add(tar, r.utt + r.suffix, r.data)


def matrix_bytes(matrix: np.ndarray) -> bytes:
    """A feature matrix as the bytes of a float32 ``.npy`` member."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(matrix, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def read_matrix(record: ShardRecord, where: str) -> np.ndarray:
    """The feature matrix of a ``.npy`` record; DataError naming ``where`` when it is not one."""
    try:
        matrix = np.load(io.BytesIO(record.data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{where}: cannot read the feature matrix: {err}") from None
    if matrix.ndim != 2:
        raise DataError(f"{where}: expected a feature matrix, got shape {matrix.shape}")
    return matrix


def _parse_index(text: str, where: str) -> tuple[list[str], list[int]]:
    utts, labels = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit():
            raise DataError(f"{where}: {INDEX_NAME} line {number}: expected 'utterance label', got {line!r}")
        utts.append(fields[0])
        labels.append(int(fields[1]))
    return utts, labels


def read_shard_index(path: Path, where: str) -> tuple[list[str], list[int]]:
    """The utterances and labels of a shard, from its first member only."""
    try:
        with tarfile.open(path, "r|") as tar:
            member = tar.next()
            if member is None or member.name != INDEX_NAME or not member.isfile():
                raise DataError(f"{where}: {path}: not a shard: its first member is not {INDEX_NAME} "
                                "(make shards with steps/make_shards.py)")
            text = tar.extractfile(member).read().decode("utf-8")
    except DataError:
        raise
    except (tarfile.TarError, OSError, UnicodeDecodeError) as err:
        raise DataError(f"{where}: {path}: cannot read the shard: {err}") from None
    return _parse_index(text, f"{where}: {path}")


def read_shard_list(list_path: PathLike) -> list[ShardInfo]:
    """The shards a shard list names, each with its index; DataError naming the list and line of a bad entry."""
    list_path = Path(list_path)
    try:
        lines = list_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{list_path}: cannot read the shard list: {err}") from None
    shards = []
    for number, line in enumerate(lines, start=1):
        where = f"{list_path}:{number}"
        text = line.strip()
        if not text or len(text.split()) != 1:
            raise DataError(f"{where}: expected one shard path, got {line!r}")
        path = Path(text) if Path(text).is_absolute() else list_path.parent / text
        if not path.is_file():
            raise DataError(f"{where}: shard {str(path)!r} not found")
        utts, labels = read_shard_index(path, where)
        shards.append(ShardInfo(path, where, utts, labels))
    if not shards:
        raise DataError(f"{list_path}: no shards listed")
    return shards


def _next_member(members: Iterator[tarfile.TarInfo], name: str, where: str) -> tarfile.TarInfo:
    """The next member, which must be ``name`` (or, ending with ``.``, start with it)."""
    member = next(members, None)
    expected = member is not None and (member.name.startswith(name) if name.endswith(".") else member.name == name)
    if not expected or not member.isfile():
        found = "<end of file>" if member is None else repr(member.name)
        want = repr(name + "*" if name.endswith(".") else name)
        raise DataError(f"{where}: member {found} where its index has {want}")
    return member


def iter_shard(shard: ShardInfo, skip: int = 0) -> Iterator[ShardRecord]:
    """The records of ``shard`` in order, after the first ``skip`` (read past, not returned).

    A shard whose members disagree with its index is a DataError naming the shard and member.
    """
    where = f"{shard.where}: {shard.path}"
    try:
        with tarfile.open(shard.path, "r:") as tar:
            members = iter(tar)
            first = next(members, None)
            if first is None or first.name != INDEX_NAME:
                raise DataError(f"{where}: not a shard: its first member is not {INDEX_NAME}")
            for position, utt in enumerate(shard.utts):  # front to back; skipped data is seeked past
                label_member = _next_member(members, utt + LABEL_SUFFIX, where)
                label_text = tar.extractfile(label_member).read().decode("utf-8") if position >= skip else ""
                data_member = _next_member(members, utt + ".", where)
                if position < skip:
                    continue
                speaker, label = label_text.split()
                yield ShardRecord(utt, speaker, int(label), data_member.name[len(utt):],
                                  tar.extractfile(data_member).read())
    except DataError:
        raise
    except (tarfile.TarError, OSError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"{where}: cannot read the shard: {err}") from None
