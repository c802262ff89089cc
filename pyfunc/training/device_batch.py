"""A loader batch on the training device: moved there and, when the workers only drew the augmentation,
augmented there (and turned into fbank features when those are computed on the fly)."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from pyfunc.features.batch_augment import AugmentBatch, apply_batch
from pyfunc.features.kaldi_fbank import compute_fbank_batch


def batch_to_device(batch: Sequence[Any], device: torch.device,
                    fbank_options: dict[str, Any] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, labels)`` on ``device``.

    ``batch`` is ``(inputs, labels)`` as the loader made them, or ``(chunks, labels, AugmentBatch)`` from
    :func:`pyfunc.training.examples.collate_drawn`: then the chunks are augmented on ``device`` in float32
    and, with ``fbank_options``, become (batch, frames, bins) Kaldi fbank features there.
    """
    if len(batch) == 2:
        x, labels = batch
        return x.to(device, non_blocking=True), labels.to(device, non_blocking=True)
    x, labels, drawn = batch
    if not isinstance(drawn, AugmentBatch):
        raise TypeError(f"expected (chunks, labels, AugmentBatch), got a {type(drawn).__name__} third")
    x = apply_batch(x.to(device, torch.float32, non_blocking=True), drawn.to(device, non_blocking=True))
    if fbank_options is not None:
        x = compute_fbank_batch(x, fbank_options)
    return x, labels.to(device, non_blocking=True)
