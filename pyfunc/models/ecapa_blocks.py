"""The full-utterance ECAPA-TDNN embedding of a long input, computed layer by layer over blocks of frames.

The one-pass :meth:`~pyfunc.models.ecapa.ECAPATDNN.encode` holds every layer's activations for the
whole input at once (the Res2Net splits, the 1536-channel pooling input, the attention), so its memory
grows with the recording many times over. Here the memory that grows with the input is four
C x T buffers, everything else is per block:

* the first convolution and each SE-Res2Net block's residual branch have a finite receptive field, so
  they are run over blocks of ``block_frames`` frames with their context (:meth:`Bottle2neck.context_frames`)
  on both sides, and the block's own frames are kept: those are the frames of the one-pass computation
  (the utterance's edges are zero-padded in both);
* the squeeze-excitation gate needs the mean over the whole utterance of the branch's output: it is
  summed block by block (float64), then the gate and the residual add are applied to the stored output;
* the 1536-channel layer and the attentive statistics pooling, whose attention uses the utterance's
  mean and standard deviation and a softmax over all frames, run in two passes over blocks: the first
  gathers the mean and variance (Chan's merge, float64), the second the softmax-weighted sums with a
  running maximum (float64), recomputing the layer's output for each block.

The result equals the one-pass embedding up to float32 rounding (other summation orders).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from pyfunc.features.blockwise import seed_logmel_in_blocks
from pyfunc.models.ecapa import ECAPATDNN, POOL_CHANNELS, STD_FLOOR


def _spans(total: int, block: int, context: int) -> Iterator[tuple[int, int, int, int]]:
    """(start, stop, lo, hi): each block [start, stop) and the frames [lo, hi) it is computed from."""
    for start in range(0, total, block):
        stop = min(total, start + block)
        yield start, stop, max(0, start - context), min(total, stop + context)


def encode_in_blocks(encoder: ECAPATDNN, feats: torch.Tensor, block_frames: int) -> torch.Tensor:
    """The embedding (embed_dim,) of one normalised input ``feats`` (feat_dim, frames), as ``encoder.encode``
    gives it, computed ``block_frames`` frames at a time (see the module docstring)."""
    if encoder.training:
        raise ValueError("encode_in_blocks needs the model in eval mode")
    if block_frames < 1:
        raise ValueError(f"block_frames must be positive, got {block_frames}")
    if feats.dim() != 2 or feats.shape[0] != encoder.feat_dim:
        raise ValueError(f"expected ({encoder.feat_dim}, frames) features, got shape {tuple(feats.shape)}")
    total = feats.shape[1]
    if total < 2:
        raise ValueError(f"{total} frame(s): the pooling's variance needs at least 2")
    with torch.no_grad():
        conv1 = encoder.conv1
        context = (conv1.kernel_size[0] // 2) * conv1.dilation[0]
        running = feats.new_empty((encoder.channels, total))  # the next block's input: x, x + x1, x + x1 + x2
        for start, stop, lo, hi in _spans(total, block_frames, context):
            out = encoder.bn1(encoder.relu(conv1(feats[:, lo:hi].unsqueeze(0))))
            running[:, start:stop] = out[0, :, start - lo:stop - lo]
        layers = (encoder.layer1, encoder.layer2, encoder.layer3)
        outputs = []
        for number, layer in enumerate(layers):
            out = torch.empty_like(running)
            summed = torch.zeros(encoder.channels, dtype=torch.float64, device=feats.device)
            for start, stop, lo, hi in _spans(total, block_frames, layer.context_frames()):
                branch = layer.residual_branch(running[:, lo:hi].unsqueeze(0))[0, :, start - lo:stop - lo]
                out[:, start:stop] = branch
                summed += branch.sum(dim=1, dtype=torch.float64)
            mean = (summed / total).to(feats.dtype).view(1, -1, 1)
            gate = layer.se.se[1:](mean)[0]
            out.mul_(gate).add_(running)  # as Bottle2neck.forward: out * gate, then += the block's input
            outputs.append(out)
            if number < len(layers) - 1:
                running.add_(out)
        del running
        return _pool_in_blocks(encoder, outputs, block_frames)


def _pool_in_blocks(encoder: ECAPATDNN, outputs: list[torch.Tensor], block_frames: int) -> torch.Tensor:
    total = outputs[0].shape[1]
    device = outputs[0].device

    def frames(start: int, stop: int) -> torch.Tensor:  # relu(layer4(cat(x1, x2, x3))) of a block: (1, 1536, n)
        return encoder.relu(encoder.layer4(torch.cat([x[:, start:stop] for x in outputs]).unsqueeze(0)))

    zeros = torch.zeros(POOL_CHANNELS, dtype=torch.float64, device=device)
    count, mean, m2 = 0, zeros.clone(), zeros.clone()
    for start, stop, _, _ in _spans(total, block_frames, 0):
        y = frames(start, stop)[0].double()
        n = stop - start
        block_mean = y.mean(dim=1)
        block_m2 = (y - block_mean.unsqueeze(1)).square().sum(dim=1)
        delta = block_mean - mean
        mean = mean + delta * (n / (count + n))
        m2 = m2 + block_m2 + delta.square() * (count * n / (count + n))
        count += n
    std = (m2 / (count - 1)).clamp(min=STD_FLOOR).sqrt()
    dtype = outputs[0].dtype
    mean32, std32 = mean.to(dtype).view(1, -1, 1), std.to(dtype).view(1, -1, 1)

    peak = torch.full((POOL_CHANNELS,), float("-inf"), dtype=torch.float64, device=device)
    weight, first, second = zeros.clone(), zeros.clone(), zeros.clone()
    for start, stop, _, _ in _spans(total, block_frames, 0):
        y = frames(start, stop)
        logits = encoder.attention_logits(y, mean32, std32)[0].double()
        y = y[0].double()
        new_peak = torch.maximum(peak, logits.max(dim=1).values)
        rescale = (peak - new_peak).exp()
        w = (logits - new_peak.unsqueeze(1)).exp()
        weight = weight * rescale + w.sum(dim=1)
        wy = w * y
        first = first * rescale + wy.sum(dim=1)
        second = second * rescale + (wy * y).sum(dim=1)
        peak = new_peak
    mu = first / weight
    sg = (second / weight - mu.square()).clamp(min=STD_FLOOR).sqrt()
    return encoder.embed_statistics(mu.to(dtype).unsqueeze(0), sg.to(dtype).unsqueeze(0))[0]


def embed_long_input(encoder: ECAPATDNN, item: np.ndarray, block_frames: int) -> np.ndarray:
    """The full-utterance embedding (embed_dim,) float32 of one model input (fbank frames (frames, feat_dim),
    or a waveform (samples,) for the seed front end), computed ``block_frames`` frames at a time."""
    device = next(encoder.parameters()).device
    tensor = torch.from_numpy(np.require(item, dtype=np.float32, requirements=["C", "W"])).to(device)
    with torch.no_grad():
        if encoder.frontend == "seed":
            feats = seed_logmel_in_blocks(encoder.torchfbank, tensor, block_frames)
        else:
            feats = encoder.logmel(tensor.unsqueeze(0))[0]  # (frames, 80) floats: small, normalised in one pass
        return encode_in_blocks(encoder, feats, block_frames).float().cpu().numpy()
