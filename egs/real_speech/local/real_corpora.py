"""The recorded corpora of the real_speech recipe: where they come from, getting them, and checking them.

Each corpus is a public GitHub repository pinned to one commit (:data:`CORPORA`). :func:`fetch_corpus`
puts a checkout of that commit in ``DOWNLOADS/<repository name>``, cloned from (in this order) a
``--source NAME=PATH_OR_URL`` override, a local mirror (``--mirror DIR``: DIR/<owner>+<name>/repo,
DIR/<owner>+<name>, DIR/<name>.git or DIR/<name>, any git repository holding the commit) or the public
URL. Only the paths the recipe reads are checked out (sparse checkout); files of those paths whose
blobs a partial mirror lacks are left out and logged, and the checks below decide whether what is there
is enough. A checkout already at the commit, with those paths, is reused. A ``--source`` folder that is
not a git repository is used as it is (no commit is checked).

The ``scan_*`` functions list what a checkout holds and check it against :class:`Requirements` (counts,
readable headers, sample rates), raising a DataError that names the corpus and what is missing or short.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import shutil
import subprocess
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import soundfile

from pyfunc.data.audio import wav_truncation
from pyfunc.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Corpus:
    """One pinned public repository and what the recipe reads from it."""

    key: str  # the short name used by --source and in the data (dsp, arabic, librispeech, esc10, irs)
    name: str  # the corpus's name in messages
    owner: str
    repo: str
    commit: str
    licence: str
    used: str  # what the recipe takes from it
    paths: tuple[str, ...]  # the folders and files checked out (sparse checkout patterns, repository-relative)

    @property
    def url(self) -> str:
        return f"https://github.com/{self.owner}/{self.repo}.git"


CORPORA: dict[str, Corpus] = {c.key: c for c in (
    Corpus("dsp", "DSPSpeech-20", "zhongyuchen", "DSPSpeech-20", "8165959c2567190524898e8187021c8ffb19b262",
           "MIT", "speech_data/: 34 speakers x 20 isolated Chinese and English words x 20 repetitions, 16 kHz",
           ("speech_data/", "LICENSE", "README.md")),
    Corpus("arabic", "arabic-speech-commands", "abdulkaderghandoura", "arabic-speech-commands-dataset",
           "72f3438212ff6cf8fbe5ae8068361840646429bd", "CC BY 4.0",
           "dataset/: 30 speakers x 40 Arabic keywords x 10 repetitions, 16 kHz; background_noise/: real noises",
           ("dataset/", "background_noise/", "LICENSE", "README.md")),
    Corpus("librispeech", "LibriSpeech (Resemblyzer's audio_data)", "resemble-ai", "Resemblyzer",
           "15d828edebe06bc72b9cabc8ef8ca5ab2cb457ce", "CC BY 4.0 (LibriSpeech); the repository's code is Apache-2.0",
           "audio_data/librispeech_test-other/ (10 speakers x 10 read sentences), "
           "audio_data/librispeech_train-clean-100/ (251 speakers x 1 clip)",
           ("audio_data/librispeech_test-other/", "audio_data/librispeech_train-clean-100/", "audio_data/README.md",
            "LICENSE")),
    Corpus("esc10", "ESC-10", "karolpiczak", "ESC-10", "553c8f1743b9dba6b282e1323c3ca8fa76923448", "CC BY 3.0",
           "8 of the 10 classes of 5 s environmental clips (44.1 kHz Ogg Vorbis); Baby cry and Person sneeze "
           "(human voices) left out",
           ("[0-9][0-9][0-9] - */", "README.md", "LICENSE")),
    Corpus("irs", "pymixconsole impulse responses", "csteinmetz1", "pymixconsole",
           "49d86aeddfdd0b59c18830b02f63c98f721caf9d",
           "MIT (repository, LICENSE); the IRs themselves are from OpenAIR and Emmanuel Deruty under Creative Commons "
           "licences, see pymixconsole/irs/README.md",
           "pymixconsole/irs/{hall,large_room,medium_room,small_room}.wav: measured room and hall responses "
           "(plate.wav, a plate reverb, left out)",
           ("pymixconsole/irs/", "LICENSE", "README.md")),
)}


# ----------------------------------------------------------------------------------------------
# Getting a corpus


@dataclass
class Checkout:
    """Where a corpus is on disk, the commit checked out (None for a plain folder) and what a mirror lacked."""

    corpus: Corpus
    root: Path
    commit: str | None
    absent: list[str] = field(default_factory=list)  # files of the checked-out paths missing from the source


def _git(args: list[str], cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    result = subprocess.run(["git", "-c", "advice.detachedHead=false", *args], cwd=cwd, env=env,
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        raise DataError(f"git {' '.join(args[:3])}...: {result.stderr.strip().splitlines()[-1:] or ['failed']}")
    return result


def is_git_repository(path: Path) -> bool:
    """True when ``path`` itself is a git repository (bare, or a work tree with .git), not a folder inside one."""
    return (path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())


def has_commit(repository: str, commit: str) -> bool:
    """Whether the local git repository ``repository`` holds ``commit``."""
    return _git(["-C", repository, "cat-file", "-e", f"{commit}^{{commit}}"], check=False).returncode == 0


def find_in_mirror(corpus: Corpus, mirror: Path) -> Path:
    """The git repository of ``corpus`` under ``mirror``; a DataError naming the places looked at when none."""
    candidates = [mirror / f"{corpus.owner}+{corpus.repo}" / "repo", mirror / f"{corpus.owner}+{corpus.repo}",
                  mirror / f"{corpus.repo}.git", mirror / corpus.repo]
    for candidate in candidates:
        if candidate.is_dir() and is_git_repository(candidate):
            return candidate
    raise DataError(f"{corpus.name}: no git repository of {corpus.owner}/{corpus.repo} in the mirror {mirror} "
                    f"(looked for {', '.join(str(c) for c in candidates)})")


def _escape_pattern(path: str) -> str:
    return re.sub(r"([\\*?\[\]!#])", r"\\\1", path)


def _sparse_patterns(corpus: Corpus, absent: list[str]) -> list[str]:
    return [f"/{p}" for p in corpus.paths] + [f"!/{_escape_pattern(p)}" for p in absent]


def absent_files(repository: Path, corpus: Corpus, commit: str) -> list[str]:
    """The files of ``corpus.paths`` at ``commit`` whose blobs ``repository`` lacks (a partial mirror)."""
    listing = _git(["-C", str(repository), "ls-tree", "-r", "-z", "--full-tree", commit]).stdout
    blobs: dict[str, str] = {}
    for entry in filter(None, listing.split("\0")):
        meta, path = entry.split("\t", 1)
        mode, kind, sha = meta.split()
        if kind == "blob" and _selected(path, corpus.paths):
            blobs[path] = sha
    if not blobs:
        return []
    check = subprocess.run(["git", "-C", str(repository), "cat-file", "--batch-check=%(objectname)"],
                           input="\n".join(blobs.values()) + "\n", capture_output=True, text=True, check=True)
    missing = {line.split()[0] for line in check.stdout.splitlines() if line.endswith(" missing")}
    return sorted(path for path, sha in blobs.items() if sha in missing)


def _selected(path: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``path`` is one of the sparse-checkout ``patterns`` (files, or ``folder/`` globs)."""
    for pattern in patterns:
        if pattern.endswith("/"):
            depth = pattern.count("/")
            parts = path.split("/")
            if len(parts) > depth and fnmatch.fnmatchcase("/".join(parts[:depth]) + "/", pattern):
                return True
        elif path == pattern:
            return True
    return False


