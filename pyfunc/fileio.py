"""Atomic file writing and Kaldi-style text tables (``key value ...`` per line).

Every artefact is written under a temporary name in the same folder and renamed
when complete, so a killed job leaves either the old complete file or none.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

from pyfunc.errors import DataError

PathLike = str | os.PathLike


def _temporary_name(path: Path) -> Path:
    """A new empty file beside ``path``, with the permissions the umask gives (mkstemp gives 0600)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_temporaries(directory: PathLike, prefixes: Iterable[str]) -> list[Path]:
    """Remove the temporary files that killed writers of ``directory/<prefix>...`` left behind.

    A temporary of ``path`` is ``.<name of path>.<random>.tmp`` (see :func:`atomic_path`);
    a writer killed by SIGKILL cannot remove its own. Call this only when no other
    writer of those files is running. Returns the removed paths.
    """
    removed = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    for prefix in prefixes:
        for path in directory.glob(f".{prefix}*.tmp"):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_paths(paths: Sequence[PathLike]) -> Iterator[list[Path]]:
    """Temporary paths for several files, renamed onto them in the given order when the block succeeds.

    Nothing is replaced until every file is complete, so a failure leaves all the old
    files as they were; name last the file whose presence marks the output complete.
    """
    with contextlib.ExitStack() as stack:
        temporaries = [stack.enter_context(atomic_path(path)) for path in reversed(paths)]  # exits first-to-last
        yield temporaries[::-1]


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """Open a temporary file for writing; it replaces ``path`` when closed without error."""
    if "b" in mode:
        encoding = None
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())


def write_lines(path: PathLike, lines: Iterable[str]) -> None:
    """Write ``lines`` (without newlines) to ``path`` atomically."""
    with atomic_open(path) as handle:
        for line in lines:
            handle.write(line + "\n")


def write_table(path: PathLike, table: Mapping[str, object] | Iterable[Sequence[object]]) -> None:
    """Write a Kaldi table (``key value...``) atomically, sorted by key when given a mapping."""
    if isinstance(table, Mapping):
        rows: Iterable[Sequence[object]] = ((key, table[key]) for key in sorted(table))
    else:
        rows = table
    write_lines(path, (" ".join(_flatten(row)) for row in rows))


def _flatten(row: Sequence[object]) -> list[str]:
    out: list[str] = []
    for item in row:
        if isinstance(item, (list, tuple)):
            out.extend(str(x) for x in item)
        else:
            out.append(str(item))
    return out


class KeyChecker:
    """Checks that keys are unique and, with ``check_sorted``, in ``LC_ALL=C sort`` order, as Kaldi requires.

    Call it with each key and where it stands (``file:line``); one checker can span several files.
    """

    def __init__(self, check_sorted: bool = True, order_hint: str = "sort with LC_ALL=C sort") -> None:
        self.check_sorted, self.order_hint = check_sorted, order_hint
        self.seen: set[str] = set()
        self.previous: str | None = None

    def check(self, key: str, where: str) -> None:
        """Raise DataError naming ``where`` if ``key`` repeats or comes out of order."""
        if key in self.seen:
            raise DataError(f"{where}: duplicate key {key!r}")
        if self.check_sorted and self.previous is not None and key.encode() < self.previous.encode():
            raise DataError(f"{where}: key {key!r} is out of order (after {self.previous!r}); {self.order_hint}")

    def add(self, key: str) -> None:
        """Record ``key`` as taken."""
        self.seen.add(key)
        self.previous = key

    def __call__(self, key: str, where: str) -> None:
        self.check(key, where)
        self.add(key)


def iter_table_lines(path: PathLike) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)`` for each non-empty line of a text table."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                fields = line.split()
                if fields:
                    yield number, fields
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a UTF-8 text file ({err})") from None


def read_table(
    path: PathLike,
    min_fields: int = 2,
    max_fields: int | None = None,
    check_sorted: bool = False,
) -> dict[str, list[str]]:
    """Read ``key field...`` lines into a dict, checking field counts and unique keys.

    With ``check_sorted`` the keys must also be in ``LC_ALL=C sort`` order, as Kaldi requires.
    """
    table: dict[str, list[str]] = {}
    check_key = KeyChecker(check_sorted)
    for number, fields in iter_table_lines(path):
        if len(fields) < min_fields or (max_fields is not None and len(fields) > max_fields):
            expected = f"{min_fields}" if max_fields == min_fields else f"at least {min_fields}"
            if max_fields is not None and max_fields != min_fields:
                expected = f"{min_fields} to {max_fields}"
            raise DataError(f"{path}:{number}: expected {expected} fields, got {len(fields)}: {' '.join(fields)!r}")
        check_key(fields[0], f"{path}:{number}")
        table[fields[0]] = fields[1:]
    return table


def read_map(path: PathLike, check_sorted: bool = False) -> dict[str, str]:
    """Read a two-column table ``key value``."""
    return {k: v[0] for k, v in read_table(path, 2, 2, check_sorted).items()}


def read_scp(path: PathLike, check_sorted: bool = False) -> dict[str, str]:
    """Read an scp file: the key, then the rest of the line (which may contain spaces)."""
    path = Path(path)
    table: dict[str, str] = {}
    check_key = KeyChecker(check_sorted)
    for number, fields in iter_table_lines(path):
        if len(fields) < 2:
            raise DataError(f"{path}:{number}: expected 'key value', got {' '.join(fields)!r}")
        check_key(fields[0], f"{path}:{number}")
        table[fields[0]] = " ".join(fields[1:])
    return table
