"""Enrolment maps: speaker models made of several recordings, and test sets built on them.

A data directory whose ``trials`` name enrolled speaker models on the left holds an ``enroll``
file beside ``trials``, in Kaldi's ``spk2utt`` format: ``MODEL utt1 utt2 ...`` per line. Stages 4
and 5 then score each model's mean embedding against the test utterance
(:mod:`pyfunc.scoring.enrolment`). Without an ``enroll`` file the left column names utterances,
as before.

:func:`pyfunc.data.enroll_sets.make_enroll_trials` (``steps/make_enroll_trials.py``) makes such
a test set from a data directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from pyfunc.data.atomic import PathLike, write_lines
from pyfunc.data.tables import KeyChecker, iter_table_lines
from pyfunc.data.trials import parse_trial_line
from pyfunc.errors import DataError

ENROLL_NAME = "enroll"


@dataclass
class EnrollMap:
    """``model -> enrolment utterances``, with the file and line of each model for error messages."""

    models: dict[str, list[str]]
    path: str | None = None
    lines: dict[str, int] | None = None

    def where(self, model: str) -> str:
        """``file:line`` of ``model`` (or ``model NAME`` when not read from a file)."""
        if self.path is not None and self.lines is not None and model in self.lines:
            return f"{self.path}:{self.lines[model]}"
        return f"model {model!r}"

    @property
    def utterances(self) -> list[str]:
        """Every enrolment utterance, sorted."""
        return sorted({utt for utts in self.models.values() for utt in utts})


def read_enroll(path: PathLike) -> EnrollMap:
    """Read ``MODEL utt1 [utt2 ...]`` lines. A model without utterances, a model listed twice or an
    utterance listed twice for one model is a DataError naming the file and line."""
    models: dict[str, list[str]] = {}
    lines: dict[str, int] = {}
    check = KeyChecker(check_sorted=False)
    for number, fields in iter_table_lines(path):
        if len(fields) < 2:
            raise DataError(f"{path}:{number}: model {fields[0]!r} has no enrolment utterances; expected "
                            "'MODEL utt1 [utt2 ...]'")
        check(fields[0], f"{path}:{number}")
        utts = fields[1:]
        if len(set(utts)) != len(utts):
            twice = next(u for u in utts if utts.count(u) > 1)
            raise DataError(f"{path}:{number}: utterance {twice!r} is listed twice for model {fields[0]!r}")
        models[fields[0]] = utts
        lines[fields[0]] = number
    if not models:
        raise DataError(f"{path}: no enrolment models")
    return EnrollMap(models, str(path), lines)


def enroll_beside(trials_path: PathLike) -> Path | None:
    """The ``enroll`` file in the directory of ``trials_path``, or None when there is none."""
    path = Path(trials_path).parent / ENROLL_NAME
    return path if path.is_file() else None


def write_enroll(path: PathLike, models: Mapping[str, list[str]]) -> None:
    """Write ``MODEL utt1 utt2 ...`` lines atomically, models sorted."""
    write_lines(path, (" ".join([model, *models[model]]) for model in sorted(models)))


def check_enrolled_trials(trials_path: PathLike, enroll: EnrollMap, utterances: Mapping[str, object]) -> None:
    """DataError when a line of ``trials_path`` names a model not in ``enroll`` or a test utterance not in
    ``utterances``, or when ``enroll`` names an utterance not in ``utterances`` (each named by file and line)."""
    for model, utts in enroll.models.items():
        for utt in utts:
            if utt not in utterances:
                raise DataError(f"{enroll.where(model)}: model {model!r}: unknown utterance {utt!r}")
    for number, fields in iter_table_lines(trials_path):
        model, test, _ = parse_trial_line(trials_path, number, fields)
        if model not in enroll.models:
            raise DataError(f"{trials_path}:{number}: model {model!r} is not in {enroll.path}")
        if test not in utterances:
            raise DataError(f"{trials_path}:{number}: unknown utterance {test!r}")
