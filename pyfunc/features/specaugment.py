"""SpecAugment-style time and frequency masking of a feature batch (the seed's FbankAug)."""

from __future__ import annotations

import torch


def _mask_along_axis(x: torch.Tensor, dim: int, max_width: int, generator: torch.Generator | None) -> torch.Tensor:
    """Zero one band of width U[0, max_width) per example along ``dim`` (1: frequency, 2: time), in place.

    Same sampling as the seed's FbankAug: the band start is drawn from
    [0, max(1, D - widest band in the batch)). The random numbers are drawn on
    the CPU (from ``generator`` when given), so no device synchronisation is needed.
    """
    if max_width <= 0:
        return x
    batch, size = x.shape[0], x.shape[dim]
    width = torch.randint(0, max_width, (batch, 1, 1), generator=generator)
    start = torch.randint(0, max(1, size - int(width.max())), (batch, 1, 1), generator=generator)
    arange = torch.arange(size).view(1, 1, -1)
    mask = ((start <= arange) & (arange < start + width)).squeeze(1)
    mask = mask.unsqueeze(2) if dim == 1 else mask.unsqueeze(1)
    return x.masked_fill_(mask.to(x.device, non_blocking=True), 0.0)


# Not compiled (train.compile): the band starts depend on drawn widths (a data-dependent shape that breaks the
# graph anyway), and the draws come from a CPU generator; it is a few masked fills between compiled graphs.
@torch.compiler.disable
def spec_augment(x: torch.Tensor, time_width: int = 10, freq_width: int = 8,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """SpecAugment-like masking of (batch, freq, time) features, in place: one time mask, then one frequency mask.

    Mask widths are uniform in [0, time_width) frames and [0, freq_width) bins, per example, filled with 0.
    """
    x = _mask_along_axis(x, 2, time_width, generator)
    return _mask_along_axis(x, 1, freq_width, generator)
