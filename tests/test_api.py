"""The Python API and the verify/embed commands agree with stages 3-6 on the mini corpus."""

from __future__ import annotations

import logging
import os
import runpy
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile
import torch
import torchaudio.functional as AF
import yaml
from tools_helpers import REPO, copy_data_dir, needs_espeak, tiny_mini_corpus, tiny_model_dir, write_8k_stereo

import pyfunc
from pyfunc.cli.tools import main as pyfunc_main
from pyfunc.data.audio import read_audio
from pyfunc.data.tables import read_scp
from pyfunc.errors import DataError
from pyfunc.inference.embed_files import embed_to
from pyfunc.pipeline.extract_job import extract_embeddings
from pyfunc.pipeline.fbank_stage import make_fbank
from pyfunc.pipeline.score_stage import score_trials
from pyfunc.scoring.metrics import compute_eer, read_labelled_trials
from pyfunc.scoring.score_files import read_scores

pytestmark = needs_espeak


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """Stages 1, 3 and 4 of a tiny fbank model on the mini test set: the reference the tools must match."""
    root = tmp_path_factory.mktemp("api")
    mini = tiny_mini_corpus(tmp_path_factory)
    data = copy_data_dir(mini / "test", root / "test")
    make_fbank(data, REPO / "conf" / "fbank.conf", root / "fbank", root / "fbank" / "log", num_jobs=1)
    model_dir = tiny_model_dir(root / "model")
    extract_embeddings(model_dir, data, model_dir / "embeddings" / "test", device="cpu")
    score_trials(data / "trials", model_dir / "embeddings" / "test", model_dir / "scores" / "test_cosine")
    wav_scp = read_scp(data / "wav.scp")
    return {"root": root, "data": data, "model_dir": model_dir, "wav_scp": wav_scp}


def test_api_embeddings_and_scores_equal_stages_3_and_4(recipe) -> None:
    model = pyfunc.load_model(recipe["model_dir"])
    stage3 = kaldiio.load_scp(str(recipe["model_dir"] / "embeddings" / "test" / "xvector.scp"))
    assert sorted(stage3) == sorted(recipe["wav_scp"])
    keys = sorted(recipe["wav_scp"])
    for key in keys[:2]:
        np.testing.assert_allclose(pyfunc.embed(model, recipe["wav_scp"][key]), stage3[key], atol=2e-5, rtol=0)
    batch = pyfunc.embed(model, [recipe["wav_scp"][k] for k in keys])
    np.testing.assert_allclose(batch, np.stack([stage3[k] for k in keys]), atol=2e-5, rtol=0)
    enrolls, tests, scores = read_scores(recipe["model_dir"] / "scores" / "test_cosine")
    for enroll, test, value in list(zip(enrolls, tests, scores))[:2]:
        assert pyfunc.score(model, recipe["wav_scp"][enroll], recipe["wav_scp"][test]) == \
            pytest.approx(value, abs=1e-5)


def test_seed_protocol_score_equals_stage_4(recipe, tmp_path) -> None:
    """A seed front-end model with the seed protocol (full + crops): the API's score is stage 4's."""
    model_dir = tiny_model_dir(tmp_path / "seed_model", frontend="seed", protocol="seed", random_seed=3)
    emb = tmp_path / "emb"
    extract_embeddings(model_dir, recipe["data"], emb, device="cpu")
    assert (emb / "xvector_crops.scp").is_file()
    scores = score_trials(recipe["data"] / "trials", emb, tmp_path / "scores")
    enrolls, tests, _ = read_scores(tmp_path / "scores")
    model = pyfunc.load_model(model_dir)
    crops = kaldiio.load_scp(str(emb / "xvector_crops.scp"))
    np.testing.assert_allclose(model.embed_crops(recipe["wav_scp"][enrolls[0]]), crops[enrolls[0]], atol=2e-5)
    # the embed tool's folder output batches the crops of many recordings: the same crops as stage 3
    embed_to(model, dict(recipe["wav_scp"]), tmp_path / "tool")
    tool_crops = kaldiio.load_scp(str(tmp_path / "tool" / "xvector_crops.scp"))
    assert sorted(tool_crops) == sorted(crops)
    for key in crops:
        np.testing.assert_allclose(tool_crops[key], crops[key], atol=2e-5)
    for i in (0, len(scores) - 1):
        assert model.score(recipe["wav_scp"][enrolls[i]], recipe["wav_scp"][tests[i]]) == \
            pytest.approx(scores[i], abs=1e-5)


