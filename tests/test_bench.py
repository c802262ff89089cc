"""Benchmarks: the baselines compute what our code computes, and a smoke run produces every figure.

Speed is not tested here (the benchmarks report it, see bench/RESULTS.md); these
tests check that the baselines are faithful and that ``bench/run.py`` runs end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from conftest import REPO, SHARED

from bench.baseline_ecapa import BaselineSpeakerNet, load_from_pyfunc
from bench.baseline_metrics import plain_asnorm, seed_metrics
from bench.common import SIZES
from bench.data import make_scores, make_trials
from bench.run import GROUPS, build_plan, write_results_md
from pyfunc.config import ModelConfig
from pyfunc.models.aam_softmax import AAMSoftmax
from pyfunc.models.model_dir import build_encoder
from pyfunc.scoring.asnorm import asnorm_scores
from pyfunc.scoring.metrics import compute_metrics


def test_seed_style_metrics_equal_ours_and_the_seed_reference() -> None:
    reference = json.loads((SHARED / "reference" / "metrics_reference.json").read_text())
    scores, labels = [], []
    for line in (SHARED / "reference" / "metrics_scores.txt").read_text().splitlines():
        _, _, score, label = line.split()
        scores.append(float(score))
        labels.append(label == "target")
    seed_style = seed_metrics(np.array(scores), np.array(labels))
    assert abs(seed_style["eer_percent"] - reference["eer_percent"]) < 1e-9
    assert abs(seed_style["min_dcf"][0.01] - reference["min_dcf_p0.01"]) < 1e-9
    assert abs(seed_style["min_dcf"][0.05] - reference["min_dcf_p0.05"]) < 1e-9
    scores, labels = make_scores(5000, random_seed=3)
    ours = compute_metrics(scores, labels, (0.01, 0.05))
    seed_style = seed_metrics(scores, labels)
    assert seed_style["eer_percent"] == ours["eer_percent"]
    assert seed_style["min_dcf"] == ours["min_dcf"]


def test_plain_asnorm_equals_ours() -> None:
    rng = np.random.default_rng(0)
    keys, enroll, test = make_trials(300, 40, random_seed=1)
    assert not (enroll == test).any()
    emb = rng.standard_normal((40, 16)).astype(np.float32)
    cohort = rng.standard_normal((25, 16))
    raw = rng.uniform(-1, 1, 300)
    trials = [(keys[e], keys[t]) for e, t in zip(enroll, test)]
    ours = asnorm_scores(trials, keys, emb, cohort, 7, raw)
    plain = plain_asnorm(keys, emb, cohort, 7, trials, raw.tolist())
    np.testing.assert_allclose(plain, ours, rtol=0, atol=1e-12)
    # by hand for the first trial
    unit = emb / np.linalg.norm(emb.astype(np.float64), axis=1, keepdims=True)
    coh = cohort / np.linalg.norm(cohort, axis=1, keepdims=True)
    top_e = np.sort(unit[enroll[0]] @ coh.T)[-7:]
    top_t = np.sort(unit[test[0]] @ coh.T)[-7:]
    expected = 0.5 * ((raw[0] - top_e.mean()) / top_e.std() + (raw[0] - top_t.mean()) / top_t.std())
    assert abs(plain[0] - expected) < 1e-9


def test_baseline_ecapa_equals_ours_with_mapped_weights() -> None:
    torch.manual_seed(0)
    encoder = build_encoder(ModelConfig(frontend="seed", channels=32))
    head = AAMSoftmax(192, 7)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for module in encoder.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    base = BaselineSpeakerNet(32, 7)
    load_from_pyfunc(base, encoder.state_dict(), head.state_dict())
    encoder.eval()
    base.eval()
    wave = torch.randn(3, 16000) * 0.1
    with torch.no_grad():
        ours = encoder(wave)
        theirs = base.speaker_encoder(wave, aug=False)
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-4)
    assert ours.abs().max() > 0.1  # a real embedding, not zeros
    # training mode: same SpecAugment draws from the same generator, same loss
    encoder.train()
    base.train()
    labels = torch.tensor([0, 3, 6])
    with torch.no_grad():
        ours_loss, _ = head(encoder(wave, augment=True, generator=torch.Generator().manual_seed(5)), labels)
        base_loss = base.speaker_loss(base.speaker_encoder(wave, aug=True, generator=torch.Generator().manual_seed(5)),
                                      labels)
    assert abs(ours_loss.item() - base_loss.item()) < 1e-4 * base_loss.item()


def test_plan_covers_every_benchmark() -> None:
    plan = build_plan(SIZES["full"], set(GROUPS))
    ids = [case.id for case in plan]
    assert ids[0] == "prepare"
    for wanted in ("fbank_bare", "fbank_bare_t1", "fbank_nj1", "fbank_nj2", "fbank_nj2_t1", "fbank_fixed",
                   "fbank_fixed_nj2", "train_c512", "train_c1024", "loss_curve", "loader_waveform_aug_w0",
                   "extract_single", "extract_batched",
                   "metrics_ours_10000000", "metrics_seed_2000000", "asnorm_ours_1", "asnorm_plain_8",
                   "storage_prepare", "loader_m4a_pipe_w0", "loader_m4a_wav_w0", "loader_feats_whole_w0",
                   "loader_feats_rows_w0", "loader_feats_compressed_w0", "shards_prepare", "loader_wav_scp_w0",
                   "loader_shards_w0", "loader_wav_scp_w2", "loader_shards_w2"):
        assert wanted in ids
    assert len(ids) == len(set(ids))
    assert [c.id for c in build_plan(SIZES["quick"], {"scoring"})] == [
        "metrics_ours_1000000", "metrics_seed_1000000", "asnorm_ours_1", "asnorm_plain_1"]


def test_results_md_block_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    write_results_md(path, "first")
    path.write_text(path.read_text() + "\n## Analysis\nkept\n")
    write_results_md(path, "second")
    text = path.read_text()
    assert "second" in text and "first" not in text and "kept" in text


def test_tiny_run_produces_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--tiny", "--work", str(tmp_path / "w"),
                           "--json", str(out), "--results-md", str(tmp_path / "RESULTS.md")],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert set(data["results"]) == {case.id for case in build_plan(SIZES["tiny"], set(GROUPS))}
    for case_id, result in data["results"].items():
        assert "error" not in result, (case_id, result)
    figures = {case_id: result["figures"] for case_id, result in data["results"].items()}
    fbank_cases = ("fbank_bare", "fbank_bare_t1", "fbank_nj1", "fbank_nj2_t1")
    for case_id in fbank_cases:
        assert figures[case_id]["audio_per_s"] > 0
    assert len({figures[case_id]["frames"] for case_id in fbank_cases}) == 1  # every run saw the same audio
    assert figures["fbank_fixed"]["frames"] == 2 * 98  # two 1 s utterances: 1 + (16000 - 400) // 160 frames each
    assert figures["fbank_bare_t1"]["threads"] == 1
    for model in ("base", "seed", "fbank"):
        assert figures["train_c32"][model]["examples_per_s"] > 0
        assert figures["train_c32"][model]["examples_per_cpu_s"] > 0
        assert figures["train_c32"][model]["speedup_vs_base"] > 0
    assert figures["train_c32"]["base"]["speedup_vs_base"] == 1.0
    assert figures["loss_curve"]["max_rel_diff"] < 1e-3  # same weights, same batches: the same losses
    assert figures["loader_waveform_aug_w0"]["chunk_shape"] == [8, 50 * 160 + 240]
    assert figures["loader_fbank_w0"]["chunk_shape"] == [8, 50, 80]
    assert figures["extract_single"]["utts"] == figures["extract_batched"]["utts"] == 4
    assert figures["metrics_ours_20000"]["eer_percent"] == figures["metrics_seed_20000"]["eer_percent"]
    assert figures["asnorm_ours_1"]["trials"] == 2000
    assert figures["storage_prepare"]["utts"] == SIZES["tiny"]["train_utts"]
    for source in ("pipe", "wav"):  # the same audio, through ffmpeg pipes and converted once
        assert figures[f"loader_m4a_{source}_w0"]["chunk_shape"] == [8, 50 * 160 + 240]
    for arks in ("whole", "rows", "compressed"):
        assert figures[f"loader_feats_{arks}_w0"]["chunk_shape"] == [8, 50, 80]
    assert 0.2 < figures["storage_prepare"]["compressed_ark_bytes"] / figures["storage_prepare"]["ark_bytes"] < 0.35
    rows = data["rows"]
    assert all(row["value"] and not row["value"].startswith("failed") for row in rows)
    assert any(row["ratio"] for row in rows)
    table = (tmp_path / "RESULTS.md").read_text()
    assert "| stage 1 fbank |" in table and "| stage 5-6 scoring |" in table and "- machine:" in table
    assert "| storage | training loader on the same audio converted once to wav" in table
    assert "bench:" in proc.stdout and "targets met" in proc.stdout
