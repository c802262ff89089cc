"""The seed's augmentation arithmetic on a whole batch, with torch ops on the batch's device.

The loader's workers draw each example's augmentation and read its audio
(:meth:`pyfunc.features.augment.WaveAugmenter.draw`: the same random draws as the
CPU path); :meth:`AugmentBatch.from_draws` packs those draws, and
:func:`apply_batch` applies them to the (batch, samples) chunks after they have
moved to the training device: reverberation by FFT convolution with the RIR
normalised to unit energy (full convolution cut to the segment), additive noise
and babble scaled by the seed's ``10 log10(mean(x^2) + 1e-4)`` levels to each
drawn SNR, summed, then added. Step ``i`` of every example forms layer ``i``, so
"television" (babble, then music against the babbled signal) keeps its order.
Noises are packed, not padded: a batch holds one row per drawn noise.

The output equals :func:`pyfunc.features.augment.apply_drawn` of each example to
the rounding of the dtype the arithmetic runs in (that of the input tensor).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np
import torch

from pyfunc.features.augment import LEVEL_FLOOR, DrawnAugment, ReverbDraw


def fast_fft_length(n: int) -> int:
    """The smallest ``2^a 3^b 5^c`` at least ``n`` (a length the FFT libraries handle fast)."""
    if n < 1:
        raise ValueError(f"an FFT length must be positive, got {n}")
    best = 1 << (n - 1).bit_length()
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            m = power35
            while m < n:
                m *= 2
            best = min(best, m)
            power35 *= 3
        power5 *= 5
    return best


def fft_convolve(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Full linear convolution of each row of ``x`` (B, T) with the same row of ``kernels`` (B, L): (B, T + L - 1)."""
    if x.ndim != 2 or kernels.ndim != 2 or x.shape[0] != kernels.shape[0]:
        raise ValueError(f"expected (B, T) signals and (B, L) kernels, got {tuple(x.shape)} and {tuple(kernels.shape)}")
    full = x.shape[1] + kernels.shape[1] - 1
    n = fast_fft_length(full)
    spectrum = torch.fft.rfft(x, n) * torch.fft.rfft(kernels.to(x.dtype), n)
    return torch.fft.irfft(spectrum, n)[:, :full]


def reverberate_batch(x: torch.Tensor, rirs: torch.Tensor) -> torch.Tensor:
    """Each row of ``x`` (B, T) convolved with its RIR (B, L; zero padding allowed) normalised to unit energy,
    cut to T samples (:func:`pyfunc.features.augment.reverberate` row by row)."""
    rirs = rirs.to(x.dtype)
    kernels = rirs / torch.sqrt(torch.sum(rirs ** 2, dim=1, keepdim=True))
    return fft_convolve(x, kernels)[:, : x.shape[1]]


def row_levels_db(x: torch.Tensor) -> torch.Tensor:
    """The seed's level ``10 log10(mean(x^2) + 1e-4)`` of each row of ``x`` (B, T): (B,) (the batched
    :func:`pyfunc.features.augment.level_db`)."""
    return 10.0 * torch.log10(torch.mean(x ** 2, dim=1) + LEVEL_FLOOR)


def add_noise_batch(x: torch.Tensor, rows: torch.Tensor, noises: torch.Tensor, snrs: torch.Tensor) -> torch.Tensor:
    """``x`` (B, T) plus, in each row, the sum of the noises (N, T) whose ``rows`` (N,) name it, each scaled
    against that row of ``x`` to its SNR (N,) in dB (:func:`pyfunc.features.augment.add_noise` row by row)."""
    noises, snrs = noises.to(x.dtype), snrs.to(x.dtype)
    gains = torch.sqrt(10.0 ** ((row_levels_db(x)[rows] - row_levels_db(noises) - snrs) / 10.0))
    summed = torch.zeros_like(x).index_add_(0, rows, gains[:, None] * noises)
    return x + summed  # the noises summed first, then added: the seed's order


