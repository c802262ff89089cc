"""How the training data is stored: m4a decoded per example or once; fbank arks plain or compressed.

``storage_prepare`` encodes the benchmark's training wavs to m4a (AAC, as VoxCeleb2 is
released) and converts them back once with stage 0's converter, and writes the training
set's fbank once more as Kaldi-compressed matrices (``--compress true``). ``loader_m4a``
times the training DataLoader on the same audio through ffmpeg pipe entries or through the
converted wav files; ``loader_feats`` on the plain arks (reading only each chunk's rows, or
the whole matrix as before) or on the compressed ones.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import soundfile

from bench.common import FBANK_CONF
from bench.prepare import load_prepared
from bench.train_bench import time_loader

STORAGE = "storage.json"


def _encode_m4a(ffmpeg: str, wav: str, m4a: Path) -> None:
    m4a.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-y", "-i", wav, "-c:a", "aac", "-b:a", "64k", str(m4a)],
                   check=True)


def storage_prepare(size: dict, work: Path) -> dict:
    """m4a copies of the training data (``work/m4a``), a data dir of ffmpeg pipes to them, and the same
    audio converted once to wav (``convert_m4a_tree``) with its data dir; records the conversion time."""
    from pyfunc.data.datadir import DataDir, load_data_dir, write_data_dir
    from pyfunc.data.m4a import convert_m4a_tree, ffmpeg_pipe
    from pyfunc.pipeline.fbank_stage import make_fbank_job

    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is not installed (tools/setup.sh installs it); the m4a benchmarks need it")
    train = load_data_dir(load_prepared(work)["train_data"])
    m4a_root, wav_root = work / "m4a", work / "m4a_wav"
    m4a = {utt: m4a_root / f"{utt}.m4a" for utt in train.utts}
    for utt, path in m4a.items():
        _encode_m4a(ffmpeg, train.wav_scp[utt], path)
    write_data_dir(work / "data" / "train_m4a", DataDir({u: ffmpeg_pipe(str(p)) for u, p in m4a.items()},
                                                        train.utt2spk))
    start = time.perf_counter()
    convert_m4a_tree(m4a_root, wav_root, num_jobs=2)
    convert_seconds = time.perf_counter() - start
    write_data_dir(work / "data" / "train_m4a_wav", DataDir({u: str(wav_root / f"{u}.wav") for u in m4a},
                                                            train.utt2spk))
    audio = sum(soundfile.info(str(wav_root / f"{u}.wav")).duration for u in m4a)
    info = {"utts": len(m4a), "audio_seconds": audio, "convert_seconds": convert_seconds,
            "m4a_bytes": sum(p.stat().st_size for p in m4a.values()),
            "wav_bytes": sum((wav_root / f"{u}.wav").stat().st_size for u in m4a)}
    compressed = work / "data" / "train_compressed"  # the training set's fbank, Kaldi-compressed
    write_data_dir(compressed, DataDir(train.wav_scp, train.utt2spk))
    make_fbank_job(compressed, FBANK_CONF, work / "feats" / "train_compressed.ark", compressed / "feats.scp",
                   compress=True)
    info["ark_bytes"] = (work / "feats" / "train.ark").stat().st_size
    info["compressed_ark_bytes"] = (work / "feats" / "train_compressed.ark").stat().st_size
    (work / STORAGE).write_text(json.dumps(info, indent=1))
    return {"figures": info}


def loader_m4a(size: dict, work: Path, source: str, workers: int = 0) -> dict:
    """Examples/s of the training DataLoader (waveform chunks, no augmentation) on the m4a audio: ``source``
    'pipe' (an ffmpeg process per example, what training on m4a wav.scp entries did) or 'wav' (converted)."""
    import numpy as np

    from pyfunc.data.audio import allow_pipes
    from pyfunc.data.datadir import load_data_dir
    from pyfunc.training.examples import TrainingSet

    name = {"pipe": "train_m4a", "wav": "train_m4a_wav"}[source]
    data = load_data_dir(work / "data" / name)
    speakers = sorted(set(data.utt2spk.values()))
    labels = np.array([speakers.index(data.utt2spk[u]) for u in data.utts], dtype=np.int64)
    # Built directly: load_training_set refuses pipe entries, which is what this measures the cost of.
    tset = TrainingSet(data.utts, [data.wav_scp[u] for u in data.utts], labels, speakers, "waveform",
                       str(work / "data" / name / "wav.scp"))
    allow_pipes(source == "pipe")
    figures = time_loader(tset, size, None, workers)
    figures["source"] = source
    return {"figures": figures}


def loader_feats(size: dict, work: Path, arks: str, workers: int = 0) -> dict:
    """Examples/s of the training DataLoader on fbank chunks: ``arks`` 'rows' (the plain arks, each chunk read
    from its rows), 'whole' (the plain arks, each utterance read whole, as before) or 'compressed'."""
    import pyfunc.training.examples as examples
    from pyfunc.training.examples import load_training_set

    data_dir = work / "data" / "train_compressed" if arks == "compressed" else load_prepared(work)["train_data"]
    if arks == "whole":  # no row reads: every chunk loads its whole matrix, the code before row reads
        examples.read_matrix_header = lambda entry: None
    figures = time_loader(load_training_set(data_dir, "features"), size, None, workers)
    figures["arks"] = arks
    return {"figures": figures}
