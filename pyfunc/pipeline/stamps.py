"""Run stamps: what a stage was run with, so that reruns skip up-to-date work and refuse stale inputs.

A stamp is a small JSON file a stage writes after its outputs are complete: its parameters
and the size and modification time of its ``inputs`` (cheap to check: lists, model.pt),
``deep_inputs`` (the many files those point to) and ``outputs``. The rules (up to date,
redo and why, refuse stale) are in docs/design.md, "Stamps".

Files inside the stamp's own folder are named relative to it (``wav.scp``, ``parts.1f2e/1/xvector.ark``),
others by their absolute path, so that a copied or moved folder (``cp -a data/test data/copy``) checks its
own files, not the original's. In memory every name is absolute. Stamps of version 1 named every file by its
absolute path: they are still read where they were written; one found in another folder (copied or moved
since) does not describe that folder's files, so the stage redoes its work and consumers refuse its outputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from pyfunc.data.atomic import PathLike, atomic_open
from pyfunc.errors import DataError

logger = logging.getLogger(__name__)

STAMP_VERSION = 2  # 2: files inside the stamp's folder named relative to it; 1: all absolute (still read)
READABLE_VERSIONS = (1, STAMP_VERSION)

FBANK_STAMP = ".fbank.stamp"  # in the data directory, beside the feats.scp that stage 1 wrote

EXTRACT_STAMP = ".extract.stamp"  # in the embedding directory (stage 3)

TRAIN_STAMP = ".train.stamp"  # in EXP/models (stage 2)

FileState = list[int] | None  # [size, mtime_ns], or None for a missing file


def file_state(path: PathLike) -> FileState:
    """``[size, mtime_ns]`` of ``path``, or None when it does not exist."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return [info.st_size, info.st_mtime_ns]


def stamp_key(path: PathLike) -> str:
    """How a stamp names ``path`` in memory: its absolute path, ``..`` taken away (symbolic links kept)."""
    return os.path.normpath(os.path.abspath(path))


def _states(paths: Iterable[PathLike]) -> dict[str, FileState]:
    return {stamp_key(p): file_state(p) for p in paths}


def _on_disk(states: Mapping[str, FileState], folder: Path) -> dict[str, FileState]:
    """``states`` with the files inside ``folder`` (absolute) named relative to it."""
    out = {}
    for name, state in states.items():
        relative = os.path.relpath(name, folder)
        inside = not Path(relative).is_absolute() and relative.split(os.sep, 1)[0] != ".."
        out[Path(relative).as_posix() if inside else name] = state
    return out


def _in_memory(states: Mapping[str, FileState], folder: Path) -> dict[str, FileState]:
    """``states`` read from a stamp in ``folder`` (absolute), every name absolute again."""
    return {stamp_key(name if Path(name).is_absolute() else folder / name): state for name, state in states.items()}


def as_json_value(value: object) -> object:
    """``value`` as it reads back from JSON (tuples become lists, keys strings)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


@dataclass
class Stamp:
    stage: str
    params: dict
    inputs: dict[str, FileState] = field(default_factory=dict)
    deep_inputs: dict[str, FileState] = field(default_factory=dict)
    outputs: dict[str, FileState] = field(default_factory=dict)
    version: int = STAMP_VERSION


def make_stamp(stage: str, params: Mapping, inputs: Iterable[PathLike], outputs: Iterable[PathLike],
               deep_inputs: Iterable[PathLike] = ()) -> Stamp:
    """A stamp of the files as they are now."""
    return Stamp(stage, as_json_value(dict(params)), _states(inputs), _states(deep_inputs), _states(outputs))


def write_stamp(path: PathLike, stamp: Stamp) -> None:
    """Write ``stamp`` (absolute names) to ``path``, naming the files inside its folder relative to it."""
    folder = Path(path).absolute().parent
    data = asdict(stamp)
    for kind in ("inputs", "deep_inputs", "outputs"):
        data[kind] = _on_disk(data[kind], folder)
    data["version"] = STAMP_VERSION
    with atomic_open(path) as handle:
        json.dump(data, handle, indent=1, sort_keys=True)


def _same_folder(a: PathLike, b: PathLike) -> bool:
    if os.path.normpath(a) == os.path.normpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _load_stamp(path: PathLike) -> tuple[Stamp | None, str | None]:
    """(the stamp at ``path`` with absolute names, or None when missing, unreadable or of an unknown version;
    where a version-1 stamp was written when that is another folder than its own now: copied or moved)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        stamp = Stamp(**data)
    except (OSError, ValueError, TypeError):
        return None, None
    if stamp.version not in READABLE_VERSIONS or not all(
            isinstance(getattr(stamp, kind), dict) for kind in ("inputs", "deep_inputs", "outputs")):
        return None, None
    folder = Path(path).absolute().parent
    if stamp.version == 1:  # absolute names; every stage writes an output beside its stamp
        for kind in ("inputs", "deep_inputs", "outputs"):
            setattr(stamp, kind, {stamp_key(name): state for name, state in getattr(stamp, kind).items()})
        if stamp.outputs and not any(_same_folder(Path(name).parent, folder) for name in stamp.outputs):
            return stamp, str(Path(sorted(stamp.outputs)[0]).parent)
        return stamp, None
    for kind in ("inputs", "deep_inputs", "outputs"):
        setattr(stamp, kind, _in_memory(getattr(stamp, kind), folder))
    return stamp, None


