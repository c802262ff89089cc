"""Kaldi data directories: reading, writing, validating and splitting.

A data directory holds ``wav.scp``, ``utt2spk``, ``spk2utt`` and optionally
``utt2dur``, ``utt2num_frames``, ``feats.scp`` and ``trials``; every file is a
sorted table keyed by utterance (or speaker) id, as in Kaldi. With a ``segments``
file (:mod:`pyfunc.data.segments`; the MUSAN augmentation sources) the utterances
are spans of recordings and ``wav.scp`` is keyed by recording.
"""

from __future__ import annotations

import logging
import math
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from pyfunc.data.atomic import PathLike
from pyfunc.data.audio import check_wav_entry
from pyfunc.data.badinput import read_skipped
from pyfunc.data.enroll import ENROLL_NAME, check_enrolled_trials, enroll_beside, read_enroll
from pyfunc.data.segments import SEGMENTS, check_segments, read_segments
from pyfunc.data.tables import iter_table_lines, read_map, read_scp, read_text_table, write_table
from pyfunc.data.trials import parse_trial_line
from pyfunc.errors import ConfigError, DataError

VAD_SCP = "vad.scp"  # stage 1's voice-activity decisions (steps/compute_vad.py), split with the data dir

logger = logging.getLogger(__name__)

@dataclass
class DataDir:
    """An in-memory Kaldi data directory."""

    wav_scp: dict[str, str]
    utt2spk: dict[str, str]
    utt2dur: dict[str, float] = field(default_factory=dict)
    feats_scp: dict[str, str] = field(default_factory=dict)
    utt2num_frames: dict[str, int] = field(default_factory=dict)

    @property
    def utts(self) -> list[str]:
        return sorted(self.utt2spk)

    @property
    def spk2utt(self) -> dict[str, list[str]]:
        return spk2utt_from_utt2spk(self.utt2spk)

    def subset(self, utts: Iterable[str]) -> "DataDir":
        keep = set(utts)
        pick = lambda table: {k: v for k, v in table.items() if k in keep}  # noqa: E731
        return DataDir(pick(self.wav_scp), pick(self.utt2spk), pick(self.utt2dur), pick(self.feats_scp),
                       pick(self.utt2num_frames))


def spk2utt_from_utt2spk(utt2spk: Mapping[str, str]) -> dict[str, list[str]]:
    """Invert utt2spk; utterances of a speaker in sorted order."""
    out: dict[str, list[str]] = defaultdict(list)
    for utt in sorted(utt2spk):
        out[utt2spk[utt]].append(utt)
    return dict(sorted(out.items()))


def load_data_dir(path: PathLike, features: bool = True) -> DataDir:
    """Read a data directory (only the files present besides wav.scp and utt2spk).

    Without ``features``, ``feats.scp`` and ``utt2num_frames`` are not read.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: data directory not found")
    wav_scp = read_scp(path / "wav.scp", check_sorted=True)
    utt2spk = read_map(path / "utt2spk", check_sorted=True)
    data = DataDir(wav_scp, utt2spk)
    if (path / "utt2dur").is_file():
        data.utt2dur = {k: _number(path / "utt2dur", k, v, float) for k, v in read_map(path / "utt2dur").items()}
    if features and (path / "feats.scp").is_file():
        data.feats_scp = read_scp(path / "feats.scp", check_sorted=True)
    if features and (path / "utt2num_frames").is_file():
        data.utt2num_frames = {k: _number(path / "utt2num_frames", k, v, int)
                               for k, v in read_map(path / "utt2num_frames").items()}
    return data


def _number(path: Path, key: str, text: str, kind: type) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise DataError(f"{path}: key {key!r}: expected a {kind.__name__}, got {text!r}") from None
    if not math.isfinite(value):
        raise DataError(f"{path}: key {key!r}: expected a finite number, got {text!r}")
    if value < 0:
        raise DataError(f"{path}: key {key!r}: negative value {text!r}")
    return value


def write_data_dir(path: PathLike, data: DataDir) -> None:
    """Write ``data`` as a Kaldi data directory (each file atomically)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    write_table(path / "wav.scp", data.wav_scp)
    write_table(path / "utt2spk", data.utt2spk)
    write_table(path / "spk2utt", data.spk2utt)
    if data.utt2dur:
        write_table(path / "utt2dur", {k: f"{v:.3f}" for k, v in data.utt2dur.items()})
    if data.feats_scp:
        write_table(path / "feats.scp", data.feats_scp)
    if data.utt2num_frames:
        write_table(path / "utt2num_frames", data.utt2num_frames)


