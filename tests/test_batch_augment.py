"""Batched augmentation on the training device: the same draws and, to float rounding, the same samples as the
CPU path; the SNRs and the convolution by hand; a training run with ``train.augment.on_device``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from conftest import make_tone_data_dir
from scipy.signal import fftconvolve

from pyfunc.config import AugmentConfig, config_from_dict
from pyfunc.data.datadir import DataDir, write_data_dir
from pyfunc.errors import ConfigError, DataError
from pyfunc.features.augment import AUG_TYPES, AddDraw, DrawnAugment, ReverbDraw, WaveAugmenter, apply_drawn
from pyfunc.features.batch_augment import (
    AugmentBatch,
    apply_batch,
    fast_fft_length,
    fft_convolve,
    reverberate_batch,
    row_levels_db,
)
from pyfunc.features.kaldi_fbank import compute_fbank, compute_fbank_batch, read_kaldi_conf
from pyfunc.pipeline.train_stage import training_params
from pyfunc.training.device_batch import batch_to_device
from pyfunc.training.examples import ChunkDataset, EpochBatches, chunk_samples, collate_drawn, load_training_set
from pyfunc.training.shard_examples import ShardDataset, load_shard_set
from pyfunc.training.shard_writer import make_shards
from pyfunc.training.trainer import train

RATE = 16000
LENGTH = chunk_samples(50)  # 8240 samples: small and fast
FBANK = read_kaldi_conf(Path(__file__).resolve().parents[1] / "conf" / "fbank.conf")


def _wav(path: Path, samples: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, samples, RATE, subtype="FLOAT")
    return str(path)


def _source_dir(root: Path, name: str, signals: dict[str, np.ndarray]) -> None:
    wavs = {key: _wav(root / "wav" / name / f"{key}.wav", sig) for key, sig in signals.items()}
    write_data_dir(root / name, DataDir(wavs, {k: k for k in wavs}))


@pytest.fixture
def aug_cfg(tmp_path: Path) -> AugmentConfig:
    """Tiny MUSAN-like sources (a noise shorter than a segment, so wrapped) and RIRs of three lengths."""
    rng = np.random.default_rng(0)
    t = np.arange(3 * RATE) / RATE
    musan = tmp_path / "musan"
    _source_dir(musan, "musan_noise", {"n-a": 0.1 * rng.standard_normal(RATE // 4),
                                       "n-b": 0.3 * rng.standard_normal(2 * RATE)})
    _source_dir(musan, "musan_music", {"m-a": 0.3 * np.sin(2 * np.pi * 330 * t),
                                       "m-b": 0.2 * np.sin(2 * np.pi * 520 * t)})
    _source_dir(musan, "musan_speech", {f"s-{i}": 0.2 * np.sin(2 * np.pi * (100 + 20 * i) * t[: RATE + 999 * i])
                                        for i in range(9)})
    rirs = {}
    for i, n in enumerate((300, 1200, 2500)):
        rir = 0.3 * np.exp(-np.arange(n) / 400.0) * rng.standard_normal(n)
        rir[5 * i] = 1.0
        rirs[f"room-{i}"] = rir
    _source_dir(tmp_path, "rirs", rirs)
    return AugmentConfig(enabled=True, musan_dir=str(musan), rir_dir=str(tmp_path / "rirs"))


def _clean(rows: int, random_seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(random_seed)
    t = np.arange(LENGTH) / RATE
    return np.stack([(0.3 + 0.1 * i) * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.01 * rng.standard_normal(LENGTH)
                     for i in range(rows)]).astype(np.float32)


def _relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    """Largest difference relative to the largest sample of its row."""
    return float(np.max(np.abs(got - expected).max(axis=1) / np.abs(expected).max(axis=1)))


@pytest.mark.parametrize("kind", AUG_TYPES)
def test_batched_apply_equals_the_cpu_path(aug_cfg: AugmentConfig, kind: str) -> None:
    aug = WaveAugmenter.from_config(aug_cfg)
    x = _clean(4)
    seeds = [10 * i + 3 for i in range(len(x))]
    specs = [aug.draw_spec(np.random.default_rng(s), kind) for s in seeds]
    cpu = np.stack([aug.apply(row, spec) for row, spec in zip(x, specs)])  # today's path, float32
    draws = [aug.draw(LENGTH, np.random.default_rng(s), kind) for s in seeds]
    for drawn, spec in zip(draws, specs):
        assert drawn.type == kind and len(drawn.steps) == len(spec["steps"])
    exact = np.stack([apply_drawn(row, drawn) for row, drawn in zip(x, draws)])
    wide = apply_batch(torch.from_numpy(x).double(), AugmentBatch.from_draws(draws, LENGTH, torch.float64))
    np.testing.assert_allclose(wide.numpy(), exact, rtol=0, atol=1e-12)
    narrow = apply_batch(torch.from_numpy(x), AugmentBatch.from_draws(draws, LENGTH))
    assert narrow.dtype == torch.float32 and narrow.shape == x.shape
    assert _relative_error(narrow.numpy(), cpu) < 1e-5
    if kind == "none":
        assert np.array_equal(narrow.numpy(), x)
    else:
        assert _relative_error(cpu, x) > 1e-3  # the comparison is not trivial


def test_draw_makes_the_draws_of_the_cpu_augmenter(aug_cfg: AugmentConfig) -> None:
    """``draw`` takes the same random numbers as ``__call__``: a mixed batch (all six types, one example left
    unaugmented) applied at once gives what the CPU augmenter gives example by example."""
    aug = WaveAugmenter.from_config(aug_cfg)
    x = _clean(25, random_seed=2)
    draws: list[DrawnAugment | None] = [aug.draw(LENGTH, np.random.default_rng(s)) for s in range(24)] + [None]
    assert {d.type for d in draws[:-1]} == set(AUG_TYPES)
    for s in range(24):
        assert np.array_equal(apply_drawn(x[s], draws[s]).astype(np.float32), aug(x[s], np.random.default_rng(s)))
    cpu = np.stack([aug(x[s], np.random.default_rng(s)) for s in range(24)] + [x[24]])
    batch = AugmentBatch.from_draws(draws, LENGTH)
    assert batch.types[-1] == "none" and len(batch.layers) == 2  # television: babble, then music
    assert _relative_error(apply_batch(torch.from_numpy(x), batch).numpy(), cpu) < 1e-5
    with pytest.raises(ValueError, match=r"the chunks have shape \(24, 8240\).*\(25, 8240\)"):
        apply_batch(torch.from_numpy(x[:24]), batch)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_batched_apply_on_cuda_equals_the_cpu_path(aug_cfg: AugmentConfig) -> None:
    """The trainer's route on a GPU: pinned batch, moved, augmented and turned into fbank there."""
    aug = WaveAugmenter.from_config(aug_cfg)
    x = _clean(24, random_seed=3)
    draws = [aug.draw(LENGTH, np.random.default_rng(s)) for s in range(24)]
    cpu = np.stack([aug(x[s], np.random.default_rng(s)) for s in range(24)])
    batch = AugmentBatch.from_draws(draws, LENGTH).pin_memory()
    labels = torch.arange(24)
    wave = apply_batch(torch.from_numpy(x).cuda(), batch.to("cuda"))
    assert wave.device.type == "cuda" and _relative_error(wave.cpu().numpy(), cpu) < 1e-5
    feats, got = batch_to_device((torch.from_numpy(x).pin_memory(), labels, batch), torch.device("cuda"), FBANK)
    expected = np.stack([compute_fbank(row, FBANK) for row in cpu])
    assert feats.device.type == "cuda" and got.device.type == "cuda"
    assert np.abs(feats.cpu().numpy() - expected).max() < 1e-2


