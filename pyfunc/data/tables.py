"""Kaldi-style text tables (``key value ...`` per line): reading with checked keys, writing."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

from pyfunc.data.atomic import PathLike, write_lines
from pyfunc.errors import DataError


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


def read_text_table(
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
    return {k: v[0] for k, v in read_text_table(path, 2, 2, check_sorted).items()}


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
