"""The speaker register: python -m pyfunc enroll / identify on tones with a tiny random model."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import yaml
from conftest import REPO, tone_wav
from tools_helpers import tiny_model_dir

from pyfunc.cli.tools import main as pyfunc_main
from pyfunc.data.audio import read_audio, write_wav
from pyfunc.data.digest import file_sha256
from pyfunc.errors import DataError
from pyfunc.features.vad import DEFAULT_VAD_CONF, read_vad_conf, vad_options_dict
from pyfunc.inference.api import load_model
from pyfunc.inference.register import check_speaker_name, enroll_speaker, identify_speaker
from pyfunc.scoring.operating_point import write_operating_point

ENV = {**os.environ, "PYTHONPATH": str(REPO)}
FREQ = {"alice": 120.0, "bob": 180.0, "carol": 260.0}


def unit(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("register")
    wavs = {name: [tone_wav(root / "wav" / f"{name}{i}.wav", 1.0, freq * (1 + 0.02 * i), random_seed=i)
                   for i in range(4)] for name, freq in FREQ.items()}
    probe = tone_wav(root / "wav" / "probe.wav", 1.0, 182.0, random_seed=99)
    model_dir = tiny_model_dir(root / "model")
    model = load_model(model_dir)
    emb = {str(p): model.embed(p).astype(np.float64) for paths in wavs.values() for p in paths}
    emb[str(probe)] = model.embed(probe).astype(np.float64)
    return {"root": root, "wavs": wavs, "probe": probe, "model_dir": model_dir, "emb": emb}


def hand_model(setup: dict, paths) -> np.ndarray:
    return unit(np.mean([unit(setup["emb"][str(p)]) for p in paths], axis=0))


def run_cli(args: list[str], capsys) -> tuple[int, list[str], str]:
    status = pyfunc_main(args)
    out = capsys.readouterr()
    return status, out.out.splitlines(), out.err


def test_enroll_identify_and_update(setup: dict, tmp_path: Path, capsys) -> None:
    reg, model_dir, wavs = tmp_path / "reg", str(setup["model_dir"]), setup["wavs"]
    enrolled = {"alice": wavs["alice"][:2], "bob": wavs["bob"][:3], "carol": wavs["carol"][:1]}
    for name, paths in enrolled.items():
        status, out, _ = run_cli(["enroll", "--model-dir", model_dir, "--register", str(reg), "--name", name,
                                  *map(str, paths)], capsys)
        assert status == 0 and out == [f"enrolled {name}: {len(paths)} recording(s) added, {len(paths)} in all, "
                                       f"in {reg}"]
    manifest = yaml.safe_load((reg / "register.yaml").read_text())
    assert manifest["model"]["sha256"] == file_sha256(setup["model_dir"] / "model.pt")
    assert {n: s["recordings"] for n, s in manifest["speakers"].items()} == {"alice": 2, "bob": 3, "carol": 1}
    assert manifest["speakers"]["bob"]["duration"] == pytest.approx(3.0)
    # plain Kaldi tables: the recordings' embeddings and the models
    bob = kaldiio.load_scp(str(reg / "speakers" / "bob" / "xvector.scp"))
    assert list(bob) == ["bob-00001", "bob-00002", "bob-00003"]
    np.testing.assert_allclose(bob["bob-00002"], setup["emb"][str(wavs["bob"][1])], atol=1e-5)
    models = kaldiio.load_scp(str(reg / "models.scp"))
    assert sorted(models) == ["alice", "bob", "carol"]
    for name, paths in enrolled.items():
        np.testing.assert_allclose(models[name], hand_model(setup, paths), atol=1e-5)

    # identify: the ranking is the hand-computed cosine ranking; the threshold splits first and second
    probe = unit(setup["emb"][str(setup["probe"])])
    hand = {name: float(hand_model(setup, paths) @ probe) for name, paths in enrolled.items()}
    ranked = sorted(hand, key=lambda n: -hand[n])
    threshold = (hand[ranked[0]] + hand[ranked[1]]) / 2
    status, out, _ = run_cli(["identify", "--model-dir", model_dir, "--register", str(reg), str(setup["probe"]),
                              "--threshold", str(threshold)], capsys)
    assert status == 0 and out[0] == "rank speaker score decision"
    rows = [line.split() for line in out[1:4]]
    assert [r[1] for r in rows] == ranked
    np.testing.assert_allclose([float(r[2]) for r in rows], [hand[n] for n in ranked], atol=1e-5)
    assert [r[3] for r in rows] == ["same", "different", "different"]
    assert out[4] == f"threshold {threshold:.6f} (given)" and out[5] == f"identified {ranked[0]}"
    status, out, _ = run_cli(["identify", "--model-dir", model_dir, "--register", str(reg), str(setup["probe"]),
                              "--threshold", "1.5"], capsys)
    assert out[-1] == "identified none (no enrolled speaker passes the threshold)"

    # the model's operating point, as verify uses it; without one there is no decision
    status, out, err = run_cli(["identify", "--model-dir", model_dir, "--register", str(reg), str(setup["probe"])],
                               capsys)
    assert out[-2:] == ["threshold none", "identified unknown"] and "no decision" in err
    point_dir = setup["model_dir"]
    write_operating_point(point_dir / "calibration.yaml", {
        "kind": "eer", "scoring": "cosine", "threshold": threshold,
        "dev": {"trials": "dev/trials", "scores": "dev_cosine"},
        "model": {"sha256": file_sha256(point_dir / "model.pt"), "subtract_mean": False}})
    try:
        result = identify_speaker(load_model(point_dir), reg, setup["probe"])
        assert result.identified == ranked[0] and result.threshold == pytest.approx(threshold)
        assert "EER threshold" in result.threshold_source
    finally:
        (point_dir / "calibration.yaml").unlink()

    # enrolling an existing name adds recordings (and not twice the same one)
    status, out, err = run_cli(["enroll", "--model-dir", model_dir, "--register", str(reg), "--name", "alice",
                                str(wavs["alice"][2]), str(wavs["alice"][0])], capsys)
    assert out == [f"updated alice: 1 recording(s) added, 3 in all, in {reg}"]
    assert f"{wavs['alice'][0]} is enrolled for alice already" in err
    alice = kaldiio.load_scp(str(reg / "speakers" / "alice" / "xvector.scp"))
    assert list(alice) == ["alice-00001", "alice-00002", "alice-00003"]
    models = kaldiio.load_scp(str(reg / "models.scp"))
    np.testing.assert_allclose(models["alice"], hand_model(setup, wavs["alice"][:3]), atol=1e-5)
    np.testing.assert_allclose(models["bob"], hand_model(setup, wavs["bob"][:3]), atol=1e-5)
    assert yaml.safe_load((reg / "register.yaml").read_text())["speakers"]["alice"]["recordings"] == 3
    assert not [p for p in reg.rglob("*.tmp")]


def test_two_enrolls_at_once_leave_a_whole_register(setup: dict, tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    procs = [subprocess.Popen([sys.executable, "-m", "pyfunc", "enroll", "--model-dir", str(setup["model_dir"]),
                               "--register", str(reg), "--name", name, *map(str, setup["wavs"][name][:2])],
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("alice", "bob")]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    manifest = yaml.safe_load((reg / "register.yaml").read_text())
    assert sorted(manifest["speakers"]) == ["alice", "bob"]
    models = kaldiio.load_scp(str(reg / "models.scp"))
    assert sorted(models) == ["alice", "bob"]
    for name in ("alice", "bob"):
        np.testing.assert_allclose(models[name], hand_model(setup, setup["wavs"][name][:2]), atol=1e-5)
        assert len(kaldiio.load_scp(str(reg / "speakers" / name / "xvector.scp"))) == 2


def test_foreign_empty_and_bad_registers(setup: dict, tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    model = load_model(setup["model_dir"])
    enroll_speaker(model, reg, "alice", setup["wavs"]["alice"][:1])
    other_dir = tiny_model_dir(tmp_path / "other", random_seed=5)
    other = load_model(other_dir)
    sha = file_sha256(setup["model_dir"] / "model.pt")
    refused = (rf"{reg} was made with model {setup['model_dir'].resolve()} \(sha256 {sha[:12]}\.\.\.\), "
               rf"not {other_dir} \(sha256")
    with pytest.raises(DataError, match=refused):
        identify_speaker(other, reg, setup["probe"])
    with pytest.raises(DataError, match=refused):
        enroll_speaker(other, reg, "bob", setup["wavs"]["bob"][:1])
    run = subprocess.run([sys.executable, "-m", "pyfunc", "identify", "--model-dir", str(other_dir), "--register",
                          str(reg), str(setup["probe"])], env=ENV, capture_output=True, text=True)
    assert run.returncode == 1 and f"error: {reg} was made with model" in run.stderr, run.stderr

    for empty in (tmp_path / "missing", tmp_path / "empty"):
        (tmp_path / "empty").mkdir(exist_ok=True)
        with pytest.raises(DataError, match=rf"{empty}: the register is empty: no speaker is enrolled"):
            identify_speaker(model, empty, setup["probe"])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine\n")
    with pytest.raises(DataError, match=r"busy: not a speaker register \(no register.yaml\) and not empty"):
        enroll_speaker(model, tmp_path / "busy", "alice", setup["wavs"]["alice"][:1])
    with pytest.raises(DataError, match="not a speaker register"):
        identify_speaker(model, tmp_path / "busy", setup["probe"])
    for name in ("", "a b", "a/b", "a\\b", ".hidden", "tab\tname"):
        with pytest.raises(DataError, match="speaker name"):
            check_speaker_name(name)
    with pytest.raises(DataError, match=r"speaker name '\.\./x' contains '/'"):
        enroll_speaker(model, reg, "../x", setup["wavs"]["alice"][:1])
    with pytest.raises(DataError, match="missing.wav"):
        enroll_speaker(model, reg, "bob", [tmp_path / "missing.wav"])
    assert sorted(yaml.safe_load((reg / "register.yaml").read_text())["speakers"]) == ["alice"]


def _padded_tone(path: Path, freq: float, random_seed: int) -> Path:
    """0.8 s of near-silence, 1 s of tone, 0.8 s of near-silence: voice activity keeps about the middle."""
    rng = np.random.default_rng(random_seed)
    tone = tone_wav(path, 1.0, freq, random_seed)
    quiet = (1e-4 * rng.standard_normal(12800)).astype(np.float32)
    write_wav(path, np.concatenate([quiet, read_audio(str(tone)), quiet]), 16000)
    return path


def test_vad_enrolments_score_the_voiced_frames_and_keep_their_options(setup: dict, tmp_path: Path, capsys) -> None:
    """enroll/identify --vad: the models and scores are those of verify's --vad embeddings (the hand computation
    below), the register records the VAD options, and a call with other options is refused by name (a register
    enrolled with VAD and probed without it scored mismatched embeddings silently)."""
    reg, model_dir, wav = tmp_path / "reg", str(setup["model_dir"]), tmp_path / "wav"
    wavs = {name: [_padded_tone(wav / f"{name}{i}.wav", FREQ[name] * (1 + 0.02 * i), i) for i in range(2)]
            for name in ("alice", "bob")}
    probe = _padded_tone(wav / "probe.wav", 182.0, 99)
    vad_model = load_model(setup["model_dir"])
    vad_model.vad = read_vad_conf(DEFAULT_VAD_CONF)
    emb = {p: unit(vad_model.embed(p)) for p in [*wavs["alice"], *wavs["bob"], probe]}
    assert not np.allclose(emb[probe], unit(load_model(setup["model_dir"]).embed(probe)), atol=1e-3)  # VAD matters
    for name, paths in wavs.items():
        status, out, _ = run_cli(["enroll", "--vad", "--max-chunk-seconds", "1", "--model-dir", model_dir,
                                  "--register", str(reg), "--name", name, *map(str, paths)], capsys)
        assert status == 0, out
    assert yaml.safe_load((reg / "register.yaml").read_text())["model"]["vad"] == vad_options_dict(vad_model.vad)
    hand = {name: unit(np.mean([emb[p] for p in paths], axis=0)) @ emb[probe] for name, paths in wavs.items()}
    status, out, _ = run_cli(["identify", "--vad", "--model-dir", model_dir, "--register", str(reg), str(probe),
                              "--threshold", "2"], capsys)
    rows = {line.split()[1]: float(line.split()[2]) for line in out[1:3]}
    assert rows == pytest.approx(hand, abs=1e-5)

    refused = rf"{reg} was enrolled --vad \(energy_threshold=.*\), this call is without --vad"
    with pytest.raises(DataError, match=refused):
        identify_speaker(load_model(setup["model_dir"]), reg, probe)
    with pytest.raises(DataError, match=refused):
        enroll_speaker(load_model(setup["model_dir"]), reg, "carol", setup["wavs"]["carol"][:1])
    run = subprocess.run([sys.executable, "-m", "pyfunc", "identify", "--model-dir", model_dir, "--register",
                          str(reg), str(probe)], env=ENV, capture_output=True, text=True)
    assert run.returncode == 1 and f"error: {reg} was enrolled --vad (" in run.stderr, run.stderr
    with pytest.raises(DataError, match=rf"{setup['root'] / 'plain'} was enrolled without --vad, this call is --vad"):
        plain = setup["root"] / "plain"
        enroll_speaker(load_model(setup["model_dir"]), plain, "carol", setup["wavs"]["carol"][:1])
        enroll_speaker(vad_model, plain, "dave", setup["wavs"]["carol"][1:2])


def test_seed_protocol_one_recording_speaker_scores_as_verify(setup: dict, tmp_path: Path) -> None:
    """A speaker of one recording scores as verify scores that recording against the probe (crops included)."""
    model = load_model(tiny_model_dir(tmp_path / "seed_model", protocol="seed", random_seed=2))
    reg = tmp_path / "reg"
    enroll_speaker(model, reg, "carol", setup["wavs"]["carol"][:1])
    enroll_speaker(model, reg, "bob", setup["wavs"]["bob"][:1])
    assert (reg / "model_crop_means.scp").is_file() and (reg / "speakers" / "bob" / "xvector_crops.scp").is_file()
    result = identify_speaker(model, reg, setup["probe"], threshold=0.0)
    for cand in result.ranking:
        expected = model.score(setup["wavs"][cand.name][0], setup["probe"])
        assert cand.score == pytest.approx(expected, abs=1e-5)
    # a copied register works where it is: its own reads go to its arks, not to the scps' absolute paths
    copy = shutil.copytree(reg, tmp_path / "copy")
    shutil.rmtree(reg)
    assert identify_speaker(model, copy, setup["probe"], threshold=0.0).ranking == result.ranking
    enroll_speaker(model, copy, "bob", setup["wavs"]["bob"][1:2])
    assert str(copy) in (copy / "models.scp").read_text()
    assert len(kaldiio.load_scp(str(copy / "speakers" / "bob" / "xvector_crops.scp"))) == 2
