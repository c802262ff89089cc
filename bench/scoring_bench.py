"""Stages 5-6: EER + minDCF (pyfunc.metrics) and AS-norm (pyfunc.asnorm) against seed-style code."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from bench.common import peak_rss_since_reset_mb, reset_peak_rss, rss_now_mb
from bench.data import make_scores, make_trials

P_TARGETS = (0.01, 0.05)
EMBED_DIM = 192


def metrics(size: dict, work: Path, impl: str, trials: int) -> dict:
    """EER and minDCF (p 0.01 and 0.05) of ``trials`` synthetic scores; ``impl`` 'ours' or 'seed'."""
    from bench.baseline_metrics import seed_metrics
    from pyfunc.scoring.metrics import compute_metrics

    scores, labels = make_scores(trials, random_seed=11)
    before = rss_now_mb()
    reset_peak_rss()
    start = time.perf_counter()
    if impl == "ours":
        result = compute_metrics(scores, labels, P_TARGETS)
    else:
        result = seed_metrics(scores, labels, P_TARGETS)
    elapsed = time.perf_counter() - start
    values = {"eer_percent": result["eer_percent"], "min_dcf": {str(p): result["min_dcf"][p] for p in P_TARGETS}}
    (work / f"metrics_{impl}_{trials}.json").write_text(json.dumps(values))
    return {"figures": {"seconds": elapsed, "trials_per_s": trials / elapsed, "trials": trials, **values,
                        "rss_before_mb": before, "peak_during_mb": peak_rss_since_reset_mb()}}


def _asnorm_inputs(num_trials: int, num_utts: int, cohort_size: int, random_seed: int):
    rng = np.random.default_rng(random_seed)
    keys, enroll, test = make_trials(num_trials, num_utts, random_seed)
    emb = rng.standard_normal((num_utts, EMBED_DIM)).astype(np.float32)
    speaker_axis = rng.standard_normal((cohort_size, EMBED_DIM)).astype(np.float32)
    emb += 0.5 * speaker_axis[rng.integers(0, cohort_size, num_utts)]  # utterances near some cohort speakers
    raw = rng.uniform(-0.3, 0.9, num_trials)
    return keys, enroll, test, emb, speaker_axis, raw


def asnorm(size: dict, work: Path, impl: str, scale: int = 1) -> dict:
    """AS-norm of ``asnorm_trials / scale`` trials over ``asnorm_utts / scale`` utterances against a cohort of
    ``asnorm_cohort`` speakers, top ``asnorm_top_n``; ``impl`` 'ours' (chunked) or 'plain' (baseline)."""
    from bench.baseline_metrics import plain_asnorm
    from pyfunc.data.trials import TrialList
    from pyfunc.scoring.asnorm import asnorm_scores

    num_trials, num_utts = size["asnorm_trials"] // scale, size["asnorm_utts"] // scale
    keys, enroll, test, emb, cohort, raw = _asnorm_inputs(num_trials, num_utts, size["asnorm_cohort"], random_seed=21)
    enrolls = [keys[i] for i in enroll.tolist()]
    tests = [keys[i] for i in test.tolist()]
    before = rss_now_mb()
    reset_peak_rss()
    start = time.perf_counter()
    if impl == "ours":
        out = asnorm_scores(TrialList(enrolls, tests), keys, emb, cohort, size["asnorm_top_n"], raw)
    else:
        out = plain_asnorm(keys, emb, cohort, size["asnorm_top_n"], list(zip(enrolls, tests)), raw.tolist())
    elapsed = time.perf_counter() - start
    np.save(work / f"asnorm_{impl}_{scale}.npy", out)
    return {"figures": {"seconds": elapsed, "trials_per_s": num_trials / elapsed, "trials": num_trials,
                        "utts": num_utts, "cohort": size["asnorm_cohort"], "top_n": size["asnorm_top_n"],
                        "rss_before_mb": before, "peak_during_mb": peak_rss_since_reset_mb()}}

