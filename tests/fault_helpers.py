"""Helpers of the reliability and distributed tests: run steps/*.py, build tiny inputs, inspect outputs."""

from __future__ import annotations

import os
import runpy
import signal
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import soundfile
import torch
from conftest import REPO, tone_wav

from pyfunc.config import Config
from pyfunc.data.audio import write_wav
from pyfunc.models.aam_softmax import AAMSoftmax
from pyfunc.models.model_dir import build_encoder, save_model_dir

FBANK_CONF = REPO / "conf" / "fbank.conf"


def run_step(capsys, script: str, *args: object) -> tuple[int, str]:
    """Run ``steps/<script>`` in this process as its command line would; (exit code, stderr)."""
    path = str(REPO / "steps" / script)
    saved = sys.argv
    sys.argv = [path, *map(str, args)]
    capsys.readouterr()
    try:
        runpy.run_path(path, run_name="__main__")
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        sys.argv = saved
    return code, capsys.readouterr().err


def step_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYFUNC_ALLOW_PIPES": "0"}


def start_step(script: str, *args: object, log: Path | None = None) -> subprocess.Popen:
    """Start ``steps/<script>`` as a subprocess in its own session (so its jobs can be killed with it).

    SIGTERM and SIGHUP start at their default disposition, as in a terminal: under ``nohup`` (or a CI
    runner that ignores SIGHUP) the step would inherit the ignored SIGHUP and rightly keep ignoring it.
    """
    out = open(log, "w") if log is not None else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, str(REPO / "steps" / script), *map(str, args)], env=step_env(),
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=_default_termination_signals)


def _default_termination_signals() -> None:
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def tiny_model_dir(path: Path, frontend: str, classes: int = 3) -> Path:
    """A randomly initialised C=16, 8-dim model directory."""
    torch.manual_seed(0)
    config = Config()
    config.model.frontend = frontend
    config.model.channels = 16
    config.model.embed_dim = 8
    save_model_dir(path, config, build_encoder(config.model), AAMSoftmax(8, classes))
    return path


def load_table(scp: Path) -> dict[str, np.ndarray]:
    """The arrays of an scp, in scp order."""
    return {key: np.array(value) for key, value in kaldiio.load_scp(str(scp)).items()}


def assert_same_tables(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert list(a) == list(b)
    for key in a:
        assert np.array_equal(a[key], b[key]), key


def temporaries(root: Path) -> list[Path]:
    """Temporary files of atomic writers under ``root``."""
    return sorted(p for p in root.rglob(".*.tmp"))


def bad_audio(root: Path) -> dict[str, tuple[str, str]]:
    """Broken audio files, one per way of being broken: name -> (wav.scp entry, expected message part)."""
    root.mkdir(parents=True, exist_ok=True)
    good = tone_wav(root / "source.wav", 1.0, 150.0, random_seed=9)
    data = good.read_bytes()
    (root / "garbage.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    (root / "truncated.wav").write_bytes(data[: len(data) // 2])
    soundfile.write(root / "empty.wav", np.zeros(0, np.float32), 16000, subtype="PCM_16")
    write_wav(root / "short.wav", np.full(200, 0.1, np.float32))
    soundfile.write(root / "rate8k.wav", np.zeros(8000, np.float32), 8000, subtype="PCM_16")
    soundfile.write(root / "stereo.wav", np.zeros((16000, 2), np.float32), 16000, subtype="PCM_16")
    nan = np.zeros(16000, np.float32)
    nan[100] = np.nan
    soundfile.write(root / "nan.wav", nan, 16000, subtype="FLOAT")
    return {
        "missing": (str(root / "no_such.wav"), "not found"),
        "garbage": (str(root / "garbage.wav"), "cannot read audio"),
        "truncated": (str(root / "truncated.wav"), "is truncated"),
        "empty": (str(root / "empty.wav"), "audio is empty"),
        "short": (str(root / "short.wav"), "too short"),
        "rate8k": (str(root / "rate8k.wav"), "expected sample rate 16000 Hz, got 8000 Hz"),
        "stereo": (str(root / "stereo.wav"), "expected mono audio, got 2 channels"),
        "nan": (str(root / "nan.wav"), "non-finite samples"),
        "pipefail": ("echo broken >&2; exit 3 |", "pipe command failed with exit code 3: broken"),
    }
