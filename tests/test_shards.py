"""Training shards: round trip, exactly-once epochs over ranks and workers, resumption, bad input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch
from conftest import REPO, make_tone_data_dir

from pyfunc.data.audio import read_audio, read_audio_bytes
from pyfunc.data.datadir import DataDir, load_data_dir, write_data_dir
from pyfunc.data.shards import ShardInfo, iter_shard, read_matrix, read_shard_list
from pyfunc.errors import DataError
from pyfunc.training.examples import ChunkDataset, EpochBatches, load_training_set
from pyfunc.training.shard_examples import (
    ShardDataset,
    load_shard_set,
    round_robin,
    shard_pieces,
    shuffle_buffer,
    split_counts,
)
from pyfunc.training.shard_writer import make_shards

SEED = 11
FRAMES = 20


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> tuple[Path, Path]:
    """12 tone utterances of 3 speakers, in shards of 5, 5 and 2: (data dir, shards.list)."""
    root = tmp_path_factory.mktemp("shards")
    data = make_tone_data_dir(root, speakers=3, utts=4, seconds=0.3)
    return data, make_shards(data, root / "shards", utts_per_shard=5, progress=False)


def _wav_examples(chunks: ChunkDataset, batch: int, epoch: int) -> list[tuple[str, int, bytes]]:
    """(utterance, label, chunk bytes) of an epoch of training from wav.scp (one process)."""
    plan = EpochBatches(len(chunks), batch, SEED)
    plan.set_epoch(epoch)
    return [(chunks.data.utts[i], label, x.numpy().tobytes())
            for micro in plan for i, s in micro for x, label in [chunks[(i, s)]]]


def _shard_loader(chunks: ChunkDataset, shards, batch: int, world: int, rank: int, workers: int,
                  accum: int = 1) -> tuple[ShardDataset, torch.utils.data.DataLoader]:
    plan = EpochBatches(len(chunks), batch, SEED, world, rank, accum)
    dataset = ShardDataset(chunks, shards, plan, workers, buffer_size=3)
    return dataset, torch.utils.data.DataLoader(dataset, batch_size=plan.micro, num_workers=workers,
                                                persistent_workers=workers > 0)


def _batches(loader) -> list[list[tuple[int, bytes]]]:
    return [[(int(label), row.numpy().tobytes()) for row, label in zip(x, labels)] for x, labels in loader]


def test_shards_hold_the_audio_bytes_and_labels(sharded) -> None:
    data_dir, list_path = sharded
    data = load_training_set(data_dir, "waveform")
    shards = read_shard_list(list_path)
    assert [len(s.utts) for s in shards] == [5, 5, 2]
    assert sorted(u for s in shards for u in s.utts) == data.utts
    wav_scp = load_data_dir(data_dir).wav_scp
    for shard in shards:
        for record in iter_shard(shard):
            assert record.data == Path(wav_scp[record.utt]).read_bytes()
            assert np.array_equal(read_audio_bytes(record.data, record.utt), read_audio(wav_scp[record.utt]))
            index = data.utts.index(record.utt)
            assert (record.speaker, record.label) == (data.speakers[data.labels[index]], data.labels[index])
    assert [r.utt for r in iter_shard(shards[0], skip=3)] == shards[0].utts[3:]


def test_feature_shards_hold_the_matrices(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    feats = {f"s{s}-{u}": rng.standard_normal((7 + u, 4)).astype(np.float32) for s in range(2) for u in range(3)}
    with kaldiio.WriteHelper(f"ark,scp:{tmp_path / 'feats.ark'},{tmp_path / 'feats.scp'}") as writer:
        for utt in sorted(feats):
            writer(utt, feats[utt])
    scp = dict(line.split(" ", 1) for line in (tmp_path / "feats.scp").read_text().splitlines())
    write_data_dir(tmp_path / "data", DataDir({u: "/dev/null" for u in feats}, {u: u[:2] for u in feats},
                                              feats_scp={k: v.strip() for k, v in scp.items()}))
    shards = read_shard_list(make_shards(tmp_path / "data", tmp_path / "out", 4, features=True, progress=False))
    got = {r.utt: read_matrix(r, r.utt) for shard in shards for r in iter_shard(shard)}
    assert sorted(got) == sorted(feats) and all(np.array_equal(got[u], feats[u]) for u in feats)


def test_plan_helpers() -> None:
    assert split_counts(7, 3) == [3, 2, 2]
    assert shard_pieces([5, 5, 2], [2, 0, 1], 1, 9) == [(2, 1, 1), (0, 0, 5), (1, 0, 2)]
    assert round_robin([2, 1, 0]) == [(0, 0), (1, 0), (0, 1)]
    rng = np.random.default_rng(0)
    assert sorted(shuffle_buffer(range(20), 4, rng)) == list(range(20))


@pytest.mark.parametrize("world", [1, 2])
@pytest.mark.parametrize("workers", [0, 2])
def test_an_epoch_from_shards_has_the_examples_of_wav_scp(sharded, world: int, workers: int) -> None:
    """Every rank and worker together: each utterance once per epoch, with the crop training from wav.scp
    takes of it in that epoch; every rank the same number of micro-batches; micro_batch() names them."""
    data_dir, list_path = sharded
    data = load_training_set(data_dir, "waveform")
    chunks = ChunkDataset(data, FRAMES)
    shards = load_shard_set(list_path, data)
    loaders = [_shard_loader(chunks, shards, 4, world, rank, workers) for rank in range(world)]
    orders = []
    for epoch in (1, 2):  # persistent workers see the epoch
        expected = _wav_examples(chunks, batch=4, epoch=epoch)
        utt_of = {x: utt for utt, _, x in expected}
        got = []
        for rank, (dataset, loader) in enumerate(loaders):
            dataset.set_epoch(epoch)
            batches = _batches(loader)
            assert len(batches) == 3 and len(dataset) == 3 * 4 // world
            for step, batch in enumerate(batches):
                assert [utt_of[x] for _, x in batch] == [data.utts[i] for i in dataset.micro_batch(step, rank)]
            got += [(utt_of[x], label) for batch in batches for label, x in batch]
        assert Counter(got) == Counter((utt, label) for utt, label, _ in expected)
        orders.append(got)
    assert orders[0] != orders[1], "each epoch has its own order"


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_epoch_reads_the_examples_not_yet_taken(sharded, workers: int) -> None:
    data_dir, list_path = sharded
    data = load_training_set(data_dir, "waveform")
    chunks = ChunkDataset(data, FRAMES)
    shards = load_shard_set(list_path, data)
    dataset, loader = _shard_loader(chunks, shards, 4, 1, 0, workers, accum=2)
    dataset.set_epoch(3)
    full = _batches(loader)
    dataset.set_epoch(3, start_step=1)
    rest = _batches(loader)
    assert len(full) == 6 and len(rest) == 4
    assert Counter(e for b in full[2:] for e in b) == Counter(e for b in rest for e in b)


def _rewrite_list(list_path: Path, lines: list[str]) -> Path:
    bad = list_path.parent / "bad" / "shards.list"
    bad.parent.mkdir(exist_ok=True)
    bad.write_text("".join(line + "\n" for line in lines))
    return bad


def test_a_bad_shard_list_entry_names_the_file_and_line(sharded, tmp_path: Path) -> None:
    data_dir, list_path = sharded
    data = load_training_set(data_dir, "waveform")
    good = list_path.read_text().splitlines()
    bad = _rewrite_list(list_path, [good[0], str(tmp_path / "gone.tar"), good[2]])
    with pytest.raises(DataError, match=re.escape(f"{bad}:2: shard {str(tmp_path / 'gone.tar')!r} not found")):
        read_shard_list(bad)
    (tmp_path / "junk.tar").write_text("not a tar file")
    bad = _rewrite_list(list_path, [str(tmp_path / "junk.tar")])
    with pytest.raises(DataError, match=re.escape(f"{bad}:1: {tmp_path / 'junk.tar'}: cannot read the shard")):
        read_shard_list(bad)
    with tarfile.open(tmp_path / "other.tar", "w") as tar:
        tar.add(data_dir / "utt2spk", arcname="utt2spk")
    bad = _rewrite_list(list_path, [good[0], "", good[1]])
    with pytest.raises(DataError, match=re.escape(f"{bad}:2: expected one shard path")):
        read_shard_list(bad)
    bad = _rewrite_list(list_path, [str(tmp_path / "other.tar")])
    with pytest.raises(DataError, match=re.escape(f"{bad}:1: {tmp_path / 'other.tar'}: not a shard")):
        read_shard_list(bad)
    bad = _rewrite_list(list_path, good[:2])  # the last shard's utterances are missing
    with pytest.raises(DataError, match=re.escape(f"{bad}: 2 of the 12 utterances")):
        load_shard_set(bad, data)
    bad = _rewrite_list(list_path, good + good[2:])
    with pytest.raises(DataError, match=re.escape(f"{bad}:4: {good[2]}: utterance")):
        load_shard_set(bad, data)


def test_a_shard_that_disagrees_with_its_index_names_the_shard(sharded, tmp_path: Path) -> None:
    _, list_path = sharded
    shard = read_shard_list(list_path)[0]
    broken = ShardInfo(shard.path, "L:1", ["other"] + shard.utts[1:], shard.labels)
    message = f"L:1: {shard.path}: member {shard.utts[0] + '.spk'!r} where its index has 'other.spk'"
    with pytest.raises(DataError, match=re.escape(message)):
        list(iter_shard(broken))


def test_make_shards_command_line(tmp_path: Path) -> None:
    data = make_tone_data_dir(tmp_path, speakers=2, utts=2, seconds=0.2)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(REPO / "steps" / "make_shards.py"), "--utts-per-shard", "3"]
    proc = subprocess.run(command + [str(data), str(tmp_path / "out")], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "out" / "shards.list").read_text().splitlines()) == 2
    proc = subprocess.run(command + ["--feats", str(data), str(tmp_path / "out2")], env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 1 and f"error: {data / 'feats.scp'}: missing" in proc.stderr, proc.stderr


def test_training_from_shards(tmp_path: Path) -> None:
    """steps/train.py --shards trains the fbank model from feature shards (two workers), and resumes only
    from the same shards."""
    from test_train import _config, _feature_data_dir

    data = _feature_data_dir(tmp_path / "feats", speakers=3, utts=4)
    shards = make_shards(data, tmp_path / "shards", utts_per_shard=5, features=True, progress=False)
    config = _config(tmp_path / "tiny.yaml", epochs=2, batch_size=4, num_workers=2)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(REPO / "steps" / "train.py"), "--config", str(config), "--data", str(data),
               "--exp", str(tmp_path / "exp"), "--device", "cpu", "--shards"]
    proc = subprocess.run(command + [str(shards)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "reading the examples from the 3 shards" in (tmp_path / "exp" / "log" / "train.log").read_text()
    history = (tmp_path / "exp" / "log" / "history.tsv").read_text().splitlines()[1:]
    assert len(history) == 2 and all(np.isfinite(float(line.split("\t")[1])) for line in history)
    assert (tmp_path / "exp" / "model.pt").is_file()

    (tmp_path / "exp" / "model.pt").unlink()  # so the next run has work to do
    other = make_shards(data, tmp_path / "other", utts_per_shard=4, features=True, progress=False)
    proc = subprocess.run(command + [str(other)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "data.shards.utterances was" in proc.stderr, proc.stderr

    # a checkpoint from the middle of epoch 2, read by 2 loader streams: another num_workers is refused there
    models = tmp_path / "exp" / "models"
    state = torch.load(models / "epoch_1.pt", weights_only=True)
    torch.save({**state, "step": 1, "shard_streams": 2}, models / "step_2_1.pt")
    (models / "epoch_2.pt").unlink()
    one_worker = _config(tmp_path / "one.yaml", epochs=2, batch_size=4, num_workers=0)
    command[command.index(str(config))] = str(one_worker)
    proc = subprocess.run(command + [str(shards)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and (f"{models / 'step_2_1.pt'}: saved in the middle of epoch 2 while 2 loader "
                                     "stream(s) read the shards") in proc.stderr, proc.stderr
    assert "resume with train.num_workers 2" in proc.stderr
