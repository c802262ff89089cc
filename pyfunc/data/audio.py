"""Audio input: wav.scp entries (files, or pipe commands when allowed) read with soundfile."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import numpy as np
import soundfile

from pyfunc.data.atomic import PathLike, atomic_path
from pyfunc.errors import DataError

SAMPLE_RATE = 16000

# Pipe commands in wav.scp ("sox a.flac -t wav - |") run a shell; only when the user allows it.
_ALLOW_PIPES = os.environ.get("PYFUNC_ALLOW_PIPES", "0") == "1"


def allow_pipes(allowed: bool = True) -> None:
    """Allow or forbid running ``wav.scp`` pipe commands in this process and its children."""
    global _ALLOW_PIPES
    _ALLOW_PIPES = allowed
    os.environ["PYFUNC_ALLOW_PIPES"] = "1" if allowed else "0"


def pipes_allowed() -> bool:
    """Whether ``wav.scp`` (and ``feats.scp``) pipe commands may run in this process."""
    return _ALLOW_PIPES


def is_pipe(entry: str) -> bool:
    return entry.rstrip().endswith("|")


def _read_pipe(entry: str, where: str) -> io.BytesIO:
    if not _ALLOW_PIPES:
        raise DataError(f"{where}: is a pipe command; run with --allow-pipes to execute wav.scp commands")
    result = subprocess.run(entry.rstrip()[:-1], shell=True, capture_output=True)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise DataError(f"{where}: pipe command failed with exit code {result.returncode}: {message[0]}")
    return io.BytesIO(result.stdout)


def wav_truncation(path: str | Path) -> str | None:
    """Why a RIFF/WAVE file is truncated (its data chunk declares more bytes than it holds), or None.

    libsndfile reads such a file without complaint, returning only the samples present.
    Files that are not RIFF/WAVE, and streamed WAVs whose size field is 0 or 0xFFFFFFFF,
    are not judged.
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            head = handle.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            position = 12
            while position + 8 <= size:
                handle.seek(position)
                chunk = handle.read(8)
                name, length = chunk[:4], int.from_bytes(chunk[4:8], "little")
                if name == b"data":
                    present = size - position - 8
                    if length not in (0, 0xFFFFFFFF) and present < length:
                        return f"truncated: its header declares {length} bytes of samples, the file holds {present}"
                    return None
                position += 8 + length + (length & 1)
    except OSError:
        return None
    return None


def missing_file_reason(path: PathLike) -> str:
    """Why ``path`` is not a regular file one can read: ``not found``, ``is a directory`` or ``is not a regular
    file`` (a device such as /dev/null, a FIFO, a socket)."""
    if not os.path.exists(path):
        return "not found"
    return "is a directory" if os.path.isdir(path) else "is not a regular file"


def read_samples(entry: str, where: str) -> tuple[np.ndarray, int]:
    """``(float64 samples x channels, sample rate)`` of a ``wav.scp`` entry: a file or a pipe command.

    A missing, truncated or unreadable file is a DataError naming ``where``.
    """
    source: str | io.BytesIO = _read_pipe(entry, where) if is_pipe(entry) else entry
    if isinstance(source, str):
        if not Path(source).is_file():
            raise DataError(f"{where}: audio file {source!r} {missing_file_reason(source)}")
        truncated = wav_truncation(source)
        if truncated:
            raise DataError(f"{where}: audio file {source!r} is {truncated}")
    try:
        return soundfile.read(source, dtype="float64", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, ValueError) as err:
        raise DataError(f"{where}: cannot read audio: {err}") from None


def read_audio(entry: str, where: str = "", expected_rate: int | None = SAMPLE_RATE) -> np.ndarray:
    """Read a ``wav.scp`` entry as float32 mono samples in [-1, 1].

    ``where`` names the source in error messages (e.g. ``data/train/wav.scp: utt1``).
    Rejects unreadable or truncated files, other sample rates (when ``expected_rate``
    is set), multi-channel audio, empty audio and non-finite samples.
    """
    where = where or entry
    samples, rate = read_samples(entry, where)
    return checked_mono(samples, rate, where, expected_rate)


def read_audio_bytes(data: bytes, where: str, expected_rate: int | None = SAMPLE_RATE) -> np.ndarray:
    """:func:`read_audio` of the bytes of an audio file (e.g. a member of a training shard)."""
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float64", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, ValueError) as err:
        raise DataError(f"{where}: cannot read audio: {err}") from None
    return checked_mono(samples, rate, where, expected_rate)


def checked_mono(samples: np.ndarray, rate: int, where: str, expected_rate: int | None = None) -> np.ndarray:
    """The float32 mono samples of (frames x channels) ``samples``; a DataError naming ``where`` when they
    have several channels, another rate than ``expected_rate`` (when set), none, or non-finite values."""
    if samples.shape[1] != 1:
        raise DataError(f"{where}: expected mono audio, got {samples.shape[1]} channels")
    if expected_rate is not None and rate != expected_rate:
        raise DataError(f"{where}: expected sample rate {expected_rate} Hz, got {rate} Hz")
    if samples.shape[0] == 0:
        raise DataError(f"{where}: audio is empty")
    if not np.isfinite(samples).all():
        raise DataError(f"{where}: audio has non-finite samples")
    return samples[:, 0].astype(np.float32)


def wrong_rate_message(where: str, entry: str, found: int, needed: int) -> str:
    """Why the audio of a data directory at ``found`` Hz cannot be used, and how to fix it (stages 1 and 3)."""
    source = "IN" if is_pipe(entry) else entry
    return (f"{where}: expected sample rate {needed} Hz, got {found} Hz; rerun with --resample true (the recipe "
            f"option; --resample for steps/make_fbank.py and steps/extract_embeddings.py) to resample it, or "
            f"convert the audio first, e.g. 'sox {source} -r {needed} OUT.wav' or "
            f"'ffmpeg -i {source} -ar {needed} OUT.wav'")


def check_wav_entry(scp_path: Path | str, utt: str, entry: str) -> None:
    """Check that a wav.scp entry can be opened (files: header only; pipes: not run)."""
    where = f"{scp_path}: {utt}"
    if is_pipe(entry):
        return
    if not Path(entry).is_file():
        raise DataError(f"{where}: audio file {entry!r} {missing_file_reason(entry)}")
    try:
        info = soundfile.info(entry)
    except (RuntimeError, soundfile.LibsndfileError) as err:
        raise DataError(f"{where}: cannot read audio {entry!r}: {err}") from None
    if info.frames == 0:
        raise DataError(f"{where}: audio {entry!r} is empty")
    truncated = wav_truncation(entry)
    if truncated:
        raise DataError(f"{where}: audio file {entry!r} is {truncated}")


def write_wav(path: str | Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write float samples in [-1, 1] as 16-bit PCM wav, atomically."""
    with atomic_path(path) as tmp:
        soundfile.write(tmp, np.clip(samples, -1.0, 1.0), rate, subtype="PCM_16", format="WAV")
