"""Audio input: wav.scp entries (files, or pipe commands when allowed) read with soundfile."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import numpy as np
import soundfile

from pyfunc.errors import DataError

SAMPLE_RATE = 16000
# Pipe commands in wav.scp ("sox a.flac -t wav - |") run a shell; only when the user allows it.
_ALLOW_PIPES = os.environ.get("PYFUNC_ALLOW_PIPES", "0") == "1"


def allow_pipes(allowed: bool = True) -> None:
    """Allow or forbid running ``wav.scp`` pipe commands in this process and its children."""
    global _ALLOW_PIPES
    _ALLOW_PIPES = allowed
    os.environ["PYFUNC_ALLOW_PIPES"] = "1" if allowed else "0"


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


def read_audio(entry: str, where: str = "", expected_rate: int | None = SAMPLE_RATE) -> np.ndarray:
    """Read a ``wav.scp`` entry as float32 mono samples in [-1, 1].

    ``where`` names the source in error messages (e.g. ``data/train/wav.scp: utt1``).
    Rejects unreadable files, other sample rates (when ``expected_rate`` is set),
    multi-channel audio, empty audio and non-finite samples.
    """
    where = where or entry
    source: str | io.BytesIO = _read_pipe(entry, where) if is_pipe(entry) else entry
    if isinstance(source, str) and not Path(source).is_file():
        raise DataError(f"{where}: audio file {source!r} not found")
    try:
        samples, rate = soundfile.read(source, dtype="float64", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, ValueError) as err:
        raise DataError(f"{where}: cannot read audio: {err}") from None
    if samples.shape[1] != 1:
        raise DataError(f"{where}: expected mono audio, got {samples.shape[1]} channels")
    if expected_rate is not None and rate != expected_rate:
        raise DataError(f"{where}: expected sample rate {expected_rate} Hz, got {rate} Hz")
    if samples.shape[0] == 0:
        raise DataError(f"{where}: audio is empty")
    if not np.isfinite(samples).all():
        raise DataError(f"{where}: audio has non-finite samples")
    return samples[:, 0].astype(np.float32)


def check_wav_entry(scp_path: Path | str, utt: str, entry: str) -> None:
    """Check that a wav.scp entry can be opened (files: header only; pipes: not run)."""
    where = f"{scp_path}: {utt}"
    if is_pipe(entry):
        return
    if not Path(entry).is_file():
        raise DataError(f"{where}: audio file {entry!r} not found")
    try:
        info = soundfile.info(entry)
    except (RuntimeError, soundfile.LibsndfileError) as err:
        raise DataError(f"{where}: cannot read audio {entry!r}: {err}") from None
    if info.frames == 0:
        raise DataError(f"{where}: audio {entry!r} is empty")


def write_wav(path: str | Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write float samples in [-1, 1] as 16-bit PCM wav, atomically."""
    from pyfunc.fileio import atomic_path

    with atomic_path(path) as tmp:
        soundfile.write(tmp, np.clip(samples, -1.0, 1.0), rate, subtype="PCM_16", format="WAV")
