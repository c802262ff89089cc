"""Kaldi tables by rspecifier and wspecifier (``scp:feats.scp``, ``ark:x.ark``, ``ark,t:-``, ``ark,scp:a.ark,a.scp``).

Specifiers are split by kaldiio's ``parse_specifier`` after the options that only Kaldi
knows and that change nothing here (``b``, ``no``, ``np``, ``ns``, ``ncs``, ``bg``, ``nf``)
are set aside. Binary objects are read and written by kaldiio (``FV``/``FM``/``DV``/``DM``
and the compressed ``CM``/``CM2``/``CM3``); text objects are read and written here
(:mod:`pyfunc.data.kaldi_text`), because kaldiio's text forms are not Kaldi's (it prints
floats with Python's ``repr`` and reads ``[ 1 0.5 ]`` as integers because the first value is).

``-`` is standard input or output. Pipe specifiers (``ark:cmd |``, ``ark:| cmd``) and scp
entries that are commands run a shell, so they are refused unless pipes are allowed
(``--allow-pipes``), as for ``wav.scp``. Files are written atomically (the ark, then the
scp); an error leaves no partial file. Every problem is a DataError naming the argument.
"""

from __future__ import annotations

import io
import logging
import os
import re
import struct
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Iterator

import kaldiio
import numpy as np
from kaldiio.matio import read_matrix_or_vector, write_array
from kaldiio.utils import open_like_kaldi, parse_specifier

from pyfunc.data.arkio import check_ark_entry
from pyfunc.data.atomic import temporary_name
from pyfunc.data.audio import is_pipe, pipes_allowed
from pyfunc.data.kaldi_text import number_text, object_text, read_text_object
from pyfunc.errors import DataError

logger = logging.getLogger(__name__)

# Options Kaldi accepts that change nothing here (binary is the default; flushing, sorting hints, background).
_NO_EFFECT = {"b", "no", "np", "ns", "ncs", "bg", "nf"}
_READ_OPTIONS = {"ark", "scp", "t", "o", "p", "s", "cs"} | _NO_EFFECT
_WRITE_OPTIONS = {"ark", "scp", "t", "f", "p", "b", "nf"}
EXAMPLES = "e.g. scp:feats.scp, ark:feats.ark, ark,t:- or ark,scp:out.ark,out.scp"
_ARK_OFFSET = re.compile(r"^(.*):(\d+)$")


@dataclass(frozen=True)
class Rspecifier:
    """Where a table is read from: ``kind`` ``ark`` or ``scp``, ``path`` a file, ``-`` or ``cmd |``."""

    text: str
    kind: str
    path: str
    permissive: bool = False


@dataclass(frozen=True)
class Wspecifier:
    """Where a table is written: the ark (a file, ``-`` or ``| cmd``), optionally an scp, text or binary."""

    text: str
    ark: str
    scp: str | None = None
    as_text: bool = False
    flush: bool = False


def _split(spec: str, arg: str, allowed: set[str]) -> tuple[list[str], dict]:
    head, colon, files = spec.partition(":")
    options = [o.strip() for o in head.split(",")] if colon else []
    if not colon or not files.strip() or not options or any(o not in allowed for o in options):
        unknown = [o for o in options if o not in allowed]
        why = f"unknown option {unknown[0]!r}" if unknown else "expected OPTIONS:FILE"
        raise DataError(f"{arg} {spec!r}: not a Kaldi {arg} ({why}; {EXAMPLES})")
    kept = [o for o in options if o not in _NO_EFFECT]
    try:
        parsed = parse_specifier(",".join(kept) + ":" + files)
    except ValueError as err:
        raise DataError(f"{arg} {spec!r}: not a Kaldi {arg} ({err}; {EXAMPLES})") from None
    return options, parsed


def parse_rspecifier(spec: str, arg: str = "rspecifier") -> Rspecifier:
    """Parse a Kaldi rspecifier; DataError naming ``arg`` when it is not one."""
    _, parsed = _split(spec, arg, _READ_OPTIONS)
    if parsed["ark"] is not None and parsed["scp"] is not None:
        raise DataError(f"{arg} {spec!r}: give ark or scp, not both, when reading ({EXAMPLES})")
    kind = "ark" if parsed["ark"] is not None else "scp"
    return Rspecifier(spec, kind, parsed[kind].strip() if is_pipe(parsed[kind]) else parsed[kind], parsed["p"])


