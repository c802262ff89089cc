"""Scaling out: DDP training over 2 gloo processes equals 1 process, resuming with another process
count, and stage 3 with --nj 3 equal to --nj 1.

What "equal" means for DDP: the global batch (train.batch_size) is cut into
processes x grad_accum micro-batches. BatchNorm normalises each micro-batch with its own
statistics, so the fair single-process reference for 2 processes x micro-batch B/2 is
1 process with grad_accum 2 x micro-batch B/2: the same examples in the same
micro-batches, the same SpecAugment draws, and gradients averaged over the two
(DDP's all-reduce mean equals the accumulated loss / 2). The parameters and the
optimiser state then agree to float rounding (the sums are taken in another order).
BatchNorm running statistics are not compared: under DDP they are rank 0's, updated
from its own micro-batches only; training never uses them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, make_tone_data_dir
from fault_helpers import assert_same_tables, load_table, run_step, tiny_model_dir
from test_train import _feature_data_dir
from test_train_eval import _independent_eer, _profile_data_dir

from pyfunc.config import load_config
from pyfunc.models.aam_softmax import AAMSoftmax
from pyfunc.models.model_dir import build_encoder
from pyfunc.training.checks import parameter_fingerprint
from pyfunc.training.trainer import SpeakerNet

MODEL = {"channels": 16, "embed_dim": 8}
TRAIN = {"batch_size": 8, "lr": 0.01, "chunk_frames": 20, "num_workers": 0, "log_interval": 1, "random_seed": 11,
         "checkpoint_interval": 0}


def _train(tmp_path: Path, exp: Path, data: Path, processes: int, **train) -> str:
    config = tmp_path / f"{exp.name}_{processes}.yaml"
    config.write_text(yaml.safe_dump({"model": MODEL, "train": {**TRAIN, **train}}))
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)] \
        if processes > 1 else [sys.executable]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*launcher, str(REPO / "steps" / "train.py"), "--config", str(config), "--data",
                             str(data), "--exp", str(exp), "--device", "cpu"], env=env, capture_output=True,
                            text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return (exp / "log" / "train.log").read_text()


def _params(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, weights_only=True)
    return {f"{part}.{k}": v.double() for part in ("encoder", "head") for k, v in state[part].items()
            if v.is_floating_point() and "running_" not in k}


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], start: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    moved = max(float((a[k] - start[k]).abs().max()) for k in a)
    assert diff < 2e-5, diff
    assert moved > 1e-2 and diff < 1e-3 * moved, (diff, moved)  # the weights moved: the match is not trivial


def test_two_gloo_processes_equal_one_with_accumulation_and_resume_with_one(tmp_path: Path) -> None:
    data = _feature_data_dir(tmp_path / "feats", speakers=4, utts=6)  # 24 utterances: 3 steps of 8 per epoch
    single = tmp_path / "single"
    _train(tmp_path, single, data, 1, epochs=2, grad_accum=2)
    ddp = tmp_path / "ddp"
    log = _train(tmp_path, ddp, data, 2, epochs=1, grad_accum=1)
    assert "3 steps/epoch of 8 examples on 2 process(es) x 1 accumulation step(s)" in log

    # the two ranks held identical parameters (all-gathered fingerprints), and they are rank 0's checkpoint
    line = next(row for row in log.splitlines() if "epoch 1: parameters identical on all 2 processes" in row)
    logged = [float(v) for v in line.split("(fingerprint ")[1].rstrip(")").split(", ")]
    config = load_config(ddp / "config.yaml")
    state = torch.load(ddp / "models" / "epoch_1.pt", weights_only=True)
    net = SpeakerNet(build_encoder(config.model), AAMSoftmax(8, 4))
    net.encoder.load_state_dict(state["encoder"])
    net.head.load_state_dict(state["head"])
    assert parameter_fingerprint(net).tolist() == logged

    # 2 processes x 4 examples == 1 process x 2 accumulated micro-batches of 4
    start = _params(single / "untrained" / "model.pt")
    _assert_close(_params(ddp / "models" / "epoch_1.pt"), _params(single / "models" / "epoch_1.pt"), start)
    one = torch.load(single / "models" / "epoch_1.pt", weights_only=True)["optimizer"]["state"]
    two = state["optimizer"]["state"]
    for index in one:
        np.testing.assert_allclose(two[index]["exp_avg"].numpy(), one[index]["exp_avg"].numpy(), rtol=0, atol=1e-5)
    loss = {name: float((path / "log" / "history.tsv").read_text().splitlines()[1].split("\t")[1])
            for name, path in (("single", single), ("ddp", ddp))}
    assert loss["ddp"] == pytest.approx(loss["single"], rel=1e-5)

    # resume the 2-process run with 1 process (other world size, other grad_accum, same global batch)
    log = _train(tmp_path, ddp, data, 1, epochs=2, grad_accum=2)
    assert f"resuming from {ddp / 'models' / 'epoch_1.pt'}" in log
    _assert_close(_params(ddp / "model.pt"), _params(single / "model.pt"), start)


def test_sync_batchnorm_refused_on_the_cpu(tmp_path: Path) -> None:
    """torch's SyncBatchNorm runs on GPUs only: 2 CPU processes with train.sync_batchnorm stop at the start."""
    data = _feature_data_dir(tmp_path / "feats", speakers=2, utts=4)
    config = tmp_path / "sync.yaml"
    config.write_text(yaml.safe_dump({"model": MODEL, "train": {**TRAIN, "epochs": 1, "sync_batchnorm": True}}))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             str(REPO / "steps" / "train.py"), "--config", str(config), "--data", str(data), "--exp",
                             str(tmp_path / "exp"), "--device", "cpu"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode != 0
    assert "error: train.sync_batchnorm: torch's SyncBatchNorm runs on GPUs only; this run has 2 processes on cpu" \
        in result.stderr
    assert load_config(config).train.sync_batchnorm is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason="SyncBatchNorm needs a GPU")
