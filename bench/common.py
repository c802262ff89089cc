"""Shared pieces of the benchmarks: run sizes, timers, peak memory, result records."""

from __future__ import annotations

import resource
import statistics
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
FBANK_CONF = REPO / "conf" / "fbank.conf"
RESULT_TAG = "BENCH_RESULT "

# Sizes per mode. "full" is what bench/RESULTS.md records (about 15 minutes on 2 cores);
# "quick" keeps every benchmark with smaller inputs (under 3 minutes); "tiny" only checks
# that every benchmark runs and produces figures (the test suite's smoke run).
SIZES: dict[str, dict] = {
    "full": {
        "fbank_seconds": 900.0, "fbank_utt_seconds": (3.0, 15.0),
        "fbank_big_seconds": 7200.0,  # for the 1-thread cases, so that compute outweighs the stage's fixed cost
        "train_channels": [512, 1024], "train_batch": 32, "train_frames": 200, "train_classes": 5994,
        "train_warmup": 1, "train_steps": 4, "train_steps_by_channels": {1024: 3},
        "curve_channels": 256, "curve_steps": 3,
        "loader_batches": 12, "loader_workers": [0, 2], "train_utts": 128, "train_utt_seconds": (4.0, 10.0),
        "shard_utts": 32,
        "extract_channels": 1024, "extract_utts": 32, "extract_utt_seconds": (1.0, 20.0),
        "metrics_trials": 10_000_000, "metrics_compare_trials": 2_000_000,
        "asnorm_trials": 580_000, "asnorm_utts": 145_000, "asnorm_cohort": 6000, "asnorm_top_n": 300,
        "asnorm_compare_scale": 8,
        "peer_channels": 1024, "peer_batch": 32, "peer_frames": 200, "peer_warmup": 1, "peer_rounds": 3,
    },
    "quick": {
        "fbank_seconds": 300.0, "fbank_utt_seconds": (3.0, 15.0),
        "train_channels": [256], "train_batch": 32, "train_frames": 200, "train_classes": 5994,
        "train_warmup": 1, "train_steps": 1,
        "curve_channels": 64, "curve_steps": 2,
        "loader_batches": 4, "loader_workers": [0], "train_utts": 64, "train_utt_seconds": (4.0, 10.0),
        "shard_utts": 16,
        "extract_channels": 256, "extract_utts": 8, "extract_utt_seconds": (1.0, 20.0),
        "metrics_trials": 1_000_000, "metrics_compare_trials": 1_000_000,
        "asnorm_trials": 58_000, "asnorm_utts": 14_500, "asnorm_cohort": 6000, "asnorm_top_n": 300,
        "asnorm_compare_scale": 1,
        "peer_channels": 1024, "peer_batch": 32, "peer_frames": 200, "peer_warmup": 0, "peer_rounds": 1,
    },
    "tiny": {
        "fbank_seconds": 30.0, "fbank_utt_seconds": (1.0, 4.0), "fbank_stage_cases": ["nj1", "nj2_t1", "fixed"],
        "train_channels": [32], "train_batch": 8, "train_frames": 50, "train_classes": 50,
        "train_warmup": 0, "train_steps": 1,
        "curve_channels": 32, "curve_steps": 2,
        "loader_batches": 2, "loader_workers": [0], "train_utts": 16, "train_utt_seconds": (1.0, 2.0),
        "shard_utts": 5,
        "extract_channels": 32, "extract_utts": 4, "extract_utt_seconds": (1.0, 3.0),
        "metrics_trials": 20_000, "metrics_compare_trials": 20_000,
        "asnorm_trials": 2_000, "asnorm_utts": 500, "asnorm_cohort": 100, "asnorm_top_n": 20,
        "asnorm_compare_scale": 1,
        "peer_channels": 32, "peer_batch": 4, "peer_frames": 50, "peer_warmup": 0, "peer_rounds": 1,
        "one_process_per_group": True,  # saves the start-up of a process per case; peak memory is then cumulative
    },
}


def peak_rss_mb() -> dict[str, float]:
    """Peak resident memory (MiB) of this process and of its largest finished child process."""
    return {"self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0}


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"/proc/self/status has no {field}")


def rss_now_mb() -> float:
    """Resident memory (MiB) of this process now."""
    return _status_mb("VmRSS")


def reset_peak_rss() -> bool:
    """Reset this process's peak-RSS mark (Linux ``clear_refs`` 5); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_since_reset_mb() -> float:
    """Peak resident memory (MiB) since :func:`reset_peak_rss` (or since the start)."""
    return _status_mb("VmHWM")


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """``(seconds, fn())`` by the wall clock."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def summarise_times(times: list[float]) -> dict[str, float]:
    """Best and median of repeated timings (the best is the least disturbed by other load)."""
    return {"best_s": min(times), "median_s": statistics.median(times), "runs": len(times)}


def alternate_timed(steps: dict[str, Callable[[int], object]], warmup: int, rounds: int,
                    sync: Callable[[], None] | None = None) -> dict[str, list[float]]:
    """Wall seconds of each of ``steps`` (called with the round number), taken in turn round after round so
    that load from other processes hits them alike; the ``warmup`` first rounds are not kept. ``sync`` (e.g.
    ``torch.cuda.synchronize``) runs before each clock reading."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(warmup + rounds):
        for name, step in steps.items():
            if sync:
                sync()
            start = time.perf_counter()
            step(i)
            if sync:
                sync()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return times
