"""ECAPA-TDNN, front ends, AAM-softmax and model directories."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pyfunc.config import Config
from pyfunc.errors import PyfuncError
from pyfunc.features.specaugment import spec_augment
from pyfunc.models.aam_softmax import AAMSoftmax
from pyfunc.models.ecapa import ECAPATDNN, count_parameters
from pyfunc.models.model_dir import build_encoder, load_model_dir, load_model_dir_with_head, save_model_dir


def randomise_bn(model: torch.nn.Module, random_seed: int = 0) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, so eval mode is a real test."""
    gen = torch.Generator().manual_seed(random_seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)
    return model


def seed_forward(m: ECAPATDNN, feats: torch.Tensor) -> torch.Tensor:
    """The seed's encoder forward, written out literally (torch.cat in the loop, 4608-channel attention input)."""

    def block(layer, x):
        residual = x
        out = layer.bn1(F.relu(layer.conv1(x)))
        spx = torch.split(out, layer.width, 1)
        for i in range(layer.nums):
            sp = spx[i] if i == 0 else sp + spx[i]  # noqa: F821
            sp = layer.bns[i](F.relu(layer.convs[i](sp)))
            out = sp if i == 0 else torch.cat((out, sp), 1)
        out = torch.cat((out, spx[layer.nums]), 1)
        out = layer.bn3(F.relu(layer.conv3(out)))
        out = out * layer.se.se(out)
        return out + residual

    x = m.bn1(F.relu(m.conv1(feats)))
    x1 = block(m.layer1, x)
    x2 = block(m.layer2, x + x1)
    x3 = block(m.layer3, x + x1 + x2)
    x = F.relu(m.layer4(torch.cat((x1, x2, x3), dim=1)))
    t = x.size()[-1]
    global_x = torch.cat((x, torch.mean(x, dim=2, keepdim=True).repeat(1, 1, t),
                          torch.sqrt(torch.var(x, dim=2, keepdim=True).clamp(min=1e-4)).repeat(1, 1, t)), dim=1)
    w = m.attention(global_x)
    mu = torch.sum(x * w, dim=2)
    sg = torch.sqrt((torch.sum((x ** 2) * w, dim=2) - mu ** 2).clamp(min=1e-4))
    return m.bn6(m.fc6(m.bn5(torch.cat((mu, sg), 1))))


def test_parameter_counts_match_the_seed():
    assert count_parameters(ECAPATDNN(512)) == 6_978_176
    assert count_parameters(ECAPATDNN(1024)) == 15_444_544
    # the seed front end adds buffers only
    assert count_parameters(ECAPATDNN(512, frontend="seed")) == 6_978_176
    keys = set(ECAPATDNN(16, frontend="seed").state_dict())
    assert {"torchfbank.0.flipped_filter", "torchfbank.1.spectrogram.window", "torchfbank.1.mel_scale.fb",
            "layer1.se.se.1.weight", "layer3.convs.6.weight", "attention.2.running_var", "fc6.weight"} <= keys
    assert not any(k.startswith("torchfbank") for k in ECAPATDNN(16).state_dict())


def test_shapes():
    torch.manual_seed(0)
    fbank = ECAPATDNN(32, embed_dim=24, feat_dim=40).eval()
    assert fbank(torch.randn(3, 57, 40)).shape == (3, 24)
    assert fbank.logmel(torch.randn(3, 57, 40)).shape == (3, 40, 57)
    seed_model = ECAPATDNN(32, frontend="seed").eval()
    assert seed_model.logmel(torch.randn(2, 16000)).shape == (2, 80, 101)
    assert seed_model(torch.randn(2, 16000) * 0.1).shape == (2, 192)
    with pytest.raises(ValueError, match="frames, 40"):
        fbank(torch.randn(2, 50, 80))
    with pytest.raises(PyfuncError, match="front end"):
        ECAPATDNN(32, frontend="mfcc")


@pytest.mark.parametrize("train", [False, True])
def test_matches_the_seed_forward_and_gradients(train):
    torch.manual_seed(1)
    model = randomise_bn(ECAPATDNN(40, embed_dim=16))  # 40 channels: Res2Net width 5
    model.train(train)
    feats = torch.randn(3, 80, 73)
    ref_model = ECAPATDNN(40, embed_dim=16)
    ref_model.load_state_dict(model.state_dict())
    ref_model.train(train)
    out = model.encode(feats)
    ref = seed_forward(ref_model, feats)
    assert torch.allclose(out, ref, atol=2e-5, rtol=1e-4)
    if train:
        out.square().sum().backward()
        ref.square().sum().backward()
        for (name, p), q in zip(model.named_parameters(), ref_model.parameters()):
            assert torch.allclose(p.grad, q.grad, atol=1e-4, rtol=1e-3), name
        for (name, b), c in zip(model.named_buffers(), ref_model.buffers()):
            assert torch.allclose(b.float(), c.float(), atol=1e-6), name  # running statistics updated alike