def test_sync_batchnorm_normalises_two_processes_as_one_batch(tmp_path: Path) -> None:
    """2 processes x 4 examples with train.sync_batchnorm give the embeddings and (averaged) gradients of one
    process on all 8; without it, each half would be normalised alone and differ."""
    from sync_bn_helper import batch, encoder

    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             str(REPO / "tests" / "sync_bn_helper.py"), str(tmp_path / "out.pt")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    got = torch.load(tmp_path / "out.pt", weights_only=True)
    net = encoder().cuda()
    x = batch().cuda()
    out = net(x)
    (out.pow(2).sum() / 2).backward()
    torch.testing.assert_close(got["embeddings"], out.detach().cpu(), rtol=1e-4, atol=1e-4)
    for name, p in net.named_parameters():
        torch.testing.assert_close(got["grads"][name], p.grad.cpu(), rtol=1e-3, atol=1e-5)
    halves = torch.cat([encoder().cuda()(x[:4]), encoder().cuda()(x[4:])]).detach().cpu()
    assert (halves - out.detach().cpu()).abs().max() > 1e-2  # per-half statistics would give other embeddings


def test_slow_evaluation_does_not_trip_the_process_group_timeout(tmp_path: Path) -> None:
    """Evaluation during training with 2 gloo processes whose group times out after 5 s, and an evaluation
    that takes 1 s per utterance (12 utterances): the ranks share it (6 s each) in a group with a long
    timeout, so training completes, and the EER is that of stages 3, 4 and 6 on the model written."""
    data = _feature_data_dir(tmp_path / "feats", speakers=4, utts=6)
    eval_data = _profile_data_dir(tmp_path / "eval", utts=3, random_seed=1, trials=True)
    config = tmp_path / "eval.yaml"
    config.write_text(yaml.safe_dump({"model": MODEL, "train": {**TRAIN, "epochs": 1, "eval_data": str(eval_data)}}))
    exp = tmp_path / "exp"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             str(REPO / "tests" / "slow_eval_helper.py"), "5", "1.0", "--config", str(config),
                             "--data", str(data), "--exp", str(exp), "--device", "cpu"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    history = (exp / "log" / "history.tsv").read_text().splitlines()
    header, row = history[0].split("\t"), history[1].split("\t")
    eer = float(row[header.index("eer")])
    assert eer == pytest.approx(_independent_eer(exp, eval_data, tmp_path / "check"), abs=1e-9)


@pytest.mark.usefixtures("in_process_steps")  # one thread, as in the job processes: bit-identical results
def test_stage3_nj3_equals_nj1(tmp_path: Path, capsys) -> None:
    data = make_tone_data_dir(tmp_path, speakers=3, utts=3)
    model = tiny_model_dir(tmp_path / "model", "seed")
    args = ["--model-dir", model, "--data", data, "--device", "cpu", "--batch-frames", 20]
    assert run_step(capsys, "extract_embeddings.py", *args, "--out", tmp_path / "nj1")[0] == 0
    code, err = run_step(capsys, "extract_embeddings.py", *args, "--out", tmp_path / "nj3", "--nj", 3)
    assert code == 0, err
    one, three = load_table(tmp_path / "nj1" / "xvector.scp"), load_table(tmp_path / "nj3" / "xvector.scp")
    assert len(one) == 9 and len({v.tobytes() for v in one.values()}) == 9
    assert_same_tables(three, one)
    assert len(list((tmp_path / "nj3").glob("parts.*/[123]/xvector.ark"))) == 3
