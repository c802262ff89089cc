"""The Python API and the verify/embed commands agree with stages 3-6 on the mini corpus."""

from __future__ import annotations

import logging
import math
import os
import runpy
import shutil
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
from pyfunc.errors import ConfigError, DataError
from pyfunc.inference.embed_files import embed_to
from pyfunc.pipeline.extract_job import extract_embeddings
from pyfunc.pipeline.fbank_stage import make_fbank
from pyfunc.pipeline.mean_stage import compute_embedding_mean, scoring_mean
from pyfunc.pipeline.score_stage import score_trials
from pyfunc.scoring.metrics import cllr, compute_eer, read_labelled_trials
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


def _run_step(script: str, *args) -> None:
    """Run steps/<script> in this process (as its own process would, less the start-up)."""
    old = sys.argv
    sys.argv = [script, *map(str, args)]
    try:
        runpy.run_path(str(REPO / "steps" / script), run_name="not_main")["main"]()
    finally:
        sys.argv = old


def _verify(args: list[str], capsys) -> dict[str, str]:
    capsys.readouterr()  # what earlier steps printed
    assert pyfunc_main(["verify", *args]) == 0
    return dict(line.split(" ", 1) for line in capsys.readouterr().out.splitlines())


def _pairs(recipe, labels, enrolls, tests) -> list[tuple[int, list[str]]]:
    """A target and a non-target trial, as verify arguments."""
    return [(i, [recipe["wav_scp"][enrolls[i]], recipe["wav_scp"][tests[i]], "--model-dir", str(recipe["model_dir"])])
            for i in (int(np.flatnonzero(labels)[0]), int(np.flatnonzero(~labels)[0]))]


