"""Property-based tests of the data-directory, trials and config parsers on random, mostly malformed text.

Whatever the text, a parser either returns what a plain reference reading of the text
gives, or raises a DataError/ConfigError whose message names the file (and, for a bad
line, the line number); never another exception from deep inside.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyfunc.config import config_from_dict
from pyfunc.data.datadir import load_data_dir, validate_data_dir
from pyfunc.data.tables import read_map, read_scp, read_text_table
from pyfunc.data.trials import TRIAL_LABELS, read_trial_list, read_trials
from pyfunc.errors import ConfigError, DataError
from pyfunc.scoring.score_files import read_scores

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Few distinct characters, so that duplicate keys, ordering problems and odd whitespace come up often.
TOKEN = st.text(alphabet=st.sampled_from(list("ab1Z_-.é") + ["ü", "\u4e2d"]), min_size=1, max_size=3)
SPACE = st.sampled_from([" ", "  ", "\t", " \t ", "\x0b", "\x0c", "\u00a0", "\u2003", "\x1c"])
NEWLINE = st.sampled_from(["\n", "\n", "\n", "\r\n", "\r", "\u2028", "\x85"])
LABEL = st.sampled_from(["target", "nontarget", "1", "0", "Target", "yes", "2", "0.5", "nan", "-1", "1e3"])


@st.composite
def table_text(draw, extra: st.SearchStrategy = TOKEN) -> str:
    """Lines of 0 to 4 fields with random separators and line ends (or, sometimes, any text at all)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=60))
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        fields = draw(st.lists(st.one_of(TOKEN, extra), max_size=4))
        line = draw(SPACE if draw(st.booleans()) else st.just("")).join(fields) if fields else ""
        sep = draw(SPACE)
        lines.append(line.replace(" ", sep) + draw(NEWLINE))
    return "".join(lines)


def _lines(text: str) -> list[tuple[int, list[str]]]:
    """Reference reading: universal newlines (\\n, \\r, \\r\\n), whitespace-separated fields, blank lines skipped."""
    rows = []
    for number, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1):
        if line.split():
            rows.append((number, line.split()))
    return rows


_ROOT = tempfile.TemporaryDirectory(prefix="pyfunc-parsers-")  # removed when the module goes


def _fresh_dir(name: str) -> Path:
    folder = Path(_ROOT.name) / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder


def _write(text: str | bytes, name: str = "table") -> Path:
    path = _fresh_dir("file") / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def _reference_table(text: str, low: int, high: int | None, check_sorted: bool) -> dict | tuple[int, str]:
    """(line, kind) of the first problem, or the parsed table."""
    table: dict[str, list[str]] = {}
    previous = None
    for number, fields in _lines(text):
        if len(fields) < low or (high is not None and len(fields) > high):
            return number, "fields"
        if fields[0] in table:
            return number, "duplicate"
        if check_sorted and previous is not None and fields[0].encode() < previous.encode():
            return number, "order"
        previous = fields[0]
        table[fields[0]] = fields[1:]
    return table


@SETTINGS
@given(table_text(), st.sampled_from([(2, 2), (2, None), (1, 3)]), st.booleans())
def test_read_table_matches_the_reference_or_names_the_line(text, bounds, check_sorted) -> None:
    path = _write(text)
    expected = _reference_table(text, *bounds, check_sorted)
    if isinstance(expected, dict):
        assert read_text_table(path, *bounds, check_sorted=check_sorted) == expected
        if bounds == (2, 2):
            assert read_map(path, check_sorted) == {k: v[0] for k, v in expected.items()}
        return
    line, kind = expected
    with pytest.raises(DataError) as err:
        read_text_table(path, *bounds, check_sorted=check_sorted)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: ")
    assert {"fields": "fields, got", "duplicate": "duplicate key", "order": "out of order"}[kind] in message


@SETTINGS
@given(table_text())
def test_read_scp_keeps_the_rest_of_the_line(text) -> None:
    path = _write(text)
    expected = _reference_table(text, 2, None, True)
    if isinstance(expected, dict):
        assert read_scp(path, check_sorted=True) == {k: " ".join(v) for k, v in expected.items()}
    else:
        with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:{expected[0]}: "):
            read_scp(path, check_sorted=True)


@SETTINGS
@given(st.binary(max_size=40))
def test_undecodable_bytes_are_a_clear_error(data) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        path = _write(data + b"\n\xff")
        for parse in (lambda: read_map(path), lambda: read_trials(path), lambda: read_trial_list(path)):
            with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: not a UTF-8 text file"):
                parse()


def _reference_trials(text: str, need_labels: bool):
    trials = []
    for number, fields in _lines(text):
        if len(fields) not in (2, 3):
            return number, "expected 'enroll test target|nontarget'"
        if len(fields) == 3 and fields[2] not in TRIAL_LABELS:
            return number, "is not one of target, nontarget, 1, 0"
        if len(fields) == 2 and need_labels:
            return number, "missing target/nontarget label"
        trials.append((fields[0], fields[1], TRIAL_LABELS[fields[2]] if len(fields) == 3 else None))
    return trials if trials else (None, "no trials")


