#!/usr/bin/env python3
"""GPU benchmark of the training step, the whole input pipeline and extraction (under 5 minutes on one GPU).

    python bench/gpu.py                 # on a CUDA device; without one every figure prints "not measured"
    python bench/gpu.py --cpu-smoke     # the same code paths on the CPU at tiny sizes (tests/test_gpu_bench.py)
    python bench/gpu.py --json out.json

Rows, each with its ratio to a baseline measured in the same run:
  - the training step at C=1024, global batch 400 of 2 s chunks: the seed-style step of
    bench/baseline_ecapa.py (fp32, the baseline), ours in fp32, bf16 (autocast) and bf16 + torch.compile;
  - the whole pipeline from wav (DataLoader workers reading, cropping and augmenting synthetic data written
    to a temporary directory, then our bf16 step), with the augmentation in the workers and on the device
    (train.augment.on_device), and from tar shards with the augmentation on the device, against the step alone;
  - extraction utterances/s, batched (extract_embeddings) against one utterance at a time;
  - SpeechBrain's ECAPA-TDNN beside ours (bench/peer_speechbrain.py; skipped without bench/.peers);
  - the peak GPU memory of each row.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.baseline_ecapa import BaselineSpeakerNet  # noqa: E402
from bench.common import alternate_timed  # noqa: E402
from bench.data import make_augment_sources, make_wav_data_dir  # noqa: E402
from bench.peer_speechbrain import compare, speechbrain_missing  # noqa: E402
from pyfunc.config import AugmentConfig, Config, ModelConfig  # noqa: E402
from pyfunc.data.audio import read_audio  # noqa: E402
from pyfunc.data.tables import read_scp  # noqa: E402
from pyfunc.features.augment import WaveAugmenter  # noqa: E402
from pyfunc.models.aam_softmax import AAMSoftmax  # noqa: E402
from pyfunc.models.model_dir import build_encoder, load_model_dir, save_model_dir  # noqa: E402
from pyfunc.pipeline.extract_job import extract_embeddings  # noqa: E402
from pyfunc.training.device_batch import batch_to_device  # noqa: E402
from pyfunc.training.examples import ChunkDataset, EpochBatches, collate_drawn, load_training_set  # noqa: E402
from pyfunc.training.shard_examples import load_shard_set, training_loader  # noqa: E402
from pyfunc.training.shard_writer import make_shards  # noqa: E402
from pyfunc.training.step_speed import autocast, compile_unavailable, configure_backends  # noqa: E402
from pyfunc.training.trainer import SpeakerNet, example_generator  # noqa: E402

SIZES = {
    "gpu": {"channels": 1024, "batch": 400, "frames": 200, "classes": 5994, "warmup": 2, "rounds": 5,
            "compile_warmup": 3, "compile_backend": "inductor", "train_utts": 800, "loader_batches": 10, "workers": 12,
            "extract_utts": 200, "extract_seconds": (1.0, 20.0), "peer_channels": 1024, "peer_batch": 32,
            "peer_frames": 200},
    "cpu-smoke": {"channels": 16, "batch": 4, "frames": 50, "classes": 10, "warmup": 0, "rounds": 1,
                  "compile_warmup": 1, "compile_backend": "eager", "train_utts": 8, "loader_batches": 2, "workers": 0,
                  "extract_utts": 3, "extract_seconds": (1.0, 2.0), "peer_channels": 16, "peer_batch": 4,
                  "peer_frames": 50},
}
ROWS = ("step_baseline", "step_fp32", "step_bf16", "step_bf16_compile", "pipeline_wav_aug_workers",
        "pipeline_wav_aug_device", "pipeline_shards", "extract_single", "extract_batched",
        "peer_train_speechbrain", "peer_train_ours", "peer_extract_speechbrain", "peer_extract_ours")
SEED = 1234


class Rows:
    """The report: one entry per row of ROWS, with its figure, unit, peak GPU memory and ratio."""

    def __init__(self, device: torch.device):
        self.device = device
        self.rows: dict[str, dict] = {}

    def add(self, name: str, what: str, value: float | None, unit: str = "", peak_mb: float | None = None,
            ratio: str = "", note: str = "") -> None:
        self.rows[name] = {"what": what, "value": value, "unit": unit, "peak_gpu_mb": peak_mb, "ratio": ratio,
                           "note": note}

    def table(self) -> str:
        lines = ["| row | what | figure | peak GPU memory (MiB) | vs baseline |", "|---|---|---|---:|---|"]
        for name in ROWS:
            r = self.rows.get(name, {"what": "", "value": None, "unit": "", "peak_gpu_mb": None, "ratio": "",
                                     "note": "not produced"})
            figure = f"{r['value']:.2f} {r['unit']}" if r["value"] is not None else r["note"]
            peak = f"{r['peak_gpu_mb']:.0f}" if r["peak_gpu_mb"] is not None else ""
            lines.append(f"| {name} | {r['what']} | {figure} | {peak} | {r['ratio']} |")
        return "\n".join(lines)


class PeakMemory:
    """Peak GPU memory (MiB) over the calls a wrapped function makes; nothing on the CPU."""

    def __init__(self, device: torch.device):
        self.device, self.mb = device, None

    def wrap(self, fn: Callable[[int], object]) -> Callable[[int], object]:
        def wrapped(i: int) -> object:
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self.device)
            out = fn(i)
            if self.device.type == "cuda":
                self.mb = max(self.mb or 0.0, torch.cuda.max_memory_allocated(self.device) / 2**20)
            return out
        return wrapped


def _sync(device: torch.device) -> Callable[[], None] | None:
    return torch.cuda.synchronize if device.type == "cuda" else None


def _our_net(size: dict, device: torch.device) -> tuple[SpeakerNet, torch.optim.Optimizer]:
    torch.manual_seed(0)
    encoder = build_encoder(ModelConfig(frontend="seed", channels=size["channels"]))
    net = SpeakerNet(encoder, AAMSoftmax(encoder.embed_dim, size["classes"])).to(device).train()
    return net, torch.optim.Adam(net.parameters(), lr=0.001, weight_decay=2e-5)


def _our_step(model: torch.nn.Module, optimizer, precision: str, device: torch.device,
              batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]]) -> Callable[[int], None]:
    """One step as the trainer takes it (autocast of the forward pass, backward, Adam)."""
    def step(i: int) -> None:
        x, labels = batch(i)
        with autocast(precision, device):
            loss, _ = model(x, labels, example_generator(SEED, 1, i, 0))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def training_steps(size: dict, device: torch.device, rows: Rows) -> float:
    """The step rows; returns the bf16 step's examples/s (what the pipeline rows are compared with)."""
    gen = torch.Generator().manual_seed(0)
    samples = size["frames"] * 160 + 240
    x = (torch.randn(size["batch"], samples, generator=gen) * 0.1).to(device)
    labels = torch.randint(0, size["classes"], (size["batch"],), generator=gen).to(device)
    fixed = lambda i: (x, labels)  # noqa: E731
    torch.manual_seed(0)
    base = BaselineSpeakerNet(size["channels"], size["classes"]).to(device).train()
    base_opt = torch.optim.Adam(base.parameters(), lr=0.001, weight_decay=2e-5)
    peaks = {name: PeakMemory(device) for name in ROWS[:4]}
    steps = {"step_baseline": lambda i: base.train_step(base_opt, x, labels, example_generator(SEED, 1, i, 0))}
    for name, precision in (("step_fp32", "fp32"), ("step_bf16", "bf16")):
        net, opt = _our_net(size, device)
        steps[name] = _our_step(net, opt, precision, device, fixed)
    why_not = compile_unavailable(device)
    compile_s = None
    if why_not is None:
        net, opt = _our_net(size, device)
        # the smoke run traces with dynamo but skips inductor's code generation (minutes on a CPU)
        compiled = _our_step(torch.compile(net, backend=size["compile_backend"]), opt, "bf16", device, fixed)
        start = time.perf_counter()
        for i in range(size["compile_warmup"]):  # compiles (forward and backward) before the timed rounds
            compiled(i)
        compile_s = time.perf_counter() - start
        steps["step_bf16_compile"] = compiled
    times = alternate_timed({name: peaks[name].wrap(fn) for name, fn in steps.items()}, size["warmup"],
                            size["rounds"], _sync(device))
    shape = f"C={size['channels']}, batch {size['batch']} x {size['frames'] / 100:g} s chunks, waveform in"
    labels_of = {"step_baseline": f"baseline: seed-style step, fp32 ({shape})", "step_fp32": "our step, fp32",
                 "step_bf16": "our step, bf16 autocast", "step_bf16_compile": "our step, bf16 + torch.compile"}
    for name, t in times.items():
        ratio = "" if name == "step_baseline" else \
            f"{statistics.median(b / o for b, o in zip(times['step_baseline'], t)):.2f}x (median of {len(t)})"
        note = (f"compiling took {compile_s:.0f} s, backend {size['compile_backend']}"
                if name == "step_bf16_compile" else "")
        rows.add(name, labels_of[name] + (f"; {note}" if note else ""), size["batch"] / min(t), "ex/s",
                 peaks[name].mb, ratio)
    if why_not is not None:
        rows.add("step_bf16_compile", labels_of["step_bf16_compile"], None, note=f"skipped: {why_not}")
    return size["batch"] / min(times["step_bf16"])


