"""Bad input, faults and reruns, through the steps/*.py command lines.

Every bad input makes its stage exit 1 with ``error:`` and a message naming the file,
line or key, and leaves no partial output (and no temporary file). Bad audio is either
listed as a whole (default) or skipped and recorded (--skip-bad-audio). Stages killed
with SIGKILL or hitting a full disk leave the old complete output, and a rerun equals an
uninterrupted run. Stamps make unchanged reruns do nothing and changed inputs redo the
work, and stale outputs are refused downstream.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, make_tone_data_dir
from fault_helpers import (
    FBANK_CONF,
    assert_same_tables,
    bad_audio,
    load_table,
    run_step,
    start_step,
    temporaries,
    tiny_model_dir,
)

import pyfunc.data.arkio
import pyfunc.data.audio
import pyfunc.scoring.score_files
from pyfunc.data.badinput import read_skipped
from pyfunc.data.datadir import DataDir, validate_data_dir, write_data_dir
from pyfunc.data.tables import read_map, write_table
from pyfunc.errors import PyfuncError
from pyfunc.models.checkpoint import load_checkpoint, save_checkpoint
from pyfunc.training.checks import check_gradients, disagreeing, parameter_fingerprint

pytestmark = pytest.mark.usefixtures("in_process_steps")  # conftest: no pipes, one thread, INFO logs


def _rewrite(path: Path, transform) -> None:
    path.write_text("\n".join(transform(path.read_text().splitlines())) + "\n")


def _stage1(capsys, data: Path, *options: object) -> tuple[int, str]:
    return run_step(capsys, "make_fbank.py", "--conf", FBANK_CONF, *options, data, data.parent / "fbank",
                    data.parent / "log")


def _no_stage1_outputs(data: Path) -> None:
    for name in ("feats.scp", "utt2num_frames", "skipped_utts", ".fbank.stamp"):
        assert not (data / name).exists(), name
    assert not list((data.parent / "fbank").glob("raw_fbank_*")) if (data.parent / "fbank").is_dir() else True
    assert temporaries(data.parent) == []


# ------------------------------------------------------------------------------------------------
# Data directories


@pytest.mark.parametrize("name, transform, message", [
    ("utt2spk", lambda ls: ls[1:2] + ls[0:1] + ls[2:], r"utt2spk:2: key 'spk00-000' is out of order"),
    ("wav.scp", lambda ls: ls[:2] + ls[1:], r"wav.scp:3: duplicate key 'spk00-001'"),
    ("spk2utt", lambda ls: [ls[0].rsplit(" ", 1)[0]] + ls[1:], r"spk2utt: utterances of speaker 'spk00' disagree"),
    ("wav.scp", lambda ls: ls[:-1], r"wav.scp: 1 utterance\(s\) of utt2spk missing, e.g. \['spk02-002'\]"),
    ("utt2spk", lambda ls: ls + ["spk03-000"], r"utt2spk:10: expected 2 fields, got 1: 'spk03-000'"),
    ("trials", lambda ls: ["spk00-000 spk01-000 target", "spk00-000 ghost nontarget"],
     r"trials:2: unknown utterance 'ghost'"),
    ("trials", lambda ls: ["spk00-000 spk01-000 maybe"], r"trials:1: label 'maybe' is not one of"),
])
def test_stage1_rejects_broken_data_dirs(capsys, tmp_path: Path, name, transform, message) -> None:
    data = make_tone_data_dir(tmp_path)
    (data / "trials").touch()
    _rewrite(data / name, transform)
    code, err = _stage1(capsys, data)
    assert code == 1
    assert err.startswith("error: ") and re.search(message, err), err
    _no_stage1_outputs(data)


# ------------------------------------------------------------------------------------------------
# Bad audio: the whole list by default, or skipped and recorded


def _data_with_bad_audio(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    data = make_tone_data_dir(tmp_path, speakers=2, utts=2)
    bad = bad_audio(tmp_path / "bad")
    wav_scp, utt2spk = read_map(data / "wav.scp"), read_map(data / "utt2spk")
    wav_scp = {k: v for k, v in wav_scp.items()}
    for name, (entry, _) in bad.items():
        wav_scp[f"spk01-x-{name}"] = entry
        utt2spk[f"spk01-x-{name}"] = "spk01"
    write_data_dir(data, DataDir(wav_scp, utt2spk))
    return data, {f"spk01-x-{name}": part for name, (_, part) in bad.items()}


def test_bad_audio_is_listed_whole_or_skipped_and_recorded(capsys, caplog, tmp_path: Path) -> None:
    data, expected = _data_with_bad_audio(tmp_path)
    good = sorted(set(read_map(data / "utt2spk")) - set(expected))

    # default: stop with every bad file (from both jobs), naming utterance and reason; no output
    code, err = _stage1(capsys, data, "--nj", "2", "--allow-pipes")
    assert code == 1, err
    assert f"{data / 'wav.scp'}: {len(expected)} of {len(good) + len(expected)} utterance(s) have bad input" in err
    assert "--skip-bad-audio" in err
    for utt, part in expected.items():
        assert re.search(rf"wav\.scp: {utt}: .*{re.escape(part)}", err), (utt, err)
    _no_stage1_outputs(data)

    # --skip-bad-audio: features of the good ones, the bad keys (with reasons) in skipped_utts
    code, err = _stage1(capsys, data, "--allow-pipes", "--skip-bad-audio")
    assert code == 0, err
    skipped = read_skipped(data)
    assert sorted(skipped) == sorted(expected)
    for utt, part in expected.items():
        assert part in skipped[utt]
    assert f"skipped {len(expected)} of {len(good) + len(expected)} utterance(s) with bad input" in caplog.text
    feats = load_table(data / "feats.scp")
    assert list(feats) == good
    validate_data_dir(data, check_wavs=False)  # feats.scp may lack exactly the skipped utterances

    # stage 3 (fbank front end) carries the skips over; stage 4 says why a needed utterance is missing
    model = tiny_model_dir(tmp_path / "model", "fbank")
    emb = tmp_path / "emb"
    code, err = run_step(capsys, "extract_embeddings.py", "--model-dir", model, "--data", data, "--out", emb,
                         "--device", "cpu")
    assert code == 0, err
    assert list(load_table(emb / "xvector.scp")) == good
    assert read_skipped(emb) == skipped
    (tmp_path / "trials").write_text(f"{good[0]} {good[1]} target\n{good[0]} spk01-x-stereo nontarget\n")
    code, err = run_step(capsys, "score_cosine.py", "--trials", tmp_path / "trials", "--embeddings", emb,
                         "--out", tmp_path / "scores")
    assert code == 1
    assert "trials:2: utterance 'spk01-x-stereo' is not in" in err and "was skipped as bad input" in err
    assert not (tmp_path / "scores").exists()

    # a trials file that needs a skipped utterance fails the stage; the old outputs stay
    before = (data / "feats.scp").read_text()
    (data / "trials").write_text(f"{good[0]} {good[1]} target\n{good[0]} spk01-x-nan nontarget\n")
    code, err = _stage1(capsys, data, "--allow-pipes", "--skip-bad-audio")
    assert code == 1
    assert re.search(r"trials: 1 utterance\(s\) that trials need have bad input", err), err
    assert "spk01-x-nan (line 2:" in err and "non-finite samples" in err
    assert (data / "feats.scp").read_text() == before
    assert_same_tables(load_table(data / "feats.scp"), feats)
    assert temporaries(tmp_path) == []
    code, err = run_step(capsys, "extract_embeddings.py", "--model-dir", model, "--data", data, "--out",
                         tmp_path / "emb2", "--device", "cpu", "--skip-bad-audio")
    assert code == 1 and "spk01-x-nan (line 2:" in err, err
    assert not (tmp_path / "emb2" / "xvector.scp").exists()


def test_stage3_bad_audio_and_pipes(capsys, tmp_path: Path) -> None:
    """Seed front end: stage 3 reads wav.scp itself; pipes run only with --allow-pipes."""
    data = make_tone_data_dir(tmp_path, speakers=2, utts=2)
    bad = bad_audio(tmp_path / "bad")
    wav_scp, utt2spk = read_map(data / "wav.scp"), read_map(data / "utt2spk")
    for name in ("truncated", "short", "stereo"):
        wav_scp[f"spk01-x-{name}"], utt2spk[f"spk01-x-{name}"] = bad[name][0], "spk01"
    marker = tmp_path / "pipe_ran"
    wav_scp["spk01-y-pipe"] = f"touch {marker}; cat {wav_scp['spk00-000']} |"
    utt2spk["spk01-y-pipe"] = "spk01"
    write_data_dir(data, DataDir(wav_scp, utt2spk))
    model = tiny_model_dir(tmp_path / "model", "seed")
    args = ["--model-dir", model, "--data", data, "--device", "cpu"]

    code, err = run_step(capsys, "extract_embeddings.py", *args, "--out", tmp_path / "e1")
    assert code == 1
    assert "4 of 8 utterance(s) have bad input" in err
    for utt, part in (("spk01-x-truncated", "is truncated"), ("spk01-x-short", "200 samples is too short"),
                      ("spk01-x-stereo", "expected mono audio"), ("spk01-y-pipe", "--allow-pipes")):
        assert re.search(rf"wav\.scp: {utt}: .*{re.escape(part)}", err), (utt, err)
    assert not marker.exists(), "a pipe command ran without --allow-pipes"
    assert not (tmp_path / "e1" / "xvector.scp").exists() and temporaries(tmp_path) == []
    assert not list((tmp_path / "e1").glob("parts.*"))

    code, err = run_step(capsys, "extract_embeddings.py", *args, "--out", tmp_path / "e2", "--skip-bad-audio",
                         "--allow-pipes")
    assert code == 0, err
    assert marker.exists()
    emb = load_table(tmp_path / "e2" / "xvector.scp")
    assert sorted(read_skipped(tmp_path / "e2")) == ["spk01-x-short", "spk01-x-stereo", "spk01-x-truncated"]
    assert list(emb) == ["spk00-000", "spk00-001", "spk01-000", "spk01-001", "spk01-y-pipe"]
    np.testing.assert_allclose(emb["spk01-y-pipe"], emb["spk00-000"], rtol=0, atol=1e-6)  # the same audio

    trials = tmp_path / "trials"
    trials.write_text("spk00-000 spk01-x-short target\n")
    code, err = run_step(capsys, "extract_embeddings.py", *args, "--out", tmp_path / "e3", "--skip-bad-audio",
                         "--trials", trials)
    assert code == 1 and "spk01-x-short (line 1:" in err, err
    assert not (tmp_path / "e3" / "xvector.scp").exists() and not list((tmp_path / "e3").glob("parts.*"))


# ------------------------------------------------------------------------------------------------
# Feature archives, embeddings and trials


def _features_dir(root: Path, count: int = 3) -> Path:
    data = root / "feats"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    utts = [f"a{i}" for i in range(1, count + 1)]
    with pyfunc.data.arkio.ArkScpWriter(data / "feats.ark", data / "feats.scp") as write:
        for utt in utts:
            write(utt, rng.standard_normal((60, 80)).astype(np.float32))
    write_table(data / "utt2spk", {u: "a" for u in utts})
    write_table(data / "wav.scp", {u: data / f"{u}.wav" for u in utts})  # not read: fbank model
    return data


@pytest.mark.parametrize("damage, message", [
    ("truncate", r"feats\.scp: a3: cannot read features"),
    ("past_end", r"feats\.scp: a2: cannot read features"),
    ("pipe", r"feats\.scp: a1: entry .* is a pipe command; run with --allow-pipes"),
])
def test_stage3_rejects_broken_feature_archives(capsys, tmp_path: Path, damage, message) -> None:
    data = _features_dir(tmp_path)
    ark = data / "feats.ark"
    marker = tmp_path / "pipe_ran"
    if damage == "truncate":
        ark.write_bytes(ark.read_bytes()[:-500])
    elif damage == "past_end":
        _rewrite(data / "feats.scp", lambda ls: [ls[0], f"a2 {ark}:{ark.stat().st_size + 100}", ls[2]])
    else:
        _rewrite(data / "feats.scp", lambda ls: [f"a1 touch {marker}; cat {ark} |"] + ls[1:])
    model = tiny_model_dir(tmp_path / "model", "fbank")
    code, err = run_step(capsys, "extract_embeddings.py", "--model-dir", model, "--data", data, "--out",
                         tmp_path / "emb", "--device", "cpu")
    assert code == 1 and re.search(message, err), err
    assert not marker.exists()
    assert not (tmp_path / "emb" / "xvector.scp").exists() and temporaries(tmp_path) == []


def test_scoring_rejects_bad_trials_and_pipe_scps(capsys, tmp_path: Path) -> None:
    emb = tmp_path / "emb"
    with pyfunc.data.arkio.ArkScpWriter(emb / "xvector.ark", emb / "xvector.scp") as write:
        for utt, vec in (("a", [1.0, 0.0]), ("b", [0.6, 0.8]), ("c", [0.0, 1.0])):
            write(utt, np.array(vec, np.float32))
    scores = tmp_path / "scores"
    scores.write_text("old scores\n")
    trials = tmp_path / "trials"
    for text, message in (("a b target\na\n", r"trials:2: expected 'enroll test target\|nontarget', got 'a'"),
                          ("a b target\na b c d\n", r"trials:2: expected 'enroll test"),
                          ("a b maybe\n", r"trials:1: label 'maybe' is not one of target, nontarget, 1, 0"),
                          ("a b 1\nb zed 0\n", r"trials:2: utterance 'zed' is not in .*xvector\.scp"),
                          ("\n\n", r"trials: no trials"),
                          (b"a b target\n\xff\xfe\n", r"trials: not a UTF-8 text file")):
        trials.write_bytes(text if isinstance(text, bytes) else text.encode())
        code, err = run_step(capsys, "score_cosine.py", "--trials", trials, "--embeddings", emb, "--out", scores)
        assert code == 1 and re.search(message, err), (text, err)
        assert scores.read_text() == "old scores\n"
    trials.write_text("a b target\nb c nontarget\n")
    code, err = run_step(capsys, "compute_metrics.py", "--trials", trials, "--out", tmp_path / "results",
                         "--no-plots", scores)
    assert code == 1 and "scores:1: expected 'enroll test score'" in err, err
    trials.write_text("a b\n")
    scores.write_text("a b 0.5\n")
    code, err = run_step(capsys, "compute_metrics.py", "--trials", trials, "--out", tmp_path / "results",
                         "--no-plots", scores)
    assert code == 1 and "trials:1: missing target/nontarget label" in err, err
    assert not (tmp_path / "results").exists()

    marker = tmp_path / "pipe_ran"
    (emb / "xvector.scp").write_text(f"a touch {marker}; cat {emb / 'xvector.ark'} |\n")
    code, err = run_step(capsys, "score_cosine.py", "--trials", trials, "--embeddings", emb, "--out", scores)
    assert code == 1 and re.search(r"xvector\.scp: key 'a': entry .* is a pipe command", err), err
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------
# Configs, checkpoints and untrusted files


def _train_args(tmp_path: Path, config: dict, data: Path | None = None) -> list:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return ["--config", path, "--data", data or tmp_path / "nodata", "--exp", tmp_path / "exp", "--device", "cpu"]


@pytest.mark.parametrize("config, message", [
    ({"train": {"lr_decayy": 0.9}}, r"config\.yaml: unknown key\(s\) train\.lr_decayy; allowed: .*lr_decay"),
    ({"train": {"batch_size": "64"}}, r"config\.yaml: train\.batch_size: expected int, got str '64'"),
    ({"model": {"frontend": "mfcc"}}, r"config\.yaml: model\.frontend: 'mfcc' is not one of fbank, seed"),
    ({"model": 3}, r"config\.yaml: model: expected a mapping, got int"),
])
def test_config_schema_errors(capsys, tmp_path: Path, config, message) -> None:
    code, err = run_step(capsys, "train.py", *_train_args(tmp_path, config))
    assert code == 1 and re.search(message, err), err
    assert not (tmp_path / "exp").exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_model_dirs_and_checkpoints_are_checked(capsys, tmp_path: Path) -> None:
    data = _features_dir(tmp_path)
    model = tiny_model_dir(tmp_path / "model", "fbank")
    extract = ["extract_embeddings.py", "--model-dir", model, "--data", data, "--out", tmp_path / "emb", "--device",
               "cpu"]
    config = (model / "config.yaml").read_text()
    (model / "config.yaml").write_text(config.replace("channels: 16", "channels: 24"))
    code, err = run_step(capsys, *extract)
    assert code == 1 and "model.pt (encoder): weights do not fit the model: mis-shaped key(s)" in err, err
    (model / "config.yaml").write_text(config)
    weights = (model / "model.pt").read_bytes()
    (model / "model.pt").write_bytes(weights[: len(weights) // 2])
    code, err = run_step(capsys, *extract)
    assert code == 1 and "model.pt: cannot read the weights (truncated or corrupt file?)" in err, err

    class Exploit:  # unpickling this would run a shell command
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'pwned'}",)

    (model / "model.pt").write_bytes(pickle.dumps({"format": "pyfunc-model-1", "x": Exploit()}))
    code, err = run_step(capsys, *extract)
    assert code == 1 and "cannot read the weights" in err
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "emb" / "xvector.scp").exists()

    # training resumes only from a checkpoint of this model, and never unpickles code
    models = tmp_path / "exp" / "models"
    models.mkdir(parents=True)
    train = _train_args(tmp_path, {"model": {"channels": 16, "embed_dim": 8},
                                   "train": {"batch_size": 3, "epochs": 1, "num_workers": 0}}, data)
    (models / "epoch_1.pt").write_bytes(pickle.dumps(Exploit()))
    code, err = run_step(capsys, "train.py", *train)
    assert code == 1 and "epoch_1.pt: cannot read checkpoint" in err, err
    assert not (tmp_path / "pwned").exists()
    torch.save({"encoder": {}}, models / "epoch_1.pt")
    code, err = run_step(capsys, "train.py", *train)
    assert code == 1 and "epoch_1.pt: not a training checkpoint of this toolkit (no head, optimizer" in err, err
    other = tiny_model_dir(tmp_path / "other", "fbank")
    payload = torch.load(other / "model.pt", weights_only=True)
    payload["encoder"] = {k: v for k, v in payload["encoder"].items() if not k.startswith("layer4")}
    torch.save({**payload, "optimizer": {}, "scheduler": {}, "epoch": 1, "step": 0, "rng": {}},
               models / "epoch_1.pt")
    code, err = run_step(capsys, "train.py", *train)
    assert code == 1 and re.search(r"epoch_1\.pt \(encoder\): weights do not fit the model: missing key\(s\): "
                                   r"layer4", err), err


def test_no_code_runs_from_untrusted_files() -> None:
    """torch.load only with weights_only=True, YAML only with safe_load, no eval/exec/pickle, one shell."""
    sources = [p for folder in ("pyfunc", "steps", "local", "egs") for p in (REPO / folder).rglob("*.py")]
    assert len(sources) > 20
    shells = []
    for path in sources:
        text = path.read_text()
        for call in re.finditer(r"torch\.load\(([^)]*)\)", text):
            assert "weights_only=True" in call.group(1), f"{path}: {call.group(0)}"
        assert not re.search(r"yaml\.(unsafe_)?load\(|yaml\.load_all\(|yaml\.Loader\b", text), path
        assert not re.search(r"(?<![\w.])(eval|exec)\(|pickle\.loads?\(|marshal\.loads?\(", text), path
        shells += [f"{path.name}:{text[:m.start()].count(chr(10)) + 1}" for m in re.finditer(r"shell=True", text)]
    assert len(shells) == 1 and shells[0].startswith("audio.py:"), shells  # the --allow-pipes reader only


# ------------------------------------------------------------------------------------------------
# Numerical faults in training


def test_non_finite_loss_stops_with_step_batch_and_last_good_checkpoint(capsys, tmp_path: Path) -> None:
    from pyfunc.training.examples import EpochBatches

    data = tmp_path / "feats"
    data.mkdir()
    rng = np.random.default_rng(1)
    utts = [f"s{s}-{u}" for s in range(2) for u in range(8)]
    sampler = EpochBatches(16, 4, random_seed=5)  # the plan of the run below: the bad utterance opens step 3
    sampler.set_epoch(1)
    step = 2
    huge = utts[sampler.micro_batch(step, 0)[0]]
    with pyfunc.data.arkio.ArkScpWriter(data / "feats.ark", data / "feats.scp") as write:
        for utt in utts:  # finite, but overflows float32 inside the model
            write(utt, np.full((40, 80), 3e38, np.float32) if utt == huge else
                  rng.standard_normal((40, 80)).astype(np.float32))
    write_table(data / "utt2spk", {u: u.split("-")[0] for u in utts})
    write_table(data / "wav.scp", {u: data / f"{u}.wav" for u in utts})
    args = _train_args(tmp_path, {"model": {"channels": 16, "embed_dim": 8},
                                  "train": {"batch_size": 4, "epochs": 2, "num_workers": 0, "random_seed": 5,
                                            "chunk_frames": 20, "checkpoint_interval": 1}}, data)
    code, err = run_step(capsys, "train.py", *args)
    assert code == 1, err
    last = tmp_path / "exp" / "models" / f"step_1_{step}.pt"
    assert re.search(rf"non-finite training loss \((nan|inf|-inf)\) at epoch 1, step {step + 1}, micro-batch 0 of 1 "
                     rf"\(rank 0\) \(utterances: .*{huge}.*\); training stopped before applying it; "
                     rf"the last good checkpoint is {re.escape(str(last))}", err), err
    state = load_checkpoint(last)
    assert state["step"] == step
    assert all(torch.isfinite(v).all() for v in state["encoder"].values() if v.is_floating_point())
    assert not (tmp_path / "exp" / "model.pt").exists()


def test_gradient_and_replica_checks() -> None:
    net = torch.nn.Linear(3, 2)
    net(torch.ones(1, 3)).sum().backward()
    check_gradients(net, 1, 1, Path("/nonexistent"))
    net.weight.grad[0, 0] = float("inf")
    with pytest.raises(PyfuncError, match=r"non-finite gradient norm \(inf\) at epoch 2, step 7"):
        check_gradients(net, 2, 7, Path("/nonexistent"))
    a = parameter_fingerprint(net)
    with torch.no_grad():
        net.weight[1, 2] = torch.nextafter(net.weight[1, 2], torch.tensor(9.0))  # one ulp
    b = parameter_fingerprint(net)
    assert disagreeing([a, a.clone(), b]) == [2]
    with torch.no_grad():  # swapping two values keeps sum and sum of squares, not the weighted sum
        w = net.weight.clone()
        net.weight[0, 0], net.weight[1, 1] = w[1, 1], w[0, 0]
    assert disagreeing([b, parameter_fingerprint(net)]) == [1]


# ------------------------------------------------------------------------------------------------
# Stamps: unchanged reruns do nothing, changes redo the work, stale outputs are refused


def test_stamps_record_inputs_and_outputs(tmp_path: Path) -> None:
    from pyfunc.pipeline.stamps import make_stamp, stale_inputs, why_not_current, write_stamp

    light, deep, out = tmp_path / "wav.scp", tmp_path / "a.wav", tmp_path / "feats.scp"
    for path in (light, deep, out):
        path.write_text(path.name)
    stamp = tmp_path / ".stamp"
    write_stamp(stamp, make_stamp("s", {"n": 1, "sub": {"x": [1, 2]}}, [light], [out], [deep]))
    assert why_not_current(stamp, "s", {"n": 1, "sub": {"x": (1, 2)}}, [light], [deep]) is None
    assert why_not_current(stamp, "s", {"n": 1, "sub": {"x": [1, 3]}}, [light], [deep]) == "parameter sub.x changed"
    assert why_not_current(stamp, "t", {}, [light], [deep]) == "the stamp is of stage 's'"
    assert "the set of input files changed" in why_not_current(stamp, "s", {"n": 1, "sub": {"x": [1, 2]}}, [light])
    deep.write_text("other audio")
    assert why_not_current(stamp, "s", {"n": 1, "sub": {"x": [1, 2]}}, [light], [deep]) == f"input {deep} changed"
    assert stale_inputs(stamp) == []  # consumers check only the light inputs
    light.write_text("new list")
    assert stale_inputs(stamp) == [str(light)]
    out.write_text("rewritten by someone else")
    assert stale_inputs(stamp) == []  # the stamp no longer describes the output: ignored
    write_stamp(stamp, make_stamp("s", {}, [light], [out], [deep]))
    out.unlink()
    assert why_not_current(stamp, "s", {}, [light], [deep]) == f"output {out} is missing or changed"
    stamp.write_text("{not json")
    assert why_not_current(stamp, "s", {}, [], []) == "no stamp of an earlier complete run"


def test_stage1_stamps_full_disk_and_stale_features(capsys, caplog, monkeypatch, tmp_path: Path) -> None:
    data = make_tone_data_dir(tmp_path, speakers=2, utts=2)
    assert _stage1(capsys, data)[0] == 0
    first = load_table(data / "feats.scp")
    arks = sorted((tmp_path / "fbank").iterdir())
    files = {p: p.stat().st_mtime_ns for p in [data / "feats.scp", data / "utt2num_frames", *arks]}
    caplog.clear()
    assert _stage1(capsys, data)[0] == 0
    assert "features are up to date" in caplog.text
    assert {p: p.stat().st_mtime_ns for p in files} == files and sorted((tmp_path / "fbank").iterdir()) == arks

    # new audio for one utterance, and a full disk while writing the new feats.scp:
    # the old output, its arks and its stamp stay, no temporary file is left
    from conftest import tone_wav
    new_wav = tone_wav(tmp_path / "wav" / "new.wav", 1.0, 300.0, random_seed=3)
    _rewrite(data / "wav.scp",
             lambda rows: [f"spk01-000 {new_wav}" if row.startswith("spk01-000 ") else row for row in rows])
    real_open = pyfunc.data.arkio.atomic_open

    @contextlib.contextmanager
    def full_disk(path, *args, **kwargs):
        with real_open(path, *args, **kwargs) as handle:
            handle.write("spk00-000 /half/a/line")
            handle.writelines = lambda *_: (_ for _ in ()).throw(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
            yield handle

    monkeypatch.setattr(pyfunc.data.arkio, "atomic_open", full_disk)
    code, err = _stage1(capsys, data)
    monkeypatch.setattr(pyfunc.data.arkio, "atomic_open", real_open)
    assert code == 1 and err.startswith("error: OSError: [Errno 28] No space left on device"), err
    assert {p: p.stat().st_mtime_ns for p in files} == files
    assert sorted((tmp_path / "fbank").iterdir()) == arks, "the new arks are removed"
    assert temporaries(tmp_path) == []
    assert_same_tables(load_table(data / "feats.scp"), first)

    # the old feats.scp is intact but stale (wav.scp changed since): stages 2 and 3 refuse it
    model = tiny_model_dir(tmp_path / "model", "fbank")
    code, err = run_step(capsys, "extract_embeddings.py", "--model-dir", model, "--data", data, "--out",
                         tmp_path / "emb", "--device", "cpu")
    assert code == 1 and re.search(r"feats\.scp: out of date: .*wav\.scp changed after it was made; rerun stage 1",
                                   err), err
    code, err = run_step(capsys, "train.py", *_train_args(tmp_path, {}, data))
    assert code == 1 and "feats.scp: out of date" in err, err

    # the rerun redoes the work: only that utterance's features change, the old arks go
    caplog.clear()
    assert _stage1(capsys, data)[0] == 0
    assert f"input {data / 'wav.scp'} changed" in caplog.text
    second = load_table(data / "feats.scp")
    assert [k for k in first if first[k].shape != second[k].shape or not np.array_equal(first[k], second[k])] == [
        "spk01-000"]
    assert len(list((tmp_path / "fbank").glob("*.ark"))) == 1 and temporaries(tmp_path) == []


def test_stage3_stamps_full_disk_and_stale_embeddings(capsys, caplog, monkeypatch, tmp_path: Path) -> None:
    data = _features_dir(tmp_path)
    model = tiny_model_dir(tmp_path / "model", "fbank")
    emb = tmp_path / "emb"
    extract = ["extract_embeddings.py", "--model-dir", model, "--data", data, "--out", emb, "--device", "cpu"]
    assert run_step(capsys, *extract)[0] == 0
    before = load_table(emb / "xvector.scp")
    scp_text = (emb / "xvector.scp").read_text()
    caplog.clear()
    assert run_step(capsys, *extract)[0] == 0 and "embeddings are up to date" in caplog.text

    calls = []
    real_write = pyfunc.data.arkio.write_array

    def full_disk(handle, array):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(handle, array)

    monkeypatch.setattr(pyfunc.data.arkio, "write_array", full_disk)
    code, err = run_step(capsys, *extract, "--force")
    monkeypatch.setattr(pyfunc.data.arkio, "write_array", real_write)
    assert code == 1 and "error: OSError: [Errno 28] No space left on device" in err, err
    assert (emb / "xvector.scp").read_text() == scp_text
    assert_same_tables(load_table(emb / "xvector.scp"), before)
    assert len(list(emb.glob("parts.*"))) == 1 and temporaries(tmp_path) == []
    caplog.clear()
    assert run_step(capsys, *extract)[0] == 0 and "embeddings are up to date" in caplog.text

    # scoring: a full disk keeps the old score file
    trials = tmp_path / "trials"
    trials.write_text("a1 a2 target\na1 a3 nontarget\n")
    score = ["score_cosine.py", "--trials", trials, "--embeddings", emb, "--out", tmp_path / "scores"]
    assert run_step(capsys, *score)[0] == 0
    scores = (tmp_path / "scores").read_text()
    real_open = pyfunc.scoring.score_files.atomic_open

    class FullDisk:
        def __init__(self, path):
            self.context = real_open(path)

        def __enter__(self):
            handle = self.context.__enter__()
            handle.write("a1 a2 0.1")
            handle.write = lambda *_: (_ for _ in ()).throw(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
            return handle

        def __exit__(self, *exc):
            return self.context.__exit__(*exc)

    monkeypatch.setattr(pyfunc.scoring.score_files, "atomic_open", FullDisk)
    code, err = run_step(capsys, *score)
    monkeypatch.setattr(pyfunc.scoring.score_files, "atomic_open", real_open)
    assert code == 1 and "No space left on device" in err
    assert (tmp_path / "scores").read_text() == scores and temporaries(tmp_path) == []

    # a new model.pt: the embeddings are stale for scoring, and stage 3 redoes them
    weights = model / "model.pt"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    code, err = run_step(capsys, *score)
    assert code == 1 and re.search(r"xvector\.scp: out of date: .*model\.pt changed after it was made; rerun "
                                   r"stage 3", err), err
    caplog.clear()
    assert run_step(capsys, *extract)[0] == 0 and "model.pt changed" in caplog.text
    assert run_step(capsys, *score)[0] == 0


def test_checkpoint_write_on_a_full_disk_keeps_the_old_one(monkeypatch, tmp_path: Path) -> None:
    path = tmp_path / "models" / "epoch_1.pt"
    save_checkpoint(path, {"weights": torch.arange(4.0)})
    real_save = torch.save

    def full_disk(obj, target, *args, **kwargs):
        Path(target).write_bytes(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, {"weights": torch.zeros(4)})
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.equal(torch.load(path, weights_only=True)["weights"], torch.arange(4.0))
    assert [p.name for p in path.parent.iterdir()] == ["epoch_1.pt"]


def test_training_resumes_only_the_same_run(capsys, tmp_path: Path) -> None:
    data = _features_dir(tmp_path, 4)
    config = {"model": {"channels": 16, "embed_dim": 8},
              "train": {"batch_size": 4, "epochs": 1, "num_workers": 0, "chunk_frames": 20, "lr": 0.01}}
    assert run_step(capsys, "train.py", *_train_args(tmp_path, config, data))[0] == 0
    assert (tmp_path / "exp" / "models" / "epoch_1.pt").is_file()
    config["train"]["lr"] = 0.02
    code, err = run_step(capsys, "train.py", *_train_args(tmp_path, config, data))
    assert code == 1 and re.search(r"epoch_1\.pt: made by a run with other settings: config\.train\.lr was 0\.01, "
                                   r"now 0\.02", err), err
    config["train"].update(lr=0.01, epochs=2, grad_accum=2)  # longer, other micro-batches: the same run
    code, err = run_step(capsys, "train.py", *_train_args(tmp_path, config, data))
    assert code == 0, err
    assert "resuming from" in (tmp_path / "exp" / "log" / "train.log").read_text()
    write_table(data / "utt2spk", {"a1": "a", "a2": "a", "a3": "b", "a4": "b"})
    config["train"]["epochs"] = 3
    code, err = run_step(capsys, "train.py", *_train_args(tmp_path, config, data))
    assert code == 1 and "data.utt2spk was" in err, err


# ------------------------------------------------------------------------------------------------
# SIGKILL half-way, then rerun


def _slow_pipes(data: Path, seconds: float) -> None:
    """Make every wav.scp entry a pipe that takes ``seconds`` (the same audio)."""
    _rewrite(data / "wav.scp",
             lambda rows: [f"{row.split()[0]} sleep {seconds}; cat {row.split()[1]} |" for row in rows])


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline, "the run did not get going"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _progress(paths) -> int:
    total = 0
    for path in paths:
        try:
            total += int(path.read_text() or 0)
        except (OSError, ValueError):
            pass
    return total


def test_stage1_killed_half_way_then_rerun(capsys, tmp_path: Path) -> None:
    from pyfunc.pipeline.fbank_stage import make_fbank_job

    data = make_tone_data_dir(tmp_path, speakers=2, utts=4)
    make_fbank_job(data, FBANK_CONF, tmp_path / "ref.ark", tmp_path / "ref.scp")  # uninterrupted, in one go
    reference = load_table(tmp_path / "ref.scp")
    _slow_pipes(data, 0.3)
    args = ["--conf", FBANK_CONF, "--nj", "2", "--allow-pipes", data, tmp_path / "fbank", tmp_path / "log"]
    proc = start_step("make_fbank.py", *args, log=tmp_path / "killed.log")
    _kill_when(proc, lambda: _progress((tmp_path / "log").glob(".progress.*")) >= 1)
    assert _progress((tmp_path / "log").glob(".progress.*")) < 8, "killed too late to be half-way"
    assert not (data / "feats.scp").exists() and not (data / ".fbank.stamp").exists()
    code, err = run_step(capsys, "make_fbank.py", *args)
    assert code == 0, err
    assert_same_tables(load_table(data / "feats.scp"), reference)
    assert read_map(data / "utt2num_frames") == {k: str(len(v)) for k, v in reference.items()}
    assert temporaries(tmp_path) == []
    arks = sorted(p.name for p in (tmp_path / "fbank").iterdir())
    assert len(arks) == 4 and len({name.split(".")[1] for name in arks}) == 1, arks  # this run's only


def test_stage3_killed_half_way_keeps_the_old_output_then_rerun(capsys, tmp_path: Path) -> None:
    data = make_tone_data_dir(tmp_path, speakers=2, utts=4)
    model = tiny_model_dir(tmp_path / "model", "seed")
    emb = tmp_path / "emb"
    args = ["--model-dir", model, "--data", data, "--out", emb, "--device", "cpu", "--batch-frames", 20]
    assert run_step(capsys, "extract_embeddings.py", *args)[0] == 0
    old = load_table(emb / "xvector.scp")
    old_scp = (emb / "xvector.scp").read_text()
    _slow_pipes(data, 0.3)  # a changed wav.scp: the stage redoes the work
    proc = start_step("extract_embeddings.py", *args, "--nj", 2, "--allow-pipes", log=tmp_path / "killed.log")
    _kill_when(proc, lambda: _progress(emb.glob("parts.*/.progress.*")) >= 1)
    assert _progress(emb.glob("parts.*/.progress.*")) < 8, "killed too late to be half-way"
    assert (emb / "xvector.scp").read_text() == old_scp  # the old complete output, readable
    assert_same_tables(load_table(emb / "xvector.scp"), old)
    code, err = run_step(capsys, "extract_embeddings.py", *args, "--allow-pipes")
    assert code == 0, err
    assert (emb / "xvector.scp").read_text() != old_scp
    assert_same_tables(load_table(emb / "xvector.scp"), old)  # pipes give the same audio: the same embeddings
    assert len(list(emb.glob("parts.*"))) == 1 and temporaries(tmp_path) == []