def parse_wspecifier(spec: str, arg: str = "wspecifier") -> Wspecifier:
    """Parse a Kaldi wspecifier (``ark[,t][,scp]:...``); DataError naming ``arg`` when it is not one."""
    options, parsed = _split(spec, arg, _WRITE_OPTIONS)
    if parsed["ark"] is None:
        raise DataError(f"{arg} {spec!r}: writing needs an ark (ark:FILE or ark,scp:FILE.ark,FILE.scp)")
    if "scp" in options and options.index("scp") < options.index("ark"):
        raise DataError(f"{arg} {spec!r}: Kaldi takes 'ark,scp:ARK,SCP', not 'scp,ark'")
    if parsed["scp"] is not None and (parsed["ark"] == "-" or parsed["ark"].lstrip().startswith("|")):
        raise DataError(f"{arg} {spec!r}: an scp needs its ark in a file, not on a stream")
    return Wspecifier(spec, parsed["ark"], parsed["scp"], parsed["t"], parsed["f"])


def is_wspecifier(text: str) -> bool:
    """Whether ``text`` is a wspecifier (``ark...:``) rather than a plain file name (``-``, ``dim.txt``)."""
    head, colon, _ = text.partition(":")
    return bool(colon) and "ark" in [o.strip() for o in head.split(",")]


def _refuse_pipe(command: str, arg: str) -> None:
    if not pipes_allowed():
        raise DataError(f"{arg} {command!r} runs a command; run with --allow-pipes to execute it")


# ---------------------------------------------------------------------------------------------
# Reading


class _Reader:
    """A stream that first gives back ``head`` (bytes already read from ``fd``); ``short``: a read came up short."""

    def __init__(self, head: bytes, fd: BinaryIO) -> None:
        self.head, self.fd, self.short = head, fd, False

    def read(self, size: int = -1) -> bytes:
        data = b""
        if self.head:
            data, self.head = (self.head, b"") if size < 0 or size >= len(self.head) else \
                (self.head[:size], self.head[size:])
        if size < 0 or len(data) < size:
            data += self.fd.read(-1 if size < 0 else size - len(data))
        self.short = self.short or (size > 0 and len(data) < size)
        return data


def _read_object(fd: BinaryIO, where: str) -> np.ndarray:
    """The Kaldi object (binary ``\\0B...`` or text ``[ ... ]``) that starts at ``fd``'s position."""
    head = fd.read(2)
    if not head:
        raise DataError(f"{where}: no object (the input ends here)")
    try:
        if head == b"\0B":
            reader = _Reader(head, fd)
            array = read_matrix_or_vector(reader)
            if reader.short:
                raise DataError(f"{where}: truncated object (the input ends inside it)")
            return np.asarray(array)
        return read_text_object(head + fd.readline(), fd.readline, where)
    except DataError:
        raise
    except (AssertionError, ValueError, struct.error, UnicodeDecodeError) as err:
        raise DataError(f"{where}: not a Kaldi float vector or matrix, or truncated "
                        f"({type(err).__name__}: {err})") from None


def _read_key(fd: BinaryIO, where: str) -> str | None:
    chars = bytearray()
    while True:
        char = fd.read(1)
        if char in (b" ", b""):
            break
        if char in (b"\n", b"\t", b"\r") and not chars:
            continue  # Kaldi skips whitespace between entries
        chars += char
    if not chars:
        return None
    if char == b"":
        raise DataError(f"{where}: the archive ends after the key {chars[:40].decode(errors='replace')!r}")
    try:
        key = chars.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{where}: not a Kaldi archive (a key is not UTF-8 text: {bytes(chars[:40])!r})") from None
    if any(c.isspace() for c in key):
        raise DataError(f"{where}: not a Kaldi archive (a key holds whitespace: {key[:40]!r})")
    return key


def _iter_ark(fd: BinaryIO, where: str) -> Iterator[tuple[str, np.ndarray]]:
    while True:
        key = _read_key(fd, where)
        if key is None:
            return
        yield key, _read_object(fd, f"{where}: key {key!r}")


class _ArkFiles:
    """The arks an scp points into, a few kept open (scps list entries ark by ark)."""

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self.open: OrderedDict[str, BinaryIO] = OrderedDict()

    def get(self, path: str) -> BinaryIO:
        if path in self.open:
            self.open.move_to_end(path)
            return self.open[path]
        handle = open(path, "rb")
        self.open[path] = handle
        if len(self.open) > self.keep:
            self.open.popitem(last=False)[1].close()
        return handle

    def close(self) -> None:
        for handle in self.open.values():
            handle.close()
        self.open.clear()


