"""The data-directory reader and validator, on good and broken inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pyfunc.data.datadir import load_data_dir, split_data_dir, split_utts, validate_data_dir
from pyfunc.data.trials import read_trials
from pyfunc.errors import DataError


def test_valid_dir_passes_and_round_trips(tone_data_dir: Path) -> None:
    data = validate_data_dir(tone_data_dir)
    assert len(data.utts) == 9
    assert data.spk2utt["spk01"] == ["spk01-000", "spk01-001", "spk01-002"]
    assert (tone_data_dir / "spk2utt").read_text().splitlines()[0] == "spk00 spk00-000 spk00-001 spk00-002"


def _rewrite(path: Path, transform) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(transform(lines)) + "\n")


@pytest.mark.parametrize(
    "name, transform, message",
    [
        ("utt2spk", lambda ls: ls[1:2] + ls[0:1] + ls[2:], "out of order"),
        ("utt2spk", lambda ls: ls[:1] + ls, "duplicate key 'spk00-000'"),
        ("utt2spk", lambda ls: [ls[0] + " extra"] + ls[1:], "expected 2 fields"),
        ("wav.scp", lambda ls: ls[:-1], "missing"),
        ("spk2utt", lambda ls: [ls[0].rsplit(" ", 1)[0]] + ls[1:], "disagree with utt2spk"),
        ("spk2utt", lambda ls: ls[1:], "speaker 'spk00' of utt2spk is missing"),
        ("wav.scp", lambda ls: [ls[0].split()[0] + " /no/such.wav"] + ls[1:], "not found"),
    ],
)
def test_broken_dirs_name_the_culprit(tone_data_dir: Path, name, transform, message) -> None:
    _rewrite(tone_data_dir / name, transform)
    with pytest.raises(DataError, match=message) as err:
        validate_data_dir(tone_data_dir)
    assert name in str(err.value) or "utt2spk" in str(err.value)


def test_unreadable_wav_is_reported(tone_data_dir: Path) -> None:
    wav = load_data_dir(tone_data_dir).wav_scp["spk01-001"]
    Path(wav).write_bytes(b"RIFF not really a wav")
    with pytest.raises(DataError, match="spk01-001.*cannot read audio"):
        validate_data_dir(tone_data_dir)


def test_trials_must_name_known_utterances(tone_data_dir: Path) -> None:
    (tone_data_dir / "trials").write_text("spk00-000 spk01-000 nontarget\nspk00-000 nobody target\n")
    with pytest.raises(DataError, match=r"trials:2: unknown utterance 'nobody'"):
        validate_data_dir(tone_data_dir)


def test_trial_labels(tmp_path: Path) -> None:
    path = tmp_path / "trials"
    path.write_text("a b target\na c 0\nb c 1\n")
    assert read_trials(path) == [("a", "b", True), ("a", "c", False), ("b", "c", True)]
    path.write_text("a b target\na c maybe\n")
    with pytest.raises(DataError, match=r"trials:2: label 'maybe'"):
        read_trials(path)


def test_split_is_contiguous_and_complete(tone_data_dir: Path) -> None:
    assert split_utts(list("abcdefg"), 3) == [list("abc"), list("de"), list("fg")]
    parts = split_data_dir(tone_data_dir, 4)
    utts = [u for p in parts for u in load_data_dir(p).utts]
    assert utts == load_data_dir(tone_data_dir).utts
    for part in parts:
        validate_data_dir(part)
    shutil.rmtree(tone_data_dir / "split4")