def test_the_operating_point_comes_from_a_development_set_and_stays_put(recipe, tmp_path, capsys) -> None:
    """Stage 6 never sets the operating point; steps/calibrate.py does, and scoring another data dir leaves it."""
    model_dir, data = recipe["model_dir"], recipe["data"]
    dev_scores = model_dir / "scores" / "test_cosine"  # the test set plays the development set here
    _run_step("compute_metrics.py", "--trials", data / "trials", "--out", tmp_path / "results", dev_scores)
    assert not (model_dir / "calibration.yaml").exists() and not (model_dir / "threshold.yaml").exists()
    for png in ("det_test.png", "scores_test.png"):
        assert (tmp_path / "plots" / png).stat().st_size > 10_000
    enrolls, tests, labels = read_labelled_trials(data / "trials")
    scores = read_scores(dev_scores)[2]
    pairs = _pairs(recipe, labels, enrolls, tests)
    assert _verify(pairs[0][1], capsys)["decision"] == "unknown"

    _run_step("calibrate.py", "--model-dir", model_dir, "--trials", data / "trials", "--scores", dev_scores,
              "--kind", "eer")
    assert "same speaker when the cosine score >=" in capsys.readouterr().out
    point = yaml.safe_load((model_dir / "calibration.yaml").read_text())
    eer, threshold = compute_eer(scores, labels)
    assert point["kind"] == "eer" and point["threshold"] == pytest.approx(threshold, abs=1e-12)
    assert point["dev"]["trials"] == str(data / "trials") and point["dev"]["scores"] == str(dev_scores)
    assert point["dev"]["eer_percent"] == pytest.approx(eer) and point["written"].startswith("20")
    assert point["model"]["subtract_mean"] is False and len(point["model"]["sha256"]) == 64
    # the command users run, end to end (once as its own process), on a target and a non-target trial
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "pyfunc", "verify", *pairs[0][1]], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    before = {}
    for i, args in pairs:
        lines = _verify(args, capsys)
        assert float(lines["score"]) == pytest.approx(scores[i], abs=1e-5)
        assert float(lines["threshold"].split()[0]) == pytest.approx(threshold, abs=1e-6)
        assert "the EER threshold of" in lines["threshold"] and str(dev_scores) in lines["threshold"]
        assert str(model_dir / "calibration.yaml") in lines["threshold"]
        assert lines["decision"] == ("same" if scores[i] >= threshold else "different")
        before[i] = lines
    assert out.stdout == "".join(f"{k} {v}\n" for k, v in before[pairs[0][0]].items())

    # Score and evaluate another data dir (other trials) with the same model: the operating point stays.
    other = copy_data_dir(data, tmp_path / "other")
    for name in ("feats.scp", "utt2num_frames"):
        shutil.copyfile(data / name, other / name)
    (other / "trials").write_text("".join(line + "\n" for line in (data / "trials").read_text().splitlines()[::2]))
    written = (model_dir / "calibration.yaml").read_bytes(), (model_dir / "calibration.yaml").stat().st_mtime_ns
    extract_embeddings(model_dir, other, model_dir / "embeddings" / "other", device="cpu", utts=None)
    score_trials(other / "trials", model_dir / "embeddings" / "other", model_dir / "scores" / "other_cosine")
    _run_step("compute_metrics.py", "--trials", other / "trials", "--out", tmp_path / "results_other", "--no-plots",
              model_dir / "scores" / "other_cosine")
    assert compute_eer(read_scores(model_dir / "scores" / "other_cosine")[2],
                       read_labelled_trials(other / "trials")[2])[1] != threshold  # its own EER point differs
    assert ((model_dir / "calibration.yaml").read_bytes(), (model_dir / "calibration.yaml").stat().st_mtime_ns) \
        == written
    for i, args in pairs:
        assert _verify(args, capsys) == before[i]

    # Recalibrating, here with a logistic calibration, changes it on purpose: LLR = a * score + b.
    _run_step("calibrate.py", "--model-dir", model_dir, "--trials", data / "trials", "--scores", dev_scores)
    capsys.readouterr()
    point = yaml.safe_load((model_dir / "calibration.yaml").read_text())
    (a,), b = point["calibration"]["weights"], point["calibration"]["bias"]
    assert point["kind"] == "logistic" and point["p_target"] == 0.01 and point["calibration"]["features"] == ["score"]
    assert point["threshold"] == pytest.approx(math.log(99), abs=1e-12) and a > 0
    assert point["score_threshold"] == pytest.approx((math.log(99) - b) / a, abs=1e-9)
    for i, args in pairs:
        lines = _verify(args, capsys)
        llr = a * float(lines["score"]) + b
        assert float(lines["llr"]) == pytest.approx(llr, abs=a * 1e-6 + 1e-5)  # the score is printed to 1e-6
        assert "on the LLR: the Bayes threshold -logit(0.01) of a logistic calibration" in lines["threshold"]
        assert lines["decision"] == ("same" if llr >= math.log(99) else "different")


