"""Front ends of the ECAPA-TDNN: the seed's in-model log-mel, fbank mean normalisation, SpecAugment.

The seed front end (``SeedLogMel``) keeps the seed's module layout, so its
buffers load from and save to the seed's checkpoint keys
``torchfbank.0.flipped_filter``, ``torchfbank.1.spectrogram.window`` and
``torchfbank.1.mel_scale.fb``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

SEED_SAMPLE_RATE = 16000
SEED_HOP = 160  # 10 ms
SEED_WIN = 400  # 25 ms
SEED_N_MELS = 80


class PreEmphasis(nn.Module):
    """y[t] = x[t] - coef * x[t-1], with the waveform reflect-padded by one sample on the left."""

    def __init__(self, coef: float = 0.97):
        super().__init__()
        self.coef = coef
        self.register_buffer("flipped_filter", torch.tensor([[[-coef, 1.0]]], dtype=torch.float32))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        x = F.pad(wav.unsqueeze(1), (1, 0), "reflect")
        return F.conv1d(x, self.flipped_filter).squeeze(1)


class SeedLogMel(nn.Sequential):
    """The seed's front end: pre-emphasis, mel power spectrogram, log(x + 1e-6), mean subtraction.

    Input (batch, samples) float waveforms at 16 kHz; output (batch, 80, frames)
    with ``frames = 1 + samples // 160``. Always computed in float32 without
    gradient, autocast disabled, exactly as the seed does.
    """

    def __init__(self) -> None:
        super().__init__(
            PreEmphasis(),
            torchaudio.transforms.MelSpectrogram(
                sample_rate=SEED_SAMPLE_RATE, n_fft=512, win_length=SEED_WIN, hop_length=SEED_HOP,
                f_min=20, f_max=7600, window_fn=torch.hamming_window, n_mels=SEED_N_MELS),
        )

    def forward(self, wav: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        with torch.no_grad(), torch.autocast(device_type=wav.device.type, enabled=False):
            x = super().forward(wav.float()) + 1e-6
            x = x.log()
            return x - x.mean(dim=-1, keepdim=True)


def seed_num_samples(frames: int) -> int:
    """Waveform samples the seed cuts for ``frames`` frames: ``frames * 160 + 240``."""
    return frames * SEED_HOP + (SEED_WIN - SEED_HOP)


def seed_num_frames(num_samples: int) -> int:
    """Frames the seed front end gives for ``num_samples`` samples (centred STFT, hop 160)."""
    return 1 + num_samples // SEED_HOP


def fbank_cmn(feats: torch.Tensor) -> torch.Tensor:
    """(batch, frames, dim) features -> (batch, dim, frames) float32, per-utterance mean over time removed."""
    with torch.no_grad(), torch.autocast(device_type=feats.device.type, enabled=False):
        x = feats.float()
        x = x - x.mean(dim=1, keepdim=True)
        return x.transpose(1, 2).contiguous()


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


def spec_augment(x: torch.Tensor, time_width: int = 10, freq_width: int = 8,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """SpecAugment-like masking of (batch, freq, time) features, in place: one time mask, then one frequency mask.

    Mask widths are uniform in [0, time_width) frames and [0, freq_width) bins, per example, filled with 0.
    """
    x = _mask_along_axis(x, 2, time_width, generator)
    return _mask_along_axis(x, 1, freq_width, generator)
