"""Per-utterance mean normalisation of fbank features inside the model."""

from __future__ import annotations

import torch


def fbank_cmn(feats: torch.Tensor) -> torch.Tensor:
    """(batch, frames, dim) features -> (batch, dim, frames) float32, per-utterance mean over time removed."""
    with torch.no_grad(), torch.autocast(device_type=feats.device.type, enabled=False):
        x = feats.float()
        x = x - x.mean(dim=1, keepdim=True)
        return x.transpose(1, 2).contiguous()
