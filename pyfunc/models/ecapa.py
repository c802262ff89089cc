"""ECAPA-TDNN exactly as the seed system builds it (SE-Res2Net blocks, attentive statistics pooling).

Submodule names follow the seed, so ``state_dict()`` keys are the seed's
checkpoint keys without the ``speaker_encoder.`` prefix. The computation is the
seed's, rearranged for speed where the result is the same up to float rounding:
one concatenation per Res2Net block, in-place ReLU, and the attention's first
1x1 convolution split into a per-frame part and a per-utterance part instead of
materialising the 4608 x T input. ``encode`` also accepts zero-padded batches of
different lengths (``count``: the valid frames of each input): every convolution input and
every average over time is then masked, so each embedding equals the one computed on its own.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pyfunc.errors import ConfigError
from pyfunc.features.mean_norm import fbank_cmn
from pyfunc.features.seed_logmel import SEED_N_MELS, SeedLogMel
from pyfunc.features.specaugment import spec_augment

FRONTENDS = ("fbank", "seed")

POOL_CHANNELS = 1536

ATT_CHANNELS = 256

SE_BOTTLENECK = 128

STD_FLOOR = 1e-4


class SEModule(nn.Module):
    """Squeeze-excitation: mean over time -> Conv1d(C, 128) -> ReLU -> Conv1d(128, C) -> sigmoid, multiplied in."""

    def __init__(self, channels: int, bottleneck: int = SE_BOTTLENECK):
        super().__init__()
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool1d(1),
            nn.Conv1d(channels, bottleneck, kernel_size=1, padding=0),
            nn.ReLU(),
            nn.Conv1d(bottleneck, channels, kernel_size=1, padding=0),
            nn.Sigmoid(),
        )

    def gate(self, x: torch.Tensor, mask: torch.Tensor | None, count: torch.Tensor | None) -> torch.Tensor:
        """The (B, C, 1) gate; with ``mask`` the mean runs over the ``count`` valid frames only."""
        if mask is None:
            return self.se(x)
        pooled = (x * mask).sum(dim=2, keepdim=True) / count
        return self.se[1:](pooled)


class Bottle2neck(nn.Module):
    """SE-Res2Net block: 1x1 conv, scale-8 Res2Net dilated convs, 1x1 conv, SE, residual add."""

    def __init__(self, inplanes: int, planes: int, kernel_size: int, dilation: int, scale: int = 8):
        super().__init__()
        width = int(math.floor(planes / scale))
        self.conv1 = nn.Conv1d(inplanes, width * scale, kernel_size=1)
        self.bn1 = nn.BatchNorm1d(width * scale)
        self.nums = scale - 1
        pad = math.floor(kernel_size / 2) * dilation
        self.convs = nn.ModuleList(
            nn.Conv1d(width, width, kernel_size=kernel_size, dilation=dilation, padding=pad) for _ in range(self.nums))
        self.bns = nn.ModuleList(nn.BatchNorm1d(width) for _ in range(self.nums))
        self.conv3 = nn.Conv1d(width * scale, planes, kernel_size=1)
        self.bn3 = nn.BatchNorm1d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.width = width
        self.se = SEModule(planes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                count: torch.Tensor | None = None) -> torch.Tensor:
        """``mask`` (B, 1, T) marks the valid frames of a zero-padded batch and ``count`` (B, 1, 1) counts them."""
        out = self.residual_branch(x, mask)
        out = out * self.se.gate(out, mask, count)
        out += x
        return out

    def residual_branch(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The block's output before the squeeze-excitation gate and the residual add; each output frame
        depends on the input frames within :meth:`context_frames` of it."""
        out = self.bn1(self.relu(self.conv1(x)))
        spx = torch.split(out, self.width, 1)
        parts = []
        sp = spx[0]
        for i in range(self.nums):
            if i > 0:
                sp = sp + spx[i]
            inp = sp if mask is None else sp * mask
            sp = self.bns[i](self.relu(self.convs[i](inp)))
            parts.append(sp)
        parts.append(spx[self.nums])
        return self.bn3(self.relu(self.conv3(torch.cat(parts, dim=1))))

    def context_frames(self) -> int:
        """Frames on each side that one output frame of :meth:`residual_branch` reads: the chained Res2Net convs'."""
        return sum((conv.kernel_size[0] // 2) * conv.dilation[0] for conv in self.convs)


class ECAPATDNN(nn.Module):
    """The seed's ECAPA-TDNN speaker encoder (C channels, 192-d embeddings).

    ``frontend='fbank'``: input (batch, frames, feat_dim) Kaldi fbank features,
    mean-normalised over time inside the model. ``frontend='seed'``: input
    (batch, samples) 16 kHz waveforms through the seed's log-mel front end
    (``torchfbank``). ``forward(x, augment=True)`` applies SpecAugment masking.
    """

    def __init__(self, channels: int = 1024, embed_dim: int = 192, feat_dim: int = 80, frontend: str = "fbank",
                 specaug_time: int = 10, specaug_freq: int = 8):
        super().__init__()
        if frontend not in FRONTENDS:
            raise ConfigError(f"unknown front end {frontend!r}; use one of {', '.join(FRONTENDS)}")
        if frontend == "seed" and feat_dim != SEED_N_MELS:
            raise ConfigError(f"the seed front end gives {SEED_N_MELS} mel bands, but feat_dim is {feat_dim}")
        if channels < 8 or embed_dim < 1 or feat_dim < 1:
            raise ConfigError(f"bad ECAPA-TDNN sizes: channels={channels} (>= 8), embed_dim={embed_dim}, "
                              f"feat_dim={feat_dim}")
        self.frontend = frontend
        self.channels = channels
        self.embed_dim = embed_dim
        self.feat_dim = feat_dim
        self.specaug_time = specaug_time
        self.specaug_freq = specaug_freq
        if frontend == "seed":
            self.torchfbank = SeedLogMel()
        self.conv1 = nn.Conv1d(feat_dim, channels, kernel_size=5, stride=1, padding=2)
        self.relu = nn.ReLU(inplace=True)
        self.bn1 = nn.BatchNorm1d(channels)
        self.layer1 = Bottle2neck(channels, channels, kernel_size=3, dilation=2, scale=8)
        self.layer2 = Bottle2neck(channels, channels, kernel_size=3, dilation=3, scale=8)
        self.layer3 = Bottle2neck(channels, channels, kernel_size=3, dilation=4, scale=8)
        self.layer4 = nn.Conv1d(3 * channels, POOL_CHANNELS, kernel_size=1)
        # Attentive statistics pooling: a Sequential only so that the weights keep the seed's keys
        # (attention.0, attention.2, attention.4); see _pool_and_embed for what each part does.
        self.attention = nn.Sequential(
            nn.Conv1d(3 * POOL_CHANNELS, ATT_CHANNELS, kernel_size=1),  # on [frame, utterance mean, utterance std]
            nn.ReLU(),
            nn.BatchNorm1d(ATT_CHANNELS),
            nn.Tanh(),
            nn.Conv1d(ATT_CHANNELS, POOL_CHANNELS, kernel_size=1),  # one attention score per channel and frame
            nn.Softmax(dim=2),  # over time
        )
        self.bn5 = nn.BatchNorm1d(2 * POOL_CHANNELS)
        self.fc6 = nn.Linear(2 * POOL_CHANNELS, embed_dim)
        self.bn6 = nn.BatchNorm1d(embed_dim)

    def logmel(self, x: torch.Tensor) -> torch.Tensor:
        """Front-end output after mean normalisation over time, no augmentation: (batch, feat_dim, frames)."""
        if self.frontend == "seed":
            if x.dim() != 2:
                raise ValueError(f"seed front end expects (batch, samples) waveforms, got shape {tuple(x.shape)}")
            return self.torchfbank(x)
        if x.dim() != 3 or x.shape[2] != self.feat_dim:
            raise ValueError(f"fbank front end expects (batch, frames, {self.feat_dim}) features, "
                             f"got shape {tuple(x.shape)}")
        return fbank_cmn(x)

    def forward(self, x: torch.Tensor, augment: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """Embeddings (batch, embed_dim) of equal-length inputs.

        ``augment`` adds SpecAugment masking, drawn from the CPU ``generator`` when given.
        """
        feats = self.logmel(x)
        if augment:
            with torch.no_grad():
                feats = spec_augment(feats, self.specaug_time, self.specaug_freq, generator)
        return self.encode(feats)

    def encode(self, feats: torch.Tensor, count: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder on normalised features (batch, feat_dim, frames) -> (batch, embed_dim).

        ``count`` (batch,) gives the number of valid frames of each input of a zero-padded
        batch; frames beyond them do not change any embedding.
        """
        mask = None
        if count is not None:
            count = count.to(device=feats.device).view(-1, 1, 1)
            frames = torch.arange(feats.shape[2], device=feats.device)
            mask = (frames.view(1, 1, -1) < count).to(feats.dtype)
            count = count.to(feats.dtype)
            feats = feats * mask
        x = self.bn1(self.relu(self.conv1(feats)))
        x1 = self.layer1(x, mask, count)
        x2 = self.layer2(x + x1, mask, count)
        x3 = self.layer3(x + x1 + x2, mask, count)
        x = self.relu(self.layer4(torch.cat((x1, x2, x3), dim=1)))
        return self._pool_and_embed(x, mask, count)

    def _pool_and_embed(self, x: torch.Tensor, mask: torch.Tensor | None, count: torch.Tensor | None) -> torch.Tensor:
        if mask is None:
            var, mean = torch.var_mean(x, dim=2, keepdim=True)
        else:
            x = x * mask
            mean = x.sum(dim=2, keepdim=True) / count
            var = ((x - mean).square() * mask).sum(dim=2, keepdim=True) / (count - 1)
        std = var.clamp(min=STD_FLOOR).sqrt()
        h = self.attention_logits(x, mean, std)
        if mask is not None:
            h = h.masked_fill(mask == 0, float("-inf"))
        w = self.attention[5](h)  # softmax over time
        xw = x * w
        mu = xw.sum(dim=2)
        sg = ((xw * x).sum(dim=2) - mu.square()).clamp(min=STD_FLOOR).sqrt()
        return self.embed_statistics(mu, sg)

    def attention_logits(self, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """Attention scores (B, 1536, T) before the softmax over time, of frames ``x`` (B, 1536, T) given the
        utterance's ``mean`` and ``std`` (B, 1536, 1)."""
        context_conv, relu, norm, tanh, score_conv, _ = self.attention
        # context_conv on cat(x, mean, std) repeated over time == W_x x + (W_mean mean + W_std std + b)
        w_x, w_mean, w_std = context_conv.weight.squeeze(2).split(POOL_CHANNELS, dim=1)
        utt_term = torch.matmul(w_mean, mean) + torch.matmul(w_std, std) + context_conv.bias.view(-1, 1)
        return score_conv(tanh(norm(relu(torch.matmul(w_x, x) + utt_term))))

    def embed_statistics(self, mu: torch.Tensor, sg: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, embed_dim) from the attention-weighted mean and standard deviation (B, 1536)."""
        out = self.bn5(torch.cat((mu, sg), dim=1))
        return self.bn6(self.fc6(out))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameter elements (front-end buffers are not parameters)."""
    return sum(p.numel() for p in module.parameters())
