"""Experiment configuration: YAML read with ``yaml.safe_load`` and checked against a schema.

The schema is a tree of dataclasses; unknown keys and wrong types are a
ConfigError that names the file and the dotted key, at load time.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pyfunc.data.atomic import PathLike, atomic_open
from pyfunc.errors import ConfigError


@dataclass
class ModelConfig:
    """ECAPA-TDNN encoder and its front end."""

    frontend: str = "fbank"  # "fbank": Kaldi fbank from feats.scp; "seed": waveform -> in-model log-mel
    channels: int = 1024  # C
    embed_dim: int = 192
    feat_dim: int = 80
    num_classes: int = 0  # set from the training data (or the imported checkpoint)


@dataclass
class LossConfig:
    """Additive angular margin softmax."""

    margin: float = 0.2
    scale: float = 30.0
    # [start, end] in epochs: the margin is 0 until `start`, rises linearly to `margin` at `end`, then stays
    # (WeSpeaker's margin scheduler, linear). Empty: the margin is fixed from the first step.
    margin_ramp: list = field(default_factory=list)


@dataclass
class AugmentConfig:
    """On-the-fly waveform augmentation (seed-style); used by the waveform front end."""

    enabled: bool = False
    musan_dir: str = ""  # folder holding Kaldi data dirs musan_noise, musan_music, musan_speech
    rir_dir: str = ""  # Kaldi data dir of simulated RIRs
    babble_speakers: list = field(default_factory=lambda: [3, 8])  # inclusive: the seed's randint(3, 8)
    snr_babble: list = field(default_factory=lambda: [13.0, 20.0])
    snr_music: list = field(default_factory=lambda: [5.0, 15.0])
    snr_noise: list = field(default_factory=lambda: [0.0, 15.0])
    # Apply the augmentation to whole batches on the training device (torch ops, after the batch is moved
    # there): the loader's workers only read, crop and draw, and on-the-fly fbank features are computed on
    # the device after it. The same draws as on the CPU: the examples differ by float32 rounding only.
    # No effect unless enabled.
    on_device: bool = False


@dataclass
class TrainConfig:
    """Optimisation and data loading for stage 2."""

    epochs: int = 80
    batch_size: int = 400
    lr: float = 0.001
    weight_decay: float = 2e-5
    lr_schedule: str = "step"  # "step": lr x lr_decay after every epoch (the seed's StepLR); "warmup_exp": per step,
    #                           linear warm-up over warmup_epochs, then exponential decay to final_lr (WeSpeaker's)
    lr_decay: float = 0.97  # StepLR gamma, applied once per epoch (lr_schedule: step)
    warmup_epochs: float = 0.0  # lr_schedule: warmup_exp: epochs of linear warm-up from 0
    final_lr: float = 0.0  # lr_schedule: warmup_exp: the learning rate at the end of the last epoch
    chunk_frames: int = 200  # training segment length in 10 ms frames
    specaug_time: int = 10  # time mask width drawn from [0, specaug_time)
    specaug_freq: int = 8  # frequency mask width drawn from [0, specaug_freq)
    num_workers: int = 2
    random_seed: int = 1234
    # "auto": bf16 on CUDA and AMX CPUs, else fp32; "fp32"; or "bf16" (autocast of the forward pass)
    precision: str = "auto"
    compile: bool = False  # torch.compile the model (the first steps take longer while it compiles)
    log_interval: int = 50  # steps between progress log lines
    grad_accum: int = 1  # micro-batches per optimiser step and process
    sync_batchnorm: bool = False  # several GPUs: BatchNorm statistics over all processes' micro-batches
    checkpoint_interval: int = 0  # also checkpoint every N steps within an epoch (0: at epoch ends only)
    keep_checkpoints: int = 0  # epoch checkpoints to keep (0: all)
    eval_data: str = ""  # Kaldi data dir with a labelled trials file: EER during training ("": no evaluation)
    eval_interval: int = 1  # evaluate every N epochs (and always after the last one) when eval_data is set
    # Compute the fbank features of each training chunk from wav.scp (fbank front end) instead of reading
    # stage 1's feats.scp: needed for on-the-fly augmentation and speed perturbation with fbank.
    on_the_fly_features: bool = False
    # Speed perturbation factors, e.g. [1.0, 0.9, 1.1]: each example is resampled by one drawn at random, and
    # each factor's copies are new speakers (len(factors) x the classes; the index of 1.0 keeps the labels).
    speed_perturb: list = field(default_factory=list)
    init_model: str = ""  # a model dir to start from ("": random weights); its AAM head only if it has as many classes
    average_last: int = 0  # model.pt = the average of the last N epoch checkpoints (0 or 1: the last one)
    # Draw the training chunks from the voiced frames only, by the training data dir's vad.scp
    # (steps/compute_vad.py): the voiced rows of feats.scp, or wav.scp audio cut to its voiced frames first.
    vad: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class ExtractConfig:
    """Embedding extraction for stage 3."""

    protocol: str = "full"  # "full": one embedding per utterance; "seed": full + five 3 s crops
    crop_seconds: float = 3.0
    num_crops: int = 5
    batch_frames: int = 0  # batch size x longest input, in frames; 0: 30000 on a GPU, 2000 on the CPU


@dataclass
class ScoreConfig:
    """Scoring for stages 4-6 and the verify/embed API."""

    asnorm_top_n: int = 300
    p_targets: list = field(default_factory=lambda: [0.01, 0.05])
    # Subtract the training set's mean embedding (MODEL_DIR/embedding_mean.vec, written by
    # steps/compute_embedding_mean.py) from every embedding before cosine and AS-norm scoring.
    subtract_mean: bool = False


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)


def input_table(frontend: str) -> str:
    """The data-dir table a model with ``frontend`` reads: wav.scp (seed: waveforms) or feats.scp (fbank)."""
    return "wav.scp" if frontend == "seed" else "feats.scp"


def trains_on_waveforms(config: Config) -> bool:
    """Whether stage 2 reads wav.scp (the seed front end, or fbank computed on the fly) rather than feats.scp."""
    return config.model.frontend == "seed" or config.train.on_the_fly_features


def training_table(config: Config) -> str:
    """The data-dir table stage 2 reads: wav.scp or feats.scp (see :func:`trains_on_waveforms`)."""
    return "wav.scp" if trains_on_waveforms(config) else "feats.scp"


_CHOICES = {
    "model.frontend": ("fbank", "seed"),
    "train.lr_schedule": ("step", "warmup_exp"),
    "train.precision": ("auto", "fp32", "bf16"),
    "extract.protocol": ("full", "seed"),
}


def _from_dict(cls: type, data: Any, where: str, source: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {where or 'top level'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(_join(where, k) for k in unknown)}; "
                          f"allowed: {', '.join(sorted(names))}")
    values = {}
    for name, value in data.items():
        key = _join(where, name)
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            values[name] = _from_dict(kind, value, key, source)
        else:
            values[name] = _check_type(kind, value, key, source)
        if key in _CHOICES and values[name] not in _CHOICES[key]:
            raise ConfigError(f"{source}: {key}: {values[name]!r} is not one of {', '.join(_CHOICES[key])}")
    return cls(**values)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _check_type(kind: Any, value: Any, key: str, source: str) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    base = typing.get_origin(kind) or kind
    if isinstance(base, types.UnionType):
        base = tuple(typing.get_args(kind))
    if base is int and isinstance(value, bool) or not isinstance(value, base):
        name = getattr(kind, "__name__", str(kind))
        raise ConfigError(f"{source}: {key}: expected {name}, got {type(value).__name__} {value!r}")
    return value


# Former key names, still accepted in config files, overrides and the stamps of earlier runs.
KEY_ALIASES = {"train.seed": "train.random_seed"}


def canonical_key(dotted: str) -> str:
    """The current name of a dotted config key (``train.seed`` -> ``train.random_seed``)."""
    return KEY_ALIASES.get(dotted, dotted)


def rename_aliases(data: Any, source: str = "<config>") -> Any:
    """A copy of a plain config dict with former key names replaced by the current ones.

    Giving a key under both names is a ConfigError naming both.
    """
    if not isinstance(data, dict):
        return data
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in data.items()}
    for old, new in KEY_ALIASES.items():
        section, old_name = old.split(".")
        new_name = new.split(".")[1]
        table = out.get(section)
        if isinstance(table, dict) and old_name in table:
            if new_name in table:
                raise ConfigError(f"{source}: {old} and {new} are the same key (its former and current name); "
                                  f"give only {new}")
            table[new_name] = table.pop(old_name)
    return out


def config_from_dict(data: dict, source: str = "<config>") -> Config:
    """Build a checked Config from a plain dict (missing keys take their defaults; former key names accepted)."""
    return _from_dict(Config, rename_aliases(data or {}, source), "", source)


def read_config_yaml(path: PathLike) -> Any:
    """The parsed YAML of a config file ({} when empty), not yet checked; ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None


def load_config(path: PathLike) -> Config:
    """Read and check a YAML config file."""
    return config_from_dict(read_config_yaml(path), str(path))


def config_to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def save_config(path: PathLike, config: Config) -> None:
    """Write ``config`` as YAML, atomically."""
    with atomic_open(path) as handle:
        yaml.safe_dump(config_to_dict(config), handle, sort_keys=False)
