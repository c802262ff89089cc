"""Front ends of long recordings computed a block of frames at a time, so their temporaries stay small.

Each frame of Kaldi's fbank and of the seed's log-mel depends only on the samples under its window,
so a block of frames computed from the samples under the block equals those frames of the whole
recording's features (up to float rounding of the FFT). What is global is done once on the whole
(small) result: Kaldi's ``--subtract-mean`` and the seed front end's mean over time. The one-pass
front ends hold several copies of the framed signal (frames x 512 floats, complex spectra); these
functions hold them for one block only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from pyfunc.features.kaldi_fbank import _FBANK_PARAMS, compute_fbank
from pyfunc.features.seed_logmel import SeedLogMel


def _option(options: dict[str, Any], name: str) -> Any:
    return options.get(name, _FBANK_PARAMS[name].default)


def kaldi_framing(options: dict[str, Any]) -> tuple[int, int]:
    """(window length, shift) in samples, as torchaudio's Kaldi fbank computes them from ``options``."""
    rate = float(_option(options, "sample_frequency"))
    return (int(rate * float(_option(options, "frame_length")) * 0.001),
            int(rate * float(_option(options, "frame_shift")) * 0.001))


def fbank_in_blocks(samples: np.ndarray, options: dict[str, Any], block_frames: int) -> np.ndarray:
    """:func:`~pyfunc.features.kaldi_fbank.compute_fbank` of float samples, ``block_frames`` frames at a time.

    Equal to the one-pass features up to float rounding (with ``--dither`` both draw random noise).
    ``--snip-edges=false`` frames the signal reflected at both ends, as torchaudio does.
    """
    if block_frames < 1:
        raise ValueError(f"block_frames must be positive, got {block_frames}")
    length, shift = kaldi_framing(options)
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if _option(options, "snip_edges"):
        frames = 0 if samples.shape[0] < length else 1 + (samples.shape[0] - length) // shift
        signal = samples
    else:  # torchaudio's _get_strided: frame t starts at t * shift of [reflected head, samples, reversed samples]
        frames = (samples.shape[0] + shift // 2) // shift
        pad = length // 2 - shift // 2
        reverse = samples[::-1]
        signal = np.concatenate([reverse[-pad:], samples, reverse] if pad > 0 else [samples[-pad:], reverse])
    if frames == 0:
        return compute_fbank(samples, options)  # torchaudio's own error or empty result for too-short input
    block_options = {**options, "snip_edges": True, "subtract_mean": False}
    feats: np.ndarray | None = None
    for start in range(0, frames, block_frames):
        stop = min(frames, start + block_frames)
        block = compute_fbank(signal[start * shift:(stop - 1) * shift + length], block_options)
        if feats is None:
            feats = np.empty((frames, block.shape[1]), dtype=np.float32)
        feats[start:stop] = block
    if _option(options, "subtract_mean"):
        column = torch.from_numpy(feats)
        column.sub_(column.mean(dim=0, keepdim=True))
    return feats


def seed_logmel_in_blocks(frontend: SeedLogMel, waveform: torch.Tensor, block_frames: int) -> torch.Tensor:
    """The seed front end's output (n_mels, frames) of one waveform (samples,), ``block_frames`` frames at a time.

    Pre-emphasis and the centred STFT's reflect padding are applied to the whole waveform (one copy of
    it); each block's frames then come from a non-centred STFT of the samples under them; the log and
    the mean over time follow as in :class:`~pyfunc.features.seed_logmel.SeedLogMel`.
    """
    if block_frames < 1:
        raise ValueError(f"block_frames must be positive, got {block_frames}")
    if waveform.dim() != 1:
        raise ValueError(f"expected one waveform (samples,), got shape {tuple(waveform.shape)}")
    emphasis, melspec = frontend[0], frontend[1]
    spec = melspec.spectrogram
    with torch.no_grad(), torch.autocast(device_type=waveform.device.type, enabled=False):
        emphasised = emphasis(waveform.float().unsqueeze(0))
        if spec.center:
            emphasised = F.pad(emphasised.unsqueeze(1), (spec.n_fft // 2, spec.n_fft // 2),
                               spec.pad_mode).squeeze(1)
        frames = 1 + (emphasised.shape[1] - spec.n_fft) // spec.hop_length
        out = emphasised.new_empty((melspec.n_mels, frames))
        for start in range(0, frames, block_frames):
            stop = min(frames, start + block_frames)
            piece = emphasised[:, start * spec.hop_length:(stop - 1) * spec.hop_length + spec.n_fft]
            power = AF.spectrogram(piece, spec.pad, spec.window, spec.n_fft, spec.hop_length, spec.win_length,
                                   spec.power, spec.normalized, False, spec.pad_mode, spec.onesided)
            out[:, start:stop] = (melspec.mel_scale(power) + 1e-6).log()[0]
        return out - out.mean(dim=-1, keepdim=True)
