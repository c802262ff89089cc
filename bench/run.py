#!/usr/bin/env python3
"""Benchmarks of every stage against a baseline measured in the same run, on the same machine.

    python bench/run.py            # full run (about 15 minutes on 2 CPU cores); what bench/RESULTS.md records
    python bench/run.py --quick    # the same benchmarks on smaller inputs (under 3 minutes)
    python bench/run.py --tiny     # smoke sizes: checks that every benchmark produces figures
    python bench/run.py --only scoring,extract --json out.json --results-md bench/RESULTS.md

Each case (one measurement) runs in its own process, so its peak resident memory is
its own. The table gives each figure, its peak memory, its ratio to the baseline of
the same run and the target of the issue. Exit status 1 when a case failed (a missed
target is reported, not an error).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, RESULT_TAG, SIZES  # noqa: E402

GROUPS = ("features", "train", "extract", "scoring", "storage", "shards", "peers")
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


@dataclass
class Case:
    id: str
    case: str
    kwargs: dict = field(default_factory=dict)
    group: str = ""


def build_plan(size: dict, groups: set[str]) -> list[Case]:
    """The cases to run, in order (baselines next to what they are compared with)."""
    plan: list[Case] = []
    if groups & {"features", "train", "extract", "storage", "shards"}:
        plan.append(Case("prepare", "prepare"))
    plan += _group_plan(size, groups & {"features"}, "features")
    plan += _group_plan(size, groups & {"train"}, "train")
    plan += _group_plan(size, groups & {"extract"}, "extract")
    plan += _group_plan(size, groups & {"scoring"}, "scoring")
    plan += _group_plan(size, groups & {"storage"}, "storage")
    plan += _group_plan(size, groups & {"shards"}, "shards")
    plan += _group_plan(size, groups & {"peers"}, "peers")
    return plan


def _group_plan(size: dict, groups: set[str], group: str) -> list[Case]:
    plan: list[Case] = []
    if "features" in groups:
        plan += [Case("fbank_bare", "fbank_bare"), Case("fbank_bare_t1", "fbank_bare", {"threads": 1, "big": True})]
        stages = {"nj1": {"nj": 1}, "nj2": {"nj": 2}, "nj1_t1": {"nj": 1, "job_threads": 1, "big": True},
                  "nj2_t1": {"nj": 2, "job_threads": 1, "big": True},
                  "fixed": {"nj": 1, "job_threads": 1, "one": True},
                  "fixed_nj2": {"nj": 2, "job_threads": 1, "one": True}}
        for name in size.get("fbank_stage_cases", stages):  # smoke runs: fewer job start-ups
            plan.append(Case(f"fbank_{name}", "fbank_stage", stages[name]))
    if "train" in groups:
        for channels in size["train_channels"]:
            plan.append(Case(f"train_c{channels}", "train_step", {"channels": channels}))
        plan.append(Case("loss_curve", "loss_curve"))
        for workers in size["loader_workers"]:
            plan.append(Case(f"loader_waveform_aug_w{workers}", "loader", {"mode": "waveform_aug", "workers": workers}))
            plan.append(Case(f"loader_waveform_augdev_w{workers}", "loader",
                             {"mode": "waveform_aug_device", "workers": workers}))
        plan.append(Case("loader_fbank_w0", "loader", {"mode": "fbank", "workers": 0}))
    if "extract" in groups:
        plan += [Case("extract_single", "extract_single"), Case("extract_batched", "extract_batched")]
    if "scoring" in groups:
        full, compare = size["metrics_trials"], size["metrics_compare_trials"]
        plan.append(Case(f"metrics_ours_{full}", "metrics", {"impl": "ours", "trials": full}))
        if compare != full:
            plan.append(Case(f"metrics_ours_{compare}", "metrics", {"impl": "ours", "trials": compare}))
        plan.append(Case(f"metrics_seed_{compare}", "metrics", {"impl": "seed", "trials": compare}))
        scale = size["asnorm_compare_scale"]
        plan.append(Case("asnorm_ours_1", "asnorm", {"impl": "ours", "scale": 1}))
        if scale != 1:
            plan.append(Case(f"asnorm_ours_{scale}", "asnorm", {"impl": "ours", "scale": scale}))
        plan.append(Case(f"asnorm_plain_{scale}", "asnorm", {"impl": "plain", "scale": scale}))
    if "storage" in groups:
        plan += [Case("storage_prepare", "storage_prepare"),
                 Case("loader_m4a_pipe_w0", "loader_m4a", {"source": "pipe"}),
                 Case("loader_m4a_wav_w0", "loader_m4a", {"source": "wav"})]
        plan += [Case(f"loader_feats_{arks}_w0", "loader_feats", {"arks": arks})
                 for arks in ("whole", "rows", "compressed")]
    if "shards" in groups:
        plan.append(Case("shards_prepare", "shards_prepare"))
        for workers in size["loader_workers"]:
            plan += [Case(f"loader_{source}_w{workers}", "loader_shards", {"source": source, "workers": workers})
                     for source in ("wav_scp", "shards")]
    if "peers" in groups:
        plan.append(Case("peer_speechbrain", "peer_speechbrain"))
    for case in plan:
        case.group = group
    return plan


def run_cases(cases: list[Case], mode: str, work: Path, logs: Path) -> list[dict]:
    """Run cases in one child process (one case, unless a smoke run groups them); each case's parsed
    result, or ``{"error": ...}`` for those that did not report."""
    command = [sys.executable, str(REPO / "bench" / "case.py"), "--size", mode, "--work", str(work)]
    if len(cases) == 1:
        command += [cases[0].case, "--kwargs", json.dumps(cases[0].kwargs)]
    else:
        command += ["--batch", json.dumps([[case.case, case.kwargs] for case in cases])]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log = logs / f"{cases[0].id if len(cases) == 1 else cases[0].group}.log"
    with open(log, "w") as handle:
        proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=handle, text=True, cwd=REPO, env=env)
    results = [json.loads(line[len(RESULT_TAG):]) for line in proc.stdout.splitlines() if line.startswith(RESULT_TAG)]
    if len(results) < len(cases):
        tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-1:] or [""]
        results += [{"error": f"exit {proc.returncode}: {tail[0]} (log: {log})"}] * (len(cases) - len(results))
    return results


# ------------------------------------------------------------------------------------------------------------
# The report


def _speed(fig: dict) -> str:
    return (f"{fig['examples_per_s']:.2f} ex/s (median {fig['examples_per_s_median']:.2f}; "
            f"{fig['examples_per_cpu_s']:.2f} ex per CPU-s)")


def _beyond_fixed_cost(result: dict, fixed: dict) -> float:
    """Seconds of audio per second of a stage-1 case once the fixed cost measured by ``fixed`` is taken off."""
    return result["figures"]["audio_seconds"] / max(result["figures"]["seconds"] - fixed["figures"]["seconds"], 1e-9)


def _peak(result: dict) -> float:
    peak = result.get("peak_rss_mb", {})
    return max(peak.get("self", 0.0), peak.get("children", 0.0))


class Report:
    """Rows of the results table, built from the case results of one run."""

    def __init__(self, results: dict[str, dict], size: dict, work: Path):
        self.results, self.size, self.work = results, size, work
        self.rows: list[dict] = []
        self.targets: list[tuple[str, bool]] = []

    def ok(self, case_id: str) -> dict | None:
        result = self.results.get(case_id)
        return result if result is not None and "error" not in result else None

    def row(self, bench: str, what: str, value: str, peak: float | None = None, ratio: str = "",
            target: str = "", met: bool | None = None) -> None:
        self.rows.append({"bench": bench, "what": what, "value": value,
                          "peak": f"{peak:.0f}" if peak is not None else "", "ratio": ratio, "target": target,
                          "met": "" if met is None else ("yes" if met else "**no**")})
        if met is not None:
            self.targets.append((f"{bench}: {what}", met))

    def failed(self, bench: str, case_id: str) -> None:
        result = self.results.get(case_id)
        if result is not None and "error" in result:
            self.row(bench, case_id, "failed: " + result["error"])

    def features(self) -> None:
        bench = "stage 1 fbank"
        ids = ("fbank_bare", "fbank_bare_t1", "fbank_nj1", "fbank_nj2", "fbank_nj1_t1", "fbank_nj2_t1",
               "fbank_fixed", "fbank_fixed_nj2")
        for case_id in ids:
            self.failed(bench, case_id)
        res = {case_id: self.ok(case_id) for case_id in ids}
        speed = {case_id: r["figures"]["audio_per_s"] for case_id, r in res.items() if r}
        bare = max((speed[k] for k in ("fbank_bare", "fbank_bare_t1") if k in speed), default=None)
        for case_id, label in (("fbank_bare", "default threads"), ("fbank_bare_t1", "1 thread")):
            if res[case_id]:
                fig = res[case_id]["figures"]
                self.row(bench, f"baseline: bare kaldi.fbank loop, {label} ({fig['threads']}), "
                         f"{fig['audio_seconds']:.0f} s of audio", f"{speed[case_id]:.0f} s audio/s",
                         _peak(res[case_id]))
        for suffix, label in (("", "default threads per job"), ("_t1", "OMP_NUM_THREADS=1 per job")):
            nj1, nj2 = res[f"fbank_nj1{suffix}"], res[f"fbank_nj2{suffix}"]
            if nj1:
                ratio = speed[f"fbank_nj1{suffix}"] / bare if bare else None
                self.row(bench, f"make_fbank --nj 1, {label}, {nj1['figures']['audio_seconds']:.0f} s of audio "
                         f"(wav in, ark/scp out)", f"{speed[f'fbank_nj1{suffix}']:.0f} s audio/s", _peak(nj1),
                         f"{ratio:.2f} of the faster bare loop" if ratio else "", ">= 0.80",
                         ratio >= 0.8 if ratio else None)
                fixed = res["fbank_fixed"]
                if fixed and suffix == "_t1":
                    beyond = _beyond_fixed_cost(nj1, fixed)
                    self.row(bench, "make_fbank fixed cost (two 1 s utterances, --nj 1, 1 thread); --nj 1 beyond it",
                             f"{fixed['figures']['seconds']:.1f} s; {beyond:.0f} s audio/s", _peak(fixed),
                             f"{beyond / bare:.2f} of the faster bare loop" if bare else "")
            if nj2:
                ratio = speed[f"fbank_nj2{suffix}"] / speed[f"fbank_nj1{suffix}"] if nj1 else None
                self.row(bench, f"make_fbank --nj 2, {label}, {nj2['figures']['audio_seconds']:.0f} s of audio",
                         f"{speed[f'fbank_nj2{suffix}']:.0f} s audio/s", _peak(nj2),
                         f"{ratio:.2f}x --nj 1" if ratio else "", ">= 1.5x --nj 1 (scales)",
                         ratio >= 1.5 if ratio else None)
                fixed, fixed2 = res["fbank_fixed"], res["fbank_fixed_nj2"]
                if nj1 and fixed and fixed2 and suffix == "_t1":
                    beyond2 = _beyond_fixed_cost(nj2, fixed2)
                    self.row(bench, "make_fbank fixed cost (two 1 s utterances, --nj 2, 1 thread each); "
                             "--nj 2 beyond it", f"{fixed2['figures']['seconds']:.1f} s; {beyond2:.0f} s audio/s",
                             _peak(fixed2), f"{beyond2 / _beyond_fixed_cost(nj1, fixed):.2f}x --nj 1 beyond its "
                             "fixed cost")

    def train(self) -> None:
        bench = "stage 2 training"
        size = self.size
        consumers: dict[str, float] = {}
        for channels in size["train_channels"]:
            result = self.ok(f"train_c{channels}")
            self.failed(bench, f"train_c{channels}")
            if not result:
                continue
            fig = result["figures"]
            base = fig["base"]
            shape = f"C={channels}, batch {size['train_batch']}, {size['train_frames'] / 100:g} s chunks"
            self.row(bench, f"baseline step ({shape})", _speed(base), base["peak_rss_mb"])
            for model, label in (("seed", "waveform in, seed front end"), ("fbank", "fbank features in")):
                ours = fig[model]
                consumers[model] = max(consumers.get(model, 0.0), ours["examples_per_s"])
                ratio, cpu_ratio = ours["speedup_vs_base"], ours["speedup_vs_base_cpu"]
                self.row(bench, f"our step, {label} (C={channels})", _speed(ours), ours["peak_rss_mb"],
                         f"{ratio:.2f}x ({cpu_ratio:.2f}x in CPU time; median of {ours['runs']} rounds)",
                         ">= 1.3x", ratio >= 1.3)
            if "fbank_bf16" in fig:  # train.precision bf16 (what auto picks on CPUs with AMX)
                bf16 = fig["fbank_bf16"]
                over_fp32 = bf16["examples_per_s"] / fig["fbank"]["examples_per_s"]
                amx = "AMX" if fig["native_bf16"] else "no AMX: bf16 emulated"
                self.row(bench, f"our step, fbank features in, bf16 autocast (C={channels}; this CPU: {amx})",
                         _speed(bf16), bf16["peak_rss_mb"],
                         f"{over_fp32:.2f}x our fp32 step, {bf16['speedup_vs_base']:.2f}x the baseline")
        curve = self.ok("loss_curve")
        self.failed(bench, "loss_curve")
        if curve:
            fig = curve["figures"]
            losses = ", ".join(f"{a:.4f}/{b:.4f}" for a, b in zip(fig["loss_ours"], fig["loss_baseline"]))
            self.row(bench, f"loss curve, same weights and batches (C={fig['channels']}, ours/baseline: {losses})",
                     f"max rel. diff {fig['max_rel_diff']:.1e}", _peak(curve), "", "<= 1e-3 (equal)",
                     fig["max_rel_diff"] <= 1e-3)
        for workers in size["loader_workers"]:
            self._loader(bench, f"loader_waveform_aug_w{workers}", f"waveform chunks + augmentation, {workers} workers",
                         consumers.get("seed"))
            self._device_augment(bench, workers)
        self._loader(bench, "loader_fbank_w0", "fbank chunks from the ark, 0 workers", consumers.get("fbank"))

    def _loader(self, bench: str, case_id: str, label: str, consumer: float | None) -> None:
        result = self.ok(case_id)
        self.failed(bench, case_id)
        if not result:
            return
        speed = result["figures"]["examples_per_s"]
        ratio = speed / consumer if consumer else None
        self.row(bench, f"data loader alone: {label}", f"{speed:.1f} ex/s", _peak(result),
                 f"{ratio:.1f}x the fastest step" if ratio else "", ">= 3x", ratio >= 3 if ratio else None)

    def _device_augment(self, bench: str, workers: int) -> None:
        """train.augment.on_device: the workers only draw; the batch is augmented by apply_batch (here on CPU
        tensors, in this process), against the CPU-side augmentation loader of the same run."""
        case_id = f"loader_waveform_augdev_w{workers}"
        result, cpu_side = self.ok(case_id), self.ok(f"loader_waveform_aug_w{workers}")
        self.failed(bench, case_id)
        if not result:
            return
        fig = result["figures"]
        base = cpu_side["figures"]["examples_per_s"] if cpu_side else None
        ratio = (f"{fig['examples_per_s'] / base:.2f}x the CPU-side loader; workers alone "
                 f"{fig['loader_examples_per_s'] / base:.2f}x") if base else ""
        self.row(bench, f"data loader, augmentation drawn in the workers and applied to the batch (apply_batch on "
                 f"CPU tensors, {fig['threads']} threads), {workers} workers",
                 f"{fig['examples_per_s']:.1f} ex/s (workers alone {fig['loader_examples_per_s']:.1f} ex/s; "
                 f"apply {fig['apply_examples_per_s']:.0f} ex/s)", _peak(result), ratio)

    def extract(self) -> None:
        bench = "stage 3 embeddings"
        single, batched = self.ok("extract_single"), self.ok("extract_batched")
        self.failed(bench, "extract_single")
        self.failed(bench, "extract_batched")
        if single:
            fig = single["figures"]
            self.row(bench, f"baseline: one utterance at a time ({fig['utts']} utts, "
                     f"{self.size['extract_utt_seconds'][0]:g}-{self.size['extract_utt_seconds'][1]:g} s, "
                     f"C={self.size['extract_channels']})",
                     f"{fig['utts_per_s']:.2f} utt/s ({fig['audio_per_s']:.0f} s audio/s)", _peak(single))
        if batched:
            fig = batched["figures"]
            ratio = fig["utts_per_s"] / single["figures"]["utts_per_s"] if single else None
            self.row(bench, "extract_embeddings (read-ahead, length-sorted padded batches)",
                     f"{fig['utts_per_s']:.2f} utt/s ({fig['audio_per_s']:.0f} s audio/s)", _peak(batched),
                     f"{ratio:.2f}x" if ratio else "", ">= 2x", ratio >= 2 if ratio else None)
        if single and batched:
            diff = float(np.abs(np.load(self.work / "extract_batched.npy")
                                - np.load(self.work / "extract_single.npy")).max())
            self.row(bench, "embeddings batched vs one at a time", f"max abs diff {diff:.1e}", None, "",
                     "<= 1e-4", diff <= 1e-4)

    def scoring(self) -> None:
        bench = "stage 5-6 scoring"
        full, compare = self.size["metrics_trials"], self.size["metrics_compare_trials"]
        ours = self.ok(f"metrics_ours_{full}")
        self.failed(bench, f"metrics_ours_{full}")
        if ours:
            fig = ours["figures"]
            is_target_size = full >= 10_000_000
            self.row(bench, f"EER + minDCF (p 0.01, 0.05), ours, {full / 1e6:g} M trials",
                     f"{fig['seconds']:.2f} s", fig["peak_during_mb"], "",
                     "< 20 s for 10 M" if is_target_size else "", fig["seconds"] < 20 if is_target_size else None)
        seed_style, ours_cmp = self.ok(f"metrics_seed_{compare}"), self.ok(f"metrics_ours_{compare}")
        self.failed(bench, f"metrics_seed_{compare}")
        if seed_style:
            fig = seed_style["figures"]
            self.row(bench, f"baseline: seed-style metric code, {compare / 1e6:g} M trials", f"{fig['seconds']:.2f} s",
                     fig["peak_during_mb"])
        if seed_style and ours_cmp:
            ratio = seed_style["figures"]["seconds"] / ours_cmp["figures"]["seconds"]
            same = (abs(seed_style["figures"]["eer_percent"] - ours_cmp["figures"]["eer_percent"]) <= 1e-9 and all(
                abs(seed_style["figures"]["min_dcf"][p] - ours_cmp["figures"]["min_dcf"][p]) <= 1e-9
                for p in seed_style["figures"]["min_dcf"]))
            self.row(bench, f"ours, same {compare / 1e6:g} M trials (EER {ours_cmp['figures']['eer_percent']:.4f} %, "
                     f"same values as the baseline: {'yes' if same else 'NO'})",
                     f"{ours_cmp['figures']['seconds']:.2f} s", ours_cmp["figures"]["peak_during_mb"],
                     f"{ratio:.0f}x", "equal values", same)
        scale = self.size["asnorm_compare_scale"]
        asn = self.ok("asnorm_ours_1")
        self.failed(bench, "asnorm_ours_1")
        if asn:
            fig = asn["figures"]
            growth = fig["peak_during_mb"] - fig["rss_before_mb"]
            matrix_mb = fig["utts"] * fig["cohort"] * 8 / 2**20
            self.row(bench, f"AS-norm, ours: {fig['trials']} trials, {fig['utts']} utts, cohort {fig['cohort']}, "
                     f"top {fig['top_n']} (peak growth {growth:.0f} MB; the whole score matrix is "
                     f"{matrix_mb:.0f} MB)", f"{fig['seconds']:.2f} s", fig["peak_during_mb"], "",
                     "memory bounded by chunking", growth < max(512.0, 0.5 * matrix_mb))
        plain, ours_cmp = self.ok(f"asnorm_plain_{scale}"), self.ok(f"asnorm_ours_{scale}")
        self.failed(bench, f"asnorm_plain_{scale}")
        if plain:
            fig = plain["figures"]
            self.row(bench, f"baseline: AS-norm, whole matrix + sort + Python loop ({fig['trials']} trials, "
                     f"{fig['utts']} utts; peak growth {fig['peak_during_mb'] - fig['rss_before_mb']:.0f} MB)",
                     f"{fig['seconds']:.2f} s", fig["peak_during_mb"])
        if plain and ours_cmp:
            ratio = plain["figures"]["seconds"] / ours_cmp["figures"]["seconds"]
            diff = float(np.abs(np.load(self.work / f"asnorm_ours_{scale}.npy")
                                - np.load(self.work / f"asnorm_plain_{scale}.npy")).max())
            fig = ours_cmp["figures"]
            self.row(bench, f"AS-norm, ours, same {fig['trials']} trials (peak growth "
                     f"{fig['peak_during_mb'] - fig['rss_before_mb']:.0f} MB; max abs diff {diff:.1e})",
                     f"{fig['seconds']:.2f} s", fig["peak_during_mb"], f"{ratio:.1f}x", "equal scores (<= 1e-9)",
                     diff <= 1e-9)

    def storage(self) -> None:
        bench = "storage"
        prepared = self.ok("storage_prepare")
        self.failed(bench, "storage_prepare")
        if prepared:
            fig = prepared["figures"]
            self.row(bench, f"m4a -> wav once (stage 0's converter, 2 ffmpeg at a time): {fig['utts']} utterances, "
                     f"{fig['audio_seconds']:.0f} s of audio; {fig['m4a_bytes'] / 2**20:.1f} MB of m4a become "
                     f"{fig['wav_bytes'] / 2**20:.1f} MB of wav", f"{fig['convert_seconds']:.1f} s", _peak(prepared))
        pipe, wav = self.ok("loader_m4a_pipe_w0"), self.ok("loader_m4a_wav_w0")
        for case_id in ("loader_m4a_pipe_w0", "loader_m4a_wav_w0"):
            self.failed(bench, case_id)
        if pipe:
            self.row(bench, "baseline: training loader on m4a through ffmpeg pipes (a decoder per example), "
                     "0 workers", f"{pipe['figures']['examples_per_s']:.1f} ex/s", _peak(pipe))
        if wav:
            ratio = wav["figures"]["examples_per_s"] / pipe["figures"]["examples_per_s"] if pipe else None
            self.row(bench, "training loader on the same audio converted once to wav, 0 workers",
                     f"{wav['figures']['examples_per_s']:.1f} ex/s", _peak(wav),
                     f"{ratio:.1f}x the pipes" if ratio else "")
        if prepared:
            fig = prepared["figures"]
            sizes = f"{fig['ark_bytes'] / 2**20:.2f} MB; {fig['compressed_ark_bytes'] / 2**20:.2f} MB"
            self.row(bench, f"fbank arks of the same {fig['utts']} utterances: float32, then Kaldi-compressed "
                     "(--compress true)", sizes, None,
                     f"{fig['compressed_ark_bytes'] / fig['ark_bytes']:.2f} of the size")
        feats = {arks: self.ok(f"loader_feats_{arks}_w0") for arks in ("whole", "rows", "compressed")}
        for arks in feats:
            self.failed(bench, f"loader_feats_{arks}_w0")
        labels = {"whole": "baseline: training loader, fbank chunks, each utterance's matrix read whole (before)",
                  "rows": "training loader, fbank chunks read from their rows only (float32 arks)",
                  "compressed": "training loader, fbank chunks decoded from their rows of Kaldi-compressed arks"}
        for arks, result in feats.items():
            if result:
                speed = result["figures"]["examples_per_s"]
                base = feats["whole"]["figures"]["examples_per_s"] if feats["whole"] and arks != "whole" else None
                self.row(bench, f"{labels[arks]}, 0 workers", f"{speed:.0f} ex/s", _peak(result),
                         f"{speed / base:.2f}x" if base else "")

    def shards(self) -> None:
        bench = "shards"
        prepared = self.ok("shards_prepare")
        self.failed(bench, "shards_prepare")
        if prepared:
            fig = prepared["figures"]
            self.row(bench, f"steps/make_shards.py: the training set as {fig['shards']} shards of "
                     f"{fig['utts_per_shard']} utterances ({fig['bytes'] / 2**20:.1f} MB)", f"{fig['seconds']:.1f} s",
                     _peak(prepared))
        for workers in self.size["loader_workers"]:
            base, shards = self.ok(f"loader_wav_scp_w{workers}"), self.ok(f"loader_shards_w{workers}")
            for source in ("wav_scp", "shards"):
                self.failed(bench, f"loader_{source}_w{workers}")
            if base:
                self.row(bench, f"baseline: training loader on wav.scp (a file per example), {workers} workers",
                         f"{base['figures']['examples_per_s']:.1f} ex/s", _peak(base))
            if shards:
                speed = shards["figures"]["examples_per_s"]
                ratio = speed / base["figures"]["examples_per_s"] if base else None
                self.row(bench, f"training loader on the same examples from the shards (local disk, warm cache), "
                         f"{workers} workers", f"{speed:.1f} ex/s", _peak(shards), f"{ratio:.2f}x" if ratio else "")

    def peers(self) -> None:
        bench = "peer: SpeechBrain"
        result = self.ok("peer_speechbrain")
        self.failed(bench, "peer_speechbrain")
        if not result:
            return
        fig = result["figures"]
        if "skipped" in fig:
            self.row(bench, "SpeechBrain's ECAPA-TDNN beside ours", "skipped: " + fig["skipped"])
            return
        shape = (f"C={fig['channels']}, batch {fig['batch']} x {fig['frames']} frames of 80-dim fbank, "
                 f"{fig['device']}, {fig['threads']} threads")
        for kind, unit, label in (("train", "examples_per_s", "training step"),
                                  ("extract", "utts_per_s", "extraction")):
            sb, ours = fig[kind]["speechbrain"], fig[kind]["ours"]
            short = "ex/s" if kind == "train" else "utt/s"
            self.row(bench, f"{label}, SpeechBrain's ECAPA-TDNN (baseline; {shape})", f"{sb[unit]:.2f} {short}",
                     _peak(result))
            self.row(bench, f"{label}, ours, same input", f"{ours[unit]:.2f} {short}", _peak(result),
                     f"{fig[kind]['ratio']:.2f}x (median of {ours['runs']} rounds)")

    def markdown(self) -> str:
        header = "| stage | what | figure | peak RSS (MB) | vs baseline | target | met |"
        lines = [header, "|---|---|---|---:|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r['bench']} | {r['what']} | {r['value']} | {r['peak']} | {r['ratio']} | "
                         f"{r['target']} | {r['met']} |")
        return "\n".join(lines)


def machine_line() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                memory = f", {int(line.split()[1]) / 2**20:.0f} GiB RAM"
    except OSError:
        pass
    import torch

    return (f"{platform.node()}: {os.cpu_count()} x {cpu}{memory}, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads)")


def write_results_md(path: Path, block: str) -> None:
    """Put ``block`` between the bench markers of ``path`` (the rest of the file is kept)."""
    text = path.read_text() if path.is_file() else "# Benchmark results\n\n"
    wrapped = f"{BEGIN}\n{block}\n{END}"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + wrapped + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + wrapped + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="smaller inputs, under 3 minutes")
    sizes.add_argument("--tiny", action="store_true", help="smoke-test sizes (the test suite's run)")
    parser.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated subset of {', '.join(GROUPS)}")
    parser.add_argument("--work", default=None, help="work directory (default: a temporary one, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs of each case)")
    parser.add_argument("--json", default=None, help="also write every case's raw result to this JSON file")
    parser.add_argument("--results-md", default=None,
                        help="write the table into this Markdown file between its bench markers")
    args = parser.parse_args(argv)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    groups = {g.strip() for g in args.only.split(",") if g.strip()}
    unknown = groups - set(GROUPS)
    if unknown:
        parser.error(f"--only: unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(GROUPS)}")
    size = SIZES[mode]
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="pyfunc-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    plan = build_plan(size, groups)
    command = "python bench/run.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    started = datetime.datetime.now().astimezone()
    load_start = os.getloadavg()
    print(f"bench: {mode} run of {len(plan)} cases in {work}", flush=True)
    results: dict[str, dict] = {}
    begin = time.perf_counter()
    batches: list[list[Case]] = []
    for case in plan:
        if size.get("one_process_per_group") and batches and batches[-1][0].group == case.group and case.group:
            batches[-1].append(case)
        else:
            batches.append([case])
    number = 0
    for batch in batches:
        t0 = time.perf_counter()
        for case, result in zip(batch, run_cases(batch, mode, work, logs)):
            number += 1
            results[case.id] = result
            seconds = result.get("wall_s", time.perf_counter() - t0)
            print(f"  [{number:2d}/{len(plan)}] {case.id:24s} {seconds:7.1f} s  {result.get('error', 'ok')}",
                  flush=True)
        if batch[0].id == "prepare" and "error" in results["prepare"]:
            print("bench: preparing the inputs failed; stopping", file=sys.stderr)
            break
    total = time.perf_counter() - begin
    load_end = os.getloadavg()

    report = Report(results, size, work)
    for group in GROUPS:
        if group in groups:
            getattr(report, group)()
    header = (f"- date: {started:%Y-%m-%d %H:%M %Z}\n- machine: {machine_line()}\n"
              f"- command: `{command.strip()}` ({mode} sizes), {total / 60:.1f} minutes\n"
              f"- load average (1 min) at start {load_start[0]:.2f}, at end {load_end[0]:.2f} "
              f"(other processes share the cores)")
    block = header + "\n\n" + report.markdown()
    missed = [name for name, met in report.targets if not met]
    print()
    print(block)
    print(f"\nbench: {len(report.targets) - len(missed)} of {len(report.targets)} targets met"
          + (f"; missed: {'; '.join(missed)}" if missed else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"mode": mode, "seconds": total, "results": results,
                                               "rows": report.rows}, indent=1))
    if args.results_md:
        write_results_md(Path(args.results_md), block)
    failed = [case_id for case_id, result in results.items() if "error" in result]
    if not args.work and not args.keep and not failed:
        shutil.rmtree(work, ignore_errors=True)
    elif failed:
        print(f"bench: {len(failed)} case(s) failed: {', '.join(failed)}; logs in {logs}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
