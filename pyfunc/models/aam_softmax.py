"""Additive angular margin softmax (AAM-softmax), exactly the seed's."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class AAMSoftmax(nn.Module):
    """AAM-softmax head: ``weight`` (num_classes x embed_dim), margin ``m``, scale ``s``.

    The target logit cos(theta) becomes cos(theta + m) where theta + m < pi,
    else cos(theta) - sin(pi - m) * m (the seed's easy-margin fallback).
    """

    def __init__(self, embed_dim: int, num_classes: int, margin: float = 0.2, scale: float = 30.0):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"AAMSoftmax needs at least one class, got {num_classes}")
        self.embed_dim = embed_dim
        self.num_classes = num_classes
        self.s = scale
        self.weight = nn.Parameter(torch.empty(num_classes, embed_dim))
        nn.init.xavier_normal_(self.weight, gain=1)
        self.set_margin(margin)

    def set_margin(self, margin: float) -> None:
        """Use margin ``margin`` from now on (the margin scheduler's hook); the weights are unchanged."""
        self.m = margin
        self.cos_m = math.cos(margin)
        self.sin_m = math.sin(margin)
        self.th = math.cos(math.pi - margin)
        self.mm = math.sin(math.pi - margin) * margin

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of each embedding with each class weight: (batch, num_classes)."""
        return F.linear(F.normalize(embeddings), F.normalize(self.weight))

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (mean cross-entropy loss, top-1 accuracy in percent).

        The accuracy is the seed's figure: the argmax of the margin logits (the
        target's cosine replaced by its margin-penalised value), so an example
        counts as right only when it clears the margin.
        """
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            cosine = self.cosine(embeddings.float())
            sine = torch.sqrt((1.0 - cosine * cosine).clamp(0, 1))
            phi = cosine * self.cos_m - sine * self.sin_m
            phi = torch.where((cosine - self.th) > 0, phi, cosine - self.mm)
            one_hot = torch.zeros_like(cosine)
            one_hot.scatter_(1, labels.view(-1, 1), 1)
            logits = self.s * (one_hot * phi + (1.0 - one_hot) * cosine)
            loss = F.cross_entropy(logits, labels)
        with torch.no_grad():
            accuracy = (logits.argmax(dim=1) == labels).float().mean() * 100.0
        return loss, accuracy
