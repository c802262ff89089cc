"""Long recordings: peak memory and time of embedding one long recording in one pass against block-wise.

    python bench/long_audio_bench.py                    # a 10-minute recording, conf/ecapa_mini.yaml (C=256)
    python bench/long_audio_bench.py --seconds 120 --max-chunk-seconds 20 --threads 2

Each case runs in a fresh Python process (so that ``ru_maxrss`` is its own peak): it builds the model
(random weights: memory and time do not depend on them) and a synthetic recording (tones and noise), notes
its resident memory, then embeds the samples through :class:`pyfunc.inference.api.SpeakerModel` with
``max_chunk_seconds`` 0 (one pass: the baseline) or the block length (ours). Printed per case: seconds,
peak resident memory and its growth over the memory before embedding; then the ratios and the largest
difference between the two embeddings (float32 rounding).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _max_rss_mb() -> float:
    import resource  # noqa: PLC0415 (POSIX only; the bench runs on Linux)

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def run_case(seconds: float, max_chunk_seconds: float, config_path: str, threads: int, out: str) -> None:
    """One measurement in this process: writes ``out`` (.json figures, .npy embedding)."""
    import numpy as np  # noqa: PLC0415 (the parent process stays free of torch)
    import torch  # noqa: PLC0415

    from pyfunc.config import load_config  # noqa: PLC0415
    from pyfunc.features.kaldi_fbank import read_kaldi_conf  # noqa: PLC0415
    from pyfunc.inference.api import DEFAULT_FBANK_CONF, SpeakerModel  # noqa: PLC0415
    from pyfunc.models.model_dir import build_encoder  # noqa: PLC0415

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = load_config(config_path)
    config.model.frontend = "fbank"
    encoder = build_encoder(config.model)
    model = SpeakerModel(encoder, config, tempfile.gettempdir(), read_kaldi_conf(DEFAULT_FBANK_CONF))
    model.max_chunk_seconds = max_chunk_seconds
    rng = np.random.default_rng(0)
    samples = np.empty(int(seconds * model.sample_rate), dtype=np.float32)
    block = 10 * model.sample_rate  # made 10 s at a time, so that no temporary raises the peak before embedding
    for first in range(0, samples.shape[0], block):
        t = np.arange(first, min(samples.shape[0], first + block)) / model.sample_rate
        samples[first:first + t.shape[0]] = (0.3 * np.sin(2 * np.pi * (150 + 50 * np.sin(2 * np.pi * t / 5)) * t)
                                             + 0.02 * rng.standard_normal(t.shape[0]))
    before = _max_rss_mb()
    start = time.perf_counter()
    emb = model.embed(samples)
    elapsed = time.perf_counter() - start
    peak = _max_rss_mb()
    np.save(out + ".npy", emb)
    Path(out + ".json").write_text(json.dumps({"seconds": elapsed, "peak_mb": peak, "before_mb": before,
                                               "growth_mb": peak - before, "channels": config.model.channels}))


def measure(args: argparse.Namespace, max_chunk_seconds: float, work: Path, name: str) -> dict:
    out = str(work / name)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(args.threads)}
    subprocess.run([sys.executable, __file__, "--case", out, "--seconds", str(args.seconds), "--config", args.config,
                    "--threads", str(args.threads), "--max-chunk-seconds", str(max_chunk_seconds)],
                   check=True, env=env)
    return json.loads(Path(out + ".json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600.0, help="length of the recording [600]")
    parser.add_argument("--max-chunk-seconds", type=float, default=30.0, help="block length of ours [30]")
    parser.add_argument("--config", default=str(REPO / "conf" / "ecapa_mini.yaml"), help="model config")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each case [1]")
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case is not None:
        run_case(args.seconds, args.max_chunk_seconds, args.config, args.threads, args.case)
        return 0
    import numpy as np  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = measure(args, 0.0, work, "one_pass")
        ours = measure(args, args.max_chunk_seconds, work, "block_wise")
        diff = float(np.abs(np.load(work / "one_pass.npy") - np.load(work / "block_wise.npy")).max())
    print(f"long recording: {args.seconds:g} s synthetic, {Path(args.config).name} (C={base['channels']}), fbank, "
          f"{args.threads} thread(s), {_cpu_name()} ({os.cpu_count()} CPUs), {time.strftime('%Y-%m-%d')}")
    for label, fig in (("one pass (baseline)", base), (f"block-wise, {args.max_chunk_seconds:g} s blocks", ours)):
        print(f"  {label:32s} {fig['seconds']:8.2f} s  peak RSS {fig['peak_mb']:8.0f} MB  "
              f"(+{fig['growth_mb']:.0f} MB over {fig['before_mb']:.0f} MB before embedding)")
    print(f"  block-wise / one pass: time x{ours['seconds'] / base['seconds']:.2f}, peak RSS "
          f"x{ours['peak_mb'] / base['peak_mb']:.2f}, growth x{ours['growth_mb'] / max(base['growth_mb'], 1e-9):.3f}")
    print(f"  max |embedding difference| {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
