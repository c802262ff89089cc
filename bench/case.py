#!/usr/bin/env python3
"""Run one benchmark case in this process and print its result as one JSON line (used by bench/run.py).

    python bench/case.py CASE --size full|quick|tiny --work DIR [--kwargs JSON]
    python bench/case.py --batch '[["CASE", {kwargs}], ...]' --size tiny --work DIR

Each case runs in its own process so that its peak memory is its own; ``--batch``
runs several in one process (smoke runs: the peak memory is then cumulative).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULT_TAG, SIZES, peak_rss_mb  # noqa: E402

CASES = {
    "prepare": "bench.prepare:prepare",
    "fbank_bare": "bench.features_bench:bare_loop",
    "fbank_stage": "bench.features_bench:stage",
    "train_step": "bench.train_bench:step_speed",
    "loss_curve": "bench.train_bench:loss_curve",
    "loader": "bench.train_bench:loader_speed",
    "storage_prepare": "bench.storage_bench:storage_prepare",
    "loader_m4a": "bench.storage_bench:loader_m4a",
    "loader_feats": "bench.storage_bench:loader_feats",
    "shards_prepare": "bench.shards_bench:shards_prepare",
    "loader_shards": "bench.shards_bench:loader_shards",
    "extract_batched": "bench.extract_bench:batched",
    "extract_single": "bench.extract_bench:one_at_a_time",
    "metrics": "bench.scoring_bench:metrics",
    "asnorm": "bench.scoring_bench:asnorm",
    "peer_speechbrain": "bench.peer_speechbrain:peer_case",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", nargs="?", choices=sorted(CASES))
    parser.add_argument("--size", choices=sorted(SIZES), required=True)
    parser.add_argument("--work", required=True, help="the run's work directory (inputs from the prepare case)")
    parser.add_argument("--kwargs", default="{}", help="JSON object of keyword arguments for the case")
    parser.add_argument("--batch", default=None, help="JSON list of [case, kwargs] pairs to run in this process")
    args = parser.parse_args(argv)
    if (args.case is None) == (args.batch is None):
        parser.error("give either CASE or --batch")
    todo = json.loads(args.batch) if args.batch else [[args.case, json.loads(args.kwargs)]]
    for case, kwargs in todo:
        module, name = CASES[case].split(":")
        function = getattr(importlib.import_module(module), name)
        start = time.perf_counter()
        result = function(SIZES[args.size], Path(args.work), **kwargs)
        result["wall_s"] = time.perf_counter() - start
        result["peak_rss_mb"] = peak_rss_mb()
        print(RESULT_TAG + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
