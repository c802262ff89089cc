#!/usr/bin/env python3
"""Profiles behind the analysis in bench/RESULTS.md (where the time of a missed target goes).

    python bench/profile_stages.py train --channels 1024             # torch.profiler: ours and the baseline
    python bench/profile_stages.py train --channels 1024 --bf16      # ours under CPU bfloat16 autocast too
    python bench/profile_stages.py fbank --threads 1 2               # kaldi.fbank per intra-op thread count
    python bench/profile_stages.py extract --channels 1024           # batched vs one at a time, CPU seconds

CPU seconds (``time.process_time``) are given next to wall seconds: on a machine shared
with other work they measure the work itself, where the wall clock also measures the load.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _clock(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def profile_train(args: argparse.Namespace) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from bench.baseline_ecapa import BaselineSpeakerNet
    from bench.train_bench import _our_step, _ours

    x = torch.randn(args.batch, args.frames * 160 + 240) * 0.1
    labels = torch.randint(0, 5994, (args.batch,))
    base = BaselineSpeakerNet(args.channels, 5994)
    base_opt = torch.optim.Adam(base.parameters(), lr=0.001, weight_decay=2e-5)
    net, opt = _ours(args.channels, "seed", 5994)

    def ours_bf16(step: int) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, _ = net(x, labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    steps = {"baseline": lambda i: base.train_step(base_opt, x, labels),
             "ours": lambda i: _our_step(net, opt, x, labels, i)}
    if args.bf16:
        steps["ours bf16 autocast"] = ours_bf16
    for step in steps.values():
        step(0)  # warm-up
    for name, step in steps.items():
        times = [_clock(lambda: step(i)) for i in range(1, 1 + args.repeats)]
        best_wall, best_cpu = min(t[0] for t in times), min(t[1] for t in times)
        print(f"{name}: best {best_wall:.2f} s wall, {best_cpu:.2f} CPU-s per step of {args.batch} "
              f"({args.batch / best_cpu:.2f} examples per CPU-s)")
    if args.table:
        for name, step in steps.items():
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                step(99)
            print(f"\n== {name}: operators by self CPU time")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.table,
                                            max_name_column_width=36))


def profile_fbank(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    import torchaudio.compliance.kaldi as kaldi

    from bench.common import FBANK_CONF
    from pyfunc.features.kaldi_fbank import read_kaldi_conf

    options = read_kaldi_conf(FBANK_CONF)
    rng = np.random.default_rng(0)
    waves = [torch.from_numpy(rng.standard_normal(int(rng.uniform(3, 15) * 16000)).astype(np.float32) * 3000)
             for _ in range(args.utts)]
    seconds = sum(w.numel() for w in waves) / 16000
    for threads in args.threads:
        torch.set_num_threads(threads)
        wall, cpu = _clock(lambda: [kaldi.fbank(w.unsqueeze(0), **options) for w in waves])
        print(f"kaldi.fbank, {threads} thread(s): {seconds / wall:.0f} s audio per wall s, "
              f"{seconds / cpu:.0f} per CPU-s ({len(waves)} utterances, {seconds:.0f} s)")


def profile_extract(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from bench.data import voice_like
    from pyfunc.config import ModelConfig
    from pyfunc.inference.batching import embed_batch, length_batches, resolve_batch_frames
    from pyfunc.models.model_dir import build_encoder

    torch.manual_seed(0)
    model = build_encoder(ModelConfig(frontend="seed", channels=args.channels)).eval()
    rng = np.random.default_rng(4)
    waves = [voice_like(float(rng.uniform(1, 20)), rng) for _ in range(args.utts)]
    frames = [1 + len(w) // 160 for w in waves]
    batches = length_batches(frames, resolve_batch_frames(args.batch_frames, model))

    def single() -> None:
        with torch.no_grad():
            for w in waves:
                model(torch.from_numpy(w).unsqueeze(0))

    def batched() -> None:
        for batch in batches:
            embed_batch(model, [waves[i] for i in batch])

    padded = sum(len(b) * max(frames[i] for i in b) for b in batches) / sum(frames)
    print(f"{len(waves)} utterances, {sum(frames) / 100:.0f} s; {len(batches)} batches, padded frames / real "
          f"frames = {padded:.2f}")
    single()  # warm-up
    for name, fn in (("one at a time", single), ("batched (embed_batch)", batched)):
        wall, cpu = _clock(fn)
        print(f"{name}: {wall:.2f} s wall, {cpu:.2f} CPU-s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    train = sub.add_parser("train")
    train.add_argument("--channels", type=int, default=512)
    train.add_argument("--batch", type=int, default=32)
    train.add_argument("--frames", type=int, default=200)
    train.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    train.add_argument("--repeats", type=int, default=2)
    train.add_argument("--bf16", action="store_true", help="also time ours under CPU bfloat16 autocast")
    train.add_argument("--table", type=int, default=12, help="operators to list per profile (0: no profile)")
    fbank = sub.add_parser("fbank")
    fbank.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    fbank.add_argument("--utts", type=int, default=40)
    extract = sub.add_parser("extract")
    extract.add_argument("--channels", type=int, default=1024)
    extract.add_argument("--threads", type=int, default=0)
    extract.add_argument("--utts", type=int, default=16)
    extract.add_argument("--batch-frames", type=int, default=0, help="0: automatic, as stage 3")
    args = parser.parse_args(argv)
    if getattr(args, "threads", 0) and args.what != "fbank":
        import torch

        torch.set_num_threads(args.threads)
    {"train": profile_train, "fbank": profile_fbank, "extract": profile_extract}[args.what](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
