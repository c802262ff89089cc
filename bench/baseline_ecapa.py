"""The baseline of the training and extraction benchmarks: ECAPA-TDNN written the straightforward way.

This follows /work/shared/seed/SYSTEM.md literally, the way the seed's own code is
written: one module per block, the Res2Net loop concatenating each split's output as
it goes, the log-mel front end computed per batch from waveforms inside the model,
the attention on the 4608-channel input (x with its mean and std repeated over
time), and the AAM-softmax as a separate loss module. Submodule names are the
seed's, so :func:`load_from_pyfunc` maps our state dict onto it one to one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn


class SEModule(nn.Module):
    def __init__(self, channels: int, bottleneck: int = 128):
        super().__init__()
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool1d(1),
            nn.Conv1d(channels, bottleneck, kernel_size=1, padding=0),
            nn.ReLU(),
            nn.Conv1d(bottleneck, channels, kernel_size=1, padding=0),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.se(x)


class Bottle2neck(nn.Module):
    def __init__(self, inplanes: int, planes: int, kernel_size: int, dilation: int, scale: int = 8):
        super().__init__()
        width = int(math.floor(planes / scale))
        self.conv1 = nn.Conv1d(inplanes, width * scale, kernel_size=1)
        self.bn1 = nn.BatchNorm1d(width * scale)
        self.nums = scale - 1
        pad = math.floor(kernel_size / 2) * dilation
        self.convs = nn.ModuleList([nn.Conv1d(width, width, kernel_size=kernel_size, dilation=dilation, padding=pad)
                                    for _ in range(self.nums)])
        self.bns = nn.ModuleList([nn.BatchNorm1d(width) for _ in range(self.nums)])
        self.conv3 = nn.Conv1d(width * scale, planes, kernel_size=1)
        self.bn3 = nn.BatchNorm1d(planes)
        self.relu = nn.ReLU()
        self.width = width
        self.se = SEModule(planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        out = self.conv1(x)
        out = self.relu(out)
        out = self.bn1(out)
        spx = torch.split(out, self.width, 1)
        for i in range(self.nums):
            sp = spx[i] if i == 0 else sp + spx[i]  # noqa: F821 (sp is the previous branch output)
            sp = self.convs[i](sp)
            sp = self.relu(sp)
            sp = self.bns[i](sp)
            out = sp if i == 0 else torch.cat((out, sp), 1)
        out = torch.cat((out, spx[self.nums]), 1)
        out = self.conv3(out)
        out = self.relu(out)
        out = self.bn3(out)
        out = self.se(out)
        out = out + residual
        return out


class PreEmphasis(nn.Module):
    def __init__(self, coef: float = 0.97):
        super().__init__()
        self.coef = coef
        self.register_buffer("flipped_filter", torch.FloatTensor([-self.coef, 1.0]).unsqueeze(0).unsqueeze(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)
        x = F.pad(x, (1, 0), "reflect")
        return F.conv1d(x, self.flipped_filter).squeeze(1)


class FbankAug(nn.Module):
    """One time mask (width in [0, 10)) and one frequency mask (width in [0, 8)) per example, filled with 0.

    ``generator`` makes the draws reproducible (the seed uses the global generator);
    the draws are the same as :func:`pyfunc.frontend.spec_augment`'s.
    """

    def __init__(self, freq_mask_width: tuple[int, int] = (0, 8), time_mask_width: tuple[int, int] = (0, 10)):
        super().__init__()
        self.time_mask_width = time_mask_width
        self.freq_mask_width = freq_mask_width

    def mask_along_axis(self, x: torch.Tensor, dim: int, generator: torch.Generator | None) -> torch.Tensor:
        batch, fea, time = x.shape
        if dim == 1:
            size, width_range = fea, self.freq_mask_width
        else:
            size, width_range = time, self.time_mask_width
        mask_len = torch.randint(width_range[0], width_range[1], (batch, 1), generator=generator).unsqueeze(2)
        mask_pos = torch.randint(0, max(1, size - int(mask_len.max())), (batch, 1), generator=generator).unsqueeze(2)
        arange = torch.arange(size).view(1, 1, -1)
        mask = (mask_pos <= arange) * (arange < (mask_pos + mask_len))
        mask = mask.any(dim=1)
        mask = mask.unsqueeze(2) if dim == 1 else mask.unsqueeze(1)
        return x.masked_fill_(mask, 0.0)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = self.mask_along_axis(x, dim=2, generator=generator)
        return self.mask_along_axis(x, dim=1, generator=generator)


class ECAPA_TDNN(nn.Module):
    def __init__(self, C: int = 1024):
        super().__init__()
        self.torchfbank = nn.Sequential(
            PreEmphasis(),
            torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=512, win_length=400, hop_length=160,
                                                 f_min=20, f_max=7600, window_fn=torch.hamming_window, n_mels=80),
        )
        self.specaug = FbankAug()
        self.conv1 = nn.Conv1d(80, C, kernel_size=5, stride=1, padding=2)
        self.relu = nn.ReLU()
        self.bn1 = nn.BatchNorm1d(C)
        self.layer1 = Bottle2neck(C, C, kernel_size=3, dilation=2, scale=8)
        self.layer2 = Bottle2neck(C, C, kernel_size=3, dilation=3, scale=8)
        self.layer3 = Bottle2neck(C, C, kernel_size=3, dilation=4, scale=8)
        self.layer4 = nn.Conv1d(3 * C, 1536, kernel_size=1)
        self.attention = nn.Sequential(
            nn.Conv1d(4608, 256, kernel_size=1),
            nn.ReLU(),
            nn.BatchNorm1d(256),
            nn.Tanh(),
            nn.Conv1d(256, 1536, kernel_size=1),
            nn.Softmax(dim=2),
        )
        self.bn5 = nn.BatchNorm1d(3072)
        self.fc6 = nn.Linear(3072, 192)
        self.bn6 = nn.BatchNorm1d(192)

    def forward(self, x: torch.Tensor, aug: bool, generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            x = self.torchfbank(x) + 1e-6
            x = x.log()
            x = x - torch.mean(x, dim=-1, keepdim=True)
            if aug:
                x = self.specaug(x, generator)
        x = self.conv1(x)
        x = self.relu(x)
        x = self.bn1(x)
        x1 = self.layer1(x)
        x2 = self.layer2(x + x1)
        x3 = self.layer3(x + x1 + x2)
        x = self.layer4(torch.cat((x1, x2, x3), dim=1))
        x = self.relu(x)
        t = x.size()[-1]
        global_x = torch.cat((x, torch.mean(x, dim=2, keepdim=True).repeat(1, 1, t),
                              torch.sqrt(torch.var(x, dim=2, keepdim=True).clamp(min=1e-4)).repeat(1, 1, t)), dim=1)
        w = self.attention(global_x)
        mu = torch.sum(x * w, dim=2)
        sg = torch.sqrt((torch.sum((x ** 2) * w, dim=2) - mu ** 2).clamp(min=1e-4))
        x = torch.cat((mu, sg), 1)
        x = self.bn5(x)
        x = self.fc6(x)
        x = self.bn6(x)
        return x


class AAMsoftmax(nn.Module):
    def __init__(self, n_class: int, m: float = 0.2, s: float = 30.0):
        super().__init__()
        self.m = m
        self.s = s
        self.weight = torch.nn.Parameter(torch.FloatTensor(n_class, 192), requires_grad=True)
        self.ce = nn.CrossEntropyLoss()
        nn.init.xavier_normal_(self.weight, gain=1)
        self.cos_m = math.cos(self.m)
        self.sin_m = math.sin(self.m)
        self.th = math.cos(math.pi - self.m)
        self.mm = math.sin(math.pi - self.m) * self.m

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        cosine = F.linear(F.normalize(x), F.normalize(self.weight))
        sine = torch.sqrt((1.0 - torch.mul(cosine, cosine)).clamp(0, 1))
        phi = cosine * self.cos_m - sine * self.sin_m
        phi = torch.where((cosine - self.th) > 0, phi, cosine - self.mm)
        one_hot = torch.zeros_like(cosine)
        one_hot.scatter_(1, label.view(-1, 1), 1)
        output = (one_hot * phi) + ((1.0 - one_hot) * cosine)
        output = output * self.s
        return self.ce(output, label)


class BaselineSpeakerNet(nn.Module):
    """``speaker_encoder`` + ``speaker_loss``, as the seed's ECAPAModel holds them."""

    def __init__(self, C: int, n_class: int, m: float = 0.2, s: float = 30.0):
        super().__init__()
        self.speaker_encoder = ECAPA_TDNN(C)
        self.speaker_loss = AAMsoftmax(n_class, m, s)

    def train_step(self, optim: torch.optim.Optimizer, data: torch.Tensor, labels: torch.Tensor,
                   generator: torch.Generator | None = None) -> float:
        """One optimiser step on a batch of waveforms, the seed's ``train_network`` body; returns the loss."""
        self.zero_grad()
        embedding = self.speaker_encoder.forward(data, aug=True, generator=generator)
        loss = self.speaker_loss.forward(embedding, labels)
        loss.backward()
        optim.step()
        return float(loss.detach())


def load_from_pyfunc(baseline: BaselineSpeakerNet, encoder_state: dict, head_state: dict) -> None:
    """Load our encoder (seed front end) and AAM head weights into the baseline, key by key.

    Our encoder uses the seed's submodule names, so the map is ``speaker_encoder.<key>``
    for the encoder and ``speaker_loss.weight`` for the head; every key must be used.
    """
    state = {f"speaker_encoder.{key}": value for key, value in encoder_state.items()}
    state["speaker_loss.weight"] = head_state["weight"]
    baseline.load_state_dict(state, strict=True)