def _checkout_is_current(dest: Path, corpus: Corpus) -> bool:
    if not (dest / ".git").exists():
        return False
    head = _git(["-C", str(dest), "rev-parse", "HEAD"], check=False)
    if head.returncode != 0 or head.stdout.strip() != corpus.commit:
        return False
    patterns = _git(["-C", str(dest), "sparse-checkout", "list"], check=False).stdout.splitlines()
    if [p for p in patterns if not p.startswith("!")] != [f"/{p}" for p in corpus.paths]:
        return False
    status = _git(["-C", str(dest), "status", "--porcelain", "--untracked-files=no"], check=False)
    return status.returncode == 0 and not status.stdout.strip()


def fetch_corpus(corpus: Corpus, download_dir: Path, mirror: Path | None = None, source: str | None = None) -> Checkout:
    """A checkout of ``corpus`` at its pinned commit under ``download_dir`` (see the module docstring)."""
    if source is not None and "://" not in source and not source.startswith("git@"):
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise DataError(f"{corpus.name}: --source {corpus.key}={source}: no such folder")
        if not is_git_repository(folder):
            logger.info("%s: using the folder %s as it is (not a git repository: no commit was checked)",
                        corpus.name, folder)
            return Checkout(corpus, folder.resolve(), None)
        origin = str(folder.resolve())
    elif source is not None:
        origin = source
    elif mirror is not None:
        origin = str(find_in_mirror(corpus, Path(mirror)).resolve())
    else:
        origin = corpus.url
    local = "://" not in origin and not origin.startswith("git@")
    if local and not has_commit(origin, corpus.commit):
        raise DataError(f"{corpus.name}: {origin} does not hold the pinned commit {corpus.commit}")
    dest = Path(download_dir).resolve() / corpus.repo
    if _checkout_is_current(dest, corpus):
        absent = _git(["-C", str(dest), "sparse-checkout", "list"]).stdout.splitlines()
        absent = [p[2:].replace("\\", "") for p in absent if p.startswith("!/")]
        logger.info("%s: %s is already at %s", corpus.name, dest, corpus.commit[:12])
        return Checkout(corpus, dest, corpus.commit, absent)
    tmp = dest.parent / f".{dest.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    dest.parent.mkdir(parents=True, exist_ok=True)
    logger.info("%s: cloning %s at %s into %s", corpus.name, origin, corpus.commit[:12], dest)
    try:
        _git(["clone", "--quiet", "--no-checkout", origin, str(tmp)])
        if not has_commit(str(tmp), corpus.commit):
            fetched = _git(["-C", str(tmp), "fetch", "--quiet", "origin", corpus.commit], check=False)
            if fetched.returncode != 0 or not has_commit(str(tmp), corpus.commit):
                raise DataError(f"{corpus.name}: {origin} does not hold the pinned commit {corpus.commit}")
        absent = absent_files(tmp, corpus, corpus.commit)
        if absent:
            shown = ", ".join(absent[:10]) + (" ..." if len(absent) > 10 else "")
            logger.warning("%s: %d file(s) of the pinned commit are absent from %s (a partial mirror), left out: %s",
                           corpus.name, len(absent), origin, shown)
        _git(["-C", str(tmp), "sparse-checkout", "set", "--no-cone", *_sparse_patterns(corpus, absent)])
        _git(["-C", str(tmp), "checkout", "--quiet", "--detach", corpus.commit])
        if dest.exists():
            logger.info("%s: replacing %s (not a clean checkout of %s)", corpus.name, dest, corpus.commit[:12])
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return Checkout(corpus, dest, corpus.commit, absent)


