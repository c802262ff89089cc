"""The bad-input policy of stages 1 and 3: collect every bad utterance, then stop with the whole list,
or leave them out and record them in ``skipped_utts`` (docs/design.md, "Bad input")."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Mapping

from pyfunc.data.atomic import PathLike, write_lines
from pyfunc.data.enroll import ENROLL_NAME, enroll_beside, read_enroll
from pyfunc.data.tables import iter_table_lines
from pyfunc.data.trials import trial_utterances
from pyfunc.errors import DataError

logger = logging.getLogger(__name__)

SKIPPED_NAME = "skipped_utts"  # "utt reason..." per line, sorted: utterances left out on purpose

BAD_LIST_NAME = "bad_inputs"  # written by each parallel job: what it could not read

SHOW = 20  # bad utterances listed in an error message


class BadInputs:
    """Collects ``utt -> message`` of utterances whose input cannot be used."""

    def __init__(self) -> None:
        self.found: dict[str, str] = {}

    def add(self, utt: str, message: str) -> None:
        self.found[utt] = " ".join(str(message).split())

    def update(self, other: Mapping[str, str]) -> None:
        for utt, message in other.items():
            self.add(utt, message)

    def __bool__(self) -> bool:
        return bool(self.found)

    def __len__(self) -> int:
        return len(self.found)

    def error(self, source: PathLike, total: int | None = None) -> DataError:
        """The error that stops a stage: every bad utterance (up to SHOW) with its reason."""
        return DataError(bad_input_message(self.found, source, total))


def bad_input_message(found: Mapping[str, str], source: PathLike, total: int | None = None) -> str:
    of = f" of {total}" if total is not None else ""
    lines = [found[utt] for utt in sorted(found)[:SHOW]]
    if len(found) > SHOW:
        lines.append(f"... and {len(found) - SHOW} more")
    return (f"{source}: {len(found)}{of} utterance(s) have bad input; rerun with --skip-bad-audio to leave "
            f"them out (their keys are then listed in {SKIPPED_NAME}):\n  " + "\n  ".join(lines))


def write_bad_list(path: PathLike, found: Mapping[str, str]) -> None:
    """Write ``utt message`` lines sorted by utterance, atomically."""
    write_lines(path, (f"{utt} {' '.join(found[utt].split())}" for utt in sorted(found)))


def read_bad_list(path: PathLike) -> dict[str, str]:
    """Read a ``skipped_utts`` / ``bad_inputs`` file (empty when missing)."""
    path = Path(path)
    if not path.is_file():
        return {}
    return {fields[0]: " ".join(fields[1:]) for _, fields in iter_table_lines(path)}


def read_skipped(directory: PathLike) -> dict[str, str]:
    """``directory/skipped_utts`` as ``utt -> reason`` (empty when there is none)."""
    return read_bad_list(Path(directory) / SKIPPED_NAME)


def write_skipped(path: PathLike, skipped: Mapping[str, str], total: int, final: PathLike | None = None) -> None:
    """Write the ``skipped_utts`` file ``path`` (``final``: where it ends up, for the log); log the count."""
    write_bad_list(path, skipped)
    final = Path(final if final is not None else path)
    logger.warning("%s: skipped %d of %d utterance(s) with bad input; their keys are in %s", final.parent,
                   len(skipped), total, final)


def check_trials_need(skipped: Mapping[str, str], trials_files: Iterable[PathLike]) -> None:
    """DataError when a trials file (or the ``enroll`` file beside it) names an utterance in ``skipped``: that
    trial cannot be scored."""
    if not skipped:
        return
    for trials in trials_files:
        needed = {utt: f"line {number}" for utt, number in trial_utterances(trials).items()}
        enroll = enroll_beside(trials)  # a model's enrolment utterances are needed as much as the model
        if enroll is not None:
            models = read_enroll(enroll)
            for model, utts in models.models.items():
                for utt in utts:
                    needed.setdefault(utt, f"{ENROLL_NAME} line {models.lines[model]}")
        missing = sorted(set(needed) & set(skipped))
        if missing:
            shown = [f"{utt} ({needed[utt]}: {skipped[utt]})" for utt in missing[:SHOW]]
            if len(missing) > SHOW:
                shown.append(f"... and {len(missing) - SHOW} more")
            raise DataError(f"{trials}: {len(missing)} utterance(s) that trials need have bad input and would be "
                            f"skipped; fix or replace their audio, or remove their trials:\n  " + "\n  ".join(shown))
