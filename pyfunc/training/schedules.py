"""Learning-rate and margin schedules of stage 2, as functions of the position in the run.

* ``train.lr_schedule: step`` (the seed's): the learning rate is multiplied by ``lr_decay``
  after every epoch (torch's StepLR, stepped once per epoch).
* ``train.lr_schedule: warmup_exp`` (WeSpeaker's ExponentialDecrease with ``warm_from_zero``):
  at optimiser step ``i`` of ``I = epochs x steps_per_epoch``,
  ``lr(i) = min(1, i / W) * lr * (final_lr / lr) ** (i / I)``, ``W = warmup_epochs x steps_per_epoch``.
  It is a LambdaLR stepped after every optimiser step, so its state (the step count) is saved in
  checkpoints and a resumed run continues where it stopped.
* ``loss.margin_ramp: [start, end]``: the AAM margin at epoch position ``t`` (``epoch - 1 +
  step / steps_per_epoch``) is 0 until ``start``, ``margin * (t - start) / (end - start)`` between,
  and ``margin`` from ``end`` on (WeSpeaker's margin scheduler with a linear increase).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pyfunc.config import Config
from pyfunc.errors import ConfigError


def warmup_exp_factor(step: int, total_steps: int, warmup_steps: float, lr: float, final_lr: float) -> float:
    """``lr(step) / lr`` of the warm-up + exponential decay schedule (see the module docstring)."""
    warmup = min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0
    return warmup * math.exp(step / total_steps * math.log(final_lr / lr))


@dataclass(frozen=True)
class WarmupExponential:
    """The LambdaLR factor of ``warmup_exp`` (a callable object, so that it pickles with the scheduler)."""

    total_steps: int
    warmup_steps: float
    lr: float
    final_lr: float

    def __call__(self, step: int) -> float:
        return warmup_exp_factor(step, self.total_steps, self.warmup_steps, self.lr, self.final_lr)


def check_schedules(config: Config) -> None:
    """ConfigError naming the key when the LR or margin schedule settings do not make sense."""
    cfg = config.train
    if cfg.lr_schedule == "warmup_exp":
        if not 0 < cfg.final_lr <= cfg.lr:
            raise ConfigError(f"train.final_lr must be in (0, train.lr = {cfg.lr}] for lr_schedule warmup_exp, "
                              f"got {cfg.final_lr}")
        if not 0 <= cfg.warmup_epochs <= cfg.epochs:
            raise ConfigError(f"train.warmup_epochs must be in [0, train.epochs], got {cfg.warmup_epochs}")
    ramp = config.loss.margin_ramp
    if ramp and (len(ramp) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in ramp)
                 or not 0 <= ramp[0] <= ramp[1]):
        raise ConfigError(f"loss.margin_ramp must be [start_epoch, end_epoch] with 0 <= start <= end, got {ramp}")


def build_lr_scheduler(optimizer: torch.optim.Optimizer, config: Config, steps_per_epoch: int
                       ) -> tuple[torch.optim.lr_scheduler.LRScheduler, bool]:
    """The scheduler of ``train.lr_schedule`` and whether it steps after every optimiser step (else per epoch)."""
    cfg = config.train
    if cfg.lr_schedule == "warmup_exp":
        factor = WarmupExponential(cfg.epochs * steps_per_epoch, cfg.warmup_epochs * steps_per_epoch, cfg.lr,
                                   cfg.final_lr)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), True
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=cfg.lr_decay), False


def margin_at(position: float, margin: float, ramp: list) -> float:
    """The AAM margin at epoch position ``position`` (0 at the start of the run) under ``loss.margin_ramp``."""
    if not ramp:
        return margin
    start, end = float(ramp[0]), float(ramp[1])
    if position >= end:
        return margin
    if position <= start:
        return 0.0
    return margin * (position - start) / (end - start)