def pipeline(size: dict, device: torch.device, work: Path, step_rate: float, rows: Rows) -> None:
    """The whole pipeline from wav: loader workers read, crop and augment; then our bf16 step."""
    data_dir = make_wav_data_dir(work, "train", None, (3.0, 8.0), random_seed=2, num_utts=size["train_utts"])
    musan, rir = make_augment_sources(work / "augment", random_seed=3, scale=1.0 if size["train_utts"] > 16 else 0.2)
    augmenter = WaveAugmenter.from_config(AugmentConfig(enabled=True, musan_dir=musan, rir_dir=rir))
    data = load_training_set(data_dir, "waveform")
    shard_list = make_shards(data_dir, work / "shards", utts_per_shard=max(2, size["train_utts"] // 8),
                             progress=False)
    cases = (("pipeline_wav_aug_workers", False, False), ("pipeline_wav_aug_device", True, False),
             ("pipeline_shards", True, True))
    for name, on_device, from_shards in cases:
        net, opt = _our_net(size, device)
        sampler = EpochBatches(len(data.utts), size["batch"], SEED)
        dataset = ChunkDataset(data, size["frames"], augmenter, draw_only=on_device)
        shards = load_shard_set(shard_list, data) if from_shards else None
        plan, loader = training_loader(dataset, sampler, shards, size["workers"], device.type == "cuda",
                                       collate_drawn if on_device else None)
        peak = PeakMemory(device)
        got, epoch, start = 0, 0, 0.0
        wanted = size["loader_batches"] + 1  # the first batch (workers starting, cuDNN tuning) is not timed
        while got < wanted:
            epoch += 1
            plan.set_epoch(epoch)
            for batch in loader:
                peak.wrap(_our_step(net, opt, "bf16", device, lambda i, b=batch: batch_to_device(b, device)))(got)
                got += 1
                if got == 1:
                    sync = _sync(device)
                    if sync:
                        sync()
                    start = time.perf_counter()
                if got == wanted:
                    break
        sync = _sync(device)
        if sync:
            sync()
        rate = size["loader_batches"] * size["batch"] / (time.perf_counter() - start)
        where = "on the device (train.augment.on_device)" if on_device else "in the workers"
        source = "wav tar shards (steps/make_shards.py)" if from_shards else "wav"
        rows.add(name, f"{source} -> loader ({size['workers']} workers) -> augmentation {where} -> bf16 step",
                 rate, "ex/s", peak.mb, f"{rate / step_rate:.2f} of the bf16 step alone")


def extraction(size: dict, device: torch.device, work: Path, rows: Rows) -> None:
    """Extraction utterances/s: extract_embeddings (batched) against one utterance at a time."""
    data_dir = make_wav_data_dir(work, "extract", None, size["extract_seconds"], random_seed=4,
                                 num_utts=size["extract_utts"])
    config = Config()
    config.model.frontend, config.model.channels = "seed", size["channels"]
    torch.manual_seed(5)
    encoder = build_encoder(config.model)
    save_model_dir(work / "model", config, encoder, AAMSoftmax(config.model.embed_dim, 10))
    peak_single, peak_batched = PeakMemory(device), PeakMemory(device)

    def single(_: int) -> None:
        model, _ = load_model_dir(work / "model", device)
        with torch.no_grad():
            for path in read_scp(data_dir / "wav.scp").values():
                model(torch.from_numpy(read_audio(path)).unsqueeze(0).to(device))

    def batched(i: int) -> None:
        shutil.rmtree(work / f"emb{i}", ignore_errors=True)
        extract_embeddings(work / "model", data_dir, work / f"emb{i}", protocol="full", device=device)

    times = alternate_timed({"single": peak_single.wrap(single), "batched": peak_batched.wrap(batched)}, 1, 2,
                            _sync(device))
    utts = size["extract_utts"]
    what = f"{utts} utterances of {size['extract_seconds'][0]:g}-{size['extract_seconds'][1]:g} s, C={size['channels']}"
    rows.add("extract_single", f"baseline: one utterance at a time ({what})", utts / min(times["single"]), "utt/s",
             peak_single.mb)
    rows.add("extract_batched", "extract_embeddings (length-sorted padded batches)", utts / min(times["batched"]),
             "utt/s", peak_batched.mb, f"{min(times['single']) / min(times['batched']):.2f}x")


def peers(size: dict, device: torch.device, rows: Rows) -> None:
    """SpeechBrain's ECAPA-TDNN beside ours (skipped without bench/.peers)."""
    missing = speechbrain_missing()
    names = ROWS[-4:]
    if missing:
        for name in names:
            rows.add(name, "SpeechBrain's ECAPA-TDNN beside ours", None, note=f"skipped: {missing}")
        return
    fig = compare(size["peer_channels"], size["peer_batch"], size["peer_frames"], size["classes"], device,
                  size["warmup"], size["rounds"])
    shape = f"C={fig['channels']}, batch {fig['batch']} x {fig['frames']} frames of 80-dim fbank"
    for kind, unit, short in (("train", "examples_per_s", "ex/s"), ("extract", "utts_per_s", "utt/s")):
        rows.add(f"peer_{kind}_speechbrain", f"baseline: SpeechBrain {kind} ({shape})",
                 fig[kind]["speechbrain"][unit], short)
        rows.add(f"peer_{kind}_ours", f"ours {kind}, same input", fig[kind]["ours"][unit], short,
                 ratio=f"{fig[kind]['ratio']:.2f}x (median)")


def not_measured() -> str:
    """The report without a CUDA device: every GPU figure is 'not measured'."""
    rows = Rows(torch.device("cpu"))
    for name in ROWS:
        rows.add(name, "", None, note="not measured (no CUDA device)")
    return rows.table()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU: checks every row runs")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    if not args.cpu_smoke and not torch.cuda.is_available():
        print("bench/gpu.py: no CUDA device; every GPU figure is not measured\n")
        print(not_measured())
        return 0
    device = torch.device("cpu") if args.cpu_smoke else torch.device("cuda")
    size = SIZES["cpu-smoke" if args.cpu_smoke else "gpu"]
    configure_backends(device)
    rows = Rows(device)
    name = "CPU smoke run, tiny sizes: not GPU figures" if args.cpu_smoke else torch.cuda.get_device_name(device)
    print(f"bench/gpu.py: {name}, torch {torch.__version__}", flush=True)
    begin = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="pyfunc-gpu-bench-"))
    try:
        step_rate = training_steps(size, device, rows)
        print(f"  steps done ({time.perf_counter() - begin:.0f} s)", flush=True)
        pipeline(size, device, work, step_rate, rows)
        print(f"  pipeline done ({time.perf_counter() - begin:.0f} s)", flush=True)
        extraction(size, device, work, rows)
        peers(size, device, rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{rows.table()}\n\nbench/gpu.py: {time.perf_counter() - begin:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": str(device), "rows": rows.rows}, indent=1,
                                              default=lambda v: float(np.asarray(v))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
