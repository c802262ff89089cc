"""Helpers of the tool tests (verify/embed, ONNX, plots): a tiny mini corpus and tiny model dirs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from scipy.signal import resample_poly

from pyfunc.config import Config
from pyfunc.models.model_dir import build_encoder, build_head, save_model_dir

REPO = Path(__file__).resolve().parents[1]
MINI = dict(num_train_speakers=1, num_test_speakers=2, utts_per_speaker=2, test_utts_per_speaker=3, random_seed=11,
            min_duration=1.0, max_duration=2.2)

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def tiny_mini_corpus(tmp_path_factory) -> Path:
    """A 6-utterance test set of the espeak-ng mini corpus (2 speakers, 6 target + 9 non-target trials).

    Made once per test session: ``make_mini_corpus`` does nothing when its stamp matches.
    """
    from mini_corpus.mini import make_mini_corpus

    root = tmp_path_factory.getbasetemp() / "tools_mini"
    make_mini_corpus(root, num_jobs=2, **MINI)
    return root


def tiny_model_dir(path: Path, frontend: str = "fbank", protocol: str = "full", random_seed: int = 0,
                   crop_seconds: float = 0.5, subtract_mean: bool = False) -> Path:
    """An untrained model dir (C=32, 16-d embeddings) with random BatchNorm statistics."""
    torch.manual_seed(random_seed)
    config = Config()
    config.model.frontend = frontend
    config.model.channels = 32
    config.model.embed_dim = 16
    config.model.num_classes = 3
    config.extract.protocol = protocol
    config.extract.crop_seconds = crop_seconds
    config.extract.num_crops = 3
    config.score.subtract_mean = subtract_mean
    encoder = build_encoder(config.model)
    gen = torch.Generator().manual_seed(random_seed + 1)
    for module in encoder.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=gen) + 0.5)
    save_model_dir(path, config, encoder, build_head(config))
    return path


def copy_data_dir(src: Path, dst: Path) -> Path:
    """A copy of a data dir's lists (stage 1 writes feats.scp into the data dir, so tests work on copies)."""
    dst.mkdir(parents=True)
    for name in ("wav.scp", "utt2spk", "spk2utt", "utt2dur", "trials"):
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
    return dst


def write_8k_stereo(src: Path, dst: Path) -> Path:
    """``src`` (16 kHz mono) as an 8 kHz stereo wav: left the signal, right the signal at 80 %."""
    samples, rate = soundfile.read(src, dtype="float64")
    low = resample_poly(samples, 1, 2)
    dst.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(dst, np.stack([low, 0.8 * low], axis=1), rate // 2, subtype="PCM_16")
    return dst