def test_masked_padded_batch_equals_single_utterances():
    torch.manual_seed(2)
    model = randomise_bn(ECAPATDNN(32, embed_dim=16)).eval()
    feats = [torch.randn(1, 80, n) for n in (50, 23, 7, 50)]
    single = torch.cat([model.encode(f) for f in feats])
    padded = torch.zeros(4, 80, 50)
    for i, f in enumerate(feats):
        padded[i, :, :f.shape[2]] = f
    padded[1, :, 30:] = 1e3  # garbage beyond the length must not matter
    batched = model.encode(padded, torch.tensor([50, 23, 7, 50]))
    assert torch.allclose(batched, single, atol=1e-5)


def test_fbank_frontend_removes_the_mean():
    torch.manual_seed(3)
    model = randomise_bn(ECAPATDNN(32, embed_dim=16)).eval()
    x = torch.randn(2, 60, 80)
    shift = torch.randn(1, 1, 80) * 5 + 3
    with torch.no_grad():
        a, b = model(x), model(x + shift)
    assert torch.allclose(a, b, atol=1e-4)
    feats = model.logmel(x + shift)
    assert torch.allclose(feats.mean(dim=2), torch.zeros(2, 80), atol=1e-5)
    assert torch.allclose(feats, (x - x.mean(1, keepdim=True)).transpose(1, 2), atol=1e-5)


def test_spec_augment_masks_one_time_and_one_frequency_band():
    gen = torch.Generator().manual_seed(0)
    widths_t, widths_f = [], []
    for _ in range(20):
        x = spec_augment(torch.ones(8, 80, 200), 10, 8, generator=gen)
        for example in x:
            zero_cols = (example == 0).all(dim=0).nonzero().flatten()
            zero_rows = (example == 0).all(dim=1).nonzero().flatten()
            for idx, store in ((zero_cols, widths_t), (zero_rows, widths_f)):
                if len(idx):
                    assert idx[-1] - idx[0] + 1 == len(idx)  # one contiguous band
                store.append(len(idx))
            # everything zero lies in the time band or the frequency band
            zeros = example == 0
            zeros[:, zero_cols] = False
            zeros[zero_rows, :] = False
            assert not zeros.any()
    assert max(widths_t) == 9 and max(widths_f) == 7 and min(widths_t) == 0
    # the same generator seed gives the same masks
    a = spec_augment(torch.ones(4, 80, 100), generator=torch.Generator().manual_seed(5))
    b = spec_augment(torch.ones(4, 80, 100), generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_model_masks_only_with_augment():
    torch.manual_seed(4)
    model = randomise_bn(ECAPATDNN(16, embed_dim=8, frontend="seed")).eval()
    seen = []
    model.conv1.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    wav = torch.randn(4, 8000) * 0.1
    clean = model.logmel(wav)
    with torch.no_grad():
        model(wav)
        assert torch.equal(seen[-1], clean)
        for _ in range(5):
            model(wav, augment=True, generator=torch.Generator().manual_seed(len(seen)))
            changed = seen[-1] != clean
            assert torch.all(seen[-1][changed] == 0)
    assert any((s != clean).any() for s in seen[1:])


def _hand_aam(emb, weight, labels, m, s):
    losses, correct = [], 0
    th, mm = math.cos(math.pi - m), math.sin(math.pi - m) * m
    for e, y in zip(emb.tolist(), labels.tolist()):
        cos = []
        for w in weight.tolist():
            dot = sum(a * b for a, b in zip(e, w))
            cos.append(dot / math.sqrt(sum(a * a for a in e)) / math.sqrt(sum(b * b for b in w)))
        c = cos[y]
        phi = math.cos(math.acos(c) + m) if c - th > 0 else c - mm
        logits = [s * (phi if j == y else cj) for j, cj in enumerate(cos)]
        top = max(logits)
        losses.append(-(logits[y] - top - math.log(sum(math.exp(v - top) for v in logits))))
        correct += int(max(range(len(cos)), key=lambda j: logits[j]) == y)  # the seed: argmax of the margin logits
    return sum(losses) / len(losses), 100.0 * correct / len(labels)


def test_aam_softmax_against_hand_computation():
    head = AAMSoftmax(3, 4, margin=0.2, scale=30)
    assert head.weight.shape == (4, 3)
    weight = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [-1.0, -1.0, 0.5]])
    head.weight.data.copy_(weight)
    # example 3 has a target cosine near -1, exercising the cos - mm branch; example 4 is right by its cosines
    # (0.740 against 0.673) but wrong by the margin logits (cos(acos(0.740) + 0.2) = 0.592), as the seed counts it
    emb = torch.tensor([[0.9, 0.1, 0.2], [0.3, 0.5, -0.2], [0.2, 0.1, 0.4], [1.0, 1.0, -0.45], [0.55, 0.5, 0.0]])
    labels = torch.tensor([0, 2, 2, 3, 0])
    loss, acc = head(emb, labels)
    want_loss, want_acc = _hand_aam(emb, weight, labels, 0.2, 30)
    assert loss.item() == pytest.approx(want_loss, rel=1e-5)
    assert acc.item() == pytest.approx(want_acc)
    assert want_acc == 40.0
    loss.backward()
    assert head.weight.grad is not None and torch.isfinite(head.weight.grad).all()


