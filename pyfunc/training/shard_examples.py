"""Training examples read from shards (``steps/train.py --shards``): the same examples as from wav.scp or
feats.scp, read front to back from a few large files.

Every epoch orders the shards at random (from train.random_seed and the epoch) and lays their utterances
end to end; the first ``steps_per_epoch * batch_size`` of them are the epoch's examples, the rest (fewer
than a batch) wait for another epoch, as with :class:`EpochBatches`. Rank ``r`` of ``W`` takes the r-th of
W equal, consecutive parts, and cuts it among its DataLoader workers into consecutive runs of whole
micro-batches, so each example of the epoch is read by exactly one worker of one rank and every rank
takes the same number of steps. A shard at a boundary is read by both sides, each keeping its own
utterances. Each worker shuffles its run through a buffer; each example is cropped (and augmented) with
the random seed :class:`EpochBatches` gives its utterance in the epoch, so a crop is the one training
from wav.scp would take of that utterance in that epoch.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence, TypeVar

import numpy as np
import torch

from pyfunc.data.audio import read_audio_bytes
from pyfunc.data.shards import ShardInfo, ShardRecord, iter_shard, read_matrix, read_shard_list
from pyfunc.errors import DataError
from pyfunc.training.examples import ChunkDataset, EpochBatches, TrainingSet

T = TypeVar("T")
SHUFFLE_BUFFER = 1000  # utterances a worker holds to shuffle its run (raw bytes: ~250 MB of 8 s wavs)
_SHARD_ORDER, _BUFFER = 1, 2  # random streams of an epoch, besides EpochBatches' own


@dataclass
class ShardSet:
    """The shards of a list, each as the TrainingSet indices of its utterances."""

    shards: list[ShardInfo]
    indices: list[np.ndarray]

    @property
    def counts(self) -> list[int]:
        return [len(i) for i in self.indices]


def load_shard_set(list_path: str | Path, data: TrainingSet) -> ShardSet:
    """Read the indexes of the shards of ``list_path``; they must hold each utterance of ``data`` once, with
    its label (shards of this data dir), else a DataError naming the list line."""
    shards = read_shard_list(list_path)
    position = {utt: i for i, utt in enumerate(data.utts)}
    seen: dict[int, str] = {}
    indices = []
    for shard in shards:
        found = []
        for utt, label in zip(shard.utts, shard.labels):
            index = position.get(utt)
            if index is None:
                raise DataError(f"{shard.where}: {shard.path}: utterance {utt!r} is not in the training set "
                                f"{data.source}; make the shards from the data dir you train on")
            if label != data.labels[index]:
                raise DataError(f"{shard.where}: {shard.path}: utterance {utt!r} has label {label}, the "
                                f"training set gives {int(data.labels[index])} (speaker "
                                f"{data.speakers[data.labels[index]]}); make the shards from this data dir")
            if index in seen:
                raise DataError(f"{shard.where}: {shard.path}: utterance {utt!r} is also in {seen[index]}")
            seen[index] = f"{shard.where}"
            found.append(index)
        indices.append(np.array(found, dtype=np.int64))
    if len(seen) != len(data.utts):
        missing = [u for i, u in enumerate(data.utts) if i not in seen]
        raise DataError(f"{list_path}: {len(missing)} of the {len(data.utts)} utterances of {data.source} are in "
                        f"no shard, e.g. {missing[:3]}")
    return ShardSet(shards, indices)


def split_counts(total: int, parts: int) -> list[int]:
    """``total`` items dealt round-robin to ``parts``: how many each gets (the first ones one more)."""
    return [len(range(part, total, parts)) for part in range(parts)]


def shard_pieces(counts: Sequence[int], order: Sequence[int], start: int, stop: int) -> list[tuple[int, int, int]]:
    """``(shard, skip, take)``: the pieces of shards that hold items ``[start, stop)`` of the shards' utterances
    laid end to end in ``order``."""
    pieces, offset = [], 0
    for shard in order:
        end = offset + counts[shard]
        if end > start and offset < stop:
            skip = max(start - offset, 0)
            pieces.append((int(shard), skip, min(stop, end) - offset - skip))
        offset = end
        if offset >= stop:
            break
    return pieces


def shuffle_buffer(items: Iterable[T], size: int, rng: np.random.Generator) -> Iterator[T]:
    """``items`` in a random order that keeps at most ``size`` of them at a time (a full buffer gives
    up a random one for each new item)."""
    buffer: list[T] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        j = int(rng.integers(size))
        yield buffer[j]
        buffer[j] = item
    rng.shuffle(buffer)
    yield from buffer


def round_robin(lengths: Sequence[int]) -> list[tuple[int, int]]:
    """``(worker, its item)`` in the order a DataLoader returns items of workers with ``lengths`` items:
    one from each worker in turn, skipping workers that have run out."""
    out = []
    for turn in range(max(lengths, default=0)):
        out += [(worker, turn) for worker, length in enumerate(lengths) if turn < length]
    return out


class ShardDataset(torch.utils.data.IterableDataset):
    """Micro-batches of examples from shards for one process of a (possibly distributed) run.

    ``batches`` gives the run's shape (batch size, ranks, accumulation steps) and each utterance's seed;
    use it in a DataLoader with ``batch_size=batches.micro`` and the ``num_workers`` given here,
    and call :meth:`set_epoch` before each epoch. The epoch is kept in shared memory, so persistent
    workers see it too.
    """

    def __init__(self, chunks: ChunkDataset, shards: ShardSet, batches: EpochBatches, num_workers: int = 0,
                 buffer_size: int = SHUFFLE_BUFFER):
        if sum(shards.counts) != batches.num_utts:
            raise ValueError(f"the shards hold {sum(shards.counts)} utterances, the plan has {batches.num_utts}")
        self.chunks, self.shards, self.batches = chunks, shards, batches
        self.data = chunks.data
        self.workers, self.buffer_size = max(1, num_workers), buffer_size
        self._progress = torch.zeros(2, dtype=torch.int64).share_memory_()  # epoch, start step: seen by workers

    @property
    def epoch(self) -> int:
        return int(self._progress[0])

    @property
    def start_step(self) -> int:
        return int(self._progress[1])

    @property
    def steps_per_epoch(self) -> int:
        return self.batches.steps_per_epoch

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Choose the epoch to read and the optimiser step to start from (for resuming)."""
        self._progress[0], self._progress[1] = epoch, start_step
        self.batches.set_epoch(epoch, start_step)

    def __len__(self) -> int:
        """Examples this rank yields from ``start_step`` on."""
        return len(self.batches) * self.batches.micro

    def _worker_counts(self) -> list[int]:
        """Micro-batches of the epoch (not only from ``start_step``) that each worker of this rank reads."""
        return split_counts(self.batches.steps_per_epoch * self.batches.grad_accum, self.workers)

    def _skipped(self, worker: int) -> int:
        """Micro-batches of ``worker`` taken before ``start_step`` (the DataLoader takes them in turn)."""
        return len(range(worker, self.start_step * self.batches.grad_accum, self.workers))

    def _pieces(self, rank: int, worker: int) -> list[tuple[int, int, int]]:
        b = self.batches
        per_rank = b.steps_per_epoch * b.grad_accum * b.micro
        counts = self._worker_counts()
        start = rank * per_rank + sum(counts[:worker]) * b.micro
        order = np.random.default_rng([b.random_seed, self.epoch, _SHARD_ORDER]).permutation(len(self.shards.shards))
        return shard_pieces(self.shards.counts, order, start, start + counts[worker] * b.micro)

    def _stream(self, rank: int, worker: int, read: bool) -> Iterator:
        """The worker's utterance indices (``read``: with their shards and records) in the order it yields them."""
        pieces = self._pieces(rank, worker)
        indices = self.shards.indices
        if read:
            items: Iterable = ((index, self.shards.shards[shard], record) for shard, skip, take in pieces
                               for index, record in zip(indices[shard][skip:skip + take],
                                                        itertools.islice(iter_shard(self.shards.shards[shard], skip),
                                                                         take)))
        else:
            items = (int(i) for shard, skip, take in pieces for i in indices[shard][skip:skip + take])
        rng = np.random.default_rng([self.batches.random_seed, self.epoch, _BUFFER, rank, worker])
        stream = shuffle_buffer(items, self.buffer_size, rng)
        return itertools.islice(stream, self._skipped(worker) * self.batches.micro, None)

    def _example(self, index: int, shard: ShardInfo, record: ShardRecord,
                 random_seed: int) -> tuple[torch.Tensor, int]:
        shard_where = f"{shard.where}: {shard.path}: {record.utt}"
        rng = np.random.default_rng(random_seed)
        if self.data.mode == "features":
            if not record.is_features:
                raise DataError(f"{shard_where}: holds audio ({record.suffix}); training reads features: "
                                "make the shards with --feats")
            return self.chunks.feature_example(index, read_matrix(record, shard_where), rng)
        if record.is_features:
            raise DataError(f"{shard_where}: holds features (.npy); training reads waveforms: make the shards "
                            "without --feats")
        return self.chunks.waveform_example(index, read_audio_bytes(record.data, shard_where), rng)

    def example_seeds(self) -> np.ndarray:
        """Each utterance's random seed in this epoch (the one :class:`EpochBatches` gives it)."""
        order, seeds = self.batches.epoch_plan(self.epoch)
        by_utt = np.empty_like(seeds)
        by_utt[order] = seeds
        return by_utt

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        if workers != self.workers:
            raise ValueError(f"ShardDataset made for {self.workers} worker(s) runs in {workers}")
        seeds = self.example_seeds()
        for index, shard, record in self._stream(self.batches.rank, worker, read=True):
            yield self._example(int(index), shard, record, int(seeds[index]))

    def micro_batch(self, step: int, part: int) -> list[int]:
        """Utterance indices of micro-batch ``part`` (of ``world_size * grad_accum``) in step ``step`` (from
        ``start_step``), found from the shard indexes alone."""
        b = self.batches
        rank, local = divmod(part, b.grad_accum)
        counts = self._worker_counts()
        left = [count - self._skipped(w) for w, count in enumerate(counts)]
        worker, turn = round_robin(left)[(step - self.start_step) * b.grad_accum + local]
        stream = list(self._stream(rank, worker, read=False))
        return stream[turn * b.micro:(turn + 1) * b.micro]


def training_loader(dataset: ChunkDataset, sampler: EpochBatches, shards: ShardSet | None, num_workers: int,
                    pin_memory: bool, collate=None
                    ) -> tuple[EpochBatches | ShardDataset, torch.utils.data.DataLoader]:
    """The epoch plan (``set_epoch``, ``micro_batch``) and the DataLoader of training: ``dataset`` batched by
    ``sampler`` from wav.scp or feats.scp, or with ``shards`` read through a :class:`ShardDataset`."""
    common = dict(num_workers=num_workers, pin_memory=pin_memory, persistent_workers=num_workers > 0,
                  collate_fn=collate)
    if shards is None:
        return sampler, torch.utils.data.DataLoader(dataset, batch_sampler=sampler, **common)
    plan = ShardDataset(dataset, shards, sampler, num_workers)
    return plan, torch.utils.data.DataLoader(plan, batch_size=sampler.micro, **common)