def _load_entry(entry: str, arks: _ArkFiles, where: str) -> np.ndarray:
    match = _ARK_OFFSET.match(entry)
    path = match.group(1) if match else entry
    if not is_pipe(entry) and not Path(re.sub(r"\[[^\]]*\]$", "", path)).is_file():
        raise DataError(f"{where}: {path}: file not found")
    if match:
        handle = arks.get(path)
        handle.seek(int(match.group(2)))
        return _read_object(handle, where)
    try:  # a whole file, a range (ark:offset[0:9]) or, when allowed, a command: kaldiio reads those
        return np.asarray(kaldiio.load_mat(entry))
    except Exception as err:  # noqa: BLE001 - kaldiio raises many kinds for a bad entry
        raise DataError(f"{where}: cannot read {entry!r} ({type(err).__name__}: {err})") from None


def _iter_scp(lines: Iterator[str], source: str, label: str, permissive: bool) -> Iterator[tuple[str, np.ndarray]]:
    arks = _ArkFiles()
    try:
        for number, line in enumerate(lines, start=1):
            fields = line.strip().split(None, 1)
            if not fields:
                continue
            where = f"{label}: {source}:{number}"
            if len(fields) != 2:
                raise DataError(f"{where}: expected 'key ark_path:offset', got {line.strip()!r}")
            key, entry = fields[0], fields[1].strip()
            try:
                check_ark_entry(entry, f"{where}: key {key!r}")
                array = _load_entry(entry, arks, f"{where}: key {key!r}")
            except DataError as err:
                if not permissive:
                    raise
                logger.warning("%s; skipped (permissive read)", err)
                continue
            yield key, array
    finally:
        arks.close()


def _open_input(path: str, arg: str, mode: str = "rb"):
    if path == "-":
        return None  # the caller reads standard input
    if is_pipe(path):
        _refuse_pipe(path, arg)
        return open_like_kaldi(path, mode)
    if not Path(path).is_file():
        raise DataError(f"{arg}: {path}: file not found")
    return open(path, mode) if "b" in mode else open(path, mode, encoding="utf-8")


