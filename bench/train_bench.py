"""Stage 2: our training step and data loader against the straightforward ECAPA-TDNN of baseline_ecapa.py."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from bench.common import FBANK_CONF, peak_rss_since_reset_mb, reset_peak_rss, summarise_times
from bench.prepare import load_prepared

SEED = 1234


def _wave_batch(size: dict, work: Path, first: int = 0):
    """A batch of ``train_batch`` waveform chunks of ``train_frames`` frames from the training data dir,
    with random labels among ``train_classes``."""
    import torch

    from pyfunc.training.examples import ChunkDataset, load_training_set

    data = load_training_set(load_prepared(work)["train_data"], "waveform")
    dataset = ChunkDataset(data, size["train_frames"])
    batch = size["train_batch"]
    x = torch.stack([dataset[((first + i) % len(dataset), SEED + first + i)][0] for i in range(batch)])
    labels = torch.from_numpy(np.random.default_rng(first).integers(0, size["train_classes"], batch))
    return x, labels


def _fbank_of(x):
    """Kaldi fbank features (batch, frames, 80) of a batch of waveform chunks, as stage 1 stores them."""
    import torch

    from pyfunc.features.kaldi_fbank import compute_fbank, read_kaldi_conf

    options = read_kaldi_conf(FBANK_CONF)
    return torch.stack([torch.from_numpy(compute_fbank(row.numpy(), options)) for row in x])


def _ours(channels: int, frontend: str, num_classes: int):
    import torch

    from pyfunc.config import ModelConfig
    from pyfunc.models.aam_softmax import AAMSoftmax
    from pyfunc.models.model_dir import build_encoder
    from pyfunc.training.trainer import SpeakerNet

    torch.manual_seed(0)
    encoder = build_encoder(ModelConfig(frontend=frontend, channels=channels))
    net = SpeakerNet(encoder, AAMSoftmax(encoder.embed_dim, num_classes))
    return net, torch.optim.Adam(net.parameters(), lr=0.001, weight_decay=2e-5)


def _our_step(net, optimizer, x, labels, step: int, precision: str = "fp32") -> float:
    """One step as pyfunc.train's loop does it: forward (under ``precision``'s autocast) with the step's
    SpecAugment stream, backward, Adam."""
    import torch

    from pyfunc.training.step_speed import autocast
    from pyfunc.training.trainer import example_generator

    with autocast(precision, torch.device("cpu")):
        loss, _ = net(x, labels, example_generator(SEED, 1, step, 0))
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def step_speed(size: dict, work: Path, channels: int) -> dict:
    """Examples/s of training steps of the baseline ('base') and ours with the seed front end ('seed') and
    with fbank features ('fbank'; under bf16 autocast 'fbank_bf16'), at ``channels``. They take their steps
    in turn, so that load from other processes hits them alike; each step's wall time and process CPU time
    are recorded."""
    import torch

    from bench.baseline_ecapa import BaselineSpeakerNet
    from pyfunc.training.step_speed import cpu_has_native_bf16
    from pyfunc.training.trainer import example_generator

    x, labels = _wave_batch(size, work)
    feats = _fbank_of(x)
    torch.manual_seed(0)
    base = BaselineSpeakerNet(channels, size["train_classes"])
    base_optimizer = torch.optim.Adam(base.parameters(), lr=0.001, weight_decay=2e-5)
    models = {"base": (base, lambda i: base.train_step(base_optimizer, x, labels, example_generator(SEED, 1, i, 0)))}
    for name, frontend, inputs, precision in (("seed", "seed", x, "fp32"), ("fbank", "fbank", feats, "fp32"),
                                              ("fbank_bf16", "fbank", feats, "bf16")):
        net, optimizer = _ours(channels, frontend, size["train_classes"])
        models[name] = (net, lambda i, net=net, optimizer=optimizer, inputs=inputs, precision=precision:
                        _our_step(net, optimizer, inputs, labels, i, precision))
    wall: dict[str, list[float]] = {name: [] for name in models}
    cpu: dict[str, list[float]] = {name: [] for name in models}
    peak: dict[str, float] = {name: 0.0 for name in models}
    for net, _ in models.values():
        net.train()
    steps = size.get("train_steps_by_channels", {}).get(channels, size["train_steps"])
    for i in range(size["train_warmup"] + steps):
        for name, (_, step) in models.items():
            reset_peak_rss()
            start, start_cpu = time.perf_counter(), time.process_time()
            step(i)
            if i >= size["train_warmup"]:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
            peak[name] = max(peak[name], peak_rss_since_reset_mb())
    batch = size["train_batch"]
    figures = {"threads": torch.get_num_threads(), "batch": batch, "native_bf16": cpu_has_native_bf16()}
    for name in models:
        summary = summarise_times(wall[name])
        figures[name] = {**summary, "examples_per_s": batch / summary["best_s"],
                         "examples_per_s_median": batch / summary["median_s"],
                         "examples_per_cpu_s": batch / min(cpu[name]), "peak_rss_mb": peak[name],
                         # speed-up over the baseline step taken just before, round by round (median):
                         # the least sensitive to load that comes and goes
                         "speedup_vs_base": statistics.median(b / t for b, t in zip(wall["base"], wall[name])),
                         "speedup_vs_base_cpu": statistics.median(b / t for b, t in zip(cpu["base"], cpu[name]))}
    return {"figures": figures}


def loss_curve(size: dict, work: Path) -> dict:
    """Ours (seed front end) and the baseline from the same weights on the same batches: their losses."""
    import torch

    from bench.baseline_ecapa import BaselineSpeakerNet, load_from_pyfunc
    from pyfunc.training.trainer import example_generator

    channels, classes = size["curve_channels"], size["train_classes"]
    net, optimizer = _ours(channels, "seed", classes)
    base = BaselineSpeakerNet(channels, classes)
    load_from_pyfunc(base, net.encoder.state_dict(), net.head.state_dict())
    base_optimizer = torch.optim.Adam(base.parameters(), lr=0.001, weight_decay=2e-5)
    net.train()
    base.train()
    ours, baseline = [], []
    for step in range(size["curve_steps"]):
        x, labels = _wave_batch(size, work, first=step * size["train_batch"])
        ours.append(_our_step(net, optimizer, x, labels, step))
        baseline.append(base.train_step(base_optimizer, x, labels, example_generator(SEED, 1, step, 0)))
    rel = [abs(a - b) / max(abs(b), 1e-12) for a, b in zip(ours, baseline)]
    return {"figures": {"channels": channels, "steps": len(ours), "loss_ours": ours, "loss_baseline": baseline,
                        "max_rel_diff": max(rel)}}


def loader_speed(size: dict, work: Path, mode: str, workers: int) -> dict:
    """Examples/s of the training DataLoader alone (ChunkDataset + EpochBatches); ``mode`` 'waveform_aug'
    (waveform chunks with the seed's six-way augmentation applied in the workers), 'waveform_aug_device'
    (the workers read, crop and draw; each batch is then augmented by ``apply_batch`` on CPU tensors in
    this process, as the trainer does on its device with ``train.augment.on_device``) or 'fbank'
    (feature chunks from the ark)."""
    from pyfunc.config import AugmentConfig
    from pyfunc.features.augment import WaveAugmenter
    from pyfunc.training.examples import load_training_set

    prepared = load_prepared(work)
    data = load_training_set(prepared["train_data"], "features" if mode == "fbank" else "waveform")
    augmenter = None
    if mode in ("waveform_aug", "waveform_aug_device"):
        augmenter = WaveAugmenter.from_config(AugmentConfig(enabled=True, musan_dir=prepared["musan_dir"],
                                                            rir_dir=prepared["rir_dir"]))
    return {"figures": time_loader(data, size, augmenter, workers, draw_only=mode == "waveform_aug_device")}


def time_loader(data, size: dict, augmenter, workers: int, draw_only: bool = False) -> dict:
    """Time ``loader_batches`` batches of the training DataLoader on the TrainingSet ``data`` (the first
    batch, with the workers' start-up, is not timed). With ``draw_only`` the workers only draw the
    augmentation and each batch is augmented here by ``apply_batch`` (CPU tensors, float32): its time is
    part of ``examples_per_s`` and also given alone (``apply_s``; ``loader_examples_per_s`` without it)."""
    import torch

    from pyfunc.features.batch_augment import apply_batch
    from pyfunc.training.examples import ChunkDataset, EpochBatches, collate_drawn

    batch = size["train_batch"]
    sampler = EpochBatches(len(data.utts), batch, SEED)
    dataset = ChunkDataset(data, size["train_frames"], augmenter, draw_only=draw_only)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=workers,
                                         persistent_workers=workers > 0,
                                         collate_fn=collate_drawn if draw_only else None)
    wanted = size["loader_batches"] + 1  # the first batch (worker start-up) is not timed
    got, epoch, start, apply_s = 0, 0, 0.0, 0.0
    while got < wanted:
        epoch += 1
        sampler.set_epoch(epoch)
        for items in loader:
            got += 1
            if got == 1:
                start, apply_s = time.perf_counter(), 0.0
            if draw_only:
                began = time.perf_counter()
                x = apply_batch(items[0], items[2])
                apply_s += time.perf_counter() - began
            else:
                x = items[0]
            if got == wanted:
                break
    elapsed = time.perf_counter() - start
    examples = size["loader_batches"] * batch
    figures = {"examples_per_s": examples / elapsed, "seconds": elapsed, "workers": workers,
               "batches": size["loader_batches"], "chunk_shape": list(x.shape)}
    if draw_only:
        figures.update(apply_s=apply_s, loader_examples_per_s=examples / max(elapsed - apply_s, 1e-9),
                       apply_examples_per_s=examples / max(apply_s, 1e-9), threads=torch.get_num_threads())
    return figures