def test_added_noise_has_the_drawn_snr() -> None:
    """The scale by hand (the seed's levels), and the SNR measured on the result, for one noise and for babble
    (every talker against the clean signal)."""
    rng = np.random.default_rng(5)
    x = 3.0 * _clean(2).astype(np.float64)  # loud (-4 dB and above): the 1e-4 floor of the levels barely counts
    noise = 0.5 * rng.standard_normal((1, LENGTH))
    talkers = 0.2 * rng.standard_normal((3, LENGTH))
    draws = [DrawnAugment("noise", (AddDraw(noise, np.array([7.5])),)),
             DrawnAugment("babble", (AddDraw(talkers, np.array([13.0, 16.0, 19.5])),))]
    out = apply_batch(torch.from_numpy(x), AugmentBatch.from_draws(draws, LENGTH, torch.float64)).numpy()
    clean_db = 10 * np.log10(np.mean(x[0] ** 2) + 1e-4)
    noise_db = 10 * np.log10(np.mean(noise[0] ** 2) + 1e-4)
    gain = np.sqrt(10 ** ((clean_db - noise_db - 7.5) / 10))
    np.testing.assert_allclose(out[0] - x[0], gain * noise[0], rtol=0, atol=1e-12)
    added_db = 10 * np.log10(np.mean((out[0] - x[0]) ** 2) + 1e-4)
    assert clean_db - added_db == pytest.approx(7.5, abs=0.05)  # the 1e-4 floor: exact for loud signals only
    babble_db = 10 * np.log10(np.mean(x[1] ** 2) + 1e-4)
    expected = x[1].copy()
    for talker, snr in zip(talkers, (13.0, 16.0, 19.5)):
        scaled = np.sqrt(10 ** ((babble_db - 10 * np.log10(np.mean(talker ** 2) + 1e-4) - snr) / 10)) * talker
        assert babble_db - 10 * np.log10(np.mean(scaled ** 2) + 1e-4) == pytest.approx(snr, abs=0.05)
        expected += scaled
    np.testing.assert_allclose(out[1], expected, rtol=0, atol=1e-12)
    assert row_levels_db(torch.zeros(1, 10)).item() == pytest.approx(-40.0)