def _tiny_config(frontend="fbank") -> Config:
    config = Config()
    config.model.frontend = frontend
    config.model.channels = 16
    config.model.embed_dim = 8
    return config


def test_model_dir_round_trip(tmp_path):
    torch.manual_seed(5)
    config = _tiny_config()
    encoder = randomise_bn(build_encoder(config.model))
    head = AAMSoftmax(8, 7)
    save_model_dir(tmp_path / "m", config, encoder, head)
    assert config.model.num_classes == 0  # the caller's config is not modified
    loaded, loaded_config = load_model_dir(tmp_path / "m", "cpu")
    assert loaded_config.model.num_classes == 7 and not loaded.training
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    _, loaded_head, _ = load_model_dir_with_head(tmp_path / "m")
    assert torch.equal(loaded_head.weight, head.weight)
    x = torch.randn(2, 30, 80)
    with torch.no_grad():
        assert torch.equal(encoder.eval()(x), loaded(x))


def test_model_dir_errors(tmp_path):
    config = _tiny_config()
    save_model_dir(tmp_path / "m", config, build_encoder(config.model), AAMSoftmax(8, 3))
    payload = torch.load(tmp_path / "m" / "model.pt", weights_only=True)
    # a different architecture: config says 24 channels, weights have 16
    bigger = _tiny_config()
    bigger.model.channels = 24
    bigger.model.num_classes = 3
    from pyfunc.config import save_config

    save_config(tmp_path / "m" / "config.yaml", bigger)
    with pytest.raises(PyfuncError, match=r"model\.pt \(encoder\).*mis-shaped key\(s\): bn1\.bias \(shape \(16,\)"):
        load_model_dir(tmp_path / "m")
    save_config(tmp_path / "m" / "config.yaml", _tiny_config())  # num_classes 0
    with pytest.raises(PyfuncError, match="num_classes"):
        load_model_dir(tmp_path / "m")
    config.model.num_classes = 3
    save_config(tmp_path / "m" / "config.yaml", config)
    del payload["encoder"]["fc6.weight"]
    payload["encoder"]["extra.weight"] = torch.zeros(1)
    torch.save(payload, tmp_path / "m" / "model.pt")
    with pytest.raises(PyfuncError) as err:
        load_model_dir(tmp_path / "m")
    assert "missing key(s): fc6.weight" in str(err.value) and "unexpected key(s): extra.weight" in str(err.value)
    data = (tmp_path / "m" / "model.pt").read_bytes()
    (tmp_path / "m" / "model.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(PyfuncError, match=r"model\.pt: cannot read the weights \(truncated or corrupt"):
        load_model_dir(tmp_path / "m")
    torch.save({"a": torch.zeros(1)}, tmp_path / "m" / "model.pt")
    with pytest.raises(PyfuncError, match="not a pyfunc model file"):
        load_model_dir(tmp_path / "m")
    with pytest.raises(PyfuncError, match="not found"):
        load_model_dir(tmp_path / "nothing")


def test_model_dir_cuda_when_available(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    config = _tiny_config("seed")
    save_model_dir(tmp_path / "m", config, randomise_bn(build_encoder(config.model)), AAMSoftmax(8, 3))
    cpu, _ = load_model_dir(tmp_path / "m", "cpu")
    gpu, _ = load_model_dir(tmp_path / "m", "cuda")
    wav = torch.randn(2, 16000) * 0.1
    with torch.no_grad():
        assert torch.allclose(cpu(wav), gpu(wav.cuda()).cpu(), atol=1e-3)
    assert np.isfinite(gpu(wav.cuda()).detach().cpu().numpy()).all()
