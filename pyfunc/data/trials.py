"""Trials files: ``enroll test [target|nontarget|1|0]`` per line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from pyfunc.data.atomic import PathLike, write_lines
from pyfunc.data.tables import iter_table_lines
from pyfunc.errors import DataError

TRIAL_LABELS = {"target": True, "nontarget": False, "1": True, "0": False}

Trial = tuple[str, str, bool]


def parse_trial_line(path: PathLike, number: int, fields: list[str]) -> tuple[str, str, bool | None]:
    """Parse ``enroll test [target|nontarget|1|0]``; the label is None when absent."""
    if len(fields) not in (2, 3):
        raise DataError(f"{path}:{number}: expected 'enroll test target|nontarget', got {' '.join(fields)!r}")
    if len(fields) == 2:
        return fields[0], fields[1], None
    label = TRIAL_LABELS.get(fields[2])
    if label is None:
        raise DataError(f"{path}:{number}: label {fields[2]!r} is not one of target, nontarget, 1, 0")
    return fields[0], fields[1], label


def read_trials(path: PathLike, require_labels: bool = True) -> list[tuple[str, str, bool | None]]:
    """Read a Kaldi trials file; labels are required unless ``require_labels`` is False."""
    trials = []
    for number, fields in iter_table_lines(path):
        enroll, test, label = parse_trial_line(path, number, fields)
        if label is None and require_labels:
            raise DataError(f"{path}:{number}: missing target/nontarget label")
        trials.append((enroll, test, label))
    if not trials:
        raise DataError(f"{path}: no trials")
    return trials


def write_trials(path: PathLike, trials: Iterable[Trial]) -> None:
    write_lines(path, (f"{e} {t} {'target' if lab else 'nontarget'}" for e, t, lab in trials))


@dataclass
class TrialList:
    """Trial pairs with where they came from, so errors can name the file and line."""

    enrolls: list[str]
    tests: list[str]
    path: str | None = None
    lines: list[int] | None = None
    labels: list[bool | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.enrolls)

    def where(self, index: int) -> str:
        """``file:line`` (or ``trial N``) of trial ``index``."""
        if self.path is not None and self.lines is not None:
            return f"{self.path}:{self.lines[index]}"
        return f"trial {index + 1}"

    @property
    def utterances(self) -> list[str]:
        """Every utterance of the trials, sorted."""
        return sorted(set(self.enrolls) | set(self.tests))


def read_trial_list(path: PathLike) -> TrialList:
    """Read ``enroll test [target|nontarget|1|0]`` lines (labels optional for scoring)."""
    enrolls, tests, lines, labels = [], [], [], []
    for number, fields in iter_table_lines(path):
        enroll, test, label = parse_trial_line(path, number, fields)
        enrolls.append(enroll)
        tests.append(test)
        lines.append(number)
        labels.append(label)
    if not enrolls:
        raise DataError(f"{path}: no trials")
    return TrialList(enrolls, tests, str(path), lines, labels)


def as_trial_list(trials: TrialList | Sequence[Sequence]) -> TrialList:
    """Accept a :class:`TrialList` or a sequence of ``(enroll, test[, label])`` tuples."""
    if isinstance(trials, TrialList):
        return trials
    enrolls, tests = [], []
    for i, trial in enumerate(trials):
        if len(trial) not in (2, 3):
            raise DataError(f"trial {i + 1}: expected (enroll, test[, label]), got {trial!r}")
        enrolls.append(str(trial[0]))
        tests.append(str(trial[1]))
    return TrialList(enrolls, tests)


def trial_utterances(trials: PathLike) -> dict[str, int]:
    """Every utterance a trials file names, with the first line naming it."""
    found: dict[str, int] = {}
    for number, fields in iter_table_lines(trials):
        enroll, test, _ = parse_trial_line(trials, number, fields)
        found.setdefault(enroll, number)
        found.setdefault(test, number)
    return found
