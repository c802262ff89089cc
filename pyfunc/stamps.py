"""Run stamps: what a stage was run with, so that reruns skip up-to-date work and refuse stale inputs.

A stamp is a small JSON file that a stage writes (atomically) after its outputs are
complete. It records the stage's parameters (options, config values) and the size and
modification time (ns) of

* ``inputs``: the files the stage read that its consumers may also check cheaply
  (``wav.scp``, ``utt2spk``, ``model.pt``, ``conf/fbank.conf`` ...),
* ``deep_inputs``: the many files those point to (audio files, feature arks), checked
  only by the stage itself,
* ``outputs``: the files it wrote.

Rules:

* A stage whose stamp matches its parameters and every input and output, as they
  are now, is up to date and skips its work (``--force`` redoes it).
* Anything changed (a parameter, an input rewritten or touched, an output removed or
  replaced) makes the stage redo its work. The old stamp stays while the stage runs: it
  vouches only for outputs with the recorded sizes and mtimes, which the stage leaves
  untouched until its new outputs are complete, so a killed or failed run leaves the old
  outputs with a stamp that still describes them (or, once one new output replaced an
  old one, a stamp that no longer matches, so the next run redoes the work).
* A consumer of an output (stage 3 reading ``feats.scp``, stage 4 reading
  ``xvector.scp``) refuses it when the outputs are still those the stamp describes but
  an input has changed since: the output is stale. When the outputs themselves differ
  from the stamp (written by another tool, or by hand), the stamp no longer describes
  them and is ignored.

Sizes and mtimes, not checksums: a content change that keeps both (same size, mtime
restored) goes unnoticed, as with ``make``. Commands in ``wav.scp`` pipes are covered
by the text of ``wav.scp``, not by the files those commands read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from pyfunc.fileio import PathLike, atomic_open

logger = logging.getLogger(__name__)

STAMP_VERSION = 1
FBANK_STAMP = ".fbank.stamp"  # in the data directory, beside the feats.scp that stage 1 wrote
EXTRACT_STAMP = ".extract.stamp"  # in the embedding directory (stage 3)
TRAIN_STAMP = ".train.stamp"  # in EXP/models (stage 2)
FileState = list[int] | None  # [size, mtime_ns], or None for a missing file


def file_state(path: PathLike) -> FileState:
    """``[size, mtime_ns]`` of ``path``, or None when it does not exist."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return [info.st_size, info.st_mtime_ns]


def _states(paths: Iterable[PathLike]) -> dict[str, FileState]:
    return {str(Path(p).absolute()): file_state(p) for p in paths}


def _plain(value: object) -> object:
    """``value`` as it reads back from JSON (tuples become lists, keys strings)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


@dataclass
class Stamp:
    stage: str
    params: dict
    inputs: dict[str, FileState] = field(default_factory=dict)
    deep_inputs: dict[str, FileState] = field(default_factory=dict)
    outputs: dict[str, FileState] = field(default_factory=dict)
    version: int = STAMP_VERSION


def make_stamp(stage: str, params: Mapping, inputs: Iterable[PathLike], outputs: Iterable[PathLike],
               deep_inputs: Iterable[PathLike] = ()) -> Stamp:
    """A stamp of the files as they are now."""
    return Stamp(stage, _plain(dict(params)), _states(inputs), _states(deep_inputs), _states(outputs))


def write_stamp(path: PathLike, stamp: Stamp) -> None:
    with atomic_open(path) as handle:
        json.dump(asdict(stamp), handle, indent=1, sort_keys=True)


def read_stamp(path: PathLike) -> Stamp | None:
    """The stamp at ``path``; None when missing, unreadable or of another version."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        stamp = Stamp(**data)
    except (OSError, ValueError, TypeError):
        return None
    return stamp if stamp.version == STAMP_VERSION else None


def _changed_files(recorded: Mapping[str, FileState]) -> list[str]:
    return [path for path, state in recorded.items() if file_state(path) != state]


def _first_param_difference(old: object, new: object, where: str = "") -> str | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            sub = f"{where}.{key}" if where else str(key)
            if key not in old or key not in new:
                return sub
            found = _first_param_difference(old[key], new[key], sub)
            if found is not None:
                return found
        return None
    return None if old == new else (where or "<params>")


def why_not_current(path: PathLike, stage: str, params: Mapping, inputs: Iterable[PathLike],
                    deep_inputs: Iterable[PathLike] = ()) -> str | None:
    """None when the stamp at ``path`` matches; else a short reason to redo the stage."""
    old = read_stamp(path)
    if old is None:
        return "no stamp of an earlier complete run"
    if old.stage != stage:
        return f"the stamp is of stage {old.stage!r}"
    changed = _first_param_difference(old.params, _plain(dict(params)))
    if changed is not None:
        return f"parameter {changed} changed"
    for kind, recorded, now in (("input", old.inputs, inputs), ("input", old.deep_inputs, deep_inputs)):
        names = {str(Path(p).absolute()) for p in now}
        if names != set(recorded):
            diff = sorted(names ^ set(recorded))
            return f"the set of {kind} files changed (e.g. {diff[0]})"
        changed_files = _changed_files(recorded)
        if changed_files:
            return f"{kind} {changed_files[0]} changed" + (f" (and {len(changed_files) - 1} more)"
                                                             if len(changed_files) > 1 else "")
    changed_files = _changed_files(old.outputs)
    if changed_files:
        return f"output {changed_files[0]} is missing or changed"
    return None


