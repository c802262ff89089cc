"""What a data directory, a trials file or a Kaldi table holds, in a few lines (``python -m pyfunc info``).

Each ``describe_*`` function returns a :class:`Description`: a title and ``(label, value)``
rows, plus ``problems`` (a failed check; the tool then exits 1). Reading is all it does.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pyfunc.data.atomic import PathLike
from pyfunc.data.audio import is_pipe
from pyfunc.data.badinput import read_skipped
from pyfunc.data.datadir import load_data_dir, validate_data_dir
from pyfunc.data.table_io import iter_rspecifier, parse_rspecifier
from pyfunc.data.tables import read_scp
from pyfunc.data.trials import read_trials
from pyfunc.errors import DataError


@dataclass
class Description:
    """``title`` and ``(label, value)`` rows; ``problems``: checks that failed."""

    title: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, label: str, value: str) -> None:
        self.rows.append((label, value))

    def text(self) -> str:
        width = max((len(label) for label, _ in self.rows), default=0)
        lines = [self.title] + [f"  {label:<{width}}  {value}" for label, value in self.rows]
        return "\n".join(lines) + "\n"


def spread(values: np.ndarray, digits: int = 2) -> str:
    """``min / mean / max`` of ``values``."""
    return f"min {values.min():.{digits}f}, mean {values.mean():.{digits}f}, max {values.max():.{digits}f}"


def size_text(num_bytes: int) -> str:
    """A byte count for people: ``512 B``, ``23.2 MB``."""
    value = float(num_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{num_bytes} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def trial_counts(path: PathLike) -> str:
    """``N trials (T target, U nontarget), K utterances`` of a trials file."""
    trials = read_trials(path, require_labels=False)
    labels = Counter(label for _, _, label in trials)
    utts = {utt for enroll, test, _ in trials for utt in (enroll, test)}
    parts = [f"{labels[True]} target", f"{labels[False]} nontarget"]
    if labels[None]:
        parts.append(f"{labels[None]} unlabelled")
    return f"{len(trials)} ({', '.join(parts)}), {len(utts)} utterances"


def describe_trials(path: PathLike) -> Description:
    """A trials file: how many trials, of which target and non-target, over how many utterances."""
    info = Description(f"{path}: trials file")
    info.add("trials", trial_counts(path))
    return info


_CHECKS = "sorted unique keys, utt2spk = spk2utt, every table covers utt2spk, trials name known utterances"


def describe_data_dir(path: PathLike, check_audio: bool = False) -> Description:
    """A Kaldi data directory: speakers, utterances, hours, features, trials, and the data-dir checks.

    ``check_audio`` also opens every audio file of wav.scp (slow on a large corpus).
    """
    path = Path(path)
    info = Description(f"{path}: Kaldi data directory")
    data = load_data_dir(path)
    info.add("speakers", str(len(data.spk2utt)))
    info.add("utterances", str(len(data.utt2spk)))
    if data.utt2dur:
        seconds = np.asarray(list(data.utt2dur.values()))
        info.add("hours", f"{seconds.sum() / 3600:.2f} ({seconds.sum():.1f} s in utt2dur; per utterance "
                          f"{spread(seconds)} s)")
    else:
        info.add("hours", "unknown (no utt2dur)")
    pipes = sum(is_pipe(entry) for entry in data.wav_scp.values())
    info.add("audio", f"wav.scp: {len(data.wav_scp)} entries" + (f" ({pipes} pipe commands)" if pipes else ""))
    if data.feats_scp:
        frames = np.asarray(list(data.utt2num_frames.values())) if data.utt2num_frames else None
        text = f"feats.scp: {len(data.feats_scp)} utterances"
        if frames is not None:
            text += f"; utt2num_frames: {int(frames.sum())} frames ({spread(frames, 0)} per utterance)"
        info.add("features", text)
    else:
        info.add("features", "none (no feats.scp: stage 1 not run, or the seed front end reads wav.scp)")
    skipped = read_skipped(path)
    if skipped:
        info.add("skipped", f"{len(skipped)} utterances left out as bad input (skipped_utts)")
    if (path / "trials").is_file():
        info.add("trials", trial_counts(path / "trials"))
    if (path / "utt2aug").is_file():
        info.add("augmented", f"utt2aug: {len(read_scp(path / 'utt2aug'))} utterances")
    try:
        validate_data_dir(path, check_wavs=check_audio)
        audio = "every audio file opened" if check_audio else "audio not opened: --check-audio"
        info.add("checks", f"passed ({_CHECKS}; {audio})")
    except DataError as err:
        info.add("checks", "FAILED (see below)")
        info.problems.append(str(err))
    return info


def _ark_files(scp: Path) -> list[tuple[str, int | None]]:
    arks: dict[str, int | None] = {}
    for entry in read_scp(scp).values():
        if is_pipe(entry):
            continue
        name = entry.rsplit(":", 1)[0] if ":" in entry else entry
        if name not in arks:
            arks[name] = os.path.getsize(name) if os.path.isfile(name) else None
    return list(arks.items())


def describe_table(path: PathLike) -> Description:
    """A Kaldi table (an scp, or an ark file): entries, dimension, frames or norms, non-finite values, arks.

    Reads every entry (with a progress bar on a terminal).
    """
    path = Path(path)
    is_scp = path.suffix != ".ark"
    spec = parse_rspecifier(f"{'scp' if is_scp else 'ark'}:{path}", "table")
    info = Description(f"{path}: Kaldi {'scp' if is_scp else 'ark'} table")
    kinds: Counter = Counter()
    dims: Counter = Counter()
    frames, norms, bad, keys = [], [], [], []
    for key, array in tqdm(iter_rspecifier(spec, "table"), desc=f"reading {path.name}", unit="entry", disable=None,
                           leave=False):
        keys.append(key)
        kinds["vectors" if array.ndim == 1 else "matrices"] += 1
        dims[array.shape[-1]] += 1
        finite = bool(np.isfinite(array).all())
        if not finite:
            bad.append(key)
        if array.ndim == 2:
            frames.append(array.shape[0])
        elif finite:
            norms.append(float(np.linalg.norm(array.astype(np.float64))))
    if not keys:
        raise DataError(f"{path}: no entries")
    kind = " and ".join(f"{count} {name}" for name, count in sorted(kinds.items()))
    info.add("entries", f"{len(keys)} ({kind})")
    info.add("dimension", ", ".join(f"{dim} ({count} entries)" if len(dims) > 1 else str(dim)
                                    for dim, count in sorted(dims.items())))
    if frames:
        counts = np.asarray(frames)
        info.add("frames", f"{int(counts.sum())} ({spread(counts, 0)} per entry)")
    if norms:
        info.add("L2 norms", spread(np.asarray(norms)) + (" (of the finite entries)" if bad else ""))
    info.add("NaN/inf", "none" if not bad else f"{len(bad)} entries, e.g. {bad[:3]}")
    order = "sorted" if keys == sorted(keys, key=lambda k: k.encode()) else "not sorted (LC_ALL=C)"
    duplicates = len(keys) - len(set(keys))
    info.add("keys", f"{order}, " + ("unique" if not duplicates else f"{duplicates} repeated"))
    if is_scp:
        arks = _ark_files(path)
        shown = [f"{name} ({size_text(size) if size is not None else 'MISSING'})" for name, size in arks[:8]]
        more = f", ... ({len(arks) - 8} more)" if len(arks) > 8 else ""
        total = sum(size or 0 for _, size in arks)
        info.add("arks", f"{len(arks)} file(s), {size_text(total)}: " + ", ".join(shown) + more)
    else:
        info.add("size", size_text(path.stat().st_size))
    if bad:
        info.problems.append(f"{path}: {len(bad)} entries hold NaN or infinity, e.g. {bad[:3]}")
    return info
