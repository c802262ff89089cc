"""A peer side by side: SpeechBrain's ECAPA-TDNN against ours, training step and extraction, same input.

SpeechBrain comes from bench/.peers (``bash bench/install_peers.sh``), never from .venv; without it
:func:`speechbrain_missing` says so and the bench skips these rows.

Both encoders take the same (batch, frames, 80) fbank batch and have the same shape: channels
[C, C, C, C, 1536] (SpeechBrain's VoxCeleb recipe widens the last layer to 3072; 1536 is the paper's and
ours), attentive statistics pooling, a 192-dim embedding. Both train under the same AAM-softmax head and
Adam. Ours also does in-model SpecAugment and mean normalisation of the features (SpeechBrain's recipe
does those outside the model), so its step holds a little more work.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from bench.common import alternate_timed
from pyfunc.config import ModelConfig
from pyfunc.models.aam_softmax import AAMSoftmax
from pyfunc.models.model_dir import build_encoder
from pyfunc.training.trainer import example_generator

PEERS = Path(__file__).resolve().parent / ".peers"
EMBED_DIM = 192


def speechbrain_missing() -> str | None:
    """Why SpeechBrain's ECAPA-TDNN cannot be imported from bench/.peers, or None when it can."""
    if str(PEERS) not in sys.path:
        sys.path.append(str(PEERS))
    try:
        from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN  # noqa: F401 (optional peer)
    except ImportError as err:
        return f"SpeechBrain is not in bench/.peers ({err}); run: bash bench/install_peers.sh"
    return None


class _SpeechBrainNet(nn.Module):
    """SpeechBrain's encoder under our AAM-softmax head; ``forward`` as our SpeakerNet's."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN  # optional peer, from bench/.peers

        self.encoder = ECAPA_TDNN(80, channels=[channels] * 4 + [1536], lin_neurons=EMBED_DIM)
        self.head = AAMSoftmax(EMBED_DIM, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).squeeze(1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None):
        return self.head(self.embed(x), labels)


class _OurNet(nn.Module):
    """Our encoder (fbank front end) under the same head."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.encoder = build_encoder(ModelConfig(frontend="fbank", channels=channels, embed_dim=EMBED_DIM))
        self.head = AAMSoftmax(EMBED_DIM, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None):
        return self.head(self.encoder(x, augment=True, generator=generator), labels)


def build_pair(channels: int, num_classes: int, device: torch.device) -> dict[str, nn.Module]:
    """``{"ours": ..., "speechbrain": ...}`` on ``device``, each from a fixed seed."""
    nets = {}
    for name, cls in (("ours", _OurNet), ("speechbrain", _SpeechBrainNet)):
        torch.manual_seed(0)
        nets[name] = cls(channels, num_classes).to(device)
    return nets


def _train_step(net: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                labels: torch.Tensor) -> Callable[[int], None]:
    def step(i: int) -> None:
        loss, _ = net(x, labels, example_generator(1234, 1, i, 0))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def _embed_step(net: nn.Module, x: torch.Tensor) -> Callable[[int], None]:
    def step(i: int) -> None:
        with torch.no_grad():
            net.embed(x)
    return step


def compare(channels: int, batch: int, frames: int, num_classes: int, device: torch.device,
            warmup: int, rounds: int) -> dict:
    """Training examples/s and extraction utterances/s of ours and SpeechBrain's on one fbank batch.

    Each figure is the best of ``rounds`` (the two systems alternate); ``ratio``: ours / SpeechBrain's,
    the median over rounds. Raises ImportError when SpeechBrain is missing (see :func:`speechbrain_missing`).
    """
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(batch, frames, 80, generator=gen) + 5.0).to(device)
    labels = torch.randint(0, num_classes, (batch,), generator=gen).to(device)
    nets = build_pair(channels, num_classes, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    figures: dict = {"channels": channels, "batch": batch, "frames": frames, "device": str(device),
                     "threads": torch.get_num_threads()}
    for net in nets.values():
        net.train()
    train = alternate_timed({name: _train_step(net, torch.optim.Adam(net.parameters(), lr=0.001), x, labels)
                             for name, net in nets.items()}, warmup, rounds, sync)
    for net in nets.values():
        net.eval()
    embed = alternate_timed({name: _embed_step(net, x) for name, net in nets.items()}, warmup, rounds, sync)
    for kind, times, unit in (("train", train, "examples_per_s"), ("extract", embed, "utts_per_s")):
        figures[kind] = {name: {unit: batch / min(t), "best_s": min(t), "runs": len(t)} for name, t in times.items()}
        figures[kind]["ratio"] = statistics.median(s / o for o, s in zip(times["ours"], times["speechbrain"]))
    return figures


def peer_case(size: dict, work: Path) -> dict:
    """bench/case.py entry: the comparison on the CPU at the run's sizes (skipped without SpeechBrain)."""
    missing = speechbrain_missing()
    if missing:
        return {"figures": {"skipped": missing}}
    return {"figures": compare(size["peer_channels"], size["peer_batch"], size["peer_frames"],
                               size["train_classes"], torch.device("cpu"), size["peer_warmup"],
                               size["peer_rounds"])}
