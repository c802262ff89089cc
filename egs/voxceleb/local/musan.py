"""MUSAN and RIRS_NOISES data preparation (the augmentation sources of the VoxCeleb recipe).

Layouts read (the released ones, 16 kHz wav)::

    MUSAN        ROOT/musan/noise/free-sound/noise-free-sound-0000.wav, noise/sound-bible/...
                 ROOT/musan/music/<source>/music-*.wav, ROOT/musan/speech/<source>/speech-*.wav
    RIRS_NOISES  ROOT/RIRS_NOISES/simulated_rirs/{smallroom,mediumroom,largeroom}/Room001/Room001-00001.wav

``ROOT`` may also be the ``musan`` or ``RIRS_NOISES`` folder itself. Data directories
written (wav.scp with absolute paths, utt2spk mapping each file to itself, spk2utt,
utt2dur from the headers, which are checked to be 16 kHz mono):

- ``OUT_ROOT/musan_noise``, ``musan_music``, ``musan_speech``: by default the seed's
  ``musan_split`` without copying audio: a Kaldi ``segments`` file cuts each file into
  5 s segments starting at 0, 3, 6 ... s while the start is before ``length - 5 s``
  (files of 5 s or less give none and are left out of wav.scp). Recording id = file
  stem (``noise-free-sound-0000``, unique within a category), segment id
  ``<recording>-<start in centiseconds, 7 digits>`` (``noise-free-sound-0000-0000300``),
  each segment its own "speaker". With ``segment_seconds=0`` each whole file is one
  utterance and there is no ``segments`` file.
- ``OUT_DIR`` (e.g. ``data/rirs``): the simulated RIRs, utterance id
  ``<room type>-<file stem>`` (``smallroom-Room001-00001``, as in Kaldi's ``rir_list``).
  The real RIRs and point-source noises of RIRS_NOISES are not used.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

from pyfunc.data.atomic import PathLike
from pyfunc.data.audio import SAMPLE_RATE
from pyfunc.data.corpus_files import check_scp_path, walk_files, wav_durations, write_checked_data_dir
from pyfunc.data.datadir import DataDir
from pyfunc.data.segments import Segment, split_spans
from pyfunc.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

MUSAN_CATEGORIES = ("noise", "music", "speech")
SEED_SEGMENT_SECONDS = 5.0  # voxceleb_trainer's musan_split: audlen = 16000 * 5
SEED_HOP_SECONDS = 3.0  # audstr = 16000 * 3
ROOM_TYPES = ("smallroom", "mediumroom", "largeroom")


def find_musan(musan_root: PathLike) -> Path:
    """The ``musan`` folder: ``musan_root`` itself or ``musan_root/musan`` (the one holding noise/ music/ speech/)."""
    root = Path(os.path.abspath(musan_root))
    for candidate in (root, root / "musan"):
        if all((candidate / c).is_dir() for c in MUSAN_CATEGORIES):
            return candidate
    raise DataError(f"{root}: not a MUSAN folder (expected noise/, music/ and speech/ in it or in {root / 'musan'})")


def find_simulated_rirs(rirs_root: PathLike) -> Path:
    """The ``simulated_rirs`` folder under ``rirs_root`` (which may be RIRS_NOISES or its parent)."""
    root = Path(os.path.abspath(rirs_root))
    for candidate in (root, root / "simulated_rirs", root / "RIRS_NOISES" / "simulated_rirs"):
        if any((candidate / r).is_dir() for r in ROOM_TYPES):
            return candidate
    raise DataError(f"{root}: no simulated_rirs/{{{','.join(ROOM_TYPES)}}} folders found "
                    "(expected RIRS_NOISES/simulated_rirs/smallroom/Room001/Room001-00001.wav)")


def _one_per_file(paths: list[str], make_id, where: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    for path in paths:
        utt = make_id(Path(path))
        check_scp_path(path)
        if utt in files:
            raise DataError(f"{where}: two files give the id {utt!r}: {files[utt]} and {path}")
        files[utt] = path
    return files


def _whole_ms_samples(seconds: float, what: str) -> int:
    samples = seconds * SAMPLE_RATE
    if not (math.isfinite(samples) and samples > 0 and samples % (SAMPLE_RATE // 1000) == 0):
        raise ConfigError(f"MUSAN {what}: expected a positive number of whole milliseconds, got {seconds!r} s")
    return int(samples)


def split_musan(files: dict[str, str], durations: dict[str, float], segment_seconds: float = SEED_SEGMENT_SECONDS,
                hop_seconds: float = SEED_HOP_SECONDS) -> tuple[DataDir, dict[str, Segment]]:
    """The seed's musan_split as a segmented data dir: (recordings with at least one segment, segment table).

    Spans by :func:`pyfunc.data.segments.split_spans` on each file's sample count; ``utt2spk`` maps each
    segment to itself and ``utt2dur`` gives its length.
    """
    length = _whole_ms_samples(segment_seconds, "segment length")
    hop = _whole_ms_samples(hop_seconds, "segment hop")
    segments: dict[str, Segment] = {}
    for recording in sorted(files):
        for begin, end in split_spans(round(durations[recording] * SAMPLE_RATE), length, hop):
            segments[f"{recording}-{begin * 100 // SAMPLE_RATE:07d}"] = Segment(
                recording, begin / SAMPLE_RATE, end / SAMPLE_RATE)
    kept = {s.recording for s in segments.values()}
    data = DataDir({r: files[r] for r in kept}, {utt: utt for utt in segments},
                   {utt: s.end - s.start for utt, s in segments.items()})
    return data, segments


def prepare_musan(musan_root: PathLike, out_root: PathLike, num_jobs: int = 1,
                  segment_seconds: float = SEED_SEGMENT_SECONDS,
                  hop_seconds: float = SEED_HOP_SECONDS) -> dict[str, DataDir]:
    """Write ``out_root/musan_{noise,music,speech}``; return them keyed by category.

    Segmented as the seed's musan_split (see the module docstring) unless ``segment_seconds`` is 0.
    """
    musan = find_musan(musan_root)
    out: dict[str, DataDir] = {}
    for category in MUSAN_CATEGORIES:
        folder = musan / category
        files = _one_per_file(walk_files(folder, "wav"), lambda p: p.stem, folder)
        if not files:
            raise DataError(f"{folder}: no .wav files")
        durations = wav_durations(files, num_jobs, desc=f"MUSAN {category}")
        out_dir = Path(out_root) / f"musan_{category}"
        if not segment_seconds:
            data = DataDir(files, {utt: utt for utt in files}, durations)
            out[category] = write_checked_data_dir(out_dir, data, check_wavs=False)
            continue
        data, segments = split_musan(files, durations, segment_seconds, hop_seconds)
        if not segments:
            raise DataError(f"{folder}: no file longer than {segment_seconds:g} s, so no {segment_seconds:g} s "
                            "segment (the seed's musan_split); give longer files or --segment-seconds 0")
        logger.info("MUSAN %s: %d segments of %g s from %d of %d files (the others are %g s or shorter)",
                    category, len(segments), segment_seconds, len(data.wav_scp), len(files), segment_seconds)
        out[category] = write_checked_data_dir(out_dir, data, check_wavs=False, segments=segments)
    return out


def prepare_rirs(rirs_root: PathLike, out_dir: PathLike, num_jobs: int = 1) -> DataDir:
    """Write the simulated RIRs of RIRS_NOISES as a data directory (e.g. ``data/rirs``)."""
    simulated = find_simulated_rirs(rirs_root)
    files: dict[str, str] = {}
    for room_type in ROOM_TYPES:
        folder = simulated / room_type
        if not folder.is_dir():
            continue
        found = _one_per_file(walk_files(folder, "wav"), lambda p, r=room_type: f"{r}-{p.stem}", folder)
        files.update(found)
    if not files:
        raise DataError(f"{simulated}: no .wav files under {', '.join(ROOM_TYPES)}")
    durations = wav_durations(files, num_jobs, desc="simulated RIRs")
    return write_checked_data_dir(out_dir, DataDir(files, {utt: utt for utt in files}, durations), check_wavs=False)


__all__ = ["MUSAN_CATEGORIES", "ROOM_TYPES", "SEED_HOP_SECONDS", "SEED_SEGMENT_SECONDS", "find_musan",
           "find_simulated_rirs", "prepare_musan", "prepare_rirs", "split_musan"]
