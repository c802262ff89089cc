"""Speed options of the training step: precision, cuDNN autotuning and ``torch.compile``.

``train.precision: auto`` is bfloat16 autocast where the hardware multiplies bfloat16 matrices
natively (CUDA; CPUs with Intel AMX tiles, Sapphire Rapids and later) and float32 elsewhere, where
bfloat16 would be emulated and slower than float32. Channels-last memory format is left out on
purpose: it applies to 4-D (NCHW) tensors, and ECAPA-TDNN's 1-D convolutions run on 3-D
(batch, channels, time) tensors, for which cuDNN picks its kernels without it.
"""

from __future__ import annotations

import contextlib
import shutil
from typing import ContextManager

import torch
from torch import nn


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (Intel AMX tiles, as oneDNN uses them)."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private in torch 2.11; absent means no
    return bool(probe()) if probe is not None else False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16`` for ``train.precision`` on ``device``.

    ``auto``: bf16 on CUDA and on CPUs with native bfloat16 matrix units, fp32 on other CPUs.
    """
    if precision == "auto":
        native = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
        return "bf16" if native else "fp32"
    return precision


def autocast(precision: str, device: torch.device) -> ContextManager:
    """bfloat16 autocast of the forward pass when ``precision`` resolves to bf16 (CUDA or CPU), else nothing."""
    if resolve_precision(precision, device) == "bf16" and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def configure_backends(device: torch.device) -> None:
    """On CUDA, let cuDNN time its convolution algorithms once per input shape (the chunks have one shape)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def compile_unavailable(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot run on ``device`` here, or None (inductor's CPU code needs a C++ compiler)."""
    if device.type == "cpu" and not any(shutil.which(cc) for cc in ("c++", "g++", "clang++")):
        return "torch.compile on the CPU needs a C++ compiler (c++, g++ or clang++) on PATH"
    return None


def maybe_compile(model: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile(model)`` when ``enabled`` (``train.compile``), else ``model`` itself.

    The compiled module shares its parameters with ``model``; checkpoints are written from the
    uncompiled one, so their keys do not change.
    """
    return torch.compile(model) if enabled else model
