"""The embedding core: model inputs of any lengths in length-sorted, padded batches, and the seed protocol's crops.

Every function takes an :class:`~pyfunc.inference.embedder.Embedder` (or an ECAPA-TDNN, wrapped in one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from pyfunc.errors import ConfigError, DataError
from pyfunc.features.seed_logmel import seed_num_frames, seed_num_samples
from pyfunc.inference.embedder import Embedder, as_embedder
from pyfunc.models.ecapa import ECAPATDNN

MIN_FRAMES = 2  # the unbiased variance of the pooling needs two frames

MIN_SAMPLES = 257  # the centred STFT (n_fft 512) reflect-pads by 256 samples

GPU_BATCH_FRAMES = 30000  # batch size x longest input, in frames, when extract.batch_frames is 0 (automatic)

CPU_BATCH_FRAMES = 2000  # smaller on the CPU, where big batches run slower (bench/RESULTS.md, stage 3)


def resolve_batch_frames(batch_frames: int, model: ECAPATDNN | Embedder) -> int:
    """``batch_frames``, or for 0 (automatic) the batch size in frames that suits the model's device."""
    if batch_frames < 0:
        raise ConfigError(f"batch_frames must be 0 (automatic) or positive, got {batch_frames}")
    if batch_frames:
        return batch_frames
    return GPU_BATCH_FRAMES if as_embedder(model).on_gpu else CPU_BATCH_FRAMES


def embed_batch(model: ECAPATDNN | Embedder, items: Sequence[np.ndarray | torch.Tensor]) -> np.ndarray:
    """Embeddings (len(items), embed_dim) float32 of model inputs of any lengths, in one batch.

    Items are waveforms (samples,) for the seed front end or feature matrices
    (frames, feat_dim) for the fbank front end. Each row equals the embedding
    of that item computed alone. A PyTorch model must be in eval mode.
    """
    return as_embedder(model).embed_batch(items)


def crop_starts(length: int, crop: int, num_crops: int) -> list[int]:
    """The seed's crop starts: ``int`` of numpy.linspace(0, length - crop, num_crops)."""
    return [int(start) for start in np.linspace(0, length - crop, num=num_crops)]


def seed_crops(item: np.ndarray, crop: int, num_crops: int) -> np.ndarray:
    """(num_crops, crop, ...) evenly spaced crops along axis 0; inputs not longer than ``crop`` wrap-padded first."""
    if item.shape[0] <= crop:
        pad = [(0, crop - item.shape[0])] + [(0, 0)] * (item.ndim - 1)
        item = np.pad(item, pad, mode="wrap")
    return np.stack([item[start:start + crop] for start in crop_starts(item.shape[0], crop, num_crops)])

MAX_PADDING = 0.2  # an utterance joins a batch only if padding it to the batch's longest adds at most 20 %


def length_batches(sizes: Sequence[int], batch_frames: int, max_padding: float = MAX_PADDING
                    ) -> list[list[int]]:
    """Indices sorted by size (longest first) in batches with count * longest <= batch_frames (at least one),
    each member at least ``(1 - max_padding)`` of the batch's longest, so padding wastes little compute."""
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    batches: list[list[int]] = []
    for index in order:
        longest = sizes[batches[-1][0]] if batches else 0
        if (batches and (len(batches[-1]) + 1) * longest <= batch_frames
                and sizes[index] >= (1.0 - max_padding) * longest):
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


def check_finite_embeddings(emb: np.ndarray, keys: Sequence[str], source: Path) -> None:
    bad = [key for key, row in zip(keys, emb.reshape(len(keys), -1)) if not np.isfinite(row).all()]
    if bad:
        raise DataError(f"{source}: non-finite embedding for {len(bad)} utterance(s), e.g. {bad[:3]}")


def check_waveform_length(samples: np.ndarray, where: str) -> np.ndarray:
    """``samples`` when long enough for the seed front end (MIN_SAMPLES), else a DataError naming ``where``."""
    if samples.shape[0] < MIN_SAMPLES:
        raise DataError(f"{where}: {samples.shape[0]} samples is too short; need at least {MIN_SAMPLES}")
    return samples


def input_frames(frontend: str, item: np.ndarray) -> int:
    """Frames the encoder sees for a model input: seed waveform samples through the log-mel, or feature rows."""
    return seed_num_frames(item.shape[0]) if frontend == "seed" else item.shape[0]


def embed_items(model: ECAPATDNN | Embedder, items: Sequence[np.ndarray], batch_frames: int) -> np.ndarray:
    """Full-utterance embeddings (len(items), embed_dim) of model inputs, in length-sorted batches."""
    model = as_embedder(model)
    full = np.zeros((len(items), model.embed_dim), dtype=np.float32)
    for batch in length_batches([input_frames(model.frontend, item) for item in items], batch_frames):
        full[batch] = embed_batch(model, [items[i] for i in batch])
    return full


def embed_crops(model: ECAPATDNN | Embedder, items: Sequence[np.ndarray], crop: int, num_crops: int,
                batch_frames: int) -> np.ndarray:
    """(len(items), num_crops, embed_dim) embeddings of each input's seed crops, batched across the inputs."""
    model = as_embedder(model)
    crops = np.concatenate([seed_crops(item, crop, num_crops) for item in items])
    per_batch = max(1, batch_frames // max(1, input_frames(model.frontend, crops[0])))
    emb = np.concatenate([embed_batch(model, crops[start:start + per_batch])
                          for start in range(0, len(crops), per_batch)])
    return emb.reshape(len(items), num_crops, model.embed_dim)


def crop_length(config_extract, frontend: str) -> int:
    """Crop length in model input units: samples (seed: frames * 160 + 240) or feature frames."""
    frames = int(round(config_extract.crop_seconds * 100))
    if frames < MIN_FRAMES:
        raise ConfigError(f"extract.crop_seconds {config_extract.crop_seconds} gives fewer than {MIN_FRAMES} frames")
    return seed_num_samples(frames) if frontend == "seed" else frames