@dataclass
class AugmentLayer:
    """Step ``i`` of every example that has one: the reverberated rows and their RIRs, the added noises and
    the row each belongs to."""

    reverb_rows: torch.Tensor  # (R,) int64
    rirs: torch.Tensor  # (R, L) the RIRs as read, zero-padded to the longest
    add_rows: torch.Tensor  # (N,) int64: the example of each noise
    noises: torch.Tensor  # (N, T) noises fitted to the segment
    snrs: torch.Tensor  # (N,) dB

    def to(self, device: torch.device | str, non_blocking: bool = False) -> AugmentLayer:
        return AugmentLayer(*(getattr(self, f.name).to(device, non_blocking=non_blocking) for f in fields(self)))

    def pin_memory(self) -> AugmentLayer:
        return AugmentLayer(*(getattr(self, f.name).pin_memory() for f in fields(self)))


@dataclass
class AugmentBatch:
    """The drawn augmentations of a batch of ``size`` chunks of ``length`` samples, as tensors."""

    size: int
    length: int
    types: list[str]
    layers: list[AugmentLayer]

    @classmethod
    def from_draws(cls, draws: Sequence[DrawnAugment | None], length: int,
                   dtype: torch.dtype = torch.float32) -> AugmentBatch:
        """Pack one draw per example (None: not augmented); the audio is stored as ``dtype``."""
        depth = max((len(d.steps) for d in draws if d is not None), default=0)
        layers = []
        for i in range(depth):
            reverb_rows, rirs, add_rows, noises, snrs = [], [], [], [], []
            for row, drawn in enumerate(draws):
                if drawn is None or i >= len(drawn.steps):
                    continue
                step = drawn.steps[i]
                if isinstance(step, ReverbDraw):
                    reverb_rows.append(row)
                    rirs.append(np.asarray(step.rir))
                    continue
                if step.noises.ndim != 2 or step.noises.shape[1] != length or step.noises.shape[0] != len(step.snrs):
                    raise ValueError(f"example {row}, step {i}: {len(step.snrs)} SNRs and noises of shape "
                                     f"{step.noises.shape}; expected ({len(step.snrs)}, {length})")
                add_rows += [row] * len(step.snrs)
                noises.append(step.noises)
                snrs.append(step.snrs)
            padded = np.zeros((len(rirs), max((r.shape[0] for r in rirs), default=1)))
            for j, rir in enumerate(rirs):
                padded[j, : rir.shape[0]] = rir
            layers.append(AugmentLayer(
                torch.tensor(reverb_rows, dtype=torch.int64), torch.from_numpy(padded).to(dtype),
                torch.tensor(add_rows, dtype=torch.int64),
                torch.from_numpy(np.concatenate(noises) if noises else np.zeros((0, length))).to(dtype),
                torch.from_numpy(np.concatenate(snrs) if snrs else np.zeros(0)).to(torch.float64)))
        types = [d.type if d is not None else "none" for d in draws]
        return cls(len(draws), length, types, layers)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> AugmentBatch:
        layers = [layer.to(device, non_blocking) for layer in self.layers]
        return AugmentBatch(self.size, self.length, self.types, layers)

    def pin_memory(self) -> AugmentBatch:
        """Page-locked copies (the DataLoader calls this with ``pin_memory=True``)."""
        return AugmentBatch(self.size, self.length, self.types, [layer.pin_memory() for layer in self.layers])


def apply_batch(x: torch.Tensor, batch: AugmentBatch) -> torch.Tensor:
    """Augment the chunks ``x`` (B, T) as drawn in ``batch`` (on ``x``'s device), in ``x``'s dtype."""
    if x.ndim != 2 or tuple(x.shape) != (batch.size, batch.length):
        raise ValueError(f"the chunks have shape {tuple(x.shape)}, the augmentation batch is for "
                         f"({batch.size}, {batch.length})")
    if not x.is_floating_point():
        raise ValueError(f"the chunks must be floating point, got {x.dtype}")
    out = x
    for layer in batch.layers:
        if layer.reverb_rows.numel():
            rows = layer.reverb_rows.to(x.device)
            out = out.index_copy(0, rows, reverberate_batch(out.index_select(0, rows), layer.rirs.to(x.device)))
        if layer.add_rows.numel():
            out = add_noise_batch(out, layer.add_rows.to(x.device), layer.noises.to(x.device),
                                  layer.snrs.to(x.device))
    return out
