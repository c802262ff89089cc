"""egs/voxceleb: stages 0-6 on fake VoxCeleb1/2, MUSAN and RIR trees (real layouts), both training paths,
the offline-augmentation CLIs, config overrides, and the augmentation wiring of stages 1 and 2."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile
import yaml
from fake_trees import (
    make_fake_musan,
    make_fake_rirs,
    make_fake_trial_list,
    make_fake_voxceleb1,
    make_fake_voxceleb2,
)

from pyfunc.config import AugmentConfig, Config, config_from_dict, load_config
from pyfunc.config_overrides import apply_overrides, get_value, parse_override
from pyfunc.data.arkio import ArkScpWriter
from pyfunc.data.audio import read_audio
from pyfunc.data.datadir import load_data_dir, subset_per_speaker, validate_data_dir
from pyfunc.data.trials import read_trials
from pyfunc.errors import ConfigError, DataError
from pyfunc.features.augment_offline import (
    apply_augment_spec,
    combine_data_dirs,
    make_augmented_copies,
    parse_augment_spec,
    random_subset,
    read_utt2aug,
)
from pyfunc.features.kaldi_fbank import compute_fbank, read_kaldi_conf

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "egs" / "voxceleb"
sys.path.insert(0, str(RECIPE / "local"))  # the recipe's modules, as its scripts import them

from musan import prepare_musan, prepare_rirs  # noqa: E402

OFFICIAL = {"vox1_o": "veri_test2.txt", "vox1_e": "list_test_all2.txt", "vox1_h": "list_test_hard2.txt"}

TINY_SEED = """\
model: {frontend: seed, channels: 16, embed_dim: 16}
train:
  epochs: 1
  batch_size: 8
  lr: 0.01
  chunk_frames: 100
  num_workers: 0
  augment: {enabled: true, musan_dir: /nowhere, rir_dir: /nowhere, babble_speakers: [2, 3]}
extract: {protocol: seed, crop_seconds: 1.0, num_crops: 2}
score: {asnorm_top_n: 300}
"""


# The end-to-end tests train for real: 40 VoxCeleb2 voices, 10 epochs of 12 steps (softmax with scale 10, which
# learns much faster than the AAM margin on so little data), enough for the trained network to beat the untrained
# one on every list by a wide margin (about half its EER here), in about a minute each on 2 cores.
LEARN = """\
model: {{frontend: {frontend}, channels: 32, embed_dim: 32}}
loss: {{margin: 0.0, scale: 10.0}}
train:
  epochs: 10
  batch_size: 16
  lr: 0.003
  chunk_frames: 100
  num_workers: 0
{augment}{extract}score: {{asnorm_top_n: 10}}
"""
LEARN_FBANK = LEARN.format(frontend="fbank", augment="", extract="")
LEARN_SEED = LEARN.format(
    frontend="seed", extract="extract: {protocol: seed, crop_seconds: 1.0, num_crops: 2}\n",
    augment="  augment: {enabled: true, musan_dir: /nowhere, rir_dir: /nowhere, babble_speakers: [2, 3]}\n")
# AS-norm may cost at most this much EER (percentage points) against cosine on these small lists and cohorts.
ASNORM_MARGIN = 3.0


# ----------------------------------------------------------------------------------------------
# Fake corpora, shared by the module (read only)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("corpora")
    vox1 = make_fake_voxceleb1(root / "voxceleb1", speakers=6, videos=2, utts=2, test_speakers=2)
    vox2 = make_fake_voxceleb2(root / "voxceleb2", speakers=4, videos=2, utts=3)
    make_fake_musan(root, files_per_source=2, seconds=5.5)  # one 5 s segment each (the seed's musan_split)
    make_fake_rirs(root, rooms=1, rirs_per_room=1)
    lists = {"vox1_o": make_fake_trial_list(root / "voxceleb1" / OFFICIAL["vox1_o"],
                                            root / "voxceleb1" / "vox1_test_wav", n=10),
             "vox1_e": make_fake_trial_list(root / "voxceleb1" / OFFICIAL["vox1_e"], vox1, n=20, random_seed=5),
             "vox1_h": make_fake_trial_list(root / "voxceleb1" / OFFICIAL["vox1_h"], vox1, n=16, random_seed=6)}
    return {"root": root, "vox1": vox1, "vox2": vox2, "lists": lists,
            "vox1_roots": f"{root}/voxceleb1/vox1_dev_wav {root}/voxceleb1/vox1_test_wav"}


@pytest.fixture(scope="module")
def learnable(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Corpora to train and evaluate for real: 40 VoxCeleb2 speakers (160 utterances), 8 VoxCeleb1 speakers
    (48 utterances, 4 of them the test set), and lists of 120, 240 and 200 trials."""
    root = tmp_path_factory.mktemp("learnable")
    vox1 = make_fake_voxceleb1(root / "voxceleb1", speakers=8, videos=2, utts=3, test_speakers=4)
    vox2 = make_fake_voxceleb2(root / "voxceleb2", speakers=40, videos=2, utts=2)
    make_fake_musan(root, files_per_source=2, seconds=5.5)  # one 5 s segment each (the seed's musan_split)
    make_fake_rirs(root, rooms=1, rirs_per_room=1)
    lists = {"vox1_o": make_fake_trial_list(root / "voxceleb1" / OFFICIAL["vox1_o"],
                                            root / "voxceleb1" / "vox1_test_wav", n=120),
             "vox1_e": make_fake_trial_list(root / "voxceleb1" / OFFICIAL["vox1_e"], vox1, n=240, random_seed=5),
             "vox1_h": make_fake_trial_list(root / "voxceleb1" / OFFICIAL["vox1_h"], vox1, n=200, random_seed=6)}
    return {"root": root, "vox1": vox1, "vox2": vox2, "lists": lists,
            "vox1_roots": f"{root}/voxceleb1/vox1_dev_wav {root}/voxceleb1/vox1_test_wav"}


