"""Evaluation during training: the EER of a labelled trials file with the encoder as it is now.

Under DDP every rank embeds its share of the utterances (every W-th key) with rank 0's
BatchNorm statistics (broadcast first), and the shares are gathered, so W GPUs evaluate W
times faster and nobody waits idle at a barrier; the collectives run in a group with a long
timeout (:func:`pyfunc.training.distributed.evaluation_group`), so a slow evaluation cannot
trip the NCCL timeout. The scores and EER are then those of one process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch.distributed as torch_dist

from pyfunc.config import Config, input_table
from pyfunc.data.tables import read_scp
from pyfunc.data.trials import TrialList, read_trial_list
from pyfunc.errors import ConfigError, DataError
from pyfunc.inference.batching import crop_length
from pyfunc.inference.data_inputs import embed_data_dir
from pyfunc.models.checkpoint import (
    rng_states,
    set_rng_states,
)
from pyfunc.models.ecapa import ECAPATDNN
from pyfunc.scoring.cosine import cosine_scores, seed_scores
from pyfunc.scoring.metrics import compute_eer
from pyfunc.training.distributed import DistInfo


@dataclass
class EvalSet:
    """The labelled trials of ``train.eval_data`` and the utterances they need."""

    data_dir: Path
    trials: TrialList
    labels: np.ndarray
    keys: list[str]
    last_seconds: float = 0.0


def load_eval_set(config: Config) -> EvalSet | None:
    """The evaluation data of ``train.eval_data`` (None when empty), checked before training starts."""
    cfg = config.train
    if not cfg.eval_data:
        return None
    if cfg.eval_interval < 1:
        raise ConfigError(f"train.eval_interval must be at least 1, got {cfg.eval_interval}")
    data_dir = Path(cfg.eval_data)
    if not data_dir.is_dir():
        raise ConfigError(f"train.eval_data: {data_dir} is not a directory")
    path = data_dir / "trials"
    if not path.is_file():
        raise DataError(f"{path}: file not found (train.eval_data needs a labelled trials file)")
    trials = read_trial_list(path)
    unlabelled = [i for i, label in enumerate(trials.labels) if label is None]
    if unlabelled:
        raise DataError(f"{trials.where(unlabelled[0])}: missing target/nontarget label (train.eval_data)")
    labels = np.asarray(trials.labels, dtype=bool)
    if labels.all() or not labels.any():
        raise DataError(f"{path}: the EER needs both target and nontarget trials")
    table = data_dir / input_table(config.model.frontend)
    if not table.is_file():
        raise DataError(f"{table}: file not found (train.eval_data for the {config.model.frontend} front end)")
    listed = read_scp(table)
    missing = [key for key in trials.utterances if key not in listed]
    if missing:
        raise DataError(f"{table}: {len(missing)} utterance(s) of {path} not listed, e.g. {missing[:3]}")
    return EvalSet(data_dir, trials, labels, trials.utterances)


def evaluate_eer(encoder: ECAPATDNN, eval_set: EvalSet, config: Config, dist: DistInfo | None = None,
                 group=None) -> float:
    """EER (%) of the eval trials with ``encoder`` as it is now, scored as stages 3, 4 and 6 would.

    The encoder runs in eval mode and is put back in the mode it was in; the RNG states
    are restored, so evaluating leaves the training run unchanged. With ``dist`` of several
    processes, every rank must call this: each embeds its share (module docstring), using the
    collectives of ``group``; every rank returns the EER.
    """
    start = time.perf_counter()
    was_training = encoder.training
    saved = rng_states()
    encoder.eval()
    try:
        seed_protocol = config.extract.protocol == "seed"
        crop = crop_length(config.extract, encoder.frontend) if seed_protocol else None
        world, rank = (dist.world_size, dist.rank) if dist is not None else (1, 0)
        if world > 1:  # rank 0's BatchNorm statistics everywhere: the embeddings rank 0 alone would compute
            for buffer in encoder.buffers():
                torch_dist.broadcast(buffer, 0, group=group)
        mine = eval_set.keys[rank::world]
        full, crops = embed_data_dir(encoder, eval_set.data_dir, mine, config.extract.batch_frames,
                                     crop, config.extract.num_crops)
        if world > 1:
            full, crops = _gather_shares(eval_set.keys, mine, full, crops, world, group)
        scores = seed_scores(eval_set.trials, eval_set.keys, full, crops) if seed_protocol else \
            cosine_scores(eval_set.trials, eval_set.keys, full)
    finally:
        encoder.train(was_training)
        set_rng_states(saved)
    eval_set.last_seconds = time.perf_counter() - start
    return compute_eer(scores, eval_set.labels)[0]


def _gather_shares(keys: list[str], mine: list[str], full: np.ndarray, crops: np.ndarray | None, world: int,
                   group) -> tuple[np.ndarray, np.ndarray | None]:
    """Every rank's (keys, full, crops) share, put back in ``keys`` order."""
    shares: list = [None] * world
    torch_dist.all_gather_object(shares, (mine, full, crops), group=group)
    row = {key: i for i, key in enumerate(keys)}
    out_full = np.empty((len(keys), full.shape[1]), dtype=full.dtype)
    out_crops = None
    for share_keys, share_full, share_crops in shares:
        index = [row[key] for key in share_keys]
        out_full[index] = share_full
        if share_crops is not None:
            if out_crops is None:
                out_crops = np.empty((len(keys), *share_crops.shape[1:]), dtype=share_crops.dtype)
            out_crops[index] = share_crops
    return out_full, out_crops
