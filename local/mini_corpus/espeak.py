"""Running espeak-ng: one utterance as 16 kHz float samples, silence trimming, and the installation check.

The voice of a synthetic speaker is an English accent (``-v en-us``), a voice variant
(``+m3``: the timbre, a file under espeak-ng-data/voices/!v), a pitch (``-p``), a rate
(``-s``) and a word gap (``-g``); see :class:`mini_corpus.voices.SpeakerSpec`.
"""

from __future__ import annotations

import io
import re
import shlex
import shutil
import subprocess
from typing import Iterable

import numpy as np
import soundfile
from scipy.signal import resample_poly

from pyfunc.data.audio import SAMPLE_RATE
from pyfunc.errors import PyfuncError

ESPEAK_RATE = 22050


class SynthesisError(PyfuncError):
    """espeak-ng is missing, or synthesising an utterance failed."""


def espeak_command(espeak: str, voice: str, text: str, pitch: int, rate: int, word_gap: int,
                   amplitude: int) -> list[str]:
    """The espeak-ng command line that writes the wav of ``text`` to stdout."""
    return [espeak, "-v", voice, "-p", str(pitch), "-s", str(rate), "-g", str(word_gap),
            "-a", str(amplitude), "--stdout", text]


def show_command(command: list[str]) -> str:
    return shlex.join(command)


def run_espeak(command: list[str], where: str) -> np.ndarray:
    """Run an espeak-ng command that writes a wav to stdout; return float64 samples at 22050 Hz."""
    try:
        result = subprocess.run(command, capture_output=True, timeout=60)
    except FileNotFoundError:
        raise SynthesisError(f"{where}: espeak-ng not found ({command[0]!r}); "
                             "install it with apt-get install espeak-ng") from None
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SynthesisError(f"{where}: espeak-ng failed ({err}); command: {show_command(command)}") from None
    message = result.stderr.decode(errors="replace").strip()
    if result.returncode != 0 or not result.stdout:
        raise SynthesisError(f"{where}: espeak-ng exited with code {result.returncode}"
                             f"{': ' + message if message else ''}; command: {show_command(command)}")
    try:
        samples, rate = soundfile.read(io.BytesIO(result.stdout), dtype="float64", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as err:
        raise SynthesisError(f"{where}: espeak-ng output is not a wav file ({err}); "
                             f"command: {show_command(command)}") from None
    if rate != ESPEAK_RATE or samples.shape[0] == 0:
        raise SynthesisError(f"{where}: espeak-ng gave {samples.shape[0]} samples at {rate} Hz, expected audio at "
                             f"{ESPEAK_RATE} Hz; command: {show_command(command)}")
    return samples[:, 0]


def synthesize_voice(voice: str, text: str, pitch: int, rate: int, word_gap: int, espeak: str = "espeak-ng",
                     where: str = "") -> np.ndarray:
    """Speech of ``voice`` saying ``text`` at 16 kHz (float64), re-synthesised more softly if it clipped."""
    amplitude = 80
    while True:
        command = espeak_command(espeak, voice, text, pitch, rate, word_gap, amplitude)
        samples = run_espeak(command, where or voice)
        if np.max(np.abs(samples)) < 0.999 or amplitude <= 10:
            break
        amplitude //= 2
    return resample_poly(samples, SAMPLE_RATE // 50, ESPEAK_RATE // 50)


def trim_silence(samples: np.ndarray, threshold: float = 0.02, margin_s: float = 0.03) -> np.ndarray:
    """Cut leading and trailing parts quieter than ``threshold`` times the peak, keeping a margin."""
    loud = np.flatnonzero(np.abs(samples) > threshold * np.max(np.abs(samples)))
    if loud.size == 0:
        return samples
    margin = int(margin_s * SAMPLE_RATE)
    return samples[max(0, loud[0] - margin): loud[-1] + margin + 1]


def check_voices(accents: Iterable[str], variants: Iterable[str], espeak: str = "espeak-ng") -> None:
    """Raise SynthesisError unless espeak-ng runs and has every accent and variant named."""
    if shutil.which(espeak) is None:
        raise SynthesisError(f"espeak-ng not found ({espeak!r}); install it with apt-get install espeak-ng")
    listing = {}
    for kind in ("en", "variant"):
        command = [espeak, f"--voices={kind}"]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise SynthesisError(f"cannot run {show_command(command)}: {err}") from None
        if result.returncode != 0:
            raise SynthesisError(f"{show_command(command)} exited with code {result.returncode}: "
                                 f"{result.stderr.strip()}")
        listing[kind] = result.stdout
    languages = {line.split()[1] for line in listing["en"].splitlines()[1:] if len(line.split()) > 1}
    variant_files = set(re.findall(r"!v/(\S+)", listing["variant"]))
    missing = [a for a in accents if a not in languages] + [v for v in variants if v not in variant_files]
    if missing:
        raise SynthesisError(f"{espeak} lacks voices this corpus needs: {', '.join(missing)}")
