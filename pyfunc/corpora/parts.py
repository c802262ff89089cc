"""Building one part of a synthetic corpus as a whole: skipped when its stamp matches, replaced atomically.

A part is a folder (``data/mini/test_hard``: a Kaldi data dir with its wav files under
``wav/``, or a folder of several data dirs) whose ``.done`` stamp records the parameters it
was built with. :func:`build_part` builds it in ``.<name>.partial`` beside it, renames that
onto the part (so the part is the old complete one or the new complete one), validates
its data dirs and writes the stamp last.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

from pyfunc.data.atomic import atomic_open
from pyfunc.data.datadir import validate_data_dir
from pyfunc.data.tables import read_scp

logger = logging.getLogger(__name__)

STAMP = ".done"
STEP = "data preparation"  # the step name of a --status line that names none


def data_dirs(part_dir: Path) -> list[Path]:
    """The data dirs of a part: itself and/or its sub-folders that hold a wav.scp."""
    found = [part_dir] if (part_dir / "wav.scp").is_file() else []
    found += sorted(p.parent for p in part_dir.glob("*/wav.scp"))
    return found


def read_part_stamp(part_dir: Path) -> dict[str, Any] | None:
    """The parameters recorded in ``part_dir/.done``, or None when there is no readable stamp."""
    try:
        return json.loads((part_dir / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def part_is_done(part_dir: Path, params: dict[str, Any]) -> bool:
    """True when the stamp records ``params`` and every wav file the part's wav.scp files list exists."""
    if read_part_stamp(part_dir) != params:
        return False
    dirs = data_dirs(part_dir)
    try:
        wavs = [path for d in dirs for path in read_scp(d / "wav.scp").values()]
    except (OSError, ValueError):
        return False
    return bool(dirs) and all(Path(path).is_file() for path in wavs)


def build_part(part_dir: Path, params: dict[str, Any], build: Callable[[Path, Path], None]) -> bool:
    """Build ``part_dir`` with ``build(tmp_dir, part_dir)`` unless it is done; return whether it was built.

    ``build`` writes everything into ``tmp_dir``; the paths it writes into wav.scp files
    must point into ``part_dir`` (where the files will be once renamed). A failure leaves
    no partial folder and removes the old stamp (the part is rebuilt next time).
    """
    part_dir = Path(part_dir)
    if part_is_done(part_dir, params):
        logger.info("%s: up to date", part_dir)
        return False
    (part_dir / STAMP).unlink(missing_ok=True)
    tmp = part_dir.parent / f".{part_dir.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        build(tmp, part_dir)
        if part_dir.exists():
            shutil.rmtree(part_dir)
        os.replace(tmp, part_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    for data_dir in data_dirs(part_dir):
        validate_data_dir(data_dir)
    with atomic_open(part_dir / STAMP) as handle:
        json.dump(params, handle, indent=1, sort_keys=True)
        handle.write("\n")
    return True


# ---------------------------------------------------------------------------------------------
# --status: a stage-0 command's answer to ``--status true`` (read by pyfunc.pipeline.status.check_stage0_command)


def part_status(part_dir: Path, params: dict[str, Any] | None) -> str:
    """What building ``part_dir`` would do, as a ``--status`` state: ``up to date`` when :func:`part_is_done`
    with ``params`` (None: not known yet, since what it is made from is being made), else ``to make`` or
    ``to redo`` and why."""
    if params is not None and part_is_done(part_dir, params):
        return "up to date"
    if not (part_dir / STAMP).exists():
        return f"to make: {part_dir / STAMP} is missing"
    return "to redo: its parameters, or what it is made from, changed (or a wav file is missing)"


def status_line(target: Path | str, state: str, step: str = STEP, made: Sequence[Path | str] = ()) -> str:
    """One line of a stage-0 command's ``--status true`` answer: ``TARGET<TAB>STATE[: WHY]<TAB>STEP[<TAB>DIR...]``
    (``made``: the data dirs it writes when they are not ``TARGET`` itself)."""
    return "\t".join([str(target), state, step, *map(str, made)])