def parse_sources(items: list[str]) -> dict[str, str]:
    """``NAME=PATH_OR_URL`` options by corpus key; NAME is a key (dsp, arabic, ...) or a repository name."""
    names = {c.key.lower(): c.key for c in CORPORA.values()}
    names.update({c.repo.lower(): c.key for c in CORPORA.values()})
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not value or name.lower() not in names:
            raise ConfigError(f"--source {item!r}: expected NAME=PATH_OR_URL with NAME one of "
                              f"{', '.join(sorted(names))}")
        out[names[name.lower()]] = value
    return out


# ----------------------------------------------------------------------------------------------
# Checking what a checkout holds


@dataclass(frozen=True)
class Requirements:
    """What each corpus must hold at least (the defaults fit the pinned commits; tests lower them)."""

    dsp_speakers: int = 34
    dsp_files_per_speaker: int = 390  # 20 words x 20 repetitions; one speaker has 399
    arabic_speakers: int = 30
    arabic_files_per_speaker: int = 390  # 40 keywords x 10 repetitions
    words_per_speaker: int = 10  # distinct words (keywords) a speaker must have recorded
    libri_test_speakers: int = 10
    libri_test_utts_per_speaker: int = 10
    libri_train_speakers: int = 200  # 251 in the pinned commit
    esc_clips: int = 300  # 8 classes x 40 after the two human-voice classes are left out
    background_noises: int = 1  # 8 in the repository; a partial mirror may lack some
    irs: tuple[str, ...] = ("hall", "large_room", "medium_room", "small_room")


# ESC-10 classes of human voices, left out of the noises.
ESC_EXCLUDED_CLASSES = ("Baby cry", "Person sneeze")


@dataclass
class AudioInfo:
    """Header facts of one file."""

    rate: int
    channels: int
    frames: int


