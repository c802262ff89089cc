"""Issue 13's training techniques: LR warm-up + exponential decay, the margin ramp, speed perturbation,
fbank on the fly, starting from a model dir, and checkpoint averaging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tone_data_dir

from pyfunc.config import Config, config_from_dict, config_to_dict, load_config
from pyfunc.data.audio import read_audio
from pyfunc.errors import ConfigError, PyfuncError
from pyfunc.features.kaldi_fbank import compute_fbank, read_kaldi_conf
from pyfunc.features.speed_perturb import perturbed_crop, speed_perturb
from pyfunc.models.aam_softmax import AAMSoftmax
from pyfunc.models.averaging import average_into_model_dir, average_states
from pyfunc.models.checkpoint import load_checkpoint, save_checkpoint
from pyfunc.models.model_dir import build_encoder, build_head, load_model_dir_with_head, save_model_dir
from pyfunc.training.examples import ChunkDataset, chunk_samples, load_training_set, wrap_crop
from pyfunc.training.schedules import build_lr_scheduler, check_schedules, margin_at
from pyfunc.training.trainer import SpeakerNet, _initialise_from, check_training_config, train

REPO = Path(__file__).resolve().parents[1]
FBANK = read_kaldi_conf(REPO / "conf" / "fbank.conf")


# ---------------------------------------------------------------------------------------------
# Learning-rate schedule


def _lrs(config: Config, steps_per_epoch: int, steps: int) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=config.train.lr)
    scheduler, per_step = build_lr_scheduler(optimizer, config, steps_per_epoch)
    assert per_step
    out = []
    for _ in range(steps + 1):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_warmup_exponential_lr_values_at_given_steps() -> None:
    config = config_from_dict({"train": {"lr_schedule": "warmup_exp", "lr": 0.1, "final_lr": 0.001, "epochs": 10,
                                         "warmup_epochs": 2}})
    lrs = _lrs(config, steps_per_epoch=10, steps=100)  # 100 steps in all, 20 of warm-up
    # by hand: lr(i) = min(1, i / 20) * 0.1 * (0.001 / 0.1) ** (i / 100)
    assert lrs[0] == 0.0
    assert lrs[10] == pytest.approx(0.5 * 0.1 * 10 ** (-0.2), rel=1e-12)  # 0.031548
    assert lrs[20] == pytest.approx(0.1 * 10 ** (-0.4), rel=1e-12)  # 0.039811
    assert lrs[50] == pytest.approx(0.1 * 10 ** (-1.0), rel=1e-12)
    assert lrs[100] == pytest.approx(0.001, rel=1e-12)
    assert all(a > b for a, b in zip(lrs[20:], lrs[21:]))  # decays after the warm-up


def test_warmup_exponential_resumes_where_it_stopped() -> None:
    config = config_from_dict({"train": {"lr_schedule": "warmup_exp", "lr": 0.01, "final_lr": 0.0001, "epochs": 4,
                                         "warmup_epochs": 1}})
    whole = _lrs(config, steps_per_epoch=5, steps=20)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    scheduler, _ = build_lr_scheduler(optimizer, config, 5)
    for _ in range(7):
        optimizer.step()
        scheduler.step()
    saved = (optimizer.state_dict(), scheduler.state_dict())
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    scheduler, _ = build_lr_scheduler(optimizer, config, 5)
    optimizer.load_state_dict(saved[0])
    scheduler.load_state_dict(saved[1])
    assert optimizer.param_groups[0]["lr"] == whole[7]


def test_step_schedule_is_the_seeds_per_epoch_decay() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.001)
    scheduler, per_step = build_lr_scheduler(optimizer, config_from_dict({"train": {"lr_decay": 0.97}}), 10)
    assert not per_step
    for _ in range(2):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.001 * 0.97 ** 2)


@pytest.mark.parametrize("train", [{"lr_schedule": "warmup_exp", "final_lr": 0.0},
                                   {"lr_schedule": "warmup_exp", "final_lr": 0.01, "lr": 0.001},
                                   {"lr_schedule": "warmup_exp", "final_lr": 1e-5, "warmup_epochs": 200}])
def test_bad_lr_schedules_name_the_key(train: dict) -> None:
    with pytest.raises(ConfigError, match=r"train\.(final_lr|warmup_epochs)"):
        check_schedules(config_from_dict({"train": train}))


# ---------------------------------------------------------------------------------------------
# Margin ramp


def test_margin_ramp_values_per_epoch() -> None:
    ramp = [1, 3]  # 0 during epoch 1, rising over epochs 2 and 3, 0.2 from epoch 4 on
    assert [margin_at(t, 0.2, ramp) for t in (0, 0.5, 1, 1.5, 2, 2.5, 3, 7)] == \
        pytest.approx([0, 0, 0, 0.05, 0.1, 0.15, 0.2, 0.2])
    assert margin_at(0, 0.2, []) == 0.2  # no ramp: the margin from the first step
    with pytest.raises(ConfigError, match="loss.margin_ramp"):
        check_schedules(config_from_dict({"loss": {"margin_ramp": [3, 1]}}))


def test_set_margin_equals_a_head_built_with_that_margin() -> None:
    torch.manual_seed(0)
    moved = AAMSoftmax(8, 5, margin=0.2)
    built = AAMSoftmax(8, 5, margin=0.35)
    built.load_state_dict(moved.state_dict())
    moved.set_margin(0.35)
    emb, labels = torch.randn(6, 8), torch.tensor([0, 1, 2, 3, 4, 0])
    assert torch.equal(moved(emb, labels)[0], built(emb, labels)[0])


# ---------------------------------------------------------------------------------------------
# Speed perturbation


def _peak_hz(x: np.ndarray, rate: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_scales_length_and_pitch(factor: float) -> None:
    t = np.arange(32000) / 16000
    tone = np.sin(2 * np.pi * 200.0 * t)
    out = speed_perturb(tone, factor)
    assert len(out) == pytest.approx(len(tone) / factor, abs=1)
    assert _peak_hz(out) == pytest.approx(200.0 * factor, abs=1.0)
    crop = perturbed_crop(tone, 8000, factor, np.random.default_rng(0))
    assert crop.shape == (8000,) and _peak_hz(crop) == pytest.approx(200.0 * factor, abs=2.0)


def test_speed_perturbed_copies_are_new_speakers(tmp_path: Path) -> None:
    data_dir = make_tone_data_dir(tmp_path, speakers=3, utts=2)
    data = load_training_set(data_dir, "waveform")
    dataset = ChunkDataset(data, 50, speeds=[1.0, 0.9, 1.1])
    seen = {}
    for index in range(len(data.utts)):
        for random_seed in range(12):
            chunk, label = dataset[(index, random_seed)]
            assert chunk.shape == (chunk_samples(50),)
            base = int(data.labels[index])
            k, rest = divmod(label - base, len(data.speakers))
            assert rest == 0 and 0 <= k < 3
            seen.setdefault(base, set()).add(k)
            if k == 0:  # factor 1.0: the same crop as without perturbation (same draw)
                rng = np.random.default_rng(random_seed)
                rng.integers(3)
                expected = wrap_crop(read_audio(data.entries[index]), chunk_samples(50), rng)
                assert np.array_equal(chunk.numpy(), expected)
    assert all(ks == {0, 1, 2} for ks in seen.values())  # every factor drawn for every speaker


# ---------------------------------------------------------------------------------------------
# fbank on the fly


def test_on_the_fly_fbank_is_the_fbank_of_the_chunk(tmp_path: Path) -> None:
    data_dir = make_tone_data_dir(tmp_path, speakers=2, utts=2)
    data = load_training_set(data_dir, "waveform")
    feats, label = ChunkDataset(data, 60, fbank_options=FBANK)[(1, 5)]
    assert feats.shape == (60, 80) and label == int(data.labels[1])
    samples = wrap_crop(read_audio(data.entries[1]), chunk_samples(60), np.random.default_rng(5))
    assert np.array_equal(feats.numpy(), compute_fbank(samples, FBANK))


@pytest.mark.parametrize("settings, fbank, message", [
    ({"train": {"on_the_fly_features": True}}, None, "needs the fbank options"),
    ({"model": {"frontend": "seed"}, "train": {"on_the_fly_features": True}}, FBANK, "seed front end"),
    ({"train": {"speed_perturb": [0.9, 1.0]}}, FBANK, "train.speed_perturb works on waveforms"),
    ({"train": {"augment": {"enabled": True}}}, None, "train.augment.enabled works on waveforms"),
    ({"train": {"on_the_fly_features": True, "speed_perturb": [1.0, 1.0]}}, FBANK, "distinct factors"),
    ({"train": {"average_last": 3, "keep_checkpoints": 2}}, None, "keep_checkpoints"),
])
def test_training_settings_that_do_not_fit_name_the_key(settings: dict, fbank, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_training_config(config_from_dict(settings), fbank)


def _tiny_config(**train) -> Config:
    return config_from_dict({"model": {"channels": 16, "embed_dim": 8},
                             "train": {"epochs": 3, "batch_size": 6, "lr": 0.01, "chunk_frames": 30, "num_workers": 0,
                                       "log_interval": 1, "random_seed": 3, **train}})


def test_training_with_fbank_on_the_fly_speed_perturbation_and_margin_ramp(tmp_path: Path, restore_logging) -> None:
    data_dir = make_tone_data_dir(tmp_path, speakers=3, utts=4)
    config = _tiny_config(on_the_fly_features=True, speed_perturb=[1.0, 0.9, 1.1], lr_schedule="warmup_exp",
                          final_lr=0.001, warmup_epochs=1)
    config.loss.margin_ramp = [1, 2]
    train(config, data_dir, tmp_path / "exp", device="cpu", fbank_options=FBANK)
    encoder, head, saved = load_model_dir_with_head(tmp_path / "exp")
    assert saved.model.num_classes == 9 and head.weight.shape == (9, 8)  # 3 speakers x 3 speeds
    log = (tmp_path / "exp" / "log" / "train.log").read_text()
    margins = [float(line.split(" margin ")[1].split()[0]) for line in log.splitlines() if " done: " in line]
    # the head's margin at the last step of epochs 1, 2, 3 (position 0.5, 1.5, 2.5 with 2 steps an epoch)
    assert margins == pytest.approx([0.0, 0.1, 0.2])


# ---------------------------------------------------------------------------------------------
# Starting from a model dir, averaging checkpoints


def test_init_model_starts_from_its_weights(tmp_path: Path, restore_logging) -> None:
    data_dir = make_tone_data_dir(tmp_path, speakers=3, utts=4)
    config = _tiny_config(on_the_fly_features=True, epochs=1, lr=0.0, weight_decay=0.0)
    config.model.num_classes = 3
    torch.manual_seed(42)
    encoder, head = build_encoder(config.model), build_head(config)
    save_model_dir(tmp_path / "start", config, encoder, head)
    config.train.init_model = str(tmp_path / "start")
    train(config, data_dir, tmp_path / "exp", device="cpu", fbank_options=FBANK)
    trained_encoder, trained_head, _ = load_model_dir_with_head(tmp_path / "exp")
    assert torch.equal(trained_head.weight, head.weight)  # lr 0: the weights it started from
    assert torch.equal(trained_encoder.conv1.weight, encoder.conv1.weight)
    config.model.channels = 24  # another architecture: the keys that do not fit are named
    config.train.init_model = str(tmp_path / "start")
    with pytest.raises(PyfuncError, match=r"train\.init_model.*mis-shaped key\(s\): .*conv1.weight"):
        train(config, data_dir, tmp_path / "exp_other", device="cpu", fbank_options=FBANK)


def test_init_model_of_other_speakers_loads_the_encoder_and_starts_the_head_afresh(tmp_path: Path,
                                                                                  restore_logging) -> None:
    data_dir = make_tone_data_dir(tmp_path, speakers=3, utts=4)
    config = _tiny_config(on_the_fly_features=True, epochs=1, lr=0.0, weight_decay=0.0)
    config.model.num_classes = 5  # a model trained on 5 speakers; this training set has 3
    torch.manual_seed(42)
    encoder, head = build_encoder(config.model), build_head(config)
    save_model_dir(tmp_path / "start", config, encoder, head)
    config.train.init_model = str(tmp_path / "start")
    train(config, data_dir, tmp_path / "exp", device="cpu", fbank_options=FBANK)
    trained_encoder, trained_head, saved = load_model_dir_with_head(tmp_path / "exp")
    trained = dict(trained_encoder.named_parameters())  # lr 0: the source's weights, bit for bit
    for key, value in encoder.named_parameters():  # (the BatchNorm statistics move with the forward passes)
        assert torch.equal(trained[key], value), key
    config.model.num_classes = 3  # the fresh head of a run from random weights with the same seed
    torch.manual_seed(config.train.random_seed)
    build_encoder(config.model)
    fresh = build_head(config)
    assert saved.model.num_classes == 3 and torch.equal(trained_head.weight, fresh.weight)
    log = (tmp_path / "exp" / "log" / "train.log").read_text()
    assert (f"train.init_model: encoder from {tmp_path / 'start'}; classifier head started afresh "
            f"({tmp_path / 'start'} has 5 speakers, this training set 3)") in log
    net = SpeakerNet(build_encoder(config.model), fresh)  # the whole encoder state, BatchNorm statistics too
    _initialise_from(net, str(tmp_path / "start"))
    assert all(torch.equal(net.encoder.state_dict()[k], v) for k, v in encoder.state_dict().items())
    assert torch.equal(net.head.weight, fresh.weight)


def test_averaging_identical_checkpoints_gives_the_same_weights_and_two_give_their_mean(tmp_path: Path) -> None:
    config = config_from_dict({"model": {"channels": 16, "embed_dim": 8, "num_classes": 4}})
    states = []
    for random_seed in (1, 2):
        torch.manual_seed(random_seed)
        encoder, head = build_encoder(config.model), build_head(config)
        for module in encoder.modules():  # BatchNorm statistics are averaged too
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_()
                module.num_batches_tracked.fill_(random_seed * 10)
        states.append({"encoder": encoder.state_dict(), "head": head.state_dict()})
    same = average_states([states[0]["encoder"]] * 3)
    assert all(torch.equal(same[k], v) for k, v in states[0]["encoder"].items())
    mean = average_states([states[0]["encoder"], states[1]["encoder"]])
    for key, value in mean.items():
        if value.is_floating_point():
            expected = (states[0]["encoder"][key].double() + states[1]["encoder"][key].double()) / 2
            assert torch.allclose(value.double(), expected, atol=1e-7), key
        else:  # num_batches_tracked: the newest checkpoint's
            assert torch.equal(value, states[1]["encoder"][key])
    models = tmp_path / "models"
    for epoch, state in enumerate(states, start=1):
        save_checkpoint(models / f"epoch_{epoch}.pt", {**state, "optimizer": {}, "scheduler": {}, "epoch": epoch,
                                                       "step": 0, "rng": {}})
    average_into_model_dir(models, 2, config, tmp_path / "avg")
    _, head, _ = load_model_dir_with_head(tmp_path / "avg")
    assert torch.allclose(head.weight, (states[0]["head"]["weight"] + states[1]["head"]["weight"]) / 2, atol=1e-7)
    with pytest.raises(PyfuncError, match="2 epoch checkpoint"):
        average_into_model_dir(models, 3, config, tmp_path / "avg3")


def test_average_last_writes_the_averaged_model(tmp_path: Path, restore_logging) -> None:
    data_dir = make_tone_data_dir(tmp_path, speakers=3, utts=4)
    train(_tiny_config(on_the_fly_features=True, average_last=2), data_dir, tmp_path / "exp", device="cpu",
          fbank_options=FBANK)
    got, _, _ = load_model_dir_with_head(tmp_path / "exp")
    last = [load_checkpoint(tmp_path / "exp" / "models" / f"epoch_{epoch}.pt")["encoder"] for epoch in (2, 3)]
    assert not torch.equal(last[0]["conv1.weight"], last[1]["conv1.weight"])
    for key, value in got.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value.double(), (last[0][key].double() + last[1][key].double()) / 2, atol=1e-6)


def test_voxceleb_presets_add_the_techniques_to_the_seed_setup() -> None:
    """egs/voxceleb/conf/ecapa_c1024_plus.yaml is the seed's setup plus every technique, and its
    fine-tuning config ecapa_c1024_lm.yaml continues it (same network and classes)."""
    recipe = REPO / "egs" / "voxceleb" / "conf"
    seed, plus, lm = (load_config(recipe / f"ecapa_c1024{name}.yaml") for name in ("", "_plus", "_lm"))
    assert plus.model == seed.model and lm.model == seed.model
    assert (plus.train.epochs, plus.train.batch_size, plus.train.chunk_frames) == (80, 400, 200)
    assert plus.train.augment.enabled and plus.train.augment.snr_noise == seed.train.augment.snr_noise
    assert plus.train.lr_schedule == "warmup_exp" and plus.loss.margin_ramp and plus.train.average_last > 1
    assert plus.train.speed_perturb == lm.train.speed_perturb == [1.0, 0.9, 1.1] and plus.score.subtract_mean
    assert lm.train.chunk_frames > plus.train.chunk_frames and lm.loss.margin > plus.loss.margin
    assert not lm.train.augment.enabled and lm.train.lr < plus.train.lr and not lm.loss.margin_ramp
    for config in (plus, lm):
        check_training_config(config, None)


def test_the_three_real_speech_configs_differ_only_in_where_training_starts() -> None:
    """egs/real_speech compares three ways of training (docs/real-speech.md): the comparison is fair only if the
    configs are one training but for the fine-tuned one's start (train.init_model; the training sets differ by
    run.sh's --train-set), and all score with the training speakers' mean subtracted, as measured there."""
    recipe = REPO / "egs" / "real_speech" / "conf"
    scratch, finetune, mixed = (config_to_dict(load_config(recipe / f"ecapa_real{name}.yaml"))
                                for name in ("", "_finetune", "_mixed"))
    assert mixed == scratch
    assert finetune["train"].pop("init_model") == "../../exp/ecapa_mini" and scratch["train"].pop("init_model") == ""
    assert finetune == scratch and scratch["score"]["subtract_mean"] is True