def validate_data_dir(path: PathLike, check_wavs: bool = True, check_trials: bool = True,
                      check_features: bool = True) -> DataDir:
    """Check a data directory as Kaldi's validate_data_dir.sh does; raise DataError naming the culprit.

    Checks sorted unique keys, that utt2spk and spk2utt agree, that wav.scp,
    utt2dur and feats.scp cover exactly the utterances of utt2spk (with a ``segments``
    file: that the segments do, and name exactly the recordings of wav.scp), that every
    wav file exists and is readable audio, and that trials name known utterances (with an ``enroll``
    file beside them: models of it on the left, whose utterances are known; :mod:`pyfunc.data.enroll`).
    ``feats.scp`` and ``utt2num_frames`` may lack exactly the utterances that stage 1
    listed in ``skipped_utts`` (bad audio left out with --skip-bad-audio). Without
    ``check_features`` those two files are not looked at (a stage about to replace them).
    """
    path = Path(path)
    data = load_data_dir(path, features=check_features)
    if not data.utt2spk:
        raise DataError(f"{path}/utt2spk: no utterances")
    spk2utt_file = path / "spk2utt"
    if not spk2utt_file.is_file():
        raise DataError(f"{spk2utt_file}: file not found")
    spk2utt = {k: v for k, v in read_text_table(spk2utt_file, 2, None, check_sorted=True).items()}
    expected = data.spk2utt
    for spk, utts in spk2utt.items():
        if spk not in expected:
            raise DataError(f"{spk2utt_file}: speaker {spk!r} has no utterance in utt2spk")
        if sorted(utts) != expected[spk]:
            raise DataError(f"{spk2utt_file}: utterances of speaker {spk!r} disagree with utt2spk")
    for spk in expected:
        if spk not in spk2utt:
            raise DataError(f"{spk2utt_file}: speaker {spk!r} of utt2spk is missing")
    if (path / SEGMENTS).is_file():  # utterances are spans of the recordings in wav.scp
        check_segments(path / SEGMENTS, read_segments(path / SEGMENTS), data.utt2spk, data.wav_scp)
    else:
        _check_same_keys(path / "wav.scp", data.wav_scp, data.utt2spk)
    if data.utt2dur:
        _check_same_keys(path / "utt2dur", data.utt2dur, data.utt2spk)
    if data.feats_scp or data.utt2num_frames:
        skipped = read_skipped(path)
        unknown = sorted(set(skipped) - set(data.utt2spk))
        if unknown:
            raise DataError(f"{path / 'skipped_utts'}: {len(unknown)} utterance(s) not in utt2spk, e.g. {unknown[:3]}")
        kept = {utt: spk for utt, spk in data.utt2spk.items() if utt not in skipped}
        for name, table in (("feats.scp", data.feats_scp), ("utt2num_frames", data.utt2num_frames)):
            if table:
                _check_same_keys(path / name, table, kept)
    if check_wavs:
        for utt, entry in data.wav_scp.items():
            check_wav_entry(path / "wav.scp", utt, entry)
    if check_trials and (path / "trials").is_file() and enroll_beside(path / "trials") is not None:
        check_enrolled_trials(path / "trials", read_enroll(path / ENROLL_NAME), data.utt2spk)  # models on the left
    elif check_trials and (path / "trials").is_file():
        known = data.utt2spk
        for number, fields in iter_table_lines(path / "trials"):
            enroll, test, _ = parse_trial_line(path / "trials", number, fields)
            for utt in (enroll, test):
                if utt not in known:
                    raise DataError(f"{path / 'trials'}:{number}: unknown utterance {utt!r}")
    return data


def _check_same_keys(path: Path, table: Mapping[str, object], utt2spk: Mapping[str, str]) -> None:
    missing = sorted(set(utt2spk) - set(table))
    extra = sorted(set(table) - set(utt2spk))
    if missing:
        raise DataError(f"{path}: {len(missing)} utterance(s) of utt2spk missing, e.g. {missing[:3]}")
    if extra:
        raise DataError(f"{path}: {len(extra)} utterance(s) not in utt2spk, e.g. {extra[:3]}")


