"""Training examples from tar shards against the same examples from wav.scp (one small file per example).

``shards_prepare`` writes the benchmark's training set as shards (steps/make_shards.py's logic);
``loader_shards`` times the training DataLoader (waveform chunks, no augmentation) on wav.scp or on
the shards. Here the files sit on a local disk, mostly in the page cache: the figures show the cost
of reading shards, not the gain on a shared file system, where opening millions of small files is
what is slow.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.prepare import load_prepared
from bench.train_bench import SEED, time_loader

SHARDS = "shards"


def shards_prepare(size: dict, work: Path) -> dict:
    """The training set as shards of ``shard_utts`` utterances in ``work/shards``; the time it took."""
    from pyfunc.training.shard_writer import make_shards

    start = time.perf_counter()
    list_path = make_shards(load_prepared(work)["train_data"], work / SHARDS, size["shard_utts"], progress=False)
    seconds = time.perf_counter() - start
    paths = list_path.read_text().splitlines()
    return {"figures": {"seconds": seconds, "shards": len(paths), "utts_per_shard": size["shard_utts"],
                        "bytes": sum(Path(p).stat().st_size for p in paths)}}


def loader_shards(size: dict, work: Path, source: str, workers: int = 0) -> dict:
    """Examples/s of the training DataLoader reading ``source`` 'wav_scp' (the baseline) or 'shards'."""
    from pyfunc.training.examples import load_training_set

    data = load_training_set(load_prepared(work)["train_data"], "waveform")
    if source == "wav_scp":
        figures = time_loader(data, size, None, workers)
    else:
        figures = time_shard_loader(data, work / SHARDS / "shards.list", size, workers)
    figures["source"] = source
    return {"figures": figures}


def time_shard_loader(data, list_path: Path, size: dict, workers: int) -> dict:
    """:func:`bench.train_bench.time_loader` for the shard DataLoader (persistent workers, as in training)."""
    import torch

    from pyfunc.training.examples import ChunkDataset, EpochBatches
    from pyfunc.training.shard_examples import ShardDataset, load_shard_set

    batch = size["train_batch"]
    plan = EpochBatches(len(data.utts), batch, SEED)
    dataset = ShardDataset(ChunkDataset(data, size["train_frames"]), load_shard_set(list_path, data), plan, workers)
    loader = torch.utils.data.DataLoader(dataset, batch_size=plan.micro, num_workers=workers,
                                         persistent_workers=workers > 0)
    wanted = size["loader_batches"] + 1  # the first batch (worker start-up) is not timed
    got, epoch, start = 0, 0, 0.0
    while got < wanted:
        epoch += 1
        dataset.set_epoch(epoch)
        for x, _ in loader:
            got += 1
            if got == 1:
                start = time.perf_counter()
            if got == wanted:
                break
    elapsed = time.perf_counter() - start
    return {"examples_per_s": size["loader_batches"] * batch / elapsed, "seconds": elapsed,
            "workers": workers, "batches": size["loader_batches"], "chunk_shape": list(x.shape)}
