"""Stage 2 as a whole: resume only the same run, train, then finish the model directory."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from pyfunc.config import config_to_dict, load_config, rename_aliases, training_table
from pyfunc.data.atomic import PathLike, atomic_path
from pyfunc.data.badinput import SKIPPED_NAME
from pyfunc.data.shards import read_shard_list
from pyfunc.data.tables import read_scp
from pyfunc.errors import ConfigError
from pyfunc.features.kaldi_fbank import read_kaldi_conf
from pyfunc.models.checkpoint import latest_checkpoint, progress_of
from pyfunc.models.model_dir import CONFIG_NAME, MODEL_NAME
from pyfunc.pipeline.stamps import (
    FBANK_STAMP,
    TRAIN_STAMP,
    Stamp,
    as_json_value,
    changed_files,
    difference_path,
    first_difference,
    read_run_stamp,
    refuse_stale,
    text_digest,
    write_stamp,
)
from pyfunc.pipeline.vad_stage import VAD_SCP, refuse_stale_vad
from pyfunc.training.learning_curve import plot_learning_curve
from pyfunc.training.shard_examples import SHUFFLE_BUFFER
from pyfunc.training.trainer import train

logger = logging.getLogger(__name__)

# Config keys that may change between a run and its resumption: they do not change what
# is learnt from the examples (the effective batch stays train.batch_size whatever the
# number of processes and train.grad_accum), or they only say how long to train, what to log
# or what to evaluate on (train.eval_data, train.eval_interval: evaluation leaves training as it is), or
# how the trained model is used (the extract and score sections), or where the same augmentation draws are
# applied (train.augment.on_device: the examples differ by float rounding only).
RESUME_SAFE_KEYS = ("train.epochs", "train.num_workers", "train.log_interval", "train.checkpoint_interval",
                    "train.keep_checkpoints", "train.grad_accum", "train.eval_data", "train.eval_interval",
                    "train.average_last", "train.augment.on_device", "model.num_classes", "extract", "score")


def _drop(tree: dict, dotted: str) -> None:
    *path, last = dotted.split(".")
    for key in path:
        tree = tree.get(key, {})
    tree.pop(last, None)


def _value_at(tree: object, keys: tuple[str, ...]) -> object:
    """The value at the nested ``keys`` of ``tree``, or ``<absent>``."""
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return "<absent>"
        tree = tree[key]
    return tree


def training_params(config, data_dir: PathLike, fbank_options: dict | None = None,
                    fbank_stamp: Stamp | None = None, shards: PathLike | None = None) -> dict:
    """What a stage-2 run is made of, as far as resuming is concerned: config and training data (and the
    fbank options when features are computed on the fly, the shards when read from shards).

    ``fbank_stamp``: the stamp stage 1 is about to write for ``data_dir`` (``--status`` asks what
    stage 2 will find after stage 1), instead of the one there now.
    """
    settings = config_to_dict(config)
    for key in RESUME_SAFE_KEYS + (() if config.train.vad else ("train.vad",)):  # off: as before the key existed
        _drop(settings, key)
    data_dir = Path(data_dir)
    table_name = training_table(config)
    table = data_dir / table_name
    keys = hashlib.sha256("\n".join(sorted(read_scp(table))).encode()).hexdigest() if table.is_file() else None
    data = {"utt2spk": text_digest(data_dir / "utt2spk"), f"{table_name} keys": keys,
            "utt2aug": text_digest(data_dir / "utt2aug"), SKIPPED_NAME: text_digest(data_dir / SKIPPED_NAME)}
    made = fbank_stamp if fbank_stamp is not None else read_run_stamp(data_dir / FBANK_STAMP)
    made = made if table_name == "feats.scp" else None
    if made is not None and not changed_files(made.outputs):  # features: what stage 1 made them from
        data["features from"] = hashlib.sha256(json.dumps([made.params, made.inputs, made.deep_inputs],
                                                          sort_keys=True).encode()).hexdigest()
    else:  # arks are renamed by every stage-1 run, so the scp text only stands in when there is no stamp
        data[table_name] = text_digest(table)
    if config.train.vad:  # the decisions the chunks are drawn from
        data[VAD_SCP] = text_digest(data_dir / VAD_SCP)
    if shards is not None:  # what orders the examples: the shards' utterances in order (not where they are)
        indexes = "\n".join(" ".join(shard.utts) for shard in read_shard_list(shards))
        data["shards"] = {"utterances": hashlib.sha256(indexes.encode()).hexdigest(),
                          "shuffle buffer": SHUFFLE_BUFFER}
    params = {"config": settings, "data": data}
    if config.train.on_the_fly_features:
        params["fbank"] = fbank_options
    return params


def why_not_resumable(config, data_dir: PathLike, exp_dir: PathLike, fbank_stamp: Stamp | None = None,
                      fbank_options: dict | None = None,
                      shards: PathLike | None = None) -> tuple[str | None, dict, Stamp | None]:
    """Whether stage 2 may resume the checkpoints in ``EXP/models``: (the refusal, or None; this run's
    parameters; the recorded stamp). ``fbank_stamp``, ``fbank_options``, ``shards``: see :func:`training_params`."""
    models = Path(exp_dir) / "models"
    params = as_json_value(training_params(config, data_dir, fbank_options, fbank_stamp, shards))
    stamp_path = models / TRAIN_STAMP
    old = read_run_stamp(stamp_path)
    if old is not None and isinstance(old.params.get("config"), dict):  # a run from before a key was renamed
        old.params["config"] = rename_aliases(old.params["config"], str(stamp_path))
    checkpoint = latest_checkpoint(models) if models.is_dir() else None
    if checkpoint is not None and old is not None:
        differs = difference_path(old.params, params)
        if differs is not None:
            return (f"{checkpoint}: made by a run with other settings: {'.'.join(differs) or '<params>'} was "
                    f"{_value_at(old.params, differs)!r}, now {_value_at(params, differs)!r}; "
                    f"resume with the earlier setting, or start over in another --exp "
                    f"(or after removing {models})"), params, old
    return None, params, old


def check_training_inputs(config, data_dir: PathLike, exp_dir: PathLike, fbank_options: dict | None = None,
                          shards: PathLike | None = None) -> None:
    """Stage 2: refuse to resume checkpoints made with another config or other data; record this run's.

    Resuming is only right when the run is the same run: the checkpoints in
    ``EXP/models`` were made with the config (except RESUME_SAFE_KEYS) and the training
    data recorded in ``EXP/models/.train.stamp``. Otherwise this raises a ConfigError
    naming what differs, rather than silently continuing a different run or throwing
    away the checkpoints. Also refuses a feats.scp that stage 1's stamp shows stale.
    """
    data_dir, models = Path(data_dir), Path(exp_dir) / "models"
    if training_table(config) == "feats.scp":
        refuse_stale(data_dir / FBANK_STAMP, data_dir / "feats.scp", "rerun stage 1 (steps/make_fbank.py)")
    if config.train.vad:
        refuse_stale_vad(data_dir)
    refusal, params, old = why_not_resumable(config, data_dir, exp_dir, fbank_options=fbank_options, shards=shards)
    if refusal is not None:
        raise ConfigError(refusal)
    checkpoint = latest_checkpoint(models) if models.is_dir() else None
    if checkpoint is None or old is None:
        write_stamp(models / TRAIN_STAMP, Stamp("train", params))


def why_training_not_complete(config, exp_dir: PathLike, fbank_conf: PathLike | None = None) -> str | None:
    """None when stage 2 has nothing left to do in ``exp_dir``; else what it would do and why.

    Complete means: the newest checkpoint is ``epoch_E.pt`` with E >= ``train.epochs``, and
    ``EXP/model.pt`` was written after it, with ``EXP/config.yaml`` holding this ``config``
    (``model.num_classes`` aside) and ``EXP/fbank.conf`` equal to ``fbank_conf``, and the
    untrained model dir is there. A rerun would only write the same model directory again,
    with new modification times that make stage 3 redo its embeddings, so it is skipped.
    """
    exp = Path(exp_dir)
    models = exp / "models"
    checkpoint = latest_checkpoint(models) if models.is_dir() else None
    if checkpoint is None:
        return "no checkpoint in models/: trains from the start"
    epochs, steps = progress_of(checkpoint)
    wanted = config.train.epochs
    if steps or epochs < wanted:
        return f"{epochs} of {wanted} epochs done: resumes from {checkpoint}"
    model, saved = exp / MODEL_NAME, exp / CONFIG_NAME
    if not model.is_file() or not saved.is_file():
        return f"{model if not model.is_file() else saved} is missing: writes the model directory from {checkpoint}"
    if model.stat().st_mtime_ns < checkpoint.stat().st_mtime_ns:
        return f"{model} is older than {checkpoint}: writes the model directory again"
    old, new = config_to_dict(load_config(saved)), config_to_dict(config)
    for tree in (old, new):
        _drop(tree, "model.num_classes")
    differs = first_difference(as_json_value(old), as_json_value(new))
    if differs is not None:
        return f"{saved} differs from the config in {differs}: writes the model directory again"
    if fbank_conf and (not (exp / "fbank.conf").is_file()
                       or (exp / "fbank.conf").read_bytes() != Path(fbank_conf).read_bytes()):
        return f"{exp / 'fbank.conf'} differs from {fbank_conf}: writes the model directory again"
    if not config.train.init_model and not (exp / "untrained" / MODEL_NAME).is_file():
        return f"{exp / 'untrained' / MODEL_NAME} is missing: writes it"
    return None


def run_training(config_path: PathLike, data_dir: PathLike, exp_dir: PathLike, device: str = "auto",
                 fbank_conf: PathLike | None = None, shards: PathLike | None = None) -> None:
    """Stage 2: train (resuming the same run only), then, on the main process, finish the model directory.

    Does nothing when training is complete and the model directory up to date
    (:func:`why_training_not_complete`). ``fbank_conf`` (the fbank options of the training
    features) is checked before training and copied into ``EXP`` and ``EXP/untrained``
    afterwards, where the verify/embed tools and the ONNX export read it; the learning curve
    is drawn from ``EXP/log/history.tsv``. ``shards``: read the examples from this shard list of
    ``data_dir`` (steps/make_shards.py).
    """
    fbank_options = read_kaldi_conf(fbank_conf) if fbank_conf else None  # a bad file fails now, not after training
    config = load_config(config_path)
    check_training_inputs(config, data_dir, exp_dir, fbank_options, shards)  # resume only the same run
    if why_training_not_complete(config, exp_dir, fbank_conf) is None:
        logger.info("%s: training is complete (%d epochs) and the model directory is up to date; nothing to do",
                    exp_dir, config.train.epochs)
        return
    train(config, data_dir, exp_dir, device, fbank_options, shards)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    exp = Path(exp_dir)
    if fbank_conf:
        for model_dir in (exp, exp / "untrained"):
            if model_dir.is_dir():
                with atomic_path(model_dir / "fbank.conf") as tmp:
                    shutil.copyfile(fbank_conf, tmp)
    path = plot_learning_curve(exp / "log" / "history.tsv", exp / "plots" / "learning_curve.png",
                               title=f"training of {exp}")
    logger.info("wrote %s", path)
