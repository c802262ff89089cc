"""The stage-0 --status protocol: a recipe's stage-0 command answers ``--status true`` with one line per folder it
writes (``TARGET<TAB>STATE[: WHY][<TAB>STEP[<TAB>DIR...]]``), and the driver's status turns them into checks."""

from __future__ import annotations

import stat
from pathlib import Path

from pyfunc.corpora.parts import STAMP, part_status, status_line
from pyfunc.pipeline.status import DATA_FILES, RecipeStatus, check_reported, check_stage0_command


def test_status_lines_become_checks_and_what_they_remake(tmp_path: Path) -> None:
    status = RecipeStatus(0, 6)
    root = tmp_path / "mini"
    check_reported(status, 0, status_line(root, "to make: no stamp", "mini corpus", [root / "train", root / "test"]))
    check_reported(status, 0, status_line(root / "dev", "up to date"))
    check_reported(status, 0, f"{root / 'x'}\tbroken")
    rows = [(c.step, c.target, c.state, c.reason) for c in status.checks]
    broken = f"unreadable --status line '{root / 'x'}\\tbroken'"
    assert rows == [("mini corpus", str(root), "to make", "no stamp"),
                    ("data preparation", str(root / "dev"), "up to date", ""),
                    ("data preparation", str(root / "x"), "would fail", broken)]
    assert status.remaker([root / "test" / "wav.scp"])[0].target == str(root)  # the data dirs it names
    assert status.remaker([root / "dev" / name for name in DATA_FILES]) is None  # up to date: remakes nothing


def test_the_command_is_asked_with_status_true(tmp_path: Path) -> None:
    script = tmp_path / "prepare.sh"
    script.write_text(f'#!/bin/sh\n[ "$1 $2" = "--data d" ] && [ "$3 $4" = "--status true" ] && '
                      f'printf "{tmp_path}/d/train\\tto redo: no stamp\\n"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    status = RecipeStatus(0, 6)
    check_stage0_command(status, [str(script), "--data", "d"], "d")
    assert [(c.target, c.state, c.reason) for c in status.checks] == [(f"{tmp_path}/d/train", "to redo", "no stamp")]
    status = RecipeStatus(0, 6)
    check_stage0_command(status, [str(script), "--other"], "d")  # exits 1, prints nothing
    assert [(c.target, c.state) for c in status.checks] == [("d", "would fail")]


def test_part_status_from_its_stamp(tmp_path: Path) -> None:
    part = tmp_path / "dev"
    assert part_status(part, {"a": 1}) == f"to make: {part / STAMP} is missing"
    part.mkdir()
    (part / STAMP).write_text('{"a": 2}\n')
    assert part_status(part, {"a": 1}).startswith("to redo: ")