def _run_recipe(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(["bash", str(RECIPE / "run.sh"), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600)


def _corpus_args(corpora: dict) -> list[str]:
    root = corpora["root"]
    return ["--vox1-root", corpora["vox1_roots"], "--trials-dir", root / "voxceleb1",
            "--vox2-root", root / "voxceleb2", "--musan-root", root, "--rirs-root", root]


def _results(path: Path) -> dict[str, list[float]]:
    lines = path.read_text().splitlines()
    assert lines[0].split() == ["system", "EER(%)", "minDCF(p=0.01)", "minDCF(p=0.05)", "Cllr", "minCllr",
                                "actDCF(p=0.01)", "actDCF(p=0.05)"]
    return {fields[0]: [float(x) for x in fields[1:4]] for fields in (line.split() for line in lines[1:])}


def _status_rows(proc: subprocess.CompletedProcess) -> dict[tuple[str, str, str], str]:
    """The lines of ``run.sh --status true``: {(stage, step, target): state and reason}."""
    assert proc.returncode == 0 and proc.stdout.endswith("nothing was run or written\n"), proc.stdout + proc.stderr
    rows = [re.split(r"\s{2,}", line, maxsplit=3) for line in proc.stdout.splitlines()[:-1]]
    return {(stage, step, target): state for stage, step, target, state in rows}


def _list_utterances(data: Path, lists: list[str]) -> list[str]:
    return sorted({u for name in lists for e, t, _ in read_trials(data / name / "trials") for u in (e, t)})


def _check_learnt(exp: Path, data: Path, lists: list[str], *common: str) -> None:
    """What a working system does: stages 3-6 again with the untrained network (the same initial weights,
    EXP/untrained) and, on every list, the trained network's cosine EER below the untrained one's, and AS-norm
    no worse than cosine by more than ASNORM_MARGIN points."""
    proc = _run_recipe("--stage", "3", "--model-dir", exp / "untrained", "--data", data, "--lists", ",".join(lists),
                       "--plots", "false", *common)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trained, untrained = _results(exp / "results"), _results(exp / "untrained" / "results")
    for name in lists:
        cosine = trained[f"{exp}/scores/{name}_cosine"][0]
        before = untrained[f"{exp}/untrained/scores/{name}_cosine"][0]
        asnorm = trained[f"{exp}/scores/{name}_asnorm"][0]
        assert cosine < before, (name, cosine, before)
        assert asnorm <= cosine + ASNORM_MARGIN, (name, asnorm, cosine)


def _check_scores(exp: Path, data: Path, lists: list[str]) -> None:
    """Score files in trial order, the results table (one row per list and scoring) and the per-list tables."""
    for name in lists:
        trials = read_trials(data / name / "trials")
        assert trials == read_trials(data / "vox1" / "trials" / name)
        assert set(load_data_dir(data / name).utts) == {u for e, t, _ in trials for u in (e, t)}
        for scoring in ("cosine", "asnorm"):
            scored = [line.split() for line in (exp / "scores" / f"{name}_{scoring}").read_text().splitlines()]
            assert [tuple(s[:2]) for s in scored] == [(e, t) for e, t, _ in trials]
            assert all(np.isfinite(float(s[2])) for s in scored)
    table = _results(exp / "results")
    assert list(table) == [f"{exp}/scores/{n}_{s}" for n in lists for s in ("cosine", "asnorm")]
    for eer, dcf01, dcf05 in table.values():
        assert 0 <= eer <= 100 and 0 <= dcf01 <= 1.0001 and 0 <= dcf05 <= 1.0001
    for name in lists:  # stage 6's per-list tables (steps/compute_metrics.py) agree with the combined one
        assert _results(exp / f"results_{name}") == {k: v for k, v in table.items() if f"/{name}_" in k}


# ----------------------------------------------------------------------------------------------
# End to end


def test_fbank_path_with_offline_augmentation_stages_0_to_6(learnable: dict, tmp_path: Path) -> None:
    corpora = learnable
    config = tmp_path / "learn.yaml"
    config.write_text(LEARN_FBANK)
    data, exp, feats = tmp_path / "data", tmp_path / "exp", tmp_path / "fbank"
    common = ["--exp", exp, "--feat-dir", feats, "--nj", "1", "--device", "cpu"]
    proc = _run_recipe(*_corpus_args(corpora), "--config", config, "--data", data, *common, "--aug-subset", "20",
                       "--plots", "false")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # Stage 0: data dirs with the released ids, all of VoxCeleb1, the three lists converted line by line.
    vox2 = validate_data_dir(data / "vox2_dev", check_trials=False)
    assert vox2.utt2spk == corpora["vox2"].utt2spk
    assert vox2.wav_scp == {u: str(p) for u, p in corpora["vox2"].files.items()}
    vox1 = validate_data_dir(data / "vox1")
    assert vox1.utt2spk == corpora["vox1"].utt2spk and len(vox1.utts) == 48
    for name, official in corpora["lists"].items():
        converted = read_trials(data / "vox1" / "trials" / name)
        assert converted == [(a, b, bool(label)) for label, a, b in official]
    for category, count in (("noise", 4), ("music", 4), ("speech", 4)):
        assert len(validate_data_dir(data / f"musan_{category}").utts) == count
    assert validate_data_dir(data / "rirs").utts == ["largeroom-Room001-00001", "mediumroom-Room001-00001",
                                                     "smallroom-Room001-00001"]

    # The effective config points the augmentation at DATA.
    effective = load_config(exp / "conf" / "train.yaml")
    assert effective.train.augment.musan_dir == str(data) and effective.train.augment.rir_dir == str(data / "rirs")

    # Stage 1: four augmented copies, a 20-utterance subset of them, combined with the clean set.
    for kind in ("reverb", "noise", "music", "babble"):
        copy = load_data_dir(data / f"vox2_dev_{kind}")
        specs = read_utt2aug(data / f"vox2_dev_{kind}")
        assert sorted(copy.utt2spk) == sorted(f"{u}-{kind}" for u in vox2.utts) and set(specs) == set(copy.utt2spk)
        assert {parse_augment_spec(s)["type"] for s in specs.values()} == {kind}
    aug = validate_data_dir(data / "vox2_dev_aug", check_wavs=False)
    combined = validate_data_dir(data / "vox2_dev_combined", check_wavs=False)
    assert len(aug.utts) == 20 and set(combined.utts) == set(vox2.utts) | set(aug.utts)
    assert set(read_utt2aug(data / "vox2_dev_combined")) == set(aug.utts)
    features = {k: np.asarray(v) for k, v in kaldiio.load_scp(str(data / "vox2_dev_combined" / "feats.scp")).items()}
    assert set(features) == set(combined.utts) and all(f.shape[1] == 80 for f in features.values())
    # Features of a copy are the fbank of the augmented audio (stage 1 applied utt2aug), not of the clean audio,
    # stored Kaldi-compressed (the recipe's default, --compress true): within the one-byte quantisation.
    options = read_kaldi_conf(RECIPE / "conf" / "fbank.conf")
    specs = read_utt2aug(data / "vox2_dev_aug")
    for utt in aug.utts[:3]:
        clean = read_audio(aug.wav_scp[utt])
        expected = compute_fbank(apply_augment_spec(clean, specs[utt]), options)
        span = expected.max(axis=0) - expected.min(axis=0)
        assert np.all(np.abs(features[utt] - expected) <= span / 60 + 1e-3)
        unaugmented = compute_fbank(clean, options)
        assert np.abs(features[utt] - expected).mean() < 0.2 * np.abs(features[utt] - unaugmented).mean()
    entry = (data / "vox2_dev_combined" / "feats.scp").read_text().split()[1]
    with open(entry.rsplit(":", 1)[0], "rb") as handle:
        handle.seek(int(entry.rsplit(":", 1)[1]))
        assert handle.read(5) == b"\0BCM "
    # Only the VoxCeleb1 utterances that the lists name get features and embeddings.
    needed = _list_utterances(data, ["vox1_o", "vox1_e", "vox1_h"])
    assert validate_data_dir(data / "vox1_eval").utts == needed
    assert not (data / "vox1" / "feats.scp").exists()
    assert sorted(kaldiio.load_scp(str(data / "vox1_eval" / "feats.scp"))) == needed

    # Stage 2 trained on the combined set; stages 3-6 on all three lists.
    assert (exp / "models" / "epoch_1.pt").is_file() and (exp / "model.pt").is_file()
    trained = load_config(exp / "config.yaml")
    assert trained.model.num_classes == 40 and trained.model.channels == 32
    assert "180 utterances, 40 speakers" in (exp / "log" / "train.log").read_text()
    # the fbank options of the training features go with the model, for the verify/embed tools and ONNX
    assert (exp / "fbank.conf").read_text() == (RECIPE / "conf" / "fbank.conf").read_text()
    emb = kaldiio.load_scp(str(exp / "embeddings" / "vox1_eval" / "xvector.scp"))
    assert sorted(emb) == needed and all(np.asarray(v).shape == (32,) for v in emb.values())
    assert len(kaldiio.load_scp(str(exp / "embeddings" / "vox2_dev" / "xvector.scp"))) == 160
    assert len(kaldiio.load_scp(str(exp / "embeddings" / "vox2_dev" / "spk_xvector.scp"))) == 40
    _check_scores(exp, data, ["vox1_o", "vox1_e", "vox1_h"])
    _check_learnt(exp, data, ["vox1_o", "vox1_e", "vox1_h"], *common)
    assert f"{exp}/scores/vox1_h_asnorm" in proc.stdout  # the table is printed too
    assert not list((exp / "plots").glob("det_*"))  # --plots false: no stage-6 plots

    # --status: stages 2-6 up to date; stage 1 would remake the augmented copies (they keep no stamp), and with
    # them the combined training features, which stage 2 then refuses to resume from.
    options = ["--config", config, "--data", data, "--exp", exp, "--feat-dir", feats, "--status", "true"]
    before = {p: p.stat().st_mtime_ns for root in (data, exp, feats) for p in root.rglob("*") if p.is_file()}
    status = _status_rows(_run_recipe(*options, "--stage", "2"))
    assert all(state.startswith("up to date") for stage, state in status.items() if stage[0] >= "stage 2"), status
    status = _status_rows(_run_recipe(*options, "--stage", "1"))
    assert status[("stage 1", "augmented copies", str(data / "vox2_dev_aug"))].startswith("to redo: no stamp")
    assert status[("stage 1", "fbank", str(data / "vox2_dev_aug"))].startswith("to redo: stage 1 remakes")
    assert status[("stage 1", "fbank", str(data / "vox1_eval"))] == "up to date"
    assert status[("stage 2", "training", str(exp))].startswith(
        f"would fail: stage 1 remakes {data / 'vox2_dev_combined' / 'wav.scp'}; stage 2 resumes only"), status
    assert status[("stage 4", "cosine scores", str(exp / "scores" / "vox1_o_cosine"))] == "up to date"
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_seed_path_with_on_the_fly_augmentation_stages_0_to_6(learnable: dict, tmp_path: Path) -> None:
    corpora = learnable
    config = tmp_path / "learn_seed.yaml"
    config.write_text(LEARN_SEED)
    data, exp = tmp_path / "data", tmp_path / "exp"
    proc = _run_recipe(*_corpus_args(corpora), "--config", config, "--data", data, "--exp", exp, "--nj", "1",
                       "--device", "cpu", "--lists", "vox1_o,vox1_h", "--cohort-per-spk", "2",
                       "--overrides", "train.random_seed=7 train.log_interval=1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "stage 1: nothing to do" in proc.stdout
    assert not (data / "vox2_dev" / "feats.scp").exists() and not (data / "vox2_dev_aug").exists()
    assert sorted(p.name for p in (data / "vox1" / "trials").iterdir()) == ["vox1_h", "vox1_o"]
    cohort = validate_data_dir(data / "vox2_cohort")
    assert len(cohort.utts) == 80 and all(len(u) == 2 for u in cohort.spk2utt.values())

    effective = load_config(exp / "conf" / "train.yaml")
    assert effective.train.random_seed == 7 and effective.train.augment.enabled
    assert effective.train.augment.musan_dir == str(data) and effective.train.augment.babble_speakers == [2, 3]
    assert "160 utterances, 40 speakers" in (exp / "log" / "train.log").read_text()
    assert load_config(exp / "config.yaml").model.frontend == "seed"
    # The trial utterances of the two lists with crops; the cohort with full utterances only, and its speaker
    # means computed once and read by both lists.
    needed = _list_utterances(data, ["vox1_o", "vox1_h"])
    assert validate_data_dir(data / "vox1_eval").utts == needed  # (a strict subset: test_voxceleb_prep.py)
    crops = kaldiio.load_scp(str(exp / "embeddings" / "vox1_eval" / "xvector_crops.scp"))
    assert sorted(crops) == needed and np.asarray(next(iter(crops.values()))).shape == (2, 32)
    cohort_emb = exp / "embeddings" / "vox2_cohort"
    assert len(kaldiio.load_scp(str(cohort_emb / "xvector.scp"))) == 80
    assert not (cohort_emb / "xvector_crops.scp").exists()
    means = {k: np.asarray(v) for k, v in kaldiio.load_scp(str(cohort_emb / "spk_xvector.scp")).items()}
    assert sorted(means) == sorted(cohort.spk2utt) and all(abs(np.linalg.norm(v) - 1) < 1e-6 for v in means.values())
    _check_scores(exp, data, ["vox1_o", "vox1_h"])
    assert "cohort of 40 speakers, top 10" in proc.stderr
    assert proc.stderr.count(f"cohort: 40 speaker means from {cohort_emb / 'spk_xvector.scp'}") == 2
    _check_learnt(exp, data, ["vox1_o", "vox1_h"], "--exp", exp, "--nj", "1", "--device", "cpu", "--cohort-per-spk",
                  "2")
    assert sorted(p.name for p in (exp / "plots").glob("*_vox1_*.png")) == [
        "det_vox1_h.png", "det_vox1_o.png", "scores_vox1_h.png", "scores_vox1_o.png"]
    # stage 6 only reports: the operating point is set on purpose (steps/calibrate.py)
    assert not (exp / "threshold.yaml").exists() and not (exp / "calibration.yaml").exists()

    # Stage 6 alone remakes the same table from the score files.
    before = (exp / "results").read_text()
    (exp / "results").unlink()
    rerun = _run_recipe("--stage", "6", "--data", data, "--exp", exp, "--lists", "vox1_o,vox1_h", "--plots", "false")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (exp / "results").read_text() == before

    # --status from stage 1: nothing to do anywhere (the seed front end needs no stage 1)
    status = _status_rows(_run_recipe("--config", config, "--data", data, "--exp", exp, "--lists", "vox1_o,vox1_h",
                                      "--cohort-per-spk", "2", "--overrides",
                                      "train.random_seed=7 train.log_interval=1", "--stage", "1", "--status", "true"))
    assert all(state.startswith("up to date") for (stage, _, _), state in status.items() if stage != "stage 0")
    # stage 0 (outside), 1, 2, 3 (vox1_eval and cohort embeddings, cohort means), 4, 5, 6
    assert len(status) == 1 + 1 + 1 + 3 + 2 + 2 + 1, "\n".join(map(str, status))


def test_help_and_unknown_options() -> None:
    proc = _run_recipe("--help")
    assert proc.returncode == 0 and "--vox2-root DIR" in proc.stdout and "--aug-subset N" in proc.stdout
    proc = _run_recipe("--vox3-root", "x")
    assert proc.returncode == 1 and "unknown option --vox3-root" in proc.stderr


# ----------------------------------------------------------------------------------------------
# Stage 0 errors


def test_stage0_checks_every_listed_file_and_list(corpora: dict, tmp_path: Path) -> None:
    root = corpora["root"]
    meta = tmp_path / "meta"
    meta.mkdir()
    shutil.copy(root / "voxceleb1" / OFFICIAL["vox1_o"], meta)
    lines = (root / "voxceleb1" / OFFICIAL["vox1_h"]).read_text().splitlines()
    lines[3] = "0 id10001/AAAAAAAAAAA/00009.wav " + lines[3].split()[2]
    (meta / OFFICIAL["vox1_h"]).write_text("\n".join(lines) + "\n")
    base = ["--stage", "0", "--stop-stage", "0", "--vox1-root", corpora["vox1_roots"], "--trials-dir", meta,
            "--data", tmp_path / "data", "--exp", tmp_path / "exp", "--nj", "1"]
    proc = _run_recipe(*base, "--lists", "vox1_o,vox1_h")
    assert proc.returncode == 1
    assert (f"error: {meta / OFFICIAL['vox1_h']}:4: utterance 'id10001/AAAAAAAAAAA/00009' is not in "
            f"{tmp_path / 'data' / 'vox1' / 'utt2spk'}") in proc.stderr
    proc = _run_recipe(*base)  # the default: all three lists, and list_test_all2.txt is missing
    assert proc.returncode == 1 and f"{meta}: list_test_all2.txt not found; download from" in proc.stderr
    proc = _run_recipe("--stage", "0", "--stop-stage", "0", "--data", tmp_path / "data", "--exp", tmp_path / "exp")
    assert proc.returncode == 1 and "stage 0 needs the corpora" in proc.stderr


def _path_without_ffmpeg(folder: Path) -> str:
    """A PATH of one folder linking every program on PATH but ffmpeg: the recipe as on a machine without it."""
    folder.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            target = Path(directory) / name
            if name not in ("ffmpeg", "ffprobe") and not (folder / name).exists() and os.access(target, os.X_OK):
                (folder / name).symlink_to(target)
    return str(folder)


def test_m4a_without_ffmpeg_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "voxceleb2" / "dev" / "aac" / "id00012" / "21Uxsk56VDQ"
    folder.mkdir(parents=True)
    (folder / "00001.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A ")
    env = {"PATH": _path_without_ffmpeg(tmp_path / "bin")}
    for wav_dir in (tmp_path / "wav", ""):  # stage 0 converts (the default), or writes ffmpeg pipes
        proc = _run_recipe("--stage", "0", "--stop-stage", "0", "--vox2-root", tmp_path / "voxceleb2", "--data",
                           tmp_path / "data", "--exp", tmp_path / "exp", "--nj", "1", "--vox2-wav-dir", wav_dir,
                           env=env)
        assert proc.returncode == 1
        assert (f"found 1 .m4a files under {tmp_path / 'voxceleb2'}{'/dev/aac' if wav_dir else ''} but ffmpeg is "
                "not installed; install it (apt-get install ffmpeg) or convert to wav first") in proc.stderr


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (tools/setup.sh installs it)")
def test_m4a_tree_converted_by_stage0_or_refused_by_training(tmp_path: Path) -> None:
    corpus = make_fake_voxceleb2(tmp_path / "voxceleb2", speakers=2, videos=1, utts=2, as_m4a=True)
    common = ["--stage", "0", "--stop-stage", "0", "--data", tmp_path / "data", "--exp", tmp_path / "exp",
              "--nj", "2", "--vox2-root", tmp_path / "voxceleb2"]
    # The default: stage 0 decodes every m4a once to 16 kHz wav (here under --vox2-wav-dir) and uses the wavs.
    proc = _run_recipe(*common, "--vox2-wav-dir", tmp_path / "wav")
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = validate_data_dir(tmp_path / "data" / "vox2_dev")
    assert sorted(data.utts) == sorted(corpus.files) and set(data.utt2dur) == set(data.utts)
    assert data.wav_scp == {u: str(tmp_path / "wav" / f"{u}.wav") for u in corpus.files}
    info = soundfile.info(data.wav_scp[data.utts[0]])
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert "4 files converted, 0 already there" in proc.stderr
    rerun = _run_recipe(*common, "--vox2-wav-dir", tmp_path / "wav")  # resumes: nothing left to decode
    assert rerun.returncode == 0 and "0 files converted, 4 already there" in rerun.stderr
    # Without conversion, wav.scp holds ffmpeg pipes: stage 1 may run them, training refuses them.
    proc = _run_recipe(*common, "--vox2-wav-dir", "")
    assert proc.returncode == 0, proc.stderr[-2000:]
    scp = (tmp_path / "data" / "vox2_dev" / "wav.scp").read_text().splitlines()
    assert len(scp) == 4 and all(line.endswith("- |") and " ffmpeg " in f" {line} " for line in scp)
    config = tmp_path / "seed.yaml"
    config.write_text(TINY_SEED)
    proc = _run_recipe(*common[2:-2], "--stage", "1", "--stop-stage", "2", "--config", config,
                       "--overrides", "train.augment.enabled=false")
    assert proc.returncode == 1
    assert "VoxCeleb2 is decoded from m4a by ffmpeg every time it is read" in proc.stdout
    assert (f"error: {tmp_path / 'data' / 'vox2_dev' / 'wav.scp'}: 4 of 4 entries are pipe commands"
            in proc.stderr), proc.stderr[-2000:]


# ----------------------------------------------------------------------------------------------
# Augmentation on the recipe's data: SNR and RIR handling, the CLIs


@pytest.fixture(scope="module")
def aug_data(corpora: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("aug_data")
    prepare_musan(corpora["root"], data)
    prepare_rirs(corpora["root"], data / "rirs")
    return data


def _power_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def test_offline_specs_reach_their_snr_and_keep_the_direct_path(corpora: dict, aug_data: Path,
                                                                 tmp_path: Path) -> None:
    """On the fake corpora: each noise/music copy is at the SNR its spec asks (within 0.5 dB, measured as the
    plain power ratio of the clean signal to what was added), babble adds the summed power of its talkers, and
    the recipe's RIRs keep a signal's length and the alignment of its direct path."""
    from voxceleb import prepare_vox2_dev

    prepare_vox2_dev(corpora["root"] / "voxceleb2", tmp_path / "vox2_dev")
    cfg = AugmentConfig(musan_dir=str(aug_data), rir_dir=str(aug_data / "rirs"))
    make_augmented_copies(tmp_path / "vox2_dev", tmp_path, ("reverb", "noise", "music", "babble"), cfg, random_seed=3)
    clean = load_data_dir(tmp_path / "vox2_dev")
    measured = 0
    for kind in ("noise", "music", "babble"):
        for utt, text in read_utt2aug(tmp_path / f"vox2_dev_{kind}").items():
            spec = parse_augment_spec(text)
            x = read_audio(clean.wav_scp[utt.rsplit("-", 1)[0]]).astype(np.float64)
            y = apply_augment_spec(x, text).astype(np.float64)
            sources = spec["steps"][0]["sources"]
            assert y.shape == x.shape and (len(sources) == 1) == (kind != "babble")
            low, high = {"noise": (0.0, 15.0), "music": (5.0, 15.0), "babble": (13.0, 20.0)}[kind]
            assert all(low <= s["snr"] <= high for s in sources)
            assert all(s["segment"] == [0, 80000] for s in sources)  # the one 5 s segment of each 5.5 s file
            if len(sources) == 1:  # one source: the SNR of what was added is the one asked for
                assert abs(_power_db(x) - _power_db(y - x) - sources[0]["snr"]) < 0.5, (utt, sources)
            else:  # babble: 3-8 talkers (4 files here), each scaled against x; the sum has the summed power
                assert 3 <= len(sources) <= 4 and len({s["wav"] for s in sources}) == len(sources)
                expected = 10 * np.log10(sum(10 ** ((_power_db(x) - s["snr"]) / 10) for s in sources))
                assert abs(_power_db(y - x) - expected) < 1.5, (utt, sources)
            measured += 1
    assert measured == 72
    rirs = load_data_dir(aug_data / "rirs")
    specs = read_utt2aug(tmp_path / "vox2_dev_reverb")
    used = {parse_augment_spec(text)["steps"][0]["rir"] for text in specs.values()}
    assert used == set(rirs.wav_scp.values())  # 24 draws reach all 3 RIRs
    white = np.random.default_rng(0).standard_normal(64000)  # flat autocorrelation: xcorr(k) ~ rir[k]
    for rir_path in sorted(used):
        text = next(t for t in specs.values() if rir_path in t)
        rir = read_audio(rir_path).astype(np.float64)
        delay = int(np.argmax(np.abs(rir)))
        assert 8 <= delay < 120 and len(rir) == 4800
        for x in (white, read_audio(clean.wav_scp[clean.utts[0]]).astype(np.float64)):
            y = apply_augment_spec(x, text).astype(np.float64)
            assert y.shape == x.shape
            np.testing.assert_allclose(y, np.convolve(x, rir / np.linalg.norm(rir))[: len(x)], atol=1e-5)
        y = apply_augment_spec(white, text).astype(np.float64)
        xcorr = [np.dot(y[k:], white[: len(white) - k]) for k in range(300)]
        assert int(np.argmax(np.abs(xcorr))) == delay
        # the direct path's gain is that of the unit-energy RIR (estimation noise ~ 1 / sqrt(len(white)))
        assert xcorr[delay] / np.sum(white ** 2) == pytest.approx(rir[delay] / np.linalg.norm(rir), abs=0.02)


def _step(script: str, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(REPO / "steps" / script), *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=120)


def test_augment_and_combine_clis(corpora: dict, aug_data: Path, tmp_path: Path) -> None:
    from voxceleb import prepare_vox2_dev

    prepare_vox2_dev(corpora["root"] / "voxceleb2", tmp_path / "vox2_dev")
    config = tmp_path / "c.yaml"
    config.write_text("train: {augment: {musan_dir: /nowhere, rir_dir: /nowhere, snr_noise: [3.0, 4.0]}}\n")
    proc = _step("augment_data_dir.py", "--config", config, "--kinds", "noise,reverb", "--random-seed", "5",
                 "--musan-dir", aug_data, "--rir-dir", aug_data / "rirs", tmp_path / "vox2_dev", tmp_path)
    assert proc.returncode == 0, proc.stderr
    noise = read_utt2aug(tmp_path / "vox2_dev_noise")
    assert len(noise) == 24 and not (tmp_path / "vox2_dev_music").exists()
    assert all(3.0 <= parse_augment_spec(s)["steps"][0]["sources"][0]["snr"] <= 4.0 for s in noise.values())
    proc = _step("combine_data_dirs.py", "--subset", "10", "--seed", "1", tmp_path / "aug",
                 tmp_path / "vox2_dev_noise", tmp_path / "vox2_dev_reverb")
    assert proc.returncode == 0, proc.stderr
    aug = validate_data_dir(tmp_path / "aug", check_wavs=False)
    assert len(aug.utts) == 10 and set(read_utt2aug(tmp_path / "aug")) == set(aug.utts)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary dirs left
    # Errors name the culprit and exit 1 without a traceback.
    proc = _step("combine_data_dirs.py", tmp_path / "x", tmp_path / "aug", tmp_path / "vox2_dev_noise")
    assert proc.returncode == 1 and "is also in" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()
    proc = _step("augment_data_dir.py", "--config", config, "--kinds", "noise,echo", tmp_path / "vox2_dev", tmp_path)
    assert proc.returncode == 1 and "augmentation kinds ['noise', 'echo']" in proc.stderr


def test_random_subset_and_subset_per_speaker(corpora: dict, tmp_path: Path) -> None:
    from voxceleb import prepare_vox2_dev

    prepare_vox2_dev(corpora["root"] / "voxceleb2", tmp_path / "vox2_dev")
    a = random_subset(tmp_path / "vox2_dev", tmp_path / "a", 7, random_seed=1)
    b = random_subset(tmp_path / "vox2_dev", tmp_path / "b", 7, random_seed=1)
    c = random_subset(tmp_path / "vox2_dev", tmp_path / "c", 7, random_seed=2)
    assert a.utts == b.utts != c.utts and len(a.utts) == 7
    assert a.utt2dur == {u: load_data_dir(tmp_path / "vox2_dev").utt2dur[u] for u in a.utts}
    assert len(random_subset(tmp_path / "vox2_dev", tmp_path / "d", 1000).utts) == 24
    with pytest.raises(ConfigError, match="positive integer"):
        random_subset(tmp_path / "vox2_dev", tmp_path / "e", 0)
    per = subset_per_speaker(tmp_path / "vox2_dev", tmp_path / "cohort", 4)
    assert {s: len(u) for s, u in per.spk2utt.items()} == {s: 4 for s in corpora["vox2"].speakers}
    assert all(u == sorted(load_data_dir(tmp_path / "vox2_dev").spk2utt[s])[:4] for s, u in per.spk2utt.items())
    # The same subset again leaves the files alone (stamps of them still hold); another one replaces them and
    # drops what belonged to the old directory.
    cohort = tmp_path / "cohort"
    mtimes = {f.name: f.stat().st_mtime_ns for f in cohort.iterdir()}
    (cohort / "feats.scp").write_text("")
    assert subset_per_speaker(tmp_path / "vox2_dev", cohort, 4) == per
    assert {f.name: f.stat().st_mtime_ns for f in cohort.iterdir() if f.name != "feats.scp"} == mtimes
    (cohort / "split2").mkdir()
    (cohort / "trials").write_text("")
    two = subset_per_speaker(tmp_path / "vox2_dev", cohort, 2)
    assert load_data_dir(cohort) == two and {len(u) for u in two.spk2utt.values()} == {2}
    assert not any((cohort / name).exists() for name in ("feats.scp", "trials", "split2"))
    with pytest.raises(ConfigError, match="at least 1"):
        subset_per_speaker(tmp_path / "vox2_dev", tmp_path / "f", 0)
    with pytest.raises(DataError, match="not found"):
        subset_per_speaker(tmp_path / "missing", tmp_path / "f", 2)


# ----------------------------------------------------------------------------------------------
# Config overrides


def test_config_overrides() -> None:
    base = yaml.safe_load((RECIPE / "conf" / "ecapa_c1024.yaml").read_text())
    config = apply_overrides(base, ["train.epochs=3", "train.augment.musan_dir=/abs/data",
                                    "train.augment.snr_noise=[1, 2.5]", "model.frontend=fbank",
                                    "train.augment.enabled=false"])
    assert config.train.epochs == 3 and config.train.augment.musan_dir == "/abs/data"
    assert config.train.augment.snr_noise == [1, 2.5] and config.model.frontend == "fbank"
    assert not config.train.augment.enabled and config.model.channels == 1024 and config.train.batch_size == 400
    assert get_value(config, "train.augment.rir_dir") == "data/rirs"
    assert parse_override("a.b= x y") == (["a", "b"], "x y")
    for bad, message in (("train.epochs", "expected KEY=VALUE"), ("train.epoch=3", "unknown key train.epoch"),
                         ("train.epochs=many", "train.epochs: expected int, got str 'many'"),
                         ("train=3", "unknown key train"), ("train.augment.enabled.x=1", "is not a section"),
                         ("model.frontend=wave", "'wave' is not one of fbank, seed"),
                         ("train.lr=[1", "not valid YAML")):
        with pytest.raises(ConfigError, match=message):
            apply_overrides(base, [bad])
    with pytest.raises(ConfigError, match="config has no key 'train.nope'"):
        get_value(config, "train.nope")


def test_make_config_names_the_table_stage_2_reads() -> None:
    """run.sh's stage 1 computes the training set's fbank only when this prints feats.scp."""
    def table(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(REPO / "steps" / "make_config.py"), "--training-table", *args],
                              capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})

    mini = str(REPO / "conf" / "ecapa_mini.yaml")
    assert table(mini).stdout == "wav.scp\n"  # fbank on the fly
    assert table("--set", "train.on_the_fly_features=false", mini).stdout == "feats.scp\n"
    assert table(str(RECIPE / "conf" / "ecapa_c1024_fbank.yaml")).stdout == "feats.scp\n"
    assert table(str(RECIPE / "conf" / "ecapa_c1024.yaml")).stdout == "wav.scp\n"  # the seed's front end
    bad = table("--set", "train.epoch=3", mini)
    assert bad.returncode != 0 and "unknown key train.epoch" in bad.stderr


def test_recipe_configs_are_the_seed_setup() -> None:
    c1024 = load_config(RECIPE / "conf" / "ecapa_c1024.yaml")
    assert (c1024.model.frontend, c1024.model.channels, c1024.model.embed_dim) == ("seed", 1024, 192)
    assert (c1024.loss.margin, c1024.loss.scale) == (0.2, 30.0)
    t = c1024.train
    assert (t.epochs, t.batch_size, t.lr, t.weight_decay, t.lr_decay, t.chunk_frames) == (80, 400, 1e-3, 2e-5, 0.97,
                                                                                          200)
    assert (t.specaug_time, t.specaug_freq, t.augment.enabled) == (10, 8, True)
    assert (t.augment.babble_speakers, t.augment.snr_babble, t.augment.snr_music, t.augment.snr_noise) == (
        [3, 8], [13.0, 20.0], [5.0, 15.0], [0.0, 15.0])
    assert (c1024.extract.protocol, c1024.score.asnorm_top_n) == ("seed", 300)
    c512 = load_config(RECIPE / "conf" / "ecapa_c512.yaml")
    assert c512.model.channels == 512 and c512.train == c1024.train and c512.extract == c1024.extract
    fbank = load_config(RECIPE / "conf" / "ecapa_c1024_fbank.yaml")
    assert fbank.model.frontend == "fbank" and not fbank.train.augment.enabled
    assert fbank.train.augment.snr_noise == t.augment.snr_noise and fbank.train.lr == t.lr


# ----------------------------------------------------------------------------------------------
# The augmentation wiring of stage 2 (pyfunc.train)


def _wave_config(**augment) -> Config:
    return config_from_dict({"model": {"frontend": "seed", "channels": 8, "embed_dim": 8},
                             "train": {"epochs": 1, "batch_size": 6, "chunk_frames": 50, "num_workers": 0,
                                       "augment": augment}})


def test_wave_training_applies_offline_copies_and_on_the_fly_augmentation(corpora: dict, aug_data: Path,
                                                                           tmp_path: Path, monkeypatch,
                                                                           restore_logging) -> None:
    from voxceleb import prepare_vox2_dev

    from pyfunc.features import augment
    from pyfunc.training import examples
    from pyfunc.training.trainer import train

    prepare_vox2_dev(corpora["root"] / "voxceleb2", tmp_path / "clean")
    random_subset(tmp_path / "clean", tmp_path / "small", 6, random_seed=0)
    cfg = AugmentConfig(musan_dir=str(aug_data), rir_dir=str(aug_data / "rirs"))
    make_augmented_copies(tmp_path / "small", tmp_path, ("reverb",), cfg)
    combine_data_dirs(tmp_path / "train", [tmp_path / "small", tmp_path / "small_reverb"])

    offline, online = [], []
    real_apply, real_call = examples.apply_augment_spec, augment.WaveAugmenter.__call__
    monkeypatch.setattr(examples, "apply_augment_spec", lambda x, spec: offline.append(spec) or real_apply(x, spec))
    monkeypatch.setattr(augment.WaveAugmenter, "__call__",
                        lambda self, x, rng: online.append(len(x)) or real_call(self, x, rng))

    train(_wave_config(), tmp_path / "train", tmp_path / "exp_offline", device="cpu")
    specs = read_utt2aug(tmp_path / "train")
    assert len(offline) == 6 and sorted(offline) == sorted(specs.values()) and not online
    assert (tmp_path / "exp_offline" / "models" / "epoch_1.pt").is_file()

    offline.clear()
    train(_wave_config(enabled=True, musan_dir=str(aug_data), rir_dir=str(aug_data / "rirs")), tmp_path / "small",
          tmp_path / "exp_online", device="cpu")
    assert not offline and online == [50 * 160 + 240] * 6
    assert (tmp_path / "exp_online" / "models" / "epoch_1.pt").is_file()

    # The fbank front end trains on features: on-the-fly augmentation there is refused, pointing at offline copies.
    fbank_dir = tmp_path / "small_fbank"
    shutil.copytree(tmp_path / "small", fbank_dir)
    with ArkScpWriter(tmp_path / "feats.ark", fbank_dir / "feats.scp") as write:
        for utt in load_data_dir(fbank_dir).utts:
            write(utt, np.random.default_rng(0).standard_normal((120, 80)).astype(np.float32))
    bad = _wave_config(enabled=True, musan_dir=str(aug_data), rir_dir=str(aug_data / "rirs"))
    bad.model.frontend = "fbank"
    with pytest.raises(ConfigError, match="steps/augment_data_dir.py"):
        train(bad, fbank_dir, tmp_path / "exp_bad", device="cpu")
    with pytest.raises((ConfigError, DataError),
                       match=r"musan_music/wav.scp: not found; the music augmentation needs this data dir"):
        train(_wave_config(enabled=True, musan_dir=str(tmp_path), rir_dir=str(aug_data / "rirs")),
              tmp_path / "small", tmp_path / "exp_missing", device="cpu")
