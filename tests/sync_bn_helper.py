"""Worker of tests/test_distributed.py's SyncBatchNorm test, run under torchrun with 2 processes on one GPU.

Usage: python -m torch.distributed.run --standalone --nproc-per-node 2 tests/sync_bn_helper.py OUT.pt
Both processes use cuda:0 and the gloo backend (NCCL refuses two ranks on one GPU). Each takes its half
of one batch through a tiny ECAPA-TDNN converted by pyfunc.training.distributed.sync_batchnorm and
wrapped in DDP; rank 0 saves the embeddings of both halves and the averaged gradients.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as torch_dist
from torch import nn

from pyfunc.config import ModelConfig
from pyfunc.models.model_dir import build_encoder
from pyfunc.training.distributed import DistInfo, sync_batchnorm


def batch() -> torch.Tensor:
    """The batch both the workers and the single-process reference see: 8 inputs of 40 frames x 80 features."""
    return torch.randn(8, 40, 80, generator=torch.Generator().manual_seed(3))


def encoder() -> nn.Module:
    torch.manual_seed(0)
    return build_encoder(ModelConfig(frontend="fbank", channels=16, embed_dim=8))


def main() -> None:
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch_dist.init_process_group("gloo")
    device = torch.device("cuda", 0)
    net = sync_batchnorm(encoder().to(device), DistInfo(rank, world, device))
    assert any(isinstance(m, nn.SyncBatchNorm) for m in net.modules())
    model = nn.parallel.DistributedDataParallel(net, device_ids=[0])
    half = batch()[rank * 4:(rank + 1) * 4].to(device)
    out = model(half)
    out.pow(2).sum().backward()  # DDP averages: (g0 + g1) / 2 = the gradient of the full batch's sum / 2
    outs = [torch.zeros_like(out) for _ in range(world)]
    torch_dist.all_gather(outs, out.detach())
    if rank == 0:
        grads = {name: p.grad.cpu() for name, p in net.named_parameters()}
        torch.save({"embeddings": torch.cat(outs).cpu(), "grads": grads}, sys.argv[1])
    torch_dist.barrier()
    torch_dist.destroy_process_group()


if __name__ == "__main__":
    main()