def iter_rspecifier(spec: str | Rspecifier, arg: str = "rspecifier") -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(key, array)`` of every entry of the table ``spec``, in its order.

    With the ``p`` (permissive) option an unreadable scp entry is skipped and an
    unreadable archive ends the table, as in Kaldi; otherwise a DataError names the
    specifier, the scp line or the archive key.
    """
    spec = parse_rspecifier(spec, arg) if isinstance(spec, str) else spec
    label = f"{arg} {spec.text}"
    if spec.kind == "ark":
        handle = _open_input(spec.path, label)
        fd = sys.stdin.buffer if handle is None else handle
        try:
            for item in _iter_ark(fd, label if spec.path != "-" else f"{label} (standard input)"):
                yield item
        except DataError as err:
            if not spec.permissive:
                raise
            logger.warning("%s; stopping here (permissive read)", err)
        finally:
            if handle is not None:
                handle.close()
        return
    handle = _open_input(spec.path, label, "r")
    lines = sys.stdin if handle is None else handle
    source = spec.path if handle is not None else "standard input"
    try:
        yield from _iter_scp(iter(lines), source, label, spec.permissive)
    except UnicodeDecodeError:
        raise DataError(f"{label}: {source}: not a text scp file") from None
    finally:
        if handle is not None:
            handle.close()


# ---------------------------------------------------------------------------------------------
# Writing


def _check_key(key: str, where: str) -> None:
    if not isinstance(key, str) or not key or any(c.isspace() for c in key):
        raise DataError(f"{where}: invalid key {key!r} (Kaldi keys are non-empty and hold no whitespace)")


class TableWriter:
    """Write a Kaldi table to ``spec`` (a wspecifier): ``write(key, value)`` per entry, in a ``with`` block.

    Values are float vectors or matrices (binary ``FV``/``FM``/``DV``/``DM``, or with
    ``compression_method`` a kaldiio-compressed matrix; in text form, Kaldi's text with
    the values the compression keeps), or ints and floats (Kaldi's ``Int32``/``BaseFloat``
    tables). Files appear when the block ends without error (the ark, then the scp).
    """

    def __init__(self, spec: str | Wspecifier, arg: str = "wspecifier", compression_method: int | None = None
                 ) -> None:
        self.spec = parse_wspecifier(spec, arg) if isinstance(spec, str) else spec
        self.label = f"{arg} {self.spec.text}"
        self.compression_method = compression_method
        self.count = 0
        self._ark: BinaryIO | None = None
        self._scp = None
        self._process = None
        self._tmp: list[tuple[Path, Path]] = []  # (temporary, final)
        self._ark_name = ""

    def _open_file(self, name: str, binary: bool):
        final = Path(name)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_name(final)
        self._tmp.append((tmp, final))
        return open(tmp, "wb") if binary else open(tmp, "w", encoding="utf-8")

    def __enter__(self) -> "TableWriter":
        ark = self.spec.ark
        try:
            if ark == "-":
                self._ark = sys.stdout.buffer
            elif ark.lstrip().startswith("|"):
                _refuse_pipe(ark, self.label)
                self._process = open_like_kaldi(ark, "wb")
                self._ark = self._process
            else:
                self._ark = self._open_file(ark, True)
                self._ark_name = str(Path(ark).absolute())
            if self.spec.scp is not None:
                self._scp = self._open_file(self.spec.scp, False)
        except BaseException:
            self._cleanup()
            raise
        return self

    def _object_bytes(self, value: object, where: str) -> bytes:
        if isinstance(value, (int, np.integer)):
            return number_text(int(value)).encode() if self.spec.as_text else b"\0B\4" + struct.pack("<i", value)
        if isinstance(value, (float, np.floating)):
            return number_text(float(value)).encode() if self.spec.as_text else b"\0B\4" + struct.pack("<f", value)
        array = np.asarray(value)
        if array.dtype.type not in (np.float32, np.float64) or array.ndim not in (1, 2):
            raise DataError(f"{where}: expected a float vector or matrix, got {array.dtype} of shape {array.shape}")
        buffer = io.BytesIO()
        compress = self.compression_method if array.ndim == 2 and array.size else None
        write_array(buffer, np.ascontiguousarray(array), compression_method=compress)
        if not self.spec.as_text:
            return buffer.getvalue()
        if compress is not None:  # Kaldi writes a compressed matrix in text as the values it holds
            buffer.seek(0)
            array = np.asarray(read_matrix_or_vector(buffer), dtype=np.float32)
        return object_text(array).encode()

    def write(self, key: str, value: object) -> None:
        """Append one entry."""
        if self._ark is None:
            raise RuntimeError("TableWriter is not open; use it in a 'with' block")
        _check_key(key, self.label)
        data = self._object_bytes(value, f"{self.label}: key {key!r}")
        head = key.encode("utf-8") + b" "
        offset = self._ark.tell() + len(head) if self._scp is not None else 0
        self._ark.write(head + data)
        if self._scp is not None:
            self._scp.write(f"{key} {self._ark_name}:{offset}\n")
        if self.spec.flush:
            self._ark.flush()
        self.count += 1

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                for handle in (self._ark, self._scp):
                    if handle is not None:
                        handle.flush()
                if self._process is not None:
                    status = self._process.close()
                    self._process = None
                    if status:
                        raise DataError(f"{self.label}: the command exited with status {status >> 8}")
                for handle in (self._ark, self._scp):
                    if handle is not None and handle is not sys.stdout.buffer:
                        os.fsync(handle.fileno())
                        handle.close()
                for tmp, final in self._tmp:  # the ark first, the scp that points into it last
                    os.replace(tmp, final)
                self._tmp = []
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        for handle in (self._ark, self._scp, self._process):
            if handle is not None and handle is not sys.stdout.buffer and not getattr(handle, "closed", False):
                handle.close()
        for tmp, _ in self._tmp:
            tmp.unlink(missing_ok=True)
        self._tmp = []
        self._ark = self._scp = self._process = None


def write_text_output(target: str, text: str, arg: str) -> None:
    """Write ``text`` to a Kaldi wxfilename: ``-`` (standard output) or a file (atomically)."""
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    if is_pipe(target) or target.lstrip().startswith("|"):
        raise DataError(f"{arg} {target!r}: write to a file or '-'")
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(final)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_binary_output(target: str, data: bytes, arg: str) -> None:
    """Write ``data`` to a Kaldi wxfilename (``-`` or a file, atomically)."""
    if target == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    if target.lstrip().startswith("|"):
        raise DataError(f"{arg} {target!r}: write to a file or '-'")
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(final)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