def test_stage6_stores_threshold_and_verify_decides_with_it(recipe, capsys) -> None:
    model_dir, data = recipe["model_dir"], recipe["data"]
    score_file = model_dir / "scores" / "test_cosine"
    argv = ["compute_metrics.py", "--trials", str(data / "trials"), "--out", str(recipe["root"] / "results"),
            str(score_file)]
    old = sys.argv
    sys.argv = argv
    try:
        runpy.run_path(str(REPO / "steps" / "compute_metrics.py"), run_name="not_main")["main"]()
    finally:
        sys.argv = old
    _, _, labels = read_labelled_trials(data / "trials")
    _, _, scores = read_scores(score_file)
    eer, threshold = compute_eer(scores, labels)
    stored = yaml.safe_load((model_dir / "threshold.yaml").read_text())
    assert stored["threshold"] == pytest.approx(threshold, abs=1e-12)
    assert stored["eer_percent"] == pytest.approx(eer)
    assert stored["score_file"] == str(score_file) and stored["trials"] == str(data / "trials")
    for png in ("det_test.png", "scores_test.png"):
        assert (recipe["root"] / "plots" / png).stat().st_size > 10_000

    # the command users run, end to end (the first time as its own process), on a target and a non-target trial
    enrolls, tests, _ = read_scores(score_file)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    for run, i in enumerate((int(np.flatnonzero(labels)[0]), int(np.flatnonzero(~labels)[0]))):
        args = ["verify", recipe["wav_scp"][enrolls[i]], recipe["wav_scp"][tests[i]], "--model-dir", str(model_dir)]
        if run == 0:
            out = subprocess.run([sys.executable, "-m", "pyfunc", *args], env=env, capture_output=True, text=True,
                                 timeout=120)
            assert out.returncode == 0, out.stderr
            stdout = out.stdout
        else:
            assert pyfunc_main(args) == 0
            stdout = capsys.readouterr().out
        lines = dict(line.split(" ", 1) for line in stdout.splitlines())
        assert float(lines["score"]) == pytest.approx(scores[i], abs=1e-5)
        assert float(lines["threshold"].split()[0]) == pytest.approx(threshold, abs=1e-6)
        assert str(score_file) in lines["threshold"]
        assert lines["decision"] == ("same" if scores[i] >= threshold else "different")


def test_verify_without_stored_threshold(recipe, tmp_path, capsys) -> None:
    model_dir = tiny_model_dir(tmp_path / "fresh", random_seed=5)
    a, b = sorted(recipe["wav_scp"].values())[:2]
    assert pyfunc_main(["verify", a, b, "--model-dir", str(model_dir)]) == 0
    captured = capsys.readouterr()
    assert "decision unknown" in captured.out and "threshold.yaml not found" in captured.err
    score = float(captured.out.splitlines()[0].split()[1])
    for threshold, decision in ((score - 0.01, "same"), (score + 0.01, "different")):
        assert pyfunc_main(["verify", a, b, "--model-dir", str(model_dir), "--threshold", str(threshold)]) == 0
        assert f"decision {decision}" in capsys.readouterr().out


def test_8k_stereo_is_downmixed_and_resampled_with_a_warning(recipe, tmp_path, caplog) -> None:
    src = Path(sorted(recipe["wav_scp"].values())[0])
    stereo = write_8k_stereo(src, tmp_path / "call.wav")
    with pytest.raises(DataError, match="expected mono audio"):
        read_audio(str(stereo))  # the recipe's reader stays strict
    model = pyfunc.load_model(recipe["model_dir"])
    with caplog.at_level(logging.WARNING, logger="pyfunc.data.audio_convert"):
        emb = model.embed(stereo)
    message = " ".join(r.getMessage() for r in caplog.records)
    assert str(stereo) in message and "downmixed 2 channels" in message and "from 8000 Hz to 16000 Hz" in message
    samples, rate = soundfile.read(stereo, dtype="float64")
    by_hand = AF.resample(torch.from_numpy(samples.mean(axis=1)), 8000, 16000).numpy().astype(np.float32)
    np.testing.assert_allclose(emb, model.embed(by_hand), atol=1e-6)
    assert len(by_hand) == 2 * len(samples)
    # an 8 kHz, band-limited copy of the same utterance is still closer to it than the other speaker's
    same, other = model.score(src, stereo), model.score(src, sorted(recipe["wav_scp"].values())[-1])
    assert same > other


