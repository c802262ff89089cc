"""Atomic file writing: every artefact goes to a temporary name beside it and is renamed when
complete, so a killed job leaves either the old complete file or none."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

PathLike = str | os.PathLike


def temporary_name(path: Path) -> Path:
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
    tmp = temporary_name(path)
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
