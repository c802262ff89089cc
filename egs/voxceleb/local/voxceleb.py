"""VoxCeleb1 and VoxCeleb2 data preparation (stage 0 of the VoxCeleb recipe; its ``local/`` scripts import it).

Layouts read (the released ones)::

    VoxCeleb1   ROOT/wav/id10001/1zcIwhmdeo4/00001.wav      (16 kHz mono wav)
                or two roots, ROOT/vox1_dev_wav/wav and ROOT/vox1_test_wav/wav
    VoxCeleb2   ROOT/dev/aac/id00012/21Uxsk56VDQ/00001.m4a  (AAC, as released)
                or ROOT/.../id00012/21Uxsk56VDQ/00001.wav    (after :func:`pyfunc.data.m4a.convert_m4a_tree`)

A *speaker root* is a folder whose sub-folders are speakers (``id`` followed by
digits); each speaker folder holds video folders, each video folder the audio files.
Any folder given is searched (at most :data:`MAX_SEARCH_DEPTH` levels down) for
speaker roots, so ``ROOT``, ``ROOT/wav`` or ``ROOT/dev/aac`` all work.

Data directories written (Kaldi conventions, sorted keys):

- utterance id: the path relative to the speaker root, without extension,
  ``/``-separated: ``id10270/x6uYqmx31kE/00001``. It begins with the speaker id, as
  Kaldi wants, and is what the official trial lists and WeSpeaker use.
- ``utt2spk``: utterance -> its first component; ``spk2utt`` its inverse.
- ``wav.scp``: absolute wav paths, or for m4a files the pipe command
  ``ffmpeg -nostdin -v error -i /abs/x.m4a -f wav -ac 1 -ar 16000 - |`` (only run
  where pipes are allowed, see :func:`pyfunc.data.audio.read_audio`). Paths with
  whitespace cannot be written to wav.scp and are refused.
- ``utt2dur``: from the wav headers (every wav file is opened once, which also checks
  that it is readable 16 kHz mono audio). For m4a entries there is no ``utt2dur``:
  getting durations would mean decoding every file; convert to wav to have one.

Trial lists: the official cleaned lists ``veri_test2.txt`` (Vox1-O),
``list_test_all2.txt`` (Vox1-E) and ``list_test_hard2.txt`` (Vox1-H), lines
``1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav``, are converted to
Kaldi trials (``enroll test target|nontarget``) in ``VOX1_DATA/trials/vox1_o``,
``trials/vox1_e`` and ``trials/vox1_h`` (a folder ``trials`` of named lists, so the
list name is the file name). :func:`pyfunc.data.corpus_files.make_trial_subset` can also write a data directory
holding only the utterances of one list, with that list as its ``trials`` file (the
form ``run.sh`` stages 3-6 take), e.g. ``data/vox1_o``. The lists come from
https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta/ (``veri_test2.txt`` etc.).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from tqdm import tqdm

from pyfunc.data.atomic import PathLike
from pyfunc.data.corpus_files import check_scp_path, wav_durations, write_checked_data_dir
from pyfunc.data.datadir import DataDir
from pyfunc.data.m4a import convert_m4a_tree, ffmpeg_pipe, require_ffmpeg
from pyfunc.data.tables import iter_table_lines, read_map
from pyfunc.data.trials import read_trials, write_trials
from pyfunc.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

SPEAKER_DIR = re.compile(r"id\d+")
MAX_SEARCH_DEPTH = 4
AUDIO_MODES = ("auto", "wav", "m4a")
# Official list file -> trial list name.
OFFICIAL_TRIALS = {"veri_test2.txt": "vox1_o", "list_test_all2.txt": "vox1_e", "list_test_hard2.txt": "vox1_h"}
TRIALS_URL = "https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta/"
# The released VoxCeleb2 dev set: speakers and utterances (Chung et al., 2018).
VOX2_DEV_SPEAKERS = 5994
VOX2_DEV_UTTERANCES = 1092009
# Files of an earlier data directory that would no longer match a fresh wav.scp.


@dataclass
class AudioTree:
    """Audio files found under speaker roots, keyed by utterance id, per extension."""

    speaker_roots: list[Path]
    files: dict[str, dict[str, str]] = field(default_factory=lambda: {"wav": {}, "m4a": {}})

    def count(self, ext: str) -> int:
        return len(self.files.get(ext, {}))


# ----------------------------------------------------------------------------------------------
# Finding and walking the trees


def find_speaker_roots(root: PathLike, max_depth: int = MAX_SEARCH_DEPTH) -> list[Path]:
    """Folders at most ``max_depth`` levels under ``root`` (``root`` included) whose sub-folders
    include speaker folders (``id`` + digits); the search does not go below one found.

    Raises DataError if ``root`` is not a folder or holds no speaker folder.
    """
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise DataError(f"{root}: folder not found")
    found: list[Path] = []
    level = [root]
    for _ in range(max_depth + 1):
        below: list[Path] = []
        for folder in level:
            subdirs = _subdirs(folder)
            if any(SPEAKER_DIR.fullmatch(name) for name in subdirs):
                found.append(folder)
            else:
                below.extend(folder / name for name in subdirs if not name.startswith("."))
        level = below
        if not level:
            break
    if not found:
        raise DataError(f"{root}: no speaker folders (id10001/, id00012/, ...) found in it or up to {max_depth} "
                        "levels below")
    return sorted(found)


def _subdirs(folder: Path) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if e.is_dir())
    except OSError as err:
        raise DataError(f"{folder}: cannot list folder: {err}") from None


def scan_audio_tree(roots: Iterable[PathLike], extensions: Sequence[str] = ("wav", "m4a"),
                    desc: str = "scanning") -> AudioTree:
    """Walk ``speaker/video/file`` under every speaker root found below ``roots``.

    Uses ``os.scandir`` (no stat of the files). Files of other extensions, and anything
    not at the speaker/video/file depth, are ignored. Two files of the same extension
    with the same utterance id (e.g. one corpus given twice) raise DataError.
    """
    speaker_roots: list[Path] = []
    for root in roots:
        for speaker_root in find_speaker_roots(root):
            if speaker_root not in speaker_roots:
                speaker_roots.append(speaker_root)
    tree = AudioTree(speaker_roots, {ext: {} for ext in extensions})
    speakers = [(sr, name) for sr in speaker_roots for name in _subdirs(sr) if SPEAKER_DIR.fullmatch(name)]
    logger.info("%d speaker folder(s) under %s", len(speakers), ", ".join(map(str, speaker_roots)))
    with tqdm(speakers, desc=desc, unit="spk", dynamic_ncols=True, mininterval=1.0) as bar:
        for speaker_root, speaker in bar:
            _scan_speaker(speaker_root, speaker, tree.files)
            bar.set_postfix({ext: str(len(files)) for ext, files in tree.files.items()}, refresh=False)
    return tree


def _scan_speaker(speaker_root: Path, speaker: str, files: dict[str, dict[str, str]]) -> None:
    speaker_dir = speaker_root / speaker
    for video in _subdirs(speaker_dir):
        video_dir = speaker_dir / video
        try:
            with os.scandir(video_dir) as entries:
                names = [e.name for e in entries if e.is_file()]
        except OSError as err:
            raise DataError(f"{video_dir}: cannot list folder: {err}") from None
        for name in names:
            stem, dot, ext = name.rpartition(".")
            table = files.get(ext.lower()) if dot else None
            if table is None or not stem or name.startswith("."):
                continue
            utt = f"{speaker}/{video}/{stem}"
            path = str(video_dir / name)
            check_scp_path(path)
            if utt in table:
                raise DataError(f"utterance {utt!r} found twice: {table[utt]} and {path}; give each corpus "
                                "folder only once")
            table[utt] = path

def convert_vox2_dev(vox2_root: PathLike, wav_dir: PathLike, num_jobs: int = 4) -> Path | None:
    """Stage 0's m4a handling: decode VoxCeleb2 dev's .m4a files once to 16 kHz wav under ``wav_dir``.

    Only the dev speaker folders are converted (:func:`check_dev_only` first), each into ``wav_dir``
    itself (``wav_dir/id00012/21Uxsk56VDQ/00001.wav``), by :func:`convert_m4a_tree`: ``num_jobs``
    ffmpeg processes, atomic per file, resuming an interrupted run. Returns ``wav_dir``, or None
    (nothing done) when ``vox2_root`` has no m4a or already a wav beside every m4a.
    """
    check_dev_only([vox2_root])
    tree = scan_audio_tree([vox2_root], ("wav", "m4a"), desc="scanning VoxCeleb2")
    m4a, wav = tree.files["m4a"], tree.files["wav"]
    if not m4a or set(m4a) <= set(wav):
        return None
    wav_dir = Path(os.path.abspath(wav_dir))
    for speaker_root in tree.speaker_roots:
        if any(str(path).startswith(f"{speaker_root}{os.sep}") for path in m4a.values()):
            logger.info("decoding the m4a files of %s to wav in %s", speaker_root, wav_dir)
            report = convert_m4a_tree(speaker_root, wav_dir, num_jobs)
            logger.info("%s: %d files converted, %d already there", wav_dir, report.converted, report.skipped)
    return wav_dir


# ----------------------------------------------------------------------------------------------
def _utt2spk(utts: Iterable[str]) -> dict[str, str]:
    return {utt: utt.split("/", 1)[0] for utt in utts}


def _choose_audio(tree: AudioTree, audio: str, where: str) -> str:
    """The extension to use: ``audio`` itself, or for 'auto' wav unless only m4a is complete."""
    wav, m4a = tree.files["wav"], tree.files["m4a"]
    if audio == "auto":
        if wav and (not m4a or set(m4a) <= set(wav)):
            return "wav"
        if m4a and not wav:
            return "m4a"
        if not wav and not m4a:
            raise DataError(f"{where}: no .wav or .m4a files in speaker/video/ folders")
        raise DataError(f"{where}: found {len(wav)} .wav and {len(m4a)} .m4a files, and {len(set(m4a) - set(wav))} "
                        "m4a have no wav (an unfinished conversion?); finish convert_m4a.py, or choose "
                        "audio 'wav' or 'm4a'")
    if not tree.files[audio]:
        other = "m4a" if audio == "wav" else "wav"
        raise DataError(f"{where}: no .{audio} files in speaker/video/ folders (found {tree.count(other)} "
                        f".{other} files)")
    return audio


def check_dev_only(roots: Sequence[PathLike]) -> None:
    """DataError when a root holds speaker folders outside VoxCeleb2's ``dev`` folder (e.g. the corpus root,
    whose ``test/aac`` holds the 118 test speakers): every speaker folder found below a root must have a
    folder named ``dev`` on its way (the root's own name counts), unless the root itself holds the speakers."""
    outside = []
    for root in roots:
        root = Path(os.path.abspath(root))
        for speaker_root in find_speaker_roots(root):
            relative = speaker_root.relative_to(root).parts
            if relative and "dev" not in (root.name, *relative):
                outside.append(str(speaker_root))
    if outside:
        raise DataError(f"{', '.join(outside)}: speaker folders outside VoxCeleb2's dev/ folder (the test set's "
                        "speakers are not training data); give the dev folder itself, e.g. --vox2-root "
                        "/corpora/voxceleb2/dev/aac")


def report_vox2_counts(speakers: int, utterances: int, where: str) -> None:
    """Warn when the counts differ from the released VoxCeleb2 dev set's (5 994 speakers, 1 092 009 utterances)."""
    if (speakers, utterances) != (VOX2_DEV_SPEAKERS, VOX2_DEV_UTTERANCES):
        logger.warning("VoxCeleb2 at %s: %d speakers and %d utterances, but the released dev set has %d and %d "
                       "(a partial download, or another folder?)", where, speakers, utterances, VOX2_DEV_SPEAKERS,
                       VOX2_DEV_UTTERANCES)
    else:
        logger.info("VoxCeleb2 at %s: %d speakers and %d utterances, as released", where, speakers, utterances)


def check_disjoint_speakers(train_dir: PathLike, eval_dir: PathLike, trials_files: Sequence[PathLike]) -> None:
    """DataError when a speaker of a trial list (utterances of ``eval_dir``) is also a training speaker
    (``train_dir/utt2spk``): such scores would not measure verification of unseen speakers."""
    train_utt2spk = Path(train_dir) / "utt2spk"
    training = set(read_map(train_utt2spk).values())
    utt2spk = read_map(Path(eval_dir) / "utt2spk")
    for trials in trials_files:
        speakers = {utt2spk[u] for enroll, test, _ in read_trials(trials) for u in (enroll, test) if u in utt2spk}
        both = sorted(speakers & training)
        if both:
            raise DataError(f"{trials}: {len(both)} of its {len(speakers)} speakers are also training speakers in "
                            f"{train_utt2spk}, e.g. {both[:3]}; evaluate on speakers the model has not seen "
                            "(is --vox2-root VoxCeleb2 dev?)")


def prepare_vox2_dev(vox2_root: PathLike | Sequence[PathLike], out_dir: PathLike, audio: str = "auto",
                     num_jobs: int = 1) -> DataDir:
    """Write the VoxCeleb2 dev data directory (e.g. ``data/vox2_dev``) from wav or m4a files.

    ``audio``: 'wav' uses the wav files, 'm4a' the m4a files through ffmpeg pipe entries (no
    utt2dur; ffmpeg must be installed), 'auto' wav when every m4a has a wav (or there is no
    m4a), else m4a when there is no wav at all. Give the dev folder: every speaker folder
    found below ``vox2_root`` is included.
    """
    if audio not in AUDIO_MODES:
        raise ConfigError(f"audio must be one of {', '.join(AUDIO_MODES)}, got {audio!r}")
    roots = [vox2_root] if isinstance(vox2_root, (str, os.PathLike)) else list(vox2_root)
    where = ", ".join(os.path.abspath(r) for r in roots)
    check_dev_only(roots)
    tree = scan_audio_tree(roots, ("wav", "m4a"), desc="scanning VoxCeleb2")
    ext = _choose_audio(tree, audio, where)
    logger.info("VoxCeleb2: using the %d .%s files (found %d .wav, %d .m4a)", tree.count(ext), ext,
                tree.count("wav"), tree.count("m4a"))
    files = tree.files[ext]
    utt2spk = _utt2spk(files)
    report_vox2_counts(len(set(utt2spk.values())), len(utt2spk), where)
    if ext == "m4a":
        require_ffmpeg(len(files), where)
        data = DataDir({utt: ffmpeg_pipe(path) for utt, path in files.items()}, utt2spk)
        return write_checked_data_dir(out_dir, data, check_wavs=False)
    durations = wav_durations(files, num_jobs, desc="VoxCeleb2 wav headers")
    return write_checked_data_dir(out_dir, DataDir(dict(files), utt2spk, durations), check_wavs=False)


def prepare_vox1(vox1_roots: PathLike | Sequence[PathLike], out_dir: PathLike, num_jobs: int = 1) -> DataDir:
    """Write the data directory of all of VoxCeleb1 (e.g. ``data/vox1``) from one or more roots.

    Dev and test may be one merged ``wav/`` folder or separate roots; the wav files' headers
    give ``utt2dur`` (and are checked to be 16 kHz mono).
    """
    roots = [vox1_roots] if isinstance(vox1_roots, (str, os.PathLike)) else list(vox1_roots)
    if not roots:
        raise DataError("prepare_vox1: no VoxCeleb1 root given")
    where = ", ".join(os.path.abspath(r) for r in roots)
    files = scan_audio_tree(roots, ("wav",), desc="scanning VoxCeleb1").files["wav"]
    if not files:
        raise DataError(f"{where}: no .wav files in speaker/video/ folders (expected wav/id10001/VIDEO/00001.wav)")
    durations = wav_durations(files, num_jobs, desc="VoxCeleb1 wav headers")
    return write_checked_data_dir(out_dir, DataDir(dict(files), _utt2spk(files), durations), check_wavs=False)


# ----------------------------------------------------------------------------------------------
# Trials


def _strip_ext(path: str) -> str:
    for ext in (".wav", ".m4a"):
        if path.endswith(ext):
            return path[: -len(ext)]
    return path


def convert_trials(official_list: PathLike, vox1_data_dir: PathLike, out_trials: PathLike) -> int:
    """Convert an official list (``1 id10270/x/00001.wav id10270/y/00008.wav``) to Kaldi trials.

    Every utterance must be in ``vox1_data_dir/utt2spk``, and a target (label 1) must pair
    two utterances of one speaker, a non-target two speakers; else DataError naming the list's
    line. Keeps the list's order; returns the number of trials.
    """
    official_list = Path(official_list)
    utt2spk_path = Path(vox1_data_dir) / "utt2spk"
    utt2spk = read_map(utt2spk_path)
    trials: list[tuple[str, str, bool]] = []
    for number, fields in iter_table_lines(official_list):
        where = f"{official_list}:{number}"
        if len(fields) != 3 or fields[0] not in ("0", "1"):
            raise DataError(f"{where}: expected '1|0 enroll.wav test.wav', got {' '.join(fields)!r}")
        target = fields[0] == "1"
        enroll, test = _strip_ext(fields[1]), _strip_ext(fields[2])
        for utt in (enroll, test):
            if utt not in utt2spk:
                raise DataError(f"{where}: utterance {utt!r} is not in {utt2spk_path} "
                                "(is the VoxCeleb1 data directory complete?)")
        if (utt2spk[enroll] == utt2spk[test]) != target:
            kind = "target" if target else "non-target"
            raise DataError(f"{where}: {kind} trial but the speakers are {utt2spk[enroll]} and {utt2spk[test]}")
        trials.append((enroll, test, target))
    if not trials:
        raise DataError(f"{official_list}: no trials")
    write_trials(out_trials, trials)
    return len(trials)


@dataclass
class TrialsReport:
    """Trial lists written (name -> path, number of trials) and official files not found."""

    written: dict[str, tuple[Path, int]]
    missing: list[Path]


def trials_path(vox1_data_dir: PathLike, name: str) -> Path:
    """Where the trial list ``name`` (vox1_o, vox1_e, vox1_h) of a VoxCeleb1 data directory lives."""
    return Path(vox1_data_dir) / "trials" / name


def prepare_vox1_trials(meta_dir: PathLike, vox1_data_dir: PathLike,
                        names: Sequence[str] | None = None) -> TrialsReport:
    """Convert whichever of ``veri_test2.txt``, ``list_test_all2.txt``, ``list_test_hard2.txt``
    are in ``meta_dir`` into ``vox1_data_dir/trials/{vox1_o,vox1_e,vox1_h}``.

    The report lists the missing ones; DataError when none is there. With ``names``
    (e.g. ``["vox1_o", "vox1_h"]``) only those lists are converted, and each must be there.
    """
    meta_dir = Path(meta_dir)
    if not meta_dir.is_dir():
        raise DataError(f"{meta_dir}: folder not found")
    files = {name: filename for filename, name in OFFICIAL_TRIALS.items()}
    if names is not None:
        unknown = sorted(set(names) - set(files))
        if unknown or not names:
            raise ConfigError(f"trial lists {list(names)!r}: choose among {', '.join(files)}")
        absent = [files[n] for n in names if not (meta_dir / files[n]).is_file()]
        if absent:
            raise DataError(f"{meta_dir}: {', '.join(absent)} not found; download from {TRIALS_URL}")
    written: dict[str, tuple[Path, int]] = {}
    missing: list[Path] = []
    for filename, name in OFFICIAL_TRIALS.items():
        if names is not None and name not in names:
            continue
        source = meta_dir / filename
        if not source.is_file():
            missing.append(source)
            continue
        out = trials_path(vox1_data_dir, name)
        written[name] = (out, convert_trials(source, vox1_data_dir, out))
        logger.info("%s: %d trials from %s", out, written[name][1], source)
    if not written:
        raise DataError(f"{meta_dir}: none of {', '.join(OFFICIAL_TRIALS)} found; download them from {TRIALS_URL}")
    for path in missing:
        logger.warning("%s not found: trial list %s not made", path, OFFICIAL_TRIALS[path.name])
    return TrialsReport(written, missing)


__all__ = ["AudioTree", "OFFICIAL_TRIALS", "TrialsReport", "VOX2_DEV_SPEAKERS", "VOX2_DEV_UTTERANCES",
           "check_dev_only", "check_disjoint_speakers", "convert_trials", "convert_vox2_dev", "find_speaker_roots",
           "prepare_vox1", "prepare_vox1_trials", "prepare_vox2_dev", "report_vox2_counts", "scan_audio_tree",
           "trials_path"]
