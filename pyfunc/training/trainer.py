"""Stage 2: ECAPA-TDNN + AAM-softmax training, on one process or many (torchrun / DDP).

The global batch (``train.batch_size``) is the same whatever the number of
processes: each of W processes takes ``batch_size / (W * grad_accum)`` examples
per micro-batch, so the learning rate needs no change when W changes. Only rank
0 writes checkpoints and logs. Rerunning resumes from the newest checkpoint.

With ``train.eval_data`` set, the ranks score that data dir's ``trials`` after every
``train.eval_interval``-th epoch (and the last) once its checkpoint is written, each embedding
a share of the utterances (:mod:`pyfunc.training.evaluation`): in-memory
embeddings with the stage-3 batching and the config's ``extract.protocol``, stage-4 cosine
(or seed) scores and the stage-6 EER, logged and written to the ``eer`` column of
``EXP/log/history.tsv`` (``-`` for epochs not evaluated). The RNG states are restored
afterwards, so training is the same with or without evaluation.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn
from tqdm import tqdm

from pyfunc.config import Config, save_config, trains_on_waveforms
from pyfunc.errors import ConfigError, PyfuncError
from pyfunc.features.augment import build_augmenter
from pyfunc.logs import LOG_FORMAT
from pyfunc.models.aam_softmax import AAMSoftmax
from pyfunc.models.averaging import average_into_model_dir
from pyfunc.models.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    progress_of,
    rng_states,
    save_checkpoint,
    set_rng_states,
)
from pyfunc.models.model_dir import (
    build_encoder,
    build_head,
    load_model_dir_with_head,
    load_state_checked,
    save_model_dir,
)
from pyfunc.training.checks import check_gradients, check_replicas_agree, numerical_fault
from pyfunc.training.device_batch import batch_to_device
from pyfunc.training.distributed import DistInfo, evaluation_group, setup_distributed, sync_batchnorm
from pyfunc.training.evaluation import evaluate_eer, load_eval_set
from pyfunc.training.examples import ChunkDataset, EpochBatches, collate_drawn, load_training_set
from pyfunc.training.history import append_history, record_eer
from pyfunc.training.schedules import build_lr_scheduler, check_schedules, margin_at
from pyfunc.training.shard_examples import ShardDataset, load_shard_set, training_loader
from pyfunc.training.step_speed import (
    autocast,
    configure_backends,
    cpu_has_native_bf16,
    maybe_compile,
    resolve_precision,
)

logger = logging.getLogger(__name__)


class SpeakerNet(nn.Module):
    """Encoder + AAM-softmax head as one module, so DDP synchronises both."""

    def __init__(self, encoder: nn.Module, head: AAMSoftmax):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None):
        return self.head(self.encoder(x, augment=True, generator=generator), labels)


def example_generator(random_seed: int, epoch: int, step: int, part: int) -> torch.Generator:
    """The SpecAugment random stream of one micro-batch, fixed by its place in the run."""
    state = np.random.SeedSequence([random_seed, epoch, step, part]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def _setup_logging(exp_dir: Path, is_main: bool) -> None:
    if not is_main:
        logging.getLogger().setLevel(logging.WARNING)
        return
    (exp_dir / "log").mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(exp_dir / "log" / "train.log")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)


def train(config: Config, data_dir: str | Path, exp_dir: str | Path, device: str = "auto",
          fbank_options: dict[str, Any] | None = None, shards: str | Path | None = None) -> None:
    """Train on ``data_dir`` into ``exp_dir`` (checkpoints in ``models/``, final model dir in ``exp_dir``).

    ``fbank_options`` (Kaldi fbank options, :func:`pyfunc.features.kaldi_fbank.read_kaldi_conf`) are
    needed with ``train.on_the_fly_features``. ``shards``: a shard list of ``data_dir``
    (steps/make_shards.py) to read the examples from instead of its wav.scp or feats.scp.
    """
    exp_dir = Path(exp_dir)
    check_training_config(config, fbank_options)
    dist = setup_distributed(device)
    _setup_logging(exp_dir, dist.is_main)
    cfg = config.train
    mode = "waveform" if trains_on_waveforms(config) else "features"
    data = load_training_set(data_dir, mode, cfg.vad)
    eval_set = load_eval_set(config)  # on every rank: a bad eval set fails before training, everywhere
    eval_group = evaluation_group(dist) if eval_set is not None else None  # every rank evaluates its share
    config.model.num_classes = len(data.speakers) * max(1, len(cfg.speed_perturb))
    configure_backends(dist.device)
    precision = resolve_precision(cfg.precision, dist.device)
    if precision == "bf16" and dist.device.type == "cpu" and dist.is_main and not cpu_has_native_bf16():
        logger.warning("train.precision bf16 on a CPU without AMX: bfloat16 is emulated here and slower than "
                       "float32 (train.precision: auto picks fp32 on such a CPU)")

    torch.manual_seed(cfg.random_seed)
    encoder = build_encoder(config.model, specaug_time=cfg.specaug_time, specaug_freq=cfg.specaug_freq)
    head = build_head(config)
    if dist.is_main:
        save_config(exp_dir / "config.yaml", config)
        if not cfg.init_model and not (exp_dir / "untrained" / "model.pt").is_file():  # fine-tuning: no
            save_model_dir(exp_dir / "untrained", config, encoder, head)
    net = SpeakerNet(encoder, head).to(dist.device)
    if cfg.sync_batchnorm:
        net = sync_batchnorm(net, dist)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = EpochBatches(len(data.utts), cfg.batch_size, cfg.random_seed, dist.world_size, dist.rank, cfg.grad_accum)
    scheduler, per_step = build_lr_scheduler(optimizer, config, sampler.steps_per_epoch)
    models_dir = exp_dir / "models"
    epochs_done, start_step, saved_streams = _resume(models_dir, net, optimizer, scheduler, dist.device)
    if epochs_done == 0 and start_step == 0 and cfg.init_model:
        _initialise_from(net, cfg.init_model, bool(cfg.speed_perturb))
    if dist.is_main:
        logger.info("%d utterances, %d speakers, %d steps/epoch of %d examples on %d process(es) x %d "
                    "accumulation step(s), device %s, precision %s%s", len(data.utts), len(data.speakers),
                    sampler.steps_per_epoch, cfg.batch_size, dist.world_size, cfg.grad_accum, dist.device, precision,
                    ", compiled" if cfg.compile else "")
    model = net
    if dist.world_size > 1:
        model = nn.parallel.DistributedDataParallel(net, device_ids=[dist.device.index] if dist.device.type == "cuda"
                                                    else None)
    model = maybe_compile(model, cfg.compile)  # DDP first, then compile: DDP's graph breaks at its buckets
    augmenter = build_augmenter(cfg.augment)
    on_device = augmenter is not None and cfg.augment.on_device  # workers draw; augmented (and fbank) on the device
    fbank = fbank_options if cfg.on_the_fly_features else None
    dataset = ChunkDataset(data, cfg.chunk_frames, augmenter, cfg.speed_perturb, None if on_device else fbank,
                           draw_only=on_device, framing=fbank_options)
    collate = collate_drawn if on_device else None
    shard_set = None if shards is None else load_shard_set(shards, data)
    plan, loader = training_loader(dataset, sampler, shard_set, cfg.num_workers, dist.device.type == "cuda", collate)
    if shard_set is not None and dist.is_main:
        logger.info("reading the examples from the %d shards of %s", len(shard_set.shards), shards)
    if start_step and isinstance(plan, ShardDataset) and saved_streams not in (None, plan.workers):
        raise ConfigError(f"{latest_checkpoint(models_dir)}: saved in the middle of epoch {epochs_done + 1} while "
                          f"{saved_streams} loader stream(s) read the shards; with train.num_workers "
                          f"{cfg.num_workers} the rest of that epoch would repeat or skip examples: resume with "
                          f"train.num_workers {saved_streams} (another count is fine from an epoch checkpoint)")
    if on_device and dist.is_main:
        logger.info("augmentation%s on %s (train.augment.on_device)", " and fbank" if fbank else "", dist.device)
    schedule = Schedule(scheduler, per_step)
    device_fbank = fbank if on_device else None  # fbank features follow the augmentation on the device

    for epoch in range(epochs_done + 1, cfg.epochs + 1):
        plan.set_epoch(epoch, start_step)
        _train_epoch(config, epoch, start_step, model, net, optimizer, schedule, loader, plan, dist, models_dir,
                     device_fbank)
        start_step = 0
        if eval_set is not None and (epoch % cfg.eval_interval == 0 or epoch == cfg.epochs):
            eer = evaluate_eer(net.encoder, eval_set, config, dist, eval_group)
            if dist.is_main:
                logger.info("epoch %d: EER %.2f%% on %s (%.1f s)", epoch, eer, eval_set.data_dir,
                            eval_set.last_seconds)
                record_eer(exp_dir, epoch, eer)
    if dist.is_main:
        if cfg.average_last > 1:
            averaged = average_into_model_dir(models_dir, cfg.average_last, config, exp_dir)
            logger.info("wrote the average of %s to %s", ", ".join(p.name for p in averaged), exp_dir / "model.pt")
        else:
            save_model_dir(exp_dir, config, net.encoder, net.head)
            logger.info("wrote the trained model to %s", exp_dir / "model.pt")
    if dist.world_size > 1:
        torch_dist.barrier()
        torch_dist.destroy_process_group()


def check_training_config(config: Config, fbank_options: dict[str, Any] | None) -> None:
    """ConfigError naming the key when the training settings do not fit together (before any work)."""
    cfg = config.train
    check_schedules(config)
    if cfg.on_the_fly_features:
        if config.model.frontend != "fbank":
            raise ConfigError("train.on_the_fly_features computes fbank features; the seed front end "
                              "(model.frontend: seed) reads waveforms already")
        if fbank_options is None:
            raise ConfigError("train.on_the_fly_features needs the fbank options of the model "
                              "(steps/train.py --fbank-conf)")
        bins = int(fbank_options.get("num_mel_bins", 23))
        if bins != config.model.feat_dim:
            raise ConfigError(f"the fbank options give {bins} mel bins, model.feat_dim is {config.model.feat_dim}")
    if not trains_on_waveforms(config):
        if cfg.augment.enabled:
            raise ConfigError("train.augment.enabled works on waveforms: use the seed front end, or "
                              "train.on_the_fly_features: true with fbank, or augmented copies made before "
                              "stage 1 (steps/augment_data_dir.py)")
        if cfg.speed_perturb:
            raise ConfigError("train.speed_perturb works on waveforms: use the seed front end or "
                              "train.on_the_fly_features: true")
    if cfg.speed_perturb and (len(set(cfg.speed_perturb)) != len(cfg.speed_perturb)
                              or not all(isinstance(f, (int, float)) and 0.5 <= f <= 2.0 for f in cfg.speed_perturb)):
        raise ConfigError(f"train.speed_perturb must list distinct factors in [0.5, 2], got {cfg.speed_perturb}")
    if cfg.average_last > 1 and 0 < cfg.keep_checkpoints < cfg.average_last:
        raise ConfigError(f"train.average_last {cfg.average_last} needs train.keep_checkpoints 0 (all) or at "
                          f"least {cfg.average_last}, got {cfg.keep_checkpoints}")
    if cfg.average_last > cfg.epochs:
        raise ConfigError(f"train.average_last {cfg.average_last} is more than train.epochs {cfg.epochs}")


def _initialise_from(net: SpeakerNet, model_dir: str, speed_perturb: bool = False) -> None:
    """Start from the weights of a model directory (``train.init_model``).

    The encoder is always loaded, strictly: an encoder of another architecture is a PyfuncError
    naming the keys. The AAM-softmax head is loaded when it has this training set's number of
    classes (large-margin fine-tuning on the same data stays exact); a head of another size
    (a model trained on other speakers) is left at its fresh initialisation, and the log says so.
    A model directory does not record the speakers it was trained on (``config.yaml`` holds
    ``model.num_classes`` only; the training data is a command-line argument of stage 2), so the
    head is judged by its shape: a head of the same size trained on other speakers of the same
    number is loaded too, its rows then being other speakers' centres, which training re-learns.
    """
    encoder, head, source = load_model_dir_with_head(model_dir, "cpu")
    load_state_checked(net.encoder, encoder.state_dict(), f"{model_dir} (encoder; train.init_model)")
    theirs, ours = int(head.weight.shape[0]), int(net.head.weight.shape[0])
    if theirs == ours:
        load_state_checked(net.head, head.state_dict(), f"{model_dir} (head; train.init_model)")
        logger.info("train.init_model: encoder and classifier head from %s (%d classes)", model_dir, ours)
        return
    unit = "classes (speakers x speed factors)" if speed_perturb or source.train.speed_perturb else "speakers"
    logger.warning("train.init_model: encoder from %s; classifier head started afresh (%s has %d %s, "
                   "this training set %d)", model_dir, model_dir, theirs, unit, ours)


@dataclass
class Schedule:
    """The LR scheduler and whether it steps after every optimiser step (else after every epoch)."""

    scheduler: torch.optim.lr_scheduler.LRScheduler
    per_step: bool


def _resume(models_dir: Path, net: SpeakerNet, optimizer, scheduler,
            device: torch.device) -> tuple[int, int, int | None]:
    """(epochs done, steps done of the next epoch, the loader streams that read its shards) of the newest
    checkpoint, whose states are loaded; (0, 0, None) when there is none."""
    path = latest_checkpoint(models_dir)
    if path is None:
        return 0, 0, None
    state = load_checkpoint(path, device)  # checks the keys of a training checkpoint
    load_state_checked(net.encoder, state["encoder"], f"{path} (encoder)")  # wrong architecture: named keys
    load_state_checked(net.head, state["head"], f"{path} (head)")
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    except (ValueError, KeyError, TypeError) as err:
        raise PyfuncError(f"{path}: the optimiser state does not fit the model: {err}") from None
    set_rng_states(state["rng"])
    logger.info("resuming from %s (epoch %d done, step %d of the next)", path, state["epoch"], state["step"])
    return state["epoch"], state["step"], state.get("shard_streams")


def _train_epoch(config: Config, epoch: int, start_step: int, model: nn.Module, net: SpeakerNet, optimizer,
                 schedule: Schedule, loader, sampler: EpochBatches | ShardDataset, dist: DistInfo,
                 models_dir: Path, device_fbank: dict[str, Any] | None = None) -> None:
    cfg = config.train
    scheduler = schedule.scheduler
    net.train()
    totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct sum, examples
    start = time.perf_counter()
    step, part = start_step, 0
    bar = tqdm(total=sampler.steps_per_epoch, initial=start_step, desc=f"epoch {epoch}", unit="step",
               disable=not dist.is_main or None, dynamic_ncols=True, leave=False)
    for batch in loader:
        x, labels = batch_to_device(batch, dist.device, device_fbank)
        last_part = part == cfg.grad_accum - 1
        if part == 0 and config.loss.margin_ramp:
            net.head.set_margin(margin_at(epoch - 1 + step / sampler.steps_per_epoch, config.loss.margin,
                                          config.loss.margin_ramp))
        sync = contextlib.nullcontext() if last_part or dist.world_size == 1 else model.no_sync()
        generator = example_generator(cfg.random_seed, epoch, step, dist.rank * cfg.grad_accum + part)
        with sync:
            with autocast(cfg.precision, dist.device):
                loss, accuracy = model(x, labels, generator)
            # one device sync per micro-batch, before backward, serves the check and the totals
            loss_value, accuracy_value = torch.stack((loss.detach().double(), accuracy.detach().double())).tolist()
            if not math.isfinite(loss_value):  # stop before these gradients reach the weights
                micro = dist.rank * cfg.grad_accum + part
                utts = [loader.dataset.data.utts[i] for i in sampler.micro_batch(step, micro)]
                raise numerical_fault("training loss", loss_value, epoch, step + 1,
                                      f"micro-batch {micro} of {dist.world_size * cfg.grad_accum} (rank {dist.rank})",
                                      utts, latest_checkpoint(models_dir))
            (loss / cfg.grad_accum).backward()
        totals += torch.tensor([loss_value * len(labels), accuracy_value * len(labels) / 100, len(labels)],
                               dtype=torch.float64)
        if not last_part:
            part += 1
            continue
        check_gradients(net, epoch, step + 1, models_dir)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if schedule.per_step:
            scheduler.step()
        step, part = step + 1, 0
        bar.update(1)
        if dist.is_main and cfg.log_interval and step % cfg.log_interval == 0:
            logger.info("epoch %d step %d/%d loss %.4f acc %.2f%%", epoch, step, sampler.steps_per_epoch,
                        totals[0] / totals[2], 100 * totals[1] / totals[2])
        if cfg.checkpoint_interval and step % cfg.checkpoint_interval == 0 and step < sampler.steps_per_epoch:
            _save_checkpoint(models_dir, net, optimizer, scheduler, epoch - 1, step, sampler, dist,
                             cfg.keep_checkpoints)
    bar.close()
    lr = optimizer.param_groups[0]["lr"]
    if not schedule.per_step:
        scheduler.step()
    elapsed = time.perf_counter() - start
    if dist.world_size > 1:
        torch_dist.all_reduce(totals)
    examples = max(float(totals[2]), 1.0)
    if dist.is_main:
        logger.info("epoch %d done: loss %.4f acc %.2f%% lr %.3g margin %.3g %.1f examples/s (%.1f s)", epoch,
                    totals[0] / examples, 100 * totals[1] / examples, lr, net.head.m, examples / max(elapsed, 1e-9),
                    elapsed)
        append_history(models_dir.parent, epoch, float(totals[0] / examples), float(100 * totals[1] / examples),
                        lr, examples / max(elapsed, 1e-9))
    if dist.world_size > 1:  # DDP keeps the replicas bit-identical; check it once per epoch
        fingerprint = check_replicas_agree(net, dist.world_size, dist.device)
        if dist.is_main:
            logger.info("epoch %d: parameters identical on all %d processes (fingerprint %s)", epoch,
                        dist.world_size, ", ".join(f"{v:.17g}" for v in fingerprint.tolist()))
    _save_checkpoint(models_dir, net, optimizer, scheduler, epoch, 0, sampler, dist, cfg.keep_checkpoints)


def _save_checkpoint(models_dir: Path, net: SpeakerNet, optimizer, scheduler, epochs_done: int, step: int,
                     sampler: EpochBatches | ShardDataset, dist: DistInfo, keep: int) -> None:
    if not dist.is_main:
        return
    state = {
        "encoder": net.encoder.state_dict(),
        "head": net.head.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epochs_done,
        "step": step,
        "rng": rng_states(),
    }
    if step and isinstance(sampler, ShardDataset):  # how the rest of this epoch's examples are split
        state["shard_streams"] = sampler.workers
    name = f"epoch_{epochs_done}.pt" if step == 0 else f"step_{epochs_done + 1}_{step}.pt"
    save_checkpoint(models_dir / name, state)
    for old in models_dir.glob("step_*.pt"):
        if progress_of(old) < (epochs_done, step):
            old.unlink()
    if keep > 0:
        epochs = sorted((p for p in models_dir.glob("epoch_*.pt")), key=lambda p: progress_of(p))
        for old in epochs[:-keep]:
            old.unlink()