def read_run_stamp(path: PathLike) -> Stamp | None:
    """The stamp at ``path``, every file named by its absolute path; None when missing, unreadable, of an
    unknown version, or a version-1 stamp written in another folder (see the module docstring)."""
    stamp, elsewhere = _load_stamp(path)
    return None if elsewhere is not None else stamp


def _moved(path: PathLike, elsewhere: str) -> str:
    return f"the stamp {path} was written for {elsewhere} (a copied or moved folder, by an earlier version)"


def changed_files(recorded: Mapping[str, FileState]) -> list[str]:
    return [path for path, state in recorded.items() if file_state(path) != state]


def difference_path(old: object, new: object) -> tuple[str, ...] | None:
    """The keys leading to the first place where nested dicts ``old`` and ``new`` differ (``()``: at the top);
    None when equal. Keys are kept apart, so that one with a dot (``wav.scp``) can be looked up again."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if key not in old or key not in new:
                return (str(key),)
            found = difference_path(old[key], new[key])
            if found is not None:
                return (str(key), *found)
        return None
    return None if old == new else ()


def first_difference(old: object, new: object) -> str | None:
    """:func:`difference_path` as dotted text (``sub.x``; ``<params>`` at the top), for messages."""
    found = difference_path(old, new)
    return None if found is None else (".".join(found) or "<params>")


def why_not_current(path: PathLike, stage: str, params: Mapping, inputs: Iterable[PathLike],
                    deep_inputs: Iterable[PathLike] = ()) -> str | None:
    """None when the stamp at ``path`` matches; else a short reason to redo the stage."""
    old, elsewhere = _load_stamp(path)
    if old is None:
        return "no stamp of an earlier complete run"
    if elsewhere is not None:
        return _moved(path, elsewhere)
    if old.stage != stage:
        return f"the stamp is of stage {old.stage!r}"
    changed = first_difference(old.params, as_json_value(dict(params)))
    if changed is not None:
        return f"parameter {changed} changed"
    for kind, recorded, now in (("input", old.inputs, inputs), ("input", old.deep_inputs, deep_inputs)):
        names = {stamp_key(p) for p in now}
        if names != set(recorded):
            diff = sorted(names ^ set(recorded))
            return f"the set of {kind} files changed (e.g. {diff[0]})"
        changed = changed_files(recorded)
        if changed:
            return f"{kind} {changed[0]} changed" + (f" (and {len(changed) - 1} more)" if len(changed) > 1 else "")
    changed = changed_files(old.outputs)
    if changed:
        return f"output {changed[0]} is missing or changed"
    return None


@dataclass(frozen=True)
class StampSpec:
    """What a stage's stamp records before its outputs: the stage, its parameters and its input files.

    The stage and ``--status`` (:mod:`pyfunc.pipeline.status`) build it the same way, so
    that the status says what the stage would do.
    """

    stage: str
    params: Mapping
    inputs: Sequence[PathLike]
    deep_inputs: Sequence[PathLike] = ()

    def why_not_current(self, path: PathLike) -> str | None:
        """None when the stamp at ``path`` matches; else why the stage would redo its work."""
        return why_not_current(path, self.stage, self.params, self.inputs, self.deep_inputs)

    def stamp(self, outputs: Iterable[PathLike]) -> Stamp:
        """The stamp the stage writes once ``outputs`` are complete (inputs as they are now)."""
        return make_stamp(self.stage, self.params, self.inputs, outputs, self.deep_inputs)


def needs_work(path: PathLike, stage: str, params: Mapping, inputs: Iterable[PathLike],
               deep_inputs: Iterable[PathLike], output: PathLike, what: str, force: bool = False) -> bool:
    """Whether a stage must (re)make ``output``: logs why, or that ``what`` is up to date and nothing is done."""
    if force:
        logger.info("%s: recomputing %s (--force)", output, what)
        return True
    reason = why_not_current(path, stage, params, inputs, deep_inputs)
    if reason is None:
        logger.info("%s: %s are up to date (stamp %s); nothing to do (--force recomputes)", output, what, path)
        return False
    logger.info("%s: computing %s (%s)", output, what, reason)
    return True


def stale_inputs(path: PathLike) -> list[str]:
    """Inputs recorded in the stamp at ``path`` that changed since, while its outputs did not.

    Empty when there is no stamp, or when the outputs differ from the stamp (it no
    longer describes them). Deep inputs are not checked (they can be many). A version-1 stamp
    written for another folder (copied or moved since) gives one entry saying so: what its folder's
    outputs were made from is unknown.
    """
    stamp, elsewhere = _load_stamp(path)
    if stamp is not None and elsewhere is not None:
        return [_moved(path, elsewhere)]
    if stamp is None or changed_files(stamp.outputs):
        return []
    return changed_files(stamp.inputs)


def refuse_stale(stamp_path: PathLike, output: PathLike, rerun: str) -> None:
    """DataError when ``output`` was made from inputs that changed since (see :func:`stale_inputs`)."""
    stamp, elsewhere = _load_stamp(stamp_path)
    if stamp is not None and elsewhere is not None:
        raise DataError(f"{output}: out of date: {_moved(stamp_path, elsewhere)}, so what it was made from is "
                        f"unknown; {rerun}")
    changed = stale_inputs(stamp_path)
    if changed:
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        raise DataError(f"{output}: out of date: {changed[0]}{more} changed after it was made; {rerun}")


def text_digest(path: PathLike) -> str | None:
    """sha256 of a file's bytes (None when missing): for small tables whose content matters."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
