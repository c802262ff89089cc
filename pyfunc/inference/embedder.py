"""The one interface the embedding core needs of a model: its input kind and sizes, and ``embed_batch``.

:class:`TorchEmbedder` wraps an ECAPA-TDNN in PyTorch; :class:`pyfunc.inference.onnx_runtime.OnnxEmbedder`
runs an ONNX export in onnxruntime. The batching core (:mod:`pyfunc.inference.batching`), the stage-3
job, the Python API and evaluation during training all embed through this interface, so none of them
needs to know which runtime is behind it.
"""

from __future__ import annotations

import collections
from typing import Protocol, Sequence

import numpy as np
import torch

from pyfunc.models.ecapa import ECAPATDNN


class Embedder(Protocol):
    """A model that embeds batches of inputs of any lengths (waveforms or feature matrices)."""

    frontend: str  # "fbank": (frames, feat_dim) feature inputs; "seed": (samples,) waveforms
    feat_dim: int
    embed_dim: int
    on_gpu: bool  # decides the automatic batch size

    def embed_batch(self, items: Sequence[np.ndarray | torch.Tensor]) -> np.ndarray:
        """(len(items), embed_dim) float32; each row equals the embedding of that item alone."""
        ...


class TorchEmbedder:
    """An ECAPA-TDNN (in eval mode) as an :class:`Embedder`."""

    def __init__(self, encoder: ECAPATDNN):
        self.encoder = encoder
        self.frontend = encoder.frontend
        self.feat_dim = encoder.feat_dim
        self.embed_dim = encoder.embed_dim

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    @property
    def on_gpu(self) -> bool:
        return self.device.type != "cpu"

    def embed_batch(self, items: Sequence[np.ndarray | torch.Tensor]) -> np.ndarray:
        """Embeddings (len(items), embed_dim) float32 of model inputs of any lengths.

        Items of one shape go through the front end together; then the batch is zero-padded to
        its longest input and encoded with the valid-frame counts, which mask every convolution
        and every average over time, so each row equals the embedding of that item computed alone.
        """
        encoder = self.encoder
        if encoder.training:
            raise ValueError("embed_batch needs the model in eval mode (BatchNorm statistics would depend on the "
                             "batch)")
        if len(items) == 0:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        device = self.device
        tensors = [item.float() if isinstance(item, torch.Tensor)
                   else torch.from_numpy(np.require(item, dtype=np.float32, requirements=["C", "W"]))
                   for item in items]
        with torch.no_grad():
            feats: list[torch.Tensor | None] = [None] * len(tensors)
            by_shape: dict[tuple[int, ...], list[int]] = collections.defaultdict(list)
            for index, tensor in enumerate(tensors):
                by_shape[tuple(tensor.shape)].append(index)
            for indices in by_shape.values():
                stacked = torch.stack([tensors[i] for i in indices]).to(device, non_blocking=True)
                logmel = encoder.logmel(stacked)
                for row, index in enumerate(indices):
                    feats[index] = logmel[row]
            frames = [f.shape[1] for f in feats]
            if len(set(frames)) == 1:
                out = encoder.encode(torch.stack(feats))
            else:
                padded = feats[0].new_zeros((len(feats), feats[0].shape[0], max(frames)))
                for row, f in enumerate(feats):
                    padded[row, :, :f.shape[1]] = f
                out = encoder.encode(padded, torch.tensor(frames, device=device))
        return out.float().cpu().numpy()


def as_embedder(model: ECAPATDNN | Embedder) -> Embedder:
    """``model`` as an :class:`Embedder`: an ECAPA-TDNN is wrapped in a :class:`TorchEmbedder`."""
    return TorchEmbedder(model) if isinstance(model, ECAPATDNN) else model
