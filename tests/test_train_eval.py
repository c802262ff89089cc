"""Evaluation during training (train.eval_data): EER per evaluated epoch in history.tsv and the learning curve."""

from __future__ import annotations

import itertools
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch
import yaml
from test_plots import _check_png, _pixels
from test_train import TINY, _feature_data_dir, _run_train

from pyfunc.config import config_from_dict, load_config
from pyfunc.data.datadir import DataDir, write_data_dir
from pyfunc.errors import ConfigError, DataError
from pyfunc.models.checkpoint import load_checkpoint
from pyfunc.models.model_dir import build_encoder, build_head, save_model_dir
from pyfunc.pipeline.extract_job import extract_embeddings
from pyfunc.pipeline.score_stage import score_trials
from pyfunc.pipeline.train_stage import check_training_inputs
from pyfunc.scoring.metrics import evaluate_score_files
from pyfunc.scoring.plots import COLORS
from pyfunc.training.evaluation import evaluate_eer, load_eval_set
from pyfunc.training.history import append_history, read_history, record_eer


def _profile_data_dir(root: Path, utts: int, random_seed: int, trials: bool = False, speakers: int = 4) -> Path:
    """Random 'fbank' matrices whose per-bin spread follows a per-speaker profile (the encoder's mean
    normalisation removes any constant offset, not this), and, with ``trials``, all-pairs trials."""
    profiles = np.exp(0.7 * np.random.default_rng(99).standard_normal((speakers, 80)))  # the same in every dir
    rng = np.random.default_rng(random_seed)
    feats = {f"s{s}-{random_seed}-{u}": (rng.standard_normal((18 + 5 * u, 80)) * profiles[s]).astype(np.float32)
             for s in range(speakers) for u in range(utts)}
    root.mkdir(parents=True, exist_ok=True)
    with kaldiio.WriteHelper(f"ark,scp:{root / 'feats.ark'},{root / 'feats.scp.raw'}") as writer:
        for utt in sorted(feats):
            writer(utt, feats[utt])
    scp = dict(line.split(" ", 1) for line in (root / "feats.scp.raw").read_text().splitlines())
    data = root / "data"
    write_data_dir(data, DataDir({u: "/dev/null" for u in feats}, {u: u.split("-")[0] for u in feats},
                                 feats_scp={k: v.strip() for k, v in scp.items()}))
    if trials:
        (data / "trials").write_text("".join(
            f"{a} {b} {'target' if a.split('-')[0] == b.split('-')[0] else 'nontarget'}\n"
            for a, b in itertools.combinations(sorted(feats), 2)))
    return data


def _write_config(path: Path, **train) -> Path:
    path.write_text(yaml.safe_dump({"model": dict(TINY["model"]),
                                    "train": {**TINY["train"], "epochs": 3, "checkpoint_interval": 0, **train}}))
    return path


def _independent_eer(model_dir: Path, eval_data: Path, work: Path) -> float:
    """Stages 3, 4 and 6 from a model dir on disk."""
    extract_embeddings(model_dir, eval_data, work / "emb", device="cpu")
    score_trials(eval_data / "trials", work / "emb", work / "scores")
    return evaluate_score_files(eval_data / "trials", [work / "scores"])[0]["eer_percent"]


def test_training_records_the_eer_of_evaluated_epochs(tmp_path: Path) -> None:
    data = _profile_data_dir(tmp_path / "train", utts=6, random_seed=0)
    eval_data = _profile_data_dir(tmp_path / "eval", utts=3, random_seed=1, trials=True)
    with_eval = _write_config(tmp_path / "eval.yaml", eval_data=str(eval_data), eval_interval=2)
    without = _write_config(tmp_path / "plain.yaml")
    runs = {name: _run_train(config, data, tmp_path / name) for name, config in (("on", with_eval),
                                                                               ("off", without))}
    for name, proc in runs.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
    exp = tmp_path / "on"

    history = read_history(exp / "log" / "history.tsv")
    assert list(history["epoch"]) == [1, 2, 3]
    assert np.isnan(history["eer"][0]), "epoch 1 is not due with eval_interval 2"
    eer = {epoch: history["eer"][epoch - 1] for epoch in (2, 3)}  # every 2nd epoch and always the last
    assert all(0.0 <= value <= 100.0 for value in eer.values()), eer
    assert "eer" not in read_history(tmp_path / "off" / "log" / "history.tsv")
    log = (exp / "log" / "train.log").read_text()
    for epoch in (2, 3):
        assert f"epoch {epoch}: EER {eer[epoch]:.2f}% on {eval_data}" in log
    assert "epoch 1: EER" not in log

    # The recorded EERs are those of stages 3/4/6 run on the epoch's model, from disk.
    config = load_config(exp / "config.yaml")
    state = load_checkpoint(exp / "models" / "epoch_2.pt")
    encoder, head = build_encoder(config.model), build_head(config)
    encoder.load_state_dict(state["encoder"])
    head.load_state_dict(state["head"])
    save_model_dir(tmp_path / "epoch2", config, encoder, head)
    assert _independent_eer(tmp_path / "epoch2", eval_data, tmp_path / "check2") == pytest.approx(eer[2], abs=1e-6)
    assert _independent_eer(exp, eval_data, tmp_path / "check3") == pytest.approx(eer[3], abs=1e-6)
    assert _independent_eer(exp / "untrained", eval_data, tmp_path / "check0") > eer[3] + 5, \
        "training helps on these trials, so the comparison tells one model from another"

    # Evaluating changes nothing in training: the same weights as the run without evaluation.
    a = torch.load(exp / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "off" / "model.pt", weights_only=True)
    for part in ("encoder", "head"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), key

    png = exp / "plots" / "learning_curve.png"
    _check_png(png, 1000, 700)
    assert _pixels(png, COLORS[3]) > 100, "the EER panel is drawn"
    assert _pixels(tmp_path / "off" / "plots" / "learning_curve.png", COLORS[3]) < 20


