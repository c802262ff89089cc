"""Stage 1 (wav files in, ark/scp out) against the bare per-utterance ``kaldi.fbank`` loop."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from bench.common import FBANK_CONF
from bench.prepare import load_prepared


def bare_loop(size: dict, work: Path, threads: int | None = None, big: bool = False) -> dict:
    """Baseline: read each wav with soundfile and call ``torchaudio.compliance.kaldi.fbank``; nothing written.

    ``threads`` sets torch's intra-op threads (default: torch's own choice, one per core);
    ``big``: on the larger set of files (``fbank_big_seconds``).
    """
    import soundfile
    import torch
    import torchaudio.compliance.kaldi as kaldi

    if threads:
        torch.set_num_threads(threads)
    from pyfunc.data.tables import read_scp
    from pyfunc.features.kaldi_fbank import read_kaldi_conf

    prepared = load_prepared(work)
    options = read_kaldi_conf(FBANK_CONF)
    data = "fbank_big" if big else "fbank"
    wavs = read_scp(Path(prepared[f"{data}_data"]) / "wav.scp")
    frames = 0
    start = time.perf_counter()
    for utt in sorted(wavs):
        samples, _ = soundfile.read(wavs[utt], dtype="float32")
        with torch.no_grad():
            frames += kaldi.fbank(torch.from_numpy(samples).unsqueeze(0) * 32768.0, **options).shape[0]
    elapsed = time.perf_counter() - start
    audio = prepared[f"{data}_audio_seconds"]
    return {"figures": {"seconds": elapsed, "audio_seconds": audio, "audio_per_s": audio / elapsed,
                        "frames": frames, "threads": torch.get_num_threads()}}


def stage(size: dict, work: Path, nj: int, job_threads: int | None = None, one: bool = False,
          big: bool = False) -> dict:
    """Ours: ``pyfunc.features.make_fbank`` with ``nj`` jobs, timed from the call to the merged feats.scp.

    ``job_threads`` sets torch's intra-op threads in each job: OMP_NUM_THREADS for job processes
    (the environment they inherit), ``torch.set_num_threads`` for the single local job, which
    runs in this process; default: unset (torch uses one thread per core in every job).
    ``one``: on a data dir of two 1 s utterances instead, which measures the stage's fixed cost
    (job start-up, splitting and merging); ``big``: on the larger set of files.
    """
    import os

    import torch

    saved, saved_threads = os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()
    if job_threads:
        os.environ["OMP_NUM_THREADS"] = str(job_threads)
        torch.set_num_threads(job_threads)
    try:
        return _stage(work, nj, job_threads, one, big)
    finally:
        torch.set_num_threads(saved_threads)
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved


def _stage(work: Path, nj: int, job_threads: int | None, one: bool, big: bool) -> dict:
    from pyfunc.data.tables import read_map
    from pyfunc.pipeline.fbank_stage import make_fbank

    prepared = load_prepared(work)
    source = "fbank_one" if one else "fbank_big" if big else "fbank"
    name = f"{source}_nj{nj}_t{job_threads or 0}"
    data = work / f"{name}_data"
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(prepared[f"{source}_data"], data)
    start = time.perf_counter()
    make_fbank(data, FBANK_CONF, work / name, work / f"{name}_log", nj)
    elapsed = time.perf_counter() - start
    frames = sum(int(v) for v in read_map(data / "utt2num_frames").values())
    audio = prepared[f"{source}_audio_seconds"]
    return {"figures": {"seconds": elapsed, "audio_seconds": audio, "audio_per_s": audio / elapsed, "frames": frames}}