def test_quality_measures_and_mean_subtraction_in_verify_equal_the_pipeline(recipe, tmp_path, capsys) -> None:
    """A model that subtracts its embedding mean, calibrated with duration and magnitude measures: verify's
    score, qualities and LLR are those of stages 3-4 and the data dir."""
    data = recipe["data"]
    model_dir = tiny_model_dir(tmp_path / "model", subtract_mean=True, random_seed=9)
    extract_embeddings(model_dir, data, model_dir / "embeddings" / "test", device="cpu")
    with pytest.raises(ConfigError, match="embedding_mean.vec: not found"):
        score_trials_mean(model_dir, data, "test_cosine")
    compute_embedding_mean(model_dir, model_dir / "embeddings" / "test")  # the test set stands in for training
    scores = score_trials_mean(model_dir, data, "test_cosine")
    raw = score_trials(data / "trials", model_dir / "embeddings" / "test", tmp_path / "raw")
    assert np.abs(scores - raw).max() > 1e-3  # the mean changes the scores
    _run_step("calibrate.py", "--model-dir", model_dir, "--trials", data / "trials", "--scores",
              model_dir / "scores" / "test_cosine", "--quality", "duration,magnitude", "--p-target", "0.05")
    point = yaml.safe_load((model_dir / "calibration.yaml").read_text())
    assert point["model"]["subtract_mean"] is True and point["quality"]["measures"] == ["duration", "magnitude"]
    weights, bias = np.array(point["calibration"]["weights"]), point["calibration"]["bias"]
    enrolls, tests, labels = read_labelled_trials(data / "trials")
    utt2dur = {k: float(v) for k, v in (line.split() for line in (data / "utt2dur").read_text().splitlines())}
    emb = kaldiio.load_scp(str(model_dir / "embeddings" / "test" / "xvector.scp"))
    mean = kaldiio.load_mat(str(model_dir / "embedding_mean.vec"))
    capsys.readouterr()
    for i, args in _pairs({**recipe, "model_dir": model_dir}, labels, enrolls, tests):
        lines = _verify(args, capsys)
        assert float(lines["score"]) == pytest.approx(scores[i], abs=1e-5)
        features = [scores[i]]
        for side in ({e: utt2dur[e] for e in (enrolls[i], tests[i])},
                     {e: float(np.linalg.norm(emb[e] - mean)) for e in (enrolls[i], tests[i])}):
            low, high = sorted(side.values())
            features += [low, high, high - low, high / low]
        llr = float(weights @ features + bias)
        assert float(lines["llr"]) == pytest.approx(llr, abs=1e-3)
        assert lines["decision"] == ("same" if llr >= math.log(19) else "different")
        assert "with quality measures duration, magnitude" in lines["threshold"]
    # an operating point made for other scores is refused, not used
    config = (model_dir / "config.yaml").read_text()
    (model_dir / "config.yaml").write_text(config.replace("subtract_mean: true", "subtract_mean: false"))
    with pytest.raises(DataError, match="fitted on scores with embedding mean subtraction"):
        pyfunc_main(["verify", *args[:2], "--model-dir", str(model_dir)])
    (model_dir / "config.yaml").write_text(config)
    with open(model_dir / "model.pt", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(DataError, match="model.pt changed after"):
        pyfunc_main(["verify", *args[:2], "--model-dir", str(model_dir)])


def score_trials_mean(model_dir: Path, data: Path, name: str) -> np.ndarray:
    """Stage 4 as steps/score.sh runs it: the model's own mean subtraction (score.subtract_mean)."""
    return score_trials(data / "trials", model_dir / "embeddings" / data.name, model_dir / "scores" / name,
                        mean=scoring_mean(model_dir))


def test_seed_protocol_with_a_mean_scores_like_stage_4(recipe, tmp_path) -> None:
    model_dir = tiny_model_dir(tmp_path / "seed_model", frontend="seed", protocol="seed", random_seed=4,
                               subtract_mean=True)
    emb = model_dir / "embeddings" / "test"
    extract_embeddings(model_dir, recipe["data"], emb, device="cpu")
    compute_embedding_mean(model_dir, emb)
    scores = score_trials_mean(model_dir, recipe["data"], "test_cosine")
    raw = score_trials(recipe["data"] / "trials", emb, tmp_path / "raw")
    enrolls, tests, _ = read_scores(model_dir / "scores" / "test_cosine")
    model = pyfunc.load_model(model_dir)
    for i in (0, len(scores) - 1):
        got = model.score(recipe["wav_scp"][enrolls[i]], recipe["wav_scp"][tests[i]])
        assert got == pytest.approx(scores[i], abs=1e-5) and abs(got - raw[i]) > 1e-4


def test_calibration_refuses_what_verify_cannot_use_and_reads_legacy_thresholds(recipe, tmp_path, capsys) -> None:
    data = recipe["data"]
    model_dir = tiny_model_dir(tmp_path / "model", random_seed=6)
    extract_embeddings(model_dir, data, model_dir / "embeddings" / "test", device="cpu")
    score_trials(data / "trials", model_dir / "embeddings" / "test", model_dir / "scores" / "test_cosine")
    calibrate_args = ["--model-dir", model_dir, "--trials", data / "trials", "--scores",
                      model_dir / "scores" / "test_cosine"]
    with pytest.raises(ConfigError, match="operating point of verify, which computes cosine scores"):
        _run_step("calibrate.py", *calibrate_args, "--quality", "cohort_mean", "--cohort-data", data)
    with pytest.raises(ConfigError, match="embedding_mean.vec: not found"):  # scores made without the mean
        _run_step("calibrate.py", *calibrate_args, "--subtract-mean", "true")
    compute_embedding_mean(model_dir, model_dir / "embeddings" / "test")
    with pytest.raises(DataError, match="stage 4 with .* now \\(with embedding mean subtraction\\)"):
        _run_step("calibrate.py", *calibrate_args, "--subtract-mean", "true")
    assert not (model_dir / "calibration.yaml").exists()
    # elsewhere, a calibration with the cohort measure is fine; applied to the scores it gives LLRs
    _run_step("calibrate.py", *calibrate_args, "--quality", "cohort_mean,duration", "--cohort-data", data,
              "--top-n", "3", "--out", tmp_path / "qmf.yaml")
    assert "cohort_mean_diff" in yaml.safe_load((tmp_path / "qmf.yaml").read_text())["calibration"]["features"]
    _run_step("apply_calibration.py", "--calibration", tmp_path / "qmf.yaml", "--trials", data / "trials",
              "--scores", model_dir / "scores" / "test_cosine", "--out", model_dir / "scores" / "test_cosine-qmf")
    llrs = read_scores(model_dir / "scores" / "test_cosine-qmf")[2]
    labels = read_labelled_trials(data / "trials")[2]
    assert cllr(llrs, labels) < cllr(read_scores(model_dir / "scores" / "test_cosine")[2], labels)
    # a model dir of an earlier version: its threshold.yaml is used, and verify says what it is
    (model_dir / "threshold.yaml").write_text("threshold: 0.5\nkind: eer\nscore_file: exp/m/scores/test_cosine\n"
                                              "trials: data/test/trials\neer_percent: 3.5\n")
    a, b = sorted(recipe["wav_scp"].values())[:2]
    lines = _verify([a, b, "--model-dir", str(model_dir)], capsys)
    assert lines["threshold"].startswith("0.500000 (EER threshold of exp/m/scores/test_cosine (EER 3.50%)")
    assert "a legacy file" in lines["threshold"] and "steps/calibrate.py" in lines["threshold"]
    assert lines["decision"] == ("same" if float(lines["score"]) >= 0.5 else "different")


def test_verify_without_stored_threshold(recipe, tmp_path, capsys) -> None:
    model_dir = tiny_model_dir(tmp_path / "fresh", random_seed=5)
    a, b = sorted(recipe["wav_scp"].values())[:2]
    assert pyfunc_main(["verify", a, b, "--model-dir", str(model_dir)]) == 0
    captured = capsys.readouterr()
    assert "decision unknown" in captured.out and "calibration.yaml nor" in captured.err
    assert "steps/calibrate.py" in captured.err
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


def test_calibrate_sh_fits_on_dev_and_writes_calibrated_test_scores(recipe, tmp_path) -> None:
    """The recipes' helper: fit on DEV_DATA's scores, apply to each TEST_DATA's (here the same list)."""
    data = recipe["data"]
    model_dir = tiny_model_dir(tmp_path / "model", random_seed=8)
    extract_embeddings(model_dir, data, model_dir / "embeddings" / "test", device="cpu")
    score_trials(data / "trials", model_dir / "embeddings" / "test", model_dir / "scores" / "test_cosine")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "steps/calibrate.sh", "--operating-point", "true", "--p-target", "0.05",
                           str(model_dir), str(data), str(data)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    point = yaml.safe_load((model_dir / "calibration.yaml").read_text())
    assert point["kind"] == "logistic" and point["p_target"] == 0.05
    (a,), b = point["calibration"]["weights"], point["calibration"]["bias"]
    raw = read_scores(model_dir / "scores" / "test_cosine")[2]
    np.testing.assert_allclose(read_scores(model_dir / "scores" / "test_cosine-cal")[2], a * raw + b, atol=1e-6)
    proc = subprocess.run(["bash", "steps/calibrate.sh", "--quality", "duration", str(model_dir), str(data), str(data)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (model_dir / "calibration_cosine-qmf.yaml").is_file()
    assert (model_dir / "scores" / "test_cosine-qmf").is_file()