def test_history_gains_an_eer_column_when_evaluation_starts(tmp_path: Path) -> None:
    append_history(tmp_path, 1, 3.0, 10.0, 0.01, 50.0)
    append_history(tmp_path, 2, 2.0, 20.0, 0.009, 50.0)
    record_eer(tmp_path, 2, 37.5)
    append_history(tmp_path, 3, 1.0, 30.0, 0.008, 50.0)
    append_history(tmp_path, 2, 2.5, 25.0, 0.009, 50.0)  # a resumed epoch rewrites its line, not its EER column
    lines = (tmp_path / "log" / "history.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["epoch", "loss", "accuracy", "lr", "examples_per_s", "eer"]
    assert [line.split("\t")[-1] for line in lines[1:]] == ["-", "-", "-"]
    record_eer(tmp_path, 2, 12.25)
    history = read_history(tmp_path / "log" / "history.tsv")
    assert list(history["epoch"]) == [1, 2, 3] and list(history["loss"]) == [3.0, 2.5, 1.0]
    assert np.isnan(history["eer"][[0, 2]]).all() and history["eer"][1] == 12.25


def test_eval_settings_are_checked_before_training(tmp_path: Path) -> None:
    eval_data = _profile_data_dir(tmp_path / "eval", utts=3, random_seed=1, trials=True)
    assert load_eval_set(config_from_dict({})) is None
    loaded = load_eval_set(config_from_dict({"train": {"eval_data": str(eval_data)}}))
    assert len(loaded.trials) == 66 and int(loaded.labels.sum()) == 12 and len(loaded.keys) == 12
    with pytest.raises(ConfigError, match="train.eval_interval must be at least 1"):
        load_eval_set(config_from_dict({"train": {"eval_data": str(eval_data), "eval_interval": 0}}))
    with pytest.raises(ConfigError, match="train.eval_data: .*nowhere is not a directory"):
        load_eval_set(config_from_dict({"train": {"eval_data": str(tmp_path / "nowhere")}}))
    with pytest.raises(ConfigError, match="train.eval_interval: expected int"):
        config_from_dict({"train": {"eval_interval": "2"}})
    trials = (eval_data / "trials").read_text()
    (eval_data / "trials").write_text(trials + "s0-1-0 ghost target\n")
    with pytest.raises(DataError, match="feats.scp: 1 utterance\\(s\\) of .*trials not listed, e.g. \\['ghost'\\]"):
        load_eval_set(config_from_dict({"train": {"eval_data": str(eval_data)}}))
    (eval_data / "trials").write_text(trials + "s0-1-0 s0-1-1\n")
    with pytest.raises(DataError, match="trials:67: missing target/nontarget label"):
        load_eval_set(config_from_dict({"train": {"eval_data": str(eval_data)}}))
    (eval_data / "trials").unlink()
    with pytest.raises(DataError, match="trials: file not found"):
        load_eval_set(config_from_dict({"train": {"eval_data": str(eval_data)}}))


def test_eval_settings_may_change_when_resuming(tmp_path: Path) -> None:
    data = _feature_data_dir(tmp_path / "feats", speakers=2, utts=4)
    exp = tmp_path / "exp"
    base = {"model": dict(TINY["model"]), "train": dict(TINY["train"])}
    check_training_inputs(config_from_dict(base), data, exp)
    (exp / "models" / "epoch_1.pt").write_bytes(b"")  # a checkpoint exists: the stamp now guards resuming
    changed = {**base, "train": {**base["train"], "eval_data": str(tmp_path), "eval_interval": 3}}
    check_training_inputs(config_from_dict(changed), data, exp)
    with pytest.raises(ConfigError, match="train.lr"):
        check_training_inputs(config_from_dict({**base, "train": {**base["train"], "lr": 0.5}}), data, exp)


@pytest.mark.parametrize("protocol", ["full", "seed"])
def test_in_memory_eer_equals_stages_3_4_6(tmp_path: Path, protocol: str) -> None:
    """evaluate_eer on an encoder in memory == extraction, scoring and EER from its model dir on disk."""
    eval_data = _profile_data_dir(tmp_path / "eval", utts=3, random_seed=1, trials=True)
    config = config_from_dict({"model": {**TINY["model"], "num_classes": 4},
                               "extract": {"protocol": protocol, "crop_seconds": 0.2, "num_crops": 3},
                               "train": {"eval_data": str(eval_data)}})
    torch.manual_seed(3)
    encoder, head = build_encoder(config.model), build_head(config)
    save_model_dir(tmp_path / "model", config, encoder, head)
    state = torch.get_rng_state()
    encoder.train()
    eer = evaluate_eer(encoder, load_eval_set(config), config)
    assert encoder.training and torch.equal(torch.get_rng_state(), state)
    assert _independent_eer(tmp_path / "model", eval_data, tmp_path / "check") == pytest.approx(eer, abs=1e-6)
    assert (tmp_path / "check" / "emb" / "xvector_crops.scp").exists() == (protocol == "seed")
