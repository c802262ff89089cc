"""Evaluation during training: the EER of a labelled trials file with the encoder as it is now."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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


def evaluate_eer(encoder: ECAPATDNN, eval_set: EvalSet, config: Config) -> float:
    """EER (%) of the eval trials with ``encoder`` as it is now, scored as stages 3, 4 and 6 would.

    The encoder runs in eval mode and is put back in the mode it was in; the RNG states
    are restored, so evaluating leaves the training run unchanged.
    """
    start = time.perf_counter()
    was_training = encoder.training
    saved = rng_states()
    encoder.eval()
    try:
        seed_protocol = config.extract.protocol == "seed"
        crop = crop_length(config.extract, encoder.frontend) if seed_protocol else None
        full, crops = embed_data_dir(encoder, eval_set.data_dir, eval_set.keys, config.extract.batch_frames,
                                     crop, config.extract.num_crops)
        scores = seed_scores(eval_set.trials, eval_set.keys, full, crops) if seed_protocol else \
            cosine_scores(eval_set.trials, eval_set.keys, full)
    finally:
        encoder.train(was_training)
        set_rng_states(saved)
    eval_set.last_seconds = time.perf_counter() - start
    return compute_eer(scores, eval_set.labels)[0]