def audio_info(path: Path, corpus: str) -> AudioInfo:
    """soundfile's header of ``path``; a DataError naming the corpus and file when unreadable, empty or truncated."""
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError) as err:
        raise DataError(f"{corpus}: cannot read audio {path}: {err}") from None
    if info.frames == 0:
        raise DataError(f"{corpus}: audio {path} is empty")
    if path.suffix == ".wav":
        truncated = wav_truncation(path)
        if truncated:
            raise DataError(f"{corpus}: audio {path} is {truncated}")
    return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames))


def _log_rates(corpus: str, infos: list[AudioInfo]) -> None:
    rates = Counter((i.rate, i.channels) for i in infos)
    hours = sum(i.frames / i.rate for i in infos) / 3600
    logger.info("%s: %d files, %.2f h; %s", corpus, len(infos), hours,
                ", ".join(f"{n} at {r} Hz x {c} ch" for (r, c), n in sorted(rates.items())))


@dataclass
class WordCorpus:
    """An isolated-word corpus: ``files[speaker][word]`` = the recordings (sorted paths)."""

    key: str  # dsp or arabic
    name: str
    files: dict[str, dict[str, list[Path]]]

    @property
    def vocabulary(self) -> list[str]:
        return sorted({w for words in self.files.values() for w in words})


def _check_speakers(name: str, where: str, files: dict[str, dict[str, list[Path]]], min_speakers: int,
                    min_files: int, min_words: int) -> None:
    if len(files) < min_speakers:
        raise DataError(f"{name}: {len(files)} speakers found under {where}, at least {min_speakers} needed")
    for speaker, words in sorted(files.items()):
        count = sum(len(v) for v in words.values())
        if count < min_files:
            raise DataError(f"{name}: speaker {speaker} has {count} files, at least {min_files} needed")
        if len(words) < min_words:
            raise DataError(f"{name}: speaker {speaker} recorded {len(words)} different words, at least {min_words} "
                            "needed")


def scan_dsp(root: Path, req: Requirements) -> WordCorpus:
    """``speech_data/<id>/<id>-<word 00-19>-<rep 01-20>.wav``, checked."""
    name, folder = CORPORA["dsp"].name, root / "speech_data"
    if not folder.is_dir():
        raise DataError(f"{name}: {folder} not found")
    files: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
    infos = []
    for path in sorted(folder.glob("*/*.wav")):
        match = re.fullmatch(r"(\w+)-(\d\d)-(\d\d)\.wav", path.name)
        if not match or match.group(1) != path.parent.name:
            raise DataError(f"{name}: {path}: expected speech_data/<id>/<id>-<word>-<repetition>.wav")
        infos.append(audio_info(path, name))
        files[match.group(1)][match.group(2)].append(path)
    _check_speakers(name, "speech_data/", files, req.dsp_speakers, req.dsp_files_per_speaker, req.words_per_speaker)
    _log_rates(name, infos)
    return WordCorpus("dsp", name, {s: dict(w) for s, w in sorted(files.items())})


def scan_arabic(root: Path, req: Requirements) -> WordCorpus:
    """``dataset/<keyword>/<speaker>_NO_<rep>.wav``, checked; keyword spaces become ``_`` in word names."""
    name, folder = CORPORA["arabic"].name, root / "dataset"
    if not folder.is_dir():
        raise DataError(f"{name}: {folder} not found")
    files: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
    infos = []
    for path in sorted(folder.glob("*/*.wav")):
        match = re.fullmatch(r"(\d+)_NO_(\d+)\.wav", path.name)
        if not match:
            raise DataError(f"{name}: {path}: expected dataset/<keyword>/<speaker>_NO_<repetition>.wav")
        infos.append(audio_info(path, name))
        files[match.group(1)][path.parent.name.replace(" ", "_")].append(path)
    _check_speakers(name, "dataset/", files, req.arabic_speakers, req.arabic_files_per_speaker,
                    req.words_per_speaker)
    _log_rates(name, infos)
    return WordCorpus("arabic", name, {s: dict(w) for s, w in sorted(files.items())})


@dataclass
class LibriClips:
    """LibriSpeech clips by speaker: ``test`` (test-other, several each) and ``train`` (train-clean-100, one each)."""

    test: dict[str, list[Path]]
    train: dict[str, Path]