def split_utts(utts: list[str], num_jobs: int) -> list[list[str]]:
    """Split sorted utterances into ``num_jobs`` contiguous, near-equal parts (Kaldi's split_scp)."""
    if num_jobs < 1:
        raise ValueError("num_jobs must be >= 1")
    num_jobs = min(num_jobs, max(1, len(utts)))
    base, extra = divmod(len(utts), num_jobs)
    parts, start = [], 0
    for job in range(num_jobs):
        size = base + (1 if job < extra else 0)
        parts.append(utts[start:start + size])
        start += size
    return parts


def split_data_dir(path: PathLike, num_jobs: int, features: bool = True) -> list[Path]:
    """Write ``path/split{N}/{1..N}`` subsets (Kaldi's split_data.sh) and return them.

    Without ``features``, ``feats.scp`` and ``utt2num_frames`` are neither read nor split; with them, a
    ``vad.scp`` (stage 1's voice activity) is split too, as split_data.sh does, so that the jobs of stage 3
    with ``--vad`` find their utterances' decisions.
    """
    path = Path(path)
    data = load_data_dir(path, features=features)
    vad = read_scp(path / VAD_SCP) if features and (path / VAD_SCP).is_file() else None
    parts = split_utts(data.utts, num_jobs)
    root = path / f"split{len(parts)}"
    if root.exists():
        shutil.rmtree(root)
    out = []
    for job, utts in enumerate(parts, start=1):
        write_data_dir(root / str(job), data.subset(utts))
        if vad is not None:
            write_table(root / str(job) / VAD_SCP, {u: vad[u] for u in utts if u in vad})
        out.append(root / str(job))
    return out


def holds_data(out_dir: PathLike, data: DataDir) -> bool:
    """Whether ``out_dir`` already holds the wav.scp, utt2spk and utt2dur of ``data`` (and no segments)."""
    out_dir = Path(out_dir)
    if not (out_dir / "utt2spk").is_file() or (out_dir / SEGMENTS).exists():
        return False
    old = load_data_dir(out_dir, features=False)
    return (old.wav_scp, old.utt2spk, old.utt2dur) == (data.wav_scp, data.utt2spk, data.utt2dur)


def replace_data_dir(out_dir: PathLike, data: DataDir, also_drop: Iterable[str] = ()) -> None:
    """Write ``data`` to ``out_dir`` over whatever data dir was there: its features, skipped list, segments,
    split folders and ``also_drop`` are removed first, so that no stage mistakes them for the new data's."""
    out_dir = Path(out_dir)
    for name in (*also_drop, "feats.scp", "utt2num_frames", "skipped_utts", SEGMENTS):
        (out_dir / name).unlink(missing_ok=True)
    if out_dir.is_dir():
        for child in out_dir.iterdir():
            if child.is_dir() and re.fullmatch(r"split\d+", child.name):
                shutil.rmtree(child)
    write_data_dir(out_dir, data)


def subset_per_speaker(data_dir: PathLike, out_dir: PathLike, per_speaker: int) -> DataDir:
    """Write ``out_dir``: the first ``per_speaker`` utterances (sorted ids) of each speaker of ``data_dir`` (all
    of a speaker's when fewer), with wav.scp, utt2spk and utt2dur; e.g. a smaller AS-norm cohort. Checked, and
    written over whatever data dir was there (its trials, features, segments and split folders dropped), unless
    it already holds this subset: then nothing is written, so stamps of it still hold.

    Raises ConfigError when ``per_speaker`` is below 1, DataError when ``data_dir`` is not a valid data dir.
    """
    if per_speaker < 1:
        raise ConfigError(f"utterances per speaker must be at least 1, got {per_speaker}")
    data = load_data_dir(data_dir, features=False)
    subset = data.subset(u for utts in data.spk2utt.values() for u in utts[:per_speaker])
    out_dir = Path(out_dir)
    if not (out_dir / "trials").exists() and holds_data(out_dir, subset):
        logger.info("%s: already the first %d utterances of each speaker of %s", out_dir, per_speaker, data_dir)
        return subset  # already there: left as it is, so stage 1's stamp of it still holds
    replace_data_dir(out_dir, subset, also_drop=("trials",))
    validate_data_dir(out_dir, check_wavs=False)
    logger.info("%s: at most %d utterances of each of the %d speakers of %s", out_dir, per_speaker,
                len(data.spk2utt), data_dir)
    return subset