def needs_work(path: PathLike, stage: str, params: Mapping, inputs: Iterable[PathLike],
               deep_inputs: Iterable[PathLike], output: PathLike, what: str, force: bool = False) -> bool:
    """Whether a stage must (re)make ``output``: logs why, or that ``what`` is up to date and nothing is done."""
    if force:
        logger.info("%s: recomputing %s (--force)", output, what)
        return True
    reason = why_not_current(path, stage, params, inputs, deep_inputs)
    if reason is None:
        logger.info("%s: %s are up to date (stamp %s); nothing to do (--force recomputes)", output, what, path)
        return False
    logger.info("%s: computing %s (%s)", output, what, reason)
    return True


def stale_inputs(path: PathLike) -> list[str]:
    """Inputs recorded in the stamp at ``path`` that changed since, while its outputs did not.

    Empty when there is no stamp, or when the outputs differ from the stamp (it no
    longer describes them). Deep inputs are not checked (they can be many).
    """
    stamp = read_stamp(path)
    if stamp is None or _changed_files(stamp.outputs):
        return []
    return _changed_files(stamp.inputs)


def refuse_stale(stamp_path: PathLike, output: PathLike, rerun: str) -> None:
    """DataError when ``output`` was made from inputs that changed since (see :func:`stale_inputs`)."""
    from pyfunc.errors import DataError

    changed = stale_inputs(stamp_path)
    if changed:
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        raise DataError(f"{output}: out of date: {changed[0]}{more} changed after it was made; {rerun}")


def text_digest(path: PathLike) -> str | None:
    """sha256 of a file's bytes (None when missing): for small tables whose content matters."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


# Config keys that may change between a run and its resumption: they do not change what
# is learnt from the examples (the effective batch stays train.batch_size whatever the
# number of processes and train.grad_accum), or they only say how long to train, what to log
# or what to evaluate on (train.eval_data, train.eval_interval: evaluation leaves training as it is).
RESUME_SAFE_KEYS = ("train.epochs", "train.num_workers", "train.log_interval", "train.checkpoint_interval",
                    "train.keep_checkpoints", "train.grad_accum", "train.eval_data", "train.eval_interval",
                    "model.num_classes")


def _drop(tree: dict, dotted: str) -> None:
    *path, last = dotted.split(".")
    for key in path:
        tree = tree.get(key, {})
    tree.pop(last, None)


def _value_at(tree: object, dotted: str) -> object:
    for key in dotted.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return "<absent>"
        tree = tree[key]
    return tree


def training_params(config, data_dir: PathLike) -> dict:
    """What a stage-2 run is made of, as far as resuming is concerned: config and training data."""
    from pyfunc.badinput import SKIPPED_NAME
    from pyfunc.config import config_to_dict, input_table
    from pyfunc.fileio import read_scp

    settings = config_to_dict(config)
    for key in RESUME_SAFE_KEYS:
        _drop(settings, key)
    data_dir = Path(data_dir)
    table_name = input_table(config.model.frontend)
    table = data_dir / table_name
    keys = hashlib.sha256("\n".join(sorted(read_scp(table))).encode()).hexdigest() if table.is_file() else None
    data = {"utt2spk": text_digest(data_dir / "utt2spk"), f"{table_name} keys": keys,
            "utt2aug": text_digest(data_dir / "utt2aug"), SKIPPED_NAME: text_digest(data_dir / SKIPPED_NAME)}
    made = read_stamp(data_dir / FBANK_STAMP) if table_name == "feats.scp" else None
    if made is not None and not _changed_files(made.outputs):  # features: what stage 1 made them from
        data["features from"] = hashlib.sha256(json.dumps([made.params, made.inputs, made.deep_inputs],
                                                          sort_keys=True).encode()).hexdigest()
    else:  # arks are renamed by every stage-1 run, so the scp text only stands in when there is no stamp
        data[table_name] = text_digest(table)
    return {"config": settings, "data": data}


def check_training_inputs(config, data_dir: PathLike, exp_dir: PathLike) -> None:
    """Stage 2: refuse to resume checkpoints made with another config or other data; record this run's.

    Resuming is only right when the run is the same run: the checkpoints in
    ``EXP/models`` were made with the config (except RESUME_SAFE_KEYS) and the training
    data recorded in ``EXP/models/.train.stamp``. Otherwise this raises a ConfigError
    naming what differs, rather than silently continuing a different run or throwing
    away the checkpoints. Also refuses a feats.scp that stage 1's stamp shows stale.
    """
    from pyfunc.checkpoint import latest_checkpoint
    from pyfunc.errors import ConfigError

    data_dir, models = Path(data_dir), Path(exp_dir) / "models"
    if config.model.frontend == "fbank":
        refuse_stale(data_dir / FBANK_STAMP, data_dir / "feats.scp", "rerun stage 1 (steps/make_fbank.py)")
    params = _plain(training_params(config, data_dir))
    stamp_path = models / TRAIN_STAMP
    old = read_stamp(stamp_path)
    checkpoint = latest_checkpoint(models) if models.is_dir() else None
    if checkpoint is not None and old is not None:
        differs = _first_param_difference(old.params, params)
        if differs is not None:
            raise ConfigError(f"{checkpoint}: made by a run with other settings: {differs} was "
                              f"{_value_at(old.params, differs)!r}, now {_value_at(params, differs)!r}; "
                              f"resume with the earlier setting, or start over in another --exp "
                              f"(or after removing {models})")
    if checkpoint is None or old is None:
        write_stamp(stamp_path, Stamp("train", params))