def scan_librispeech(root: Path, req: Requirements) -> LibriClips:
    """Resemblyzer's ``audio_data/librispeech_test-other/<spk>/<spk>-<ch>-<n>.flac`` and
    ``audio_data/librispeech_train-clean-100/<spk>-<ch>-<n>.flac``, checked."""
    name = CORPORA["librispeech"].name
    test_dir = root / "audio_data" / "librispeech_test-other"
    train_dir = root / "audio_data" / "librispeech_train-clean-100"
    test: dict[str, list[Path]] = defaultdict(list)
    train: dict[str, Path] = {}
    infos = []
    pattern = re.compile(r"(\d+)-(\d+)-(\d+)\.flac")
    for path in sorted(test_dir.glob("*/*.flac")):
        match = pattern.fullmatch(path.name)
        if not match or match.group(1) != path.parent.name:
            raise DataError(f"{name}: {path}: expected librispeech_test-other/<spk>/<spk>-<chapter>-<n>.flac")
        infos.append(audio_info(path, name))
        test[match.group(1)].append(path)
    for path in sorted(train_dir.glob("*.flac")):
        match = pattern.fullmatch(path.name)
        if not match:
            raise DataError(f"{name}: {path}: expected librispeech_train-clean-100/<spk>-<chapter>-<n>.flac")
        infos.append(audio_info(path, name))
        train.setdefault(match.group(1), path)  # the first clip of a speaker (one each in the pinned commit)
    if len(test) < req.libri_test_speakers:
        raise DataError(f"{name}: {len(test)} speakers found under {test_dir}, at least {req.libri_test_speakers} "
                        "needed")
    for speaker, clips in sorted(test.items()):
        if len(clips) < req.libri_test_utts_per_speaker:
            raise DataError(f"{name}: test-other speaker {speaker} has {len(clips)} clips, at least "
                            f"{req.libri_test_utts_per_speaker} needed")
    if len(train) < req.libri_train_speakers:
        raise DataError(f"{name}: {len(train)} speakers found under {train_dir}, at least "
                        f"{req.libri_train_speakers} needed")
    shared = sorted(set(test) & set(train))
    if shared:
        raise DataError(f"{name}: speakers {shared[:5]} are in both test-other and train-clean-100")
    _log_rates(name, infos)
    return LibriClips(dict(sorted(test.items())), dict(sorted(train.items())))


def scan_noises(esc_root: Path, arabic_root: Path, req: Requirements) -> dict[str, Path]:
    """The real noises by id: ESC-10 clips but the human-voice classes (``esc-<class>-<clip>``) and the Arabic
    corpus's ``background_noise/*.wav`` (``bg-<name>``), checked."""
    esc, arabic = CORPORA["esc10"].name, CORPORA["arabic"].name
    noises: dict[str, Path] = {}
    infos = []
    for folder in sorted(p for p in esc_root.iterdir() if p.is_dir() and re.fullmatch(r"\d{3} - .+", p.name)):
        label = folder.name.split(" - ", 1)[1]
        if label in ESC_EXCLUDED_CLASSES:
            continue
        for path in sorted(folder.glob("*.ogg")):
            infos.append(audio_info(path, esc))
            noises[f"esc-{label.lower().replace(' ', '_')}-{path.stem}"] = path
    if len(infos) < req.esc_clips:
        raise DataError(f"{esc}: {len(infos)} clips found in the <NNN - Class>/ folders of {esc_root} (without "
                        f"{' and '.join(ESC_EXCLUDED_CLASSES)}), at least {req.esc_clips} needed")
    _log_rates(esc, infos)
    background = sorted((arabic_root / "background_noise").glob("*.wav"))
    if len(background) < req.background_noises:
        raise DataError(f"{arabic}: {len(background)} files found under background_noise/, at least "
                        f"{req.background_noises} needed")
    _log_rates(f"{arabic} background_noise", [audio_info(p, arabic) for p in background])
    noises.update({f"bg-{p.stem}": p for p in background})
    return dict(sorted(noises.items()))


def scan_irs(root: Path, req: Requirements) -> dict[str, Path]:
    """The measured impulse responses named in ``req.irs`` (``pymixconsole/irs/<name>.wav``), checked."""
    name, folder = CORPORA["irs"].name, root / "pymixconsole" / "irs"
    irs: dict[str, Path] = {}
    for ir in req.irs:
        path = folder / f"{ir}.wav"
        if not path.is_file():
            raise DataError(f"{name}: {path} not found")
        audio_info(path, name)
        irs[f"ir-{ir}"] = path
    return irs
