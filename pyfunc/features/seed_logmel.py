"""The seed's in-model front end: pre-emphasis, mel spectrogram, log, mean subtraction."""

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

    # Not compiled (train.compile): a fixed float32 front end without gradient, and dynamo cannot trace it
    # (torch 2.11 fails on its no_grad/autocast block around torchaudio's spectrogram).
    @torch.compiler.disable
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
