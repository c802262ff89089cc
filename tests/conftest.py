"""Shared fixtures: tiny synthetic audio and data directories built in tmp_path."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pyfunc.data.audio import write_wav
from pyfunc.data.datadir import DataDir, write_data_dir

REPO = Path(__file__).resolve().parents[1]
# local/mini_corpus: the mini recipe's stage-0 package, beside local/make_mini_corpus.py (which puts local/ on
# sys.path the same way); tests import it as ``mini_corpus``.
LOCAL = REPO / "local"
if str(LOCAL) not in sys.path:
    sys.path.append(str(LOCAL))


def _shared_dir() -> Path:
    """shared/ (seed reference data): $PYFUNC_SHARED, else beside the checkout, else /work/shared."""
    candidates = [os.environ.get("PYFUNC_SHARED"), REPO.parent / "shared", "/work/shared"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "reference").is_dir():
            return Path(candidate)
    return REPO.parent / "shared"


SHARED = _shared_dir()


def tone_wav(path: Path, seconds: float, freq: float, random_seed: int, rate: int = 16000) -> Path:
    """A harmonic tone with light noise: a cheap stand-in for a voice."""
    rng = np.random.default_rng(random_seed)
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 6)) * 0.1
    wave = wave + 0.005 * rng.standard_normal(len(t))
    write_wav(path, wave.astype(np.float32), rate)
    return path


def make_tone_data_dir(root: Path, speakers: int = 3, utts: int = 3, seconds: float = 1.2) -> Path:
    """A Kaldi data dir of tones: one fundamental frequency per speaker."""
    wav_scp, utt2spk = {}, {}
    for s in range(speakers):
        spk = f"spk{s:02d}"
        for u in range(utts):
            utt = f"{spk}-{u:03d}"
            wav = tone_wav(root / "wav" / f"{utt}.wav", seconds + 0.1 * u, 110.0 + 40.0 * s, random_seed=s * 100 + u)
            wav_scp[utt] = str(wav)
            utt2spk[utt] = spk
    data = root / "data"
    write_data_dir(data, DataDir(wav_scp, utt2spk))
    return data


@pytest.fixture
def tone_data_dir(tmp_path: Path) -> Path:
    return make_tone_data_dir(tmp_path)


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each worker's torch gets its share of the cores: N workers that each use every core
    oversubscribe the machine (as local_thread_env in pyfunc/pipeline/jobs.py says for jobs). The commands that
    tests run keep their own settings (most pass OMP_NUM_THREADS=1)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


@pytest.fixture
def in_process_steps(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    """For tests that run steps in process: pipes in wav.scp forbidden (``--allow-pipes`` changes the process
    state), one torch/OpenMP thread like the job processes (so in-process and job results are bit-identical),
    INFO logs captured."""
    import pyfunc.data.audio

    caplog.set_level(logging.INFO)
    monkeypatch.setattr(pyfunc.data.audio, "_ALLOW_PIPES", False)
    monkeypatch.setenv("PYFUNC_ALLOW_PIPES", "0")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run the tests marked slow (skipped otherwise)")


# The end-to-end recipe runs, the suite's longest files: first, so that under pytest-xdist (.ci/run: -n 2
# --dist loadfile --no-loadscope-reorder) they start at once on their own workers while the other worker works
# through the short files, instead of one of them running alone at the end.
FIRST_FILES = ("test_recipe.py", "test_voxceleb_recipe.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The end-to-end files first (FIRST_FILES); tests marked slow (minutes on 2 cores, e.g. torch.compile's first
    step) run only with --runslow."""
    items.sort(key=lambda item: item.path.name not in FIRST_FILES)  # stable: the order within each group is kept
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="marked slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def restore_logging():
    """Training adds a file handler to the root logger; take it off again after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
