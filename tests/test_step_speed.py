"""Speed options of the training step: train.precision (auto, fp32, bf16) and train.compile."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from test_train import _config, _feature_data_dir, _run_train

from pyfunc.config import config_from_dict
from pyfunc.errors import ConfigError
from pyfunc.models.aam_softmax import AAMSoftmax
from pyfunc.models.model_dir import build_encoder
from pyfunc.training import step_speed
from pyfunc.training.step_speed import (
    autocast,
    compile_unavailable,
    cpu_has_native_bf16,
    maybe_compile,
    resolve_precision,
)
from pyfunc.training.trainer import SpeakerNet, example_generator

CPU = torch.device("cpu")


def test_precision_auto_is_bf16_where_bfloat16_is_native(monkeypatch: pytest.MonkeyPatch) -> None:
    assert config_from_dict({}).train.precision == "auto"
    assert config_from_dict({}).train.compile is False
    assert resolve_precision("auto", torch.device("cuda", 0)) == "bf16"
    monkeypatch.setattr(step_speed, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", CPU) == "fp32"  # emulated bf16 would be slower than fp32
    monkeypatch.setattr(step_speed, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", CPU) == "bf16"  # AMX
    assert resolve_precision("fp32", torch.device("cuda")) == "fp32"  # explicit values stay as they are
    assert resolve_precision("fp32", CPU) == "fp32"
    monkeypatch.setattr(step_speed, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("bf16", CPU) == "bf16"
    with pytest.raises(ConfigError, match="train.precision"):
        config_from_dict({"train": {"precision": "fp16"}})
    with pytest.raises(ConfigError, match="train.compile"):
        config_from_dict({"train": {"compile": "yes"}})


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="needs Linux's /proc/cpuinfo")
def test_native_bf16_probe_agrees_with_the_kernel_cpu_flags() -> None:
    """The probe says yes exactly where the kernel lists the AMX tile and bf16 flags (Linux)."""
    flags: set[str] = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    assert cpu_has_native_bf16() == ({"amx_tile", "amx_bf16"} <= flags)


def _net() -> SpeakerNet:
    torch.manual_seed(3)
    config = config_from_dict({"model": {"channels": 16, "embed_dim": 8}})
    return SpeakerNet(build_encoder(config.model), AAMSoftmax(8, 4))


def _step(net: torch.nn.Module, precision: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One training step's loss and gradients on a fixed batch, as the trainer takes it."""
    x = torch.randn(8, 30, 80, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(8) % 4
    net.train()
    with autocast(precision, CPU):
        loss, _ = net(x, labels, example_generator(7, 1, 0, 0))
    loss.backward()
    return loss.detach(), {name.removeprefix("_orig_mod."): p.grad.clone() for name, p in net.named_parameters()
                           if p.grad is not None}


@pytest.mark.parametrize("native_bf16, same_as", [(False, "fp32"), (True, "bf16")])
def test_auto_on_the_cpu_is_one_of_the_explicit_steps_bit_for_bit(monkeypatch: pytest.MonkeyPatch,
                                                                  native_bf16: bool, same_as: str) -> None:
    monkeypatch.setattr(step_speed, "cpu_has_native_bf16", lambda: native_bf16)
    loss_explicit, grads_explicit = _step(_net(), same_as)
    loss_auto, grads_auto = _step(_net(), "auto")
    assert torch.equal(loss_auto, loss_explicit)
    assert grads_auto.keys() == grads_explicit.keys()
    assert all(torch.equal(grads_auto[k], grads_explicit[k]) for k in grads_explicit)


def test_bf16_step_on_the_cpu() -> None:
    loss_fp32, _ = _step(_net(), "fp32")
    net = _net()
    loss_bf16, grads = _step(net, "bf16")
    assert loss_bf16.dtype == torch.float32 and torch.isfinite(loss_bf16)
    assert loss_bf16 != loss_fp32 and float(loss_bf16) == pytest.approx(float(loss_fp32), rel=0.02)
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads.values())  # fp32 weights


def test_compile_off_is_the_model_itself() -> None:
    net = _net()
    assert maybe_compile(net, False) is net


def test_compile_wiring_with_dynamo_only(monkeypatch) -> None:
    """The fast part of train.compile, in every run of the suite: dynamo traces our step (the eager backend,
    no C++ code generation) and the compiled module computes the eager loss and gradients."""
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: real_compile(model, backend="eager"))
    net = _net()
    eager_loss, eager_grads = _step(copy.deepcopy(net), "fp32")
    compiled = maybe_compile(net, True)
    assert compiled is not net
    compiled_loss, compiled_grads = _step(compiled, "fp32")
    assert float(compiled_loss) == pytest.approx(float(eager_loss), rel=1e-5)
    assert all(torch.allclose(compiled_grads[k], g, rtol=1e-4, atol=1e-6) for k, g in eager_grads.items())


@pytest.mark.slow  # torch.compile's first step compiles C++ (inductor): about a minute on 2 loaded cores
@pytest.mark.skipif(compile_unavailable(CPU) is not None, reason=str(compile_unavailable(CPU)))
def test_compiled_training_on_the_cpu(tmp_path: Path) -> None:
    """train.compile: true trains through steps/train.py; the compiled step computes the eager step's loss and
    the model dir has the same keys."""
    net = _net()
    eager_loss, eager_grads = _step(copy.deepcopy(net), "fp32")
    compiled_loss, compiled_grads = _step(maybe_compile(net, True), "fp32")
    assert float(compiled_loss) == pytest.approx(float(eager_loss), rel=1e-4)
    # per parameter, to float rounding (biases before a BatchNorm have gradients ~1e-7 that are rounding only)
    assert all(float((compiled_grads[k] - g).norm()) <= 1e-3 * float(g.norm()) + 1e-5 for k, g in eager_grads.items())

    data = _feature_data_dir(tmp_path / "feats")
    proc = _run_train(_config(tmp_path / "c.yaml", epochs=1, compile=True), data, tmp_path / "exp")
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    assert ", compiled" in (tmp_path / "exp" / "log" / "train.log").read_text()
    state = torch.load(tmp_path / "exp" / "model.pt", weights_only=True)
    assert set(state["encoder"]) == set(net.encoder.state_dict())  # no _orig_mod. prefixes