def test_fft_convolution_equals_numpy_and_scipy() -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 1000))
    rirs = [np.exp(-np.arange(n) / 50.0) * rng.standard_normal(n) for n in (1, 37, 400)]
    rirs[1][0] = 1.0
    padded = np.zeros((3, 400))
    for i, rir in enumerate(rirs):
        padded[i, : len(rir)] = rir
    full = fft_convolve(torch.from_numpy(x), torch.from_numpy(padded)).numpy()
    assert full.shape == (3, 1399)
    for i, rir in enumerate(rirs):
        np.testing.assert_allclose(full[i, : 1000 + len(rir) - 1], np.convolve(x[i], rir), rtol=0, atol=1e-10)
        np.testing.assert_allclose(full[i, 1000 + len(rir) - 1:], 0.0, atol=1e-10)  # the zero padding adds nothing
    wet = reverberate_batch(torch.from_numpy(x), torch.from_numpy(padded)).numpy()
    for i, rir in enumerate(rirs):
        expected = fftconvolve(x[i], rir / np.sqrt(np.sum(rir ** 2)))[:1000]
        np.testing.assert_allclose(wet[i], expected, rtol=0, atol=1e-10)
    known = np.zeros(8)  # a delay of 3 samples at half amplitude, and an echo: by hand
    known[3], known[6] = 0.5, 0.25
    got = fft_convolve(torch.arange(1.0, 6.0, dtype=torch.float64)[None], torch.from_numpy(known)[None])
    np.testing.assert_allclose(got[0, :12].numpy(), [0, 0, 0, 0.5, 1, 1.5, 2.25, 3, 0.75, 1, 1.25, 0], atol=1e-12)
    float32 = fft_convolve(torch.from_numpy(x).float(), torch.from_numpy(padded).float()).numpy()
    assert np.abs(float32 - full).max() < 1e-4 * np.abs(full).max()
    assert [fast_fft_length(n) for n in (1, 7, 17, 1399, 48239)] == [1, 8, 18, 1440, 48600]


def test_draws_name_a_silent_rir(aug_cfg: AugmentConfig, tmp_path: Path) -> None:
    _source_dir(tmp_path / "bad", "rirs", {"silent": np.zeros(100)})
    aug = WaveAugmenter.from_config(AugmentConfig(rir_dir=str(tmp_path / "bad" / "rirs")), types=["reverb"])
    with pytest.raises(DataError, match=r"silent.wav: a RIR must have finite, non-zero energy"):
        aug.draw(LENGTH, np.random.default_rng(0))
    bad = DrawnAugment("noise", (AddDraw(np.zeros((1, 100)), np.array([5.0])),))
    with pytest.raises(ValueError, match=r"example 0, step 0: 1 SNRs and noises of shape \(1, 100\)"):
        AugmentBatch.from_draws([bad], LENGTH)
    assert isinstance(WaveAugmenter.from_config(aug_cfg, types=["reverb"]).draw(LENGTH, np.random.default_rng(1))
                      .steps[0], ReverbDraw)