def test_embed_command_folder_list_and_wav_scp(recipe, tmp_path, capsys) -> None:
    model_dir, wav_scp = recipe["model_dir"], recipe["wav_scp"]
    model = pyfunc.load_model(model_dir)
    folder = tmp_path / "wavs"
    (folder / "sub").mkdir(parents=True)
    keys = sorted(wav_scp)
    for key in keys[:2]:
        (folder / f"{key}.wav").write_bytes(Path(wav_scp[key]).read_bytes())
    write_8k_stereo(Path(wav_scp[keys[2]]), folder / "sub" / "phone.wav")
    (folder / "notes.txt").write_text("not audio\n")

    assert pyfunc_main(["embed", str(folder), "--model-dir", str(model_dir), "--out", str(tmp_path / "e.npy")]) == 0
    matrix = np.load(tmp_path / "e.npy")
    assert (tmp_path / "e.keys").read_text().split() == ["sub/phone", keys[0], keys[1]]  # LC_ALL=C order
    assert matrix.shape == (3, 16) and matrix.dtype == np.float32
    np.testing.assert_allclose(matrix[0], model.embed(folder / "sub" / "phone.wav"), atol=2e-5)
    np.testing.assert_allclose(matrix[1], model.embed(wav_scp[keys[0]]), atol=2e-5)

    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{wav_scp[k]}\n" for k in keys[3:]))
    assert pyfunc_main(["embed", str(listing), "--model-dir", str(model_dir), "--out", str(tmp_path / "l.ark")]) == 0
    from_list = kaldiio.load_scp(str(tmp_path / "l.scp"))
    assert sorted(from_list) == [Path(wav_scp[k]).stem for k in keys[3:]]

    assert pyfunc_main(["embed", str(recipe["data"] / "wav.scp"), "--model-dir", str(model_dir),
                        "--out", str(tmp_path / "emb")]) == 0
    assert str(tmp_path / "emb" / "xvector.scp") in capsys.readouterr().out
    ours = kaldiio.load_scp(str(tmp_path / "emb" / "xvector.scp"))
    stage3 = kaldiio.load_scp(str(model_dir / "embeddings" / "test" / "xvector.scp"))
    assert sorted(ours) == keys
    for key in keys:
        np.testing.assert_allclose(ours[key], stage3[key], atol=2e-5)
    # the folder output scores like a stage-3 folder
    score_trials(recipe["data"] / "trials", tmp_path / "emb", tmp_path / "scores")
    np.testing.assert_allclose(read_scores(tmp_path / "scores")[2],
                               read_scores(model_dir / "scores" / "test_cosine")[2], atol=1e-5)


def test_embed_and_verify_errors_name_the_culprit(recipe, tmp_path) -> None:
    model_dir = recipe["model_dir"]
    listing = tmp_path / "list.txt"
    listing.write_text(f"{sorted(recipe['wav_scp'].values())[0]}\n{tmp_path / 'missing.wav'}\n")
    with pytest.raises(DataError, match=r"list\.txt:2: audio file .*missing\.wav.* not found"):
        pyfunc_main(["embed", str(listing), "--model-dir", str(model_dir), "--out", str(tmp_path / "x.npy")])
    assert not (tmp_path / "x.npy").exists()
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav")
    with pytest.raises(DataError, match="bad.wav: cannot read audio"):
        pyfunc_main(["verify", str(bad), str(bad), "--model-dir", str(model_dir)])
    short = tmp_path / "short.wav"
    soundfile.write(short, np.zeros(300), 16000)
    with pytest.raises(DataError, match="short.wav: 300 samples give 0 fbank frame"):
        pyfunc_main(["verify", str(short), str(short), "--model-dir", str(model_dir)])
    twins = tmp_path / "twins"
    (twins).mkdir()
    soundfile.write(twins / "a.wav", np.zeros(800), 16000)
    soundfile.write(twins / "a.flac", np.zeros(800), 16000)
    with pytest.raises(DataError, match="both give the key 'a'"):
        pyfunc_main(["embed", str(twins), "--model-dir", str(model_dir), "--out", str(tmp_path / "t.npy")])
