"""Kaldi-compatible log-mel filterbank features (stage 1).

Options come from a Kaldi-style config (``conf/fbank.conf``: ``--num-mel-bins=80``
per line), passed to ``torchaudio.compliance.kaldi.fbank``. Samples are scaled
to the 16-bit range as Kaldi's ``compute-fbank-feats`` sees them. Features are
stored without mean normalisation; the model normalises whatever segment it gets.
"""

from __future__ import annotations

import inspect
import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torchaudio.compliance.kaldi as kaldi

from pyfunc.arkio import ArkScpWriter
from pyfunc.audio import read_audio
from pyfunc.augment_offline import apply_augment_spec, read_utt2aug, split_utt2aug
from pyfunc.datadir import load_data_dir
from pyfunc.errors import ConfigError, DataError
from pyfunc.fileio import PathLike, iter_table_lines, write_table

logger = logging.getLogger(__name__)

_FBANK_PARAMS = inspect.signature(kaldi.fbank).parameters
_INT16_SCALE = 32768.0


def read_kaldi_conf(path: PathLike) -> dict[str, Any]:
    """Parse a Kaldi options file (``--name=value`` per line, ``#`` comments) into fbank kwargs."""
    options: dict[str, Any] = {}
    for number, fields in iter_table_lines(path):
        line = " ".join(fields).split("#", 1)[0].strip()
        if not line:
            continue
        if not line.startswith("--") or "=" not in line:
            raise ConfigError(f"{path}:{number}: expected '--option=value', got {line!r}")
        name, value = line[2:].split("=", 1)
        key = name.replace("-", "_")
        if key not in _FBANK_PARAMS or key in ("waveform", "channel"):
            raise ConfigError(f"{path}:{number}: unknown fbank option --{name}")
        default = _FBANK_PARAMS[key].default
        options[key] = _convert(value, type(default), f"{path}:{number}: --{name}")
    return options


def _convert(text: str, kind: type, where: str) -> Any:
    if kind is bool:
        if text.lower() in ("true", "1"):
            return True
        if text.lower() in ("false", "0"):
            return False
        raise ConfigError(f"{where}: expected true or false, got {text!r}")
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{where}: expected {kind.__name__}, got {text!r}") from None


def compute_fbank(samples: np.ndarray, options: dict[str, Any]) -> np.ndarray:
    """Log-mel fbank (frames x bins, float32) of float samples in [-1, 1]."""
    wave = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).unsqueeze(0) * _INT16_SCALE
    with torch.no_grad():
        feats = kaldi.fbank(wave, **options)
    return feats.numpy()


def make_fbank_job(data_dir: PathLike, conf: PathLike, ark_path: PathLike, scp_path: PathLike,
                   progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Compute features for every utterance of ``data_dir`` into one ark/scp pair.

    Returns utt -> number of frames. ``progress`` is called with the count done so far.
    """
    options = read_kaldi_conf(conf)
    rate = int(options.get("sample_frequency", 16000.0))
    data = load_data_dir(data_dir)
    utt2aug = read_utt2aug(data_dir, data.utts)  # Kaldi-style offline augmentation, applied before fbank
    num_frames: dict[str, int] = {}
    seconds = 0.0
    start = time.perf_counter()
    with ArkScpWriter(ark_path, scp_path) as writer:
        for done, utt in enumerate(data.utts, start=1):
            samples = read_audio(data.wav_scp[utt], f"{Path(data_dir) / 'wav.scp'}: {utt}", expected_rate=rate)
            if utt in utt2aug:
                samples = apply_augment_spec(samples, utt2aug[utt])
            feats = compute_fbank(samples, options)
            if feats.shape[0] == 0:
                raise DataError(f"{Path(data_dir) / 'wav.scp'}: {utt}: audio too short for one frame "
                                f"({len(samples)} samples)")
            writer(utt, feats)
            num_frames[utt] = int(feats.shape[0])
            seconds += len(samples) / rate
            if progress is not None:
                progress(done)
    elapsed = time.perf_counter() - start
    logger.info("%d utterances, %.1f s of audio in %.1f s (%.0fx real time)", len(num_frames), seconds,
                elapsed, seconds / max(elapsed, 1e-9))
    return num_frames


def write_utt2num_frames(path: PathLike, num_frames: dict[str, int]) -> None:
    write_table(path, num_frames)


def make_fbank(data_dir: PathLike, conf: PathLike, feat_dir: PathLike, log_dir: PathLike, num_jobs: int = 1,
               cmd: str = "") -> None:
    """Stage 1: features of ``data_dir`` in ``num_jobs`` parallel jobs, merged into its feats.scp.

    Writes ``feat_dir/raw_fbank_<name>.<job>.{ark,scp}``, then ``data_dir/feats.scp`` and
    ``data_dir/utt2num_frames`` in utterance order (the same for any ``num_jobs``).
    """
    from pyfunc.arkio import merge_scps
    from pyfunc.datadir import split_data_dir
    from pyfunc.fileio import read_map
    from pyfunc.jobs import Job, run_jobs, worker_command

    data_dir, feat_dir, log_dir = Path(data_dir), Path(feat_dir).resolve(), Path(log_dir)
    read_kaldi_conf(conf)  # fail here, not in every job
    data = load_data_dir(data_dir)
    for stale in ("feats.scp", "utt2num_frames"):
        (data_dir / stale).unlink(missing_ok=True)
    parts = split_data_dir(data_dir, num_jobs)
    split_utt2aug(data_dir, parts)
    feat_dir.mkdir(parents=True, exist_ok=True)
    name = data_dir.name
    jobs, scps = [], []
    for job, part in enumerate(parts, start=1):
        ark, scp = feat_dir / f"raw_fbank_{name}.{job}.ark", feat_dir / f"raw_fbank_{name}.{job}.scp"
        scps.append(scp)
        jobs.append(Job(worker_command("fbank", "--conf", str(conf), "--progress", str(log_dir / f".progress.{job}"),
                                       str(part), str(ark), str(scp)),
                        log_dir / f"make_fbank_{name}.{job}.log", log_dir / f".progress.{job}"))
    run_jobs(jobs, cmd, total=len(data.utt2spk), desc=f"fbank {name}")
    merge_scps(scps, data_dir / "feats.scp")
    num_frames: dict[str, int] = {}
    for part in parts:
        num_frames.update({k: int(v) for k, v in read_map(part / "utt2num_frames").items()})
    write_utt2num_frames(data_dir / "utt2num_frames", num_frames)
    for job in jobs:
        job.progress.unlink(missing_ok=True)
