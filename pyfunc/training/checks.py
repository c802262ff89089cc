"""Run-time checks of stage 2: numerical faults, and DDP replicas that should be identical.

* A non-finite loss stops training before its gradients are applied; a non-finite
  gradient (all-reduced, so every process sees it) stops it before the optimiser step.
  Either way the weights in memory and every checkpoint on disk stay finite, and the
  error names the epoch, step, micro-batch and its utterances, and the last good
  checkpoint.
* After every epoch of a multi-process run, the processes compare a fingerprint of
  their parameters (all-gathered): DDP keeps them bit-identical (same initial weights,
  broadcast from rank 0, and the same averaged gradients), so any difference is a bug
  or a hardware fault and stops the run. BatchNorm running statistics are not compared:
  DDP broadcasts rank 0's at every forward pass, and only rank 0's are saved.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn

from pyfunc.errors import PyfuncError
from pyfunc.models.checkpoint import latest_checkpoint


def gradient_norm(module: nn.Module) -> float:
    """The L2 norm of all gradients of ``module`` (inf or nan when one of them is)."""
    grads = [p.grad.detach() for p in module.parameters() if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.double()) for g in grads])))


def numerical_fault(what: str, value: float, epoch: int, step: int, where: str, utts: Sequence[str],
                    last_checkpoint: object) -> PyfuncError:
    """The error that stops training at a non-finite loss or gradient (``step`` counts from 1)."""
    shown = ", ".join(utts[:10]) + (f" ... ({len(utts)} in all)" if len(utts) > 10 else "")
    keep = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was written yet"
    return PyfuncError(f"non-finite {what} ({value}) at epoch {epoch}, step {step}, {where}"
                       + (f" (utterances: {shown})" if utts else "") + f"; training stopped before applying it; "
                       f"{keep}. Look for bad features in those utterances, or lower train.lr")


def check_gradients(module: nn.Module, epoch: int, step: int, models_dir: Path) -> None:
    """Raise :func:`numerical_fault` when a gradient of ``module`` is not finite."""
    norm = gradient_norm(module)
    if not math.isfinite(norm):
        raise numerical_fault("gradient norm", norm, epoch, step, "after averaging over the whole batch", [],
                              latest_checkpoint(models_dir))


def parameter_fingerprint(module: nn.Module) -> torch.Tensor:
    """Float64 (sum, sum of squares, position-weighted sum) over all parameters, in order.

    Equal parameters give bit-equal fingerprints (numpy's pairwise sums do not depend on
    the number of threads); a change in any element (or a swap of two) changes them.
    """
    values = np.concatenate([p.detach().reshape(-1).double().cpu().numpy() for p in module.parameters()])
    weights = np.arange(1, values.size + 1, dtype=np.float64) / values.size
    return torch.tensor([values.sum(), (values * values).sum(), (values * weights).sum()], dtype=torch.float64)


def disagreeing(fingerprints: Sequence[torch.Tensor]) -> list[int]:
    """Ranks whose fingerprint differs from rank 0's."""
    return [rank for rank, fp in enumerate(fingerprints) if not torch.equal(fp.cpu(), fingerprints[0].cpu())]


def check_replicas_agree(module: nn.Module, world_size: int, device: torch.device) -> torch.Tensor:
    """All-gather the parameter fingerprints of every process; PyfuncError when one differs from rank 0's."""
    mine = parameter_fingerprint(module).to(device)
    gathered = [torch.zeros_like(mine) for _ in range(world_size)]
    torch_dist.all_gather(gathered, mine)
    differ = disagreeing(gathered)
    if differ:
        raise PyfuncError(f"the parameters of process(es) {differ} differ from those of process 0 "
                          f"(fingerprints {[fp.tolist() for fp in gathered]}); the DDP replicas diverged")
    return gathered[0].cpu()
