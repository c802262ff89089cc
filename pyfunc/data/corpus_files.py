"""What preparing any corpus needs: finding its audio files, reading their wav headers, and writing checked
data directories (also subsets holding the utterances of trial lists).

Used by the recipes' stage 0 (``egs/voxceleb/local/voxceleb.py`` and ``musan.py``, among others). The
corpus layouts themselves are the recipes' own (their ``local/`` folders).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Mapping, Sequence

import soundfile
from tqdm import tqdm

from pyfunc.data.atomic import PathLike
from pyfunc.data.audio import SAMPLE_RATE
from pyfunc.data.datadir import DataDir, load_data_dir, validate_data_dir, write_data_dir
from pyfunc.data.segments import SEGMENTS, Segment, write_segments
from pyfunc.data.trials import read_trials, write_trials
from pyfunc.errors import DataError

logger = logging.getLogger(__name__)

# Files of an earlier data directory that would no longer match a fresh wav.scp.
STALE_FILES = ("utt2dur", "utt2num_frames", "feats.scp", "segments", "reco2dur", "vad.scp", "cmvn.scp")
_INFO_CHUNK = 500


# ----------------------------------------------------------------------------------------------
# Finding files


def check_scp_path(path: str) -> None:
    """DataError if ``path`` has whitespace (a wav.scp entry cannot hold it)."""
    if any(c.isspace() for c in path):
        raise DataError(f"{path!r}: path contains whitespace, which wav.scp cannot hold; "
                        "move or symlink the corpus to a path without spaces")



def walk_files(root: PathLike, ext: str) -> list[str]:
    """Every file ``*.ext`` under ``root`` (any depth, hidden entries skipped), as sorted path strings."""
    out: list[str] = []
    stack = [str(root)]
    suffix = "." + ext.lower()
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir():
                        stack.append(entry.path)
                    elif entry.name.lower().endswith(suffix) and entry.is_file():
                        out.append(entry.path)
        except OSError as err:
            raise DataError(f"{folder}: cannot list folder: {err}") from None
    out.sort()
    return out




# ----------------------------------------------------------------------------------------------
# Wav headers


def _info_chunk(paths: list[str]) -> list[tuple[float, str | None]]:
    out: list[tuple[float, str | None]] = []
    for path in paths:
        try:
            info = soundfile.info(path)
        except (RuntimeError, soundfile.LibsndfileError) as err:
            out.append((0.0, f"cannot read audio: {err}"))
            continue
        if info.samplerate != SAMPLE_RATE:
            out.append((0.0, f"expected sample rate {SAMPLE_RATE} Hz, got {info.samplerate} Hz"))
        elif info.channels != 1:
            out.append((0.0, f"expected mono audio, got {info.channels} channels"))
        elif info.frames == 0:
            out.append((0.0, "audio is empty"))
        else:
            out.append((info.frames / info.samplerate, None))
    return out


def wav_durations(files: dict[str, str], num_jobs: int = 1, desc: str = "reading wav headers") -> dict[str, float]:
    """Duration in seconds of each wav file (utt -> path), from its header, in ``num_jobs`` processes.

    Raises DataError naming the first file that is unreadable, empty, not 16 kHz or not mono.
    """
    utts = sorted(files)
    chunks = [utts[i:i + _INFO_CHUNK] for i in range(0, len(utts), _INFO_CHUNK)]
    results: dict[int, list[tuple[float, str | None]]] = {}
    with tqdm(total=len(utts), desc=desc, unit="file", dynamic_ncols=True, mininterval=1.0) as bar:
        if num_jobs <= 1 or len(chunks) <= 1:
            for index, chunk in enumerate(chunks):
                results[index] = _info_chunk([files[u] for u in chunk])
                bar.update(len(chunk))
        else:
            with ProcessPoolExecutor(max_workers=num_jobs) as pool:
                futures = {pool.submit(_info_chunk, [files[u] for u in chunk]): index
                           for index, chunk in enumerate(chunks)}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update(len(results[futures[future]]))
    durations: dict[str, float] = {}
    for index, chunk in enumerate(chunks):
        for utt, (duration, error) in zip(chunk, results[index]):
            if error is not None:
                raise DataError(f"{files[utt]}: {error}")
            durations[utt] = duration
    return durations



# ----------------------------------------------------------------------------------------------
# Data directories


def _clear_stale(out_dir: Path) -> None:
    """Remove the files and split folders of an earlier data directory at ``out_dir``."""
    for name in STALE_FILES:
        (out_dir / name).unlink(missing_ok=True)
    if out_dir.is_dir():
        for child in out_dir.iterdir():
            if child.is_dir() and re.fullmatch(r"split\d+", child.name):
                shutil.rmtree(child)


def write_checked_data_dir(out_dir: PathLike, data: DataDir, check_wavs: bool,
                           segments: Mapping[str, Segment] | None = None) -> DataDir:
    """Clear stale files of ``out_dir``, write ``data`` there (and ``segments``, when given) and validate it
    (wav headers if ``check_wavs``)."""
    out_dir = Path(out_dir)
    _clear_stale(out_dir)
    write_data_dir(out_dir, data)
    if segments is not None:
        write_segments(out_dir / SEGMENTS, segments)
    validate_data_dir(out_dir, check_wavs=check_wavs, check_trials=False)
    logger.info("%s: %d utterances of %d speakers", out_dir, len(data.utt2spk), len(set(data.utt2spk.values())))
    return data


def make_trial_subset(data_dir: PathLike, trials: PathLike, out_dir: PathLike) -> DataDir:
    """Write a data directory of the utterances named in ``trials``, with those trials as its ``trials``."""
    data = load_data_dir(data_dir)
    pairs = read_trials(trials)
    utts = {u for enroll, test, _ in pairs for u in (enroll, test)}
    unknown = sorted(utts - set(data.utt2spk))
    if unknown:
        raise DataError(f"{trials}: {len(unknown)} utterance(s) not in {data_dir}, e.g. {unknown[:3]}")
    out_dir = Path(out_dir)
    subset = data.subset(utts)
    _clear_stale(out_dir)
    write_data_dir(out_dir, subset)
    write_trials(out_dir / "trials", [(e, t, bool(lab)) for e, t, lab in pairs])
    validate_data_dir(out_dir, check_wavs=False)
    return subset


def subset_for_trials(data_dir: PathLike, trials_files: Sequence[PathLike], out_dir: PathLike) -> DataDir:
    """Write a data directory of the utterances that any of ``trials_files`` names (no trials file of its
    own): what stage 3 must embed for those lists, instead of all of ``data_dir``."""
    if not trials_files:
        raise DataError(f"{out_dir}: no trial lists to take the utterances of")
    data = load_data_dir(data_dir)
    utts: set[str] = set()
    for trials in trials_files:
        named = {u for enroll, test, _ in read_trials(trials) for u in (enroll, test)}
        unknown = sorted(named - set(data.utt2spk))
        if unknown:
            raise DataError(f"{trials}: {len(unknown)} utterance(s) not in {data_dir}, e.g. {unknown[:3]}")
        utts |= named
    out_dir = Path(out_dir)
    (out_dir / "trials").unlink(missing_ok=True)
    subset = write_checked_data_dir(out_dir, data.subset(utts), check_wavs=False)
    logger.info("%s: the %d of %d utterances of %s that %d trial list(s) need", out_dir, len(subset.utt2spk),
                len(data.utt2spk), data_dir, len(trials_files))
    return subset



__all__ = ["STALE_FILES", "check_scp_path", "make_trial_subset", "subset_for_trials", "walk_files", "wav_durations",
           "write_checked_data_dir"]