def test_draw_only_loader_batches_give_the_cpu_examples_and_features(aug_cfg: AugmentConfig, tmp_path: Path) -> None:
    data = load_training_set(make_tone_data_dir(tmp_path, speakers=2, utts=3), "waveform")
    aug = WaveAugmenter.from_config(aug_cfg)
    items = [(i % 6, 100 + i) for i in range(12)]
    plain = ChunkDataset(data, 50, aug, fbank_options=FBANK)
    drawn = ChunkDataset(data, 50, aug, draw_only=True)
    x, labels, batch = collate_drawn([drawn[item] for item in items])
    assert x.shape == (12, LENGTH) and labels.dtype == torch.int64 and isinstance(batch, AugmentBatch)
    feats, got_labels = batch_to_device((x, labels, batch), torch.device("cpu"), FBANK)
    expected = torch.stack([plain[item][0] for item in items])
    assert feats.shape == expected.shape == (12, 50, 80)
    assert torch.equal(got_labels, torch.tensor([plain[item][1] for item in items]))
    assert (feats - expected).abs().max() < 1e-3  # log-mel of float32-rounded samples
    wave = apply_batch(x, batch)
    assert torch.equal(compute_fbank_batch(wave, FBANK),
                       torch.stack([torch.from_numpy(compute_fbank(row.numpy(), FBANK)) for row in wave]))
    with pytest.raises(ValueError, match="no fbank options"):
        ChunkDataset(data, 50, aug, fbank_options=FBANK, draw_only=True)
    with pytest.raises(ValueError, match="needs a WaveAugmenter"):
        ChunkDataset(data, 50, lambda chunk, rng: chunk, draw_only=True)


def test_on_device_is_a_boolean_config_key_safe_to_change_on_resume(tmp_path: Path) -> None:
    assert config_from_dict({}).train.augment.on_device is False
    with pytest.raises(ConfigError, match=r"train.augment.on_device: expected bool"):
        config_from_dict({"train": {"augment": {"on_device": "yes"}}})
    data_dir = make_tone_data_dir(tmp_path, speakers=2, utts=2)
    params = [training_params(config_from_dict({"train": {"augment": {"on_device": flag}}}), data_dir)
              for flag in (False, True)]
    assert params[0] == params[1]


def test_training_with_augmentation_on_the_device(aug_cfg: AugmentConfig, tmp_path: Path, restore_logging) -> None:
    """A short run (fbank on the fly) with on_device true trains on the CPU, and its losses are those of the
    same run augmented in the workers (float rounding apart)."""
    data_dir = make_tone_data_dir(tmp_path, speakers=3, utts=2)
    losses = {}
    for on_device in (False, True):
        augment = {**aug_cfg.__dict__, "on_device": on_device}
        config = config_from_dict({"model": {"channels": 16, "embed_dim": 8},
                                   "train": {"epochs": 2, "batch_size": 6, "lr": 0.01, "chunk_frames": 30,
                                             "num_workers": 0, "random_seed": 3, "on_the_fly_features": True,
                                             # fp32: bf16 (auto on AMX CPUs) would magnify the float
                                             # rounding between the two paths past the tolerance
                                             "precision": "fp32", "augment": augment}})
        exp = tmp_path / f"exp_{on_device}"
        train(config, data_dir, exp, device="cpu", fbank_options=FBANK)
        rows = (exp / "log" / "history.tsv").read_text().splitlines()[1:]
        losses[on_device] = [float(row.split("\t")[1]) for row in rows]
        assert (exp / "model.pt").is_file()
    assert len(losses[True]) == 2 and all(np.isfinite(losses[True]))
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-3)
    assert "augmentation and fbank on cpu" in (tmp_path / "exp_True" / "log" / "train.log").read_text()


def test_shard_loader_with_draws_gives_the_examples_augmented_in_the_workers(aug_cfg: AugmentConfig,
                                                                             tmp_path: Path) -> None:
    """Shards and augmentation on the device combine: the shard loader collates the draws, and applying them
    gives the examples that the shard loader augmenting in its workers gives."""
    data_dir = make_tone_data_dir(tmp_path, speakers=2, utts=4)
    data = load_training_set(data_dir, "waveform")
    shards = load_shard_set(make_shards(data_dir, tmp_path / "shards", utts_per_shard=3, progress=False), data)
    aug = WaveAugmenter.from_config(aug_cfg)

    def epoch_batches(chunks: ChunkDataset, collate) -> list:
        plan = EpochBatches(len(chunks), 4, 5)
        dataset = ShardDataset(chunks, shards, plan, 0, buffer_size=3)
        dataset.set_epoch(1)
        return list(torch.utils.data.DataLoader(dataset, batch_size=plan.micro, collate_fn=collate))

    plain = epoch_batches(ChunkDataset(data, 50, aug), None)
    drawn = epoch_batches(ChunkDataset(data, 50, aug, draw_only=True), collate_drawn)
    assert len(plain) == len(drawn) == 2
    for (x, labels), batch in zip(plain, drawn):
        wave, got_labels = batch_to_device(batch, torch.device("cpu"))
        assert torch.equal(got_labels, labels)
        assert _relative_error(wave.numpy(), x.numpy()) < 1e-5