@SETTINGS
@given(table_text(extra=LABEL), st.booleans())
def test_trial_parsers_match_the_reference_or_name_the_line(text, need_labels) -> None:
    path = _write(text, "trials")
    expected = _reference_trials(text, need_labels)
    if isinstance(expected, list):
        assert read_trials(path, require_labels=need_labels) == expected
        if not need_labels:
            parsed = read_trial_list(path)
            assert list(zip(parsed.enrolls, parsed.tests, parsed.labels)) == expected
            assert [parsed.where(i) for i in range(len(parsed))] == [f"{path}:{n}" for n, _ in _lines(text)]
        return
    line, part = expected
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    with pytest.raises(DataError) as err:
        read_trials(path, require_labels=need_labels)
    assert str(err.value).startswith(where) and part in str(err.value)
    if not need_labels:
        with pytest.raises(DataError, match=rf"^{re.escape(where)}"):
            read_trial_list(path)


@st.composite
def data_dir_files(draw) -> dict[str, str | None]:
    """A correct data directory's files, then a few random corruptions (or none)."""
    utts = sorted(set(draw(st.lists(TOKEN, min_size=1, max_size=5))), key=str.encode)
    utt2spk = {u: draw(st.sampled_from(["s1", "s2", "sé"])) for u in utts}
    spk2utt: dict[str, list[str]] = {}
    for u in utts:
        spk2utt.setdefault(utt2spk[u], []).append(u)
    files = {
        "utt2spk": [f"{u} {utt2spk[u]}" for u in utts],
        "wav.scp": [f"{u} /audio/{u}.wav" for u in utts],
        "spk2utt": [f"{s} {' '.join(us)}" for s, us in sorted(spk2utt.items(), key=lambda kv: kv[0].encode())],
        "utt2dur": [f"{u} {draw(st.sampled_from(['1.5', '0', '3e2', '1_0', '-2', 'nan', 'inf', 'x']))}" for u in utts],
    }
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(sorted(files)))
        lines = files[name]
        kind = draw(st.sampled_from(["swap", "duplicate", "drop", "extra field", "junk", "replace", "remove"]))
        if kind == "remove":
            files[name] = None
            continue
        if lines is None:
            continue
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        if kind == "swap" and len(lines) > 1:
            lines[i], lines[i - 1] = lines[i - 1], lines[i]
        elif kind == "duplicate" and lines:
            lines.insert(i, lines[i])
        elif kind == "drop" and lines:
            del lines[i]
        elif kind == "extra field" and lines:
            lines[i] += " " + draw(TOKEN)
        elif kind == "junk" and lines:
            lines[i] = draw(st.text(max_size=12))
        elif kind == "replace":
            files[name] = draw(table_text()).split("\n")
    return {name: None if lines is None else "\n".join(lines) + "\n" for name, lines in files.items()}


@SETTINGS
@given(data_dir_files())
def test_data_dirs_parse_or_name_the_file(files) -> None:
    folder = _fresh_dir("data")
    for name, text in files.items():
        if text is not None:
            (folder / name).write_text(text, encoding="utf-8")
    try:
        data = load_data_dir(folder)
    except DataError as err:
        assert re.match(rf"^{re.escape(str(folder))}(/(utt2spk|wav\.scp|utt2dur)(:\d+)?)?: ", str(err)), str(err)
        return
    assert data.utts == sorted(data.utt2spk, key=str.encode)
    assert all(math.isfinite(v) and v >= 0 for v in data.utt2dur.values())
    try:
        checked = validate_data_dir(folder, check_wavs=False)
    except DataError as err:
        assert re.match(rf"^{re.escape(str(folder))}/(utt2spk|spk2utt|wav\.scp|utt2dur)(:\d+)?: ", str(err)), str(err)
        return
    # a directory that passes is consistent: spk2utt inverts utt2spk, every table has the same keys
    spk2utt_table = read_text_table(folder / "spk2utt", 2, None)
    assert {utt: spk for spk, utts in spk2utt_table.items() for utt in utts} == checked.utt2spk
    assert set(checked.wav_scp) == set(checked.utt2spk) and checked.utt2spk
    assert set(checked.utt2dur) in (set(), set(checked.utt2spk))


@SETTINGS
@given(table_text(extra=st.sampled_from(["0.5", "-1e3", "nan", "inf", "x", "1,5"])))
def test_score_files_parse_or_name_the_line(text) -> None:
    path = _write(text, "scores")
    rows = _lines(text)
    try:
        enrolls, tests, scores = read_scores(path)
    except DataError as err:
        assert re.match(rf"^{re.escape(str(path))}(:\d+)?: ", str(err)), str(err)
        return
    assert [(e, t) for e, t in zip(enrolls, tests)] == [(f[0], f[1]) for _, f in rows]
    assert all(math.isfinite(s) for s in scores)


CONFIG_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=5)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(
        ["model", "train", "lr", "epochs", "channels", "frontend", "augment", "enabled", "batch_size", "x"]),
        inner, max_size=3)), max_leaves=8)


@SETTINGS
@given(st.dictionaries(st.sampled_from(["model", "train", "loss", "extract", "score", "trian"]), CONFIG_VALUE,
                       max_size=3))
def test_config_schema_accepts_or_names_the_key(data) -> None:
    try:
        config = config_from_dict(data, "exp.yaml")
    except ConfigError as err:
        assert str(err).startswith("exp.yaml: "), str(err)
        return
    assert isinstance(config.train.batch_size, int) and not isinstance(config.train.batch_size, bool)
    assert isinstance(config.train.lr, float) and isinstance(config.model.frontend, str)
