"""The torchrun process group of stage 2: rank, world size and device of this process."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist
from torch import nn

from pyfunc.device import pick_device
from pyfunc.errors import ConfigError

# How long the collectives of evaluation during training wait for a slow rank (the default group keeps
# torch's default, 10 min for NCCL, 30 min for gloo, which a long evaluation could exceed).
EVAL_TIMEOUT = datetime.timedelta(hours=4)


@dataclass
class DistInfo:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str = "auto") -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on GPUs, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = pick_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(chosen)
    if world_size > 1 and not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return DistInfo(rank, world_size, chosen)


def sync_batchnorm(module: nn.Module, dist: DistInfo) -> nn.Module:
    """``module`` with its BatchNorm layers as torch's SyncBatchNorm (``train.sync_batchnorm``), when several
    processes train: each micro-batch is then normalised with the statistics of the micro-batches of all
    processes together, so W GPUs x B/W examples normalise like one GPU x B. The parameters and buffers
    stay the same objects and keys. One process: ``module`` unchanged. SyncBatchNorm runs on GPUs only."""
    if dist.world_size == 1:
        return module
    if dist.device.type != "cuda":
        raise ConfigError(f"train.sync_batchnorm: torch's SyncBatchNorm runs on GPUs only; this run has "
                          f"{dist.world_size} processes on {dist.device.type}")
    return nn.SyncBatchNorm.convert_sync_batchnorm(module)


def evaluation_group(dist: DistInfo):
    """A group of all ranks whose collectives wait up to :data:`EVAL_TIMEOUT`, for evaluation during training,
    created by every rank at the same point; None with one process."""
    if dist.world_size == 1:
        return None
    return torch_dist.new_group(timeout=EVAL_TIMEOUT)
