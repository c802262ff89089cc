"""Stage 3: batched extraction (pyfunc.extract) against one utterance at a time, mixed lengths."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from bench.prepare import load_prepared


def batched(size: dict, work: Path) -> dict:
    """Ours: ``extract_embeddings`` on the data dir (read-ahead, length-sorted zero-padded batches)."""
    import torch

    from pyfunc.data.vectors import load_embeddings
    from pyfunc.pipeline.extract_job import extract_embeddings

    prepared = load_prepared(work)
    out = work / "extract_batched"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    extract_embeddings(prepared["model_dir"], prepared["extract_data"], out, protocol="full", device="cpu")
    elapsed = time.perf_counter() - start
    keys, emb = load_embeddings(out / "xvector.scp")
    np.save(work / "extract_batched.npy", emb[np.argsort(keys)])
    return {"figures": {"seconds": elapsed, "utts_per_s": len(keys) / elapsed,
                        "audio_per_s": prepared["extract_audio_seconds"] / elapsed, "utts": len(keys),
                        "threads": torch.get_num_threads()}}


def one_at_a_time(size: dict, work: Path) -> dict:
    """Baseline: load the model, then for each utterance read it and run the encoder on it alone."""
    import torch

    from pyfunc.data.audio import read_audio
    from pyfunc.data.tables import read_scp
    from pyfunc.models.model_dir import load_model_dir

    prepared = load_prepared(work)
    start = time.perf_counter()
    model, _ = load_model_dir(prepared["model_dir"], "cpu")
    wavs = read_scp(Path(prepared["extract_data"]) / "wav.scp")
    rows = []
    with torch.no_grad():
        for key in sorted(wavs):
            wave = torch.from_numpy(read_audio(wavs[key])).unsqueeze(0)
            rows.append(model(wave)[0].numpy())
    elapsed = time.perf_counter() - start
    np.save(work / "extract_single.npy", np.stack(rows))
    return {"figures": {"seconds": elapsed, "utts_per_s": len(rows) / elapsed,
                        "audio_per_s": prepared["extract_audio_seconds"] / elapsed, "utts": len(rows)}}
