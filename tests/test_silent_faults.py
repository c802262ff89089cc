"""Issue 25, "nothing silently wrong": hostile inputs that used to pass without a word now fail or warn.

Copied data dirs and stale features (stamps name their inputs relative to their own folder), a model's
fbank options against its features', data dirs named ``..`` or ``.``, SIGTERM/SIGHUP like Ctrl-C, the
stage-2 resume refusal's values, a model dir without fbank.conf, audio paths that are not files, and the
results table of a ``--test-data`` run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import make_tone_data_dir
from fault_helpers import FBANK_CONF, start_step, temporaries, tiny_model_dir

import pyfunc
import pyfunc.data.audio
from pyfunc.config import Config

pytestmark = pytest.mark.usefixtures("in_process_steps")  # conftest: no pipes, one thread, INFO logs


# ------------------------------------------------------------------------------------------------
# Item 6: the stage-2 resume refusal names the real values of keys with dots (data.wav.scp)


def test_resume_refusal_shows_the_values_of_keys_with_dots(tmp_path: Path) -> None:
    from pyfunc.pipeline.train_stage import check_training_inputs, why_not_resumable

    data = make_tone_data_dir(tmp_path, speakers=2, utts=2)
    config = Config()
    config.model.frontend = "seed"
    config.train.on_the_fly_features = True
    exp = tmp_path / "exp"
    check_training_inputs(config, data, exp)  # records this run's data
    (exp / "models" / "epoch_1.pt").write_bytes(b"")
    before = (data / "wav.scp").read_text()
    first, second = before.splitlines()[:2]
    (data / "wav.scp").write_text(before.replace(first.split()[1], second.split()[1], 1))
    refusal, params, old = why_not_resumable(config, data, exp)
    assert refusal is not None and "<absent>" not in refusal, refusal
    was, now = old.params["data"]["wav.scp"], params["data"]["wav.scp"]
    assert f"data.wav.scp was {was!r}, now {now!r}" in refusal, refusal
    assert was != now


# ------------------------------------------------------------------------------------------------
# Item 1: a copied or moved data dir checks its own files, not the original's


def _stamp_as_version_1(stamp: Path, folder: Path) -> None:
    """Rewrite a stamp as an earlier version wrote it: every file by its absolute path (as in ``folder``)."""
    data = json.loads(stamp.read_text())
    for kind in ("inputs", "deep_inputs", "outputs"):
        data[kind] = {name if name.startswith("/") else str(folder.absolute() / name): state
                      for name, state in data[kind].items()}
    data["version"] = 1
    stamp.write_text(json.dumps(data))


def test_a_copied_data_dir_checks_its_own_inputs(caplog, tmp_path: Path) -> None:
    from pyfunc.errors import DataError
    from pyfunc.pipeline.extract_stage import run_extraction
    from pyfunc.pipeline.fbank_stage import make_fbank

    data = make_tone_data_dir(tmp_path, speakers=2, utts=2)
    assert make_fbank(data, FBANK_CONF, tmp_path / "fbank", tmp_path / "log")
    stamp = json.loads((data / ".fbank.stamp").read_text())
    assert "wav.scp" in stamp["inputs"] and "feats.scp" in stamp["outputs"], stamp  # named relative to DATA
    model = tiny_model_dir(tmp_path / "model", "fbank")

    copy = tmp_path / "copy"
    shutil.copytree(data, copy)  # as cp -a: contents and modification times
    assert not make_fbank(copy, FBANK_CONF, tmp_path / "fbank", tmp_path / "log")  # the copy is up to date
    rows = (copy / "wav.scp").read_text().splitlines()
    other = rows[1].split()[1]
    (copy / "wav.scp").write_text("\n".join([f"{rows[0].split()[0]} {other}", *rows[1:]]) + "\n")
    with pytest.raises(DataError, match=rf"{copy / 'feats.scp'}: out of date: {copy / 'wav.scp'} changed after "
                                        r"it was made; rerun stage 1"):
        run_extraction(model, copy, tmp_path / "emb_copy", device="cpu")
    assert run_extraction(model, data, tmp_path / "emb", device="cpu")  # the original is still current
    caplog.clear()
    assert make_fbank(copy, FBANK_CONF, tmp_path / "fbank", tmp_path / "log")
    assert f"input {copy / 'wav.scp'} changed" in caplog.text
    assert run_extraction(model, copy, tmp_path / "emb_copy", device="cpu")

    moved = tmp_path / "moved"  # a moved dir: its own files are the ones it was made from
    os.rename(copy, moved)
    assert not make_fbank(moved, FBANK_CONF, tmp_path / "fbank", tmp_path / "log")
    assert run_extraction(model, moved, tmp_path / "emb_moved", device="cpu")


def test_version_1_stamps_are_read_where_written_and_refused_when_copied(caplog, tmp_path: Path) -> None:
    from pyfunc.errors import DataError
    from pyfunc.pipeline.extract_stage import run_extraction
    from pyfunc.pipeline.fbank_stage import make_fbank

    data = make_tone_data_dir(tmp_path, speakers=2, utts=2)
    assert make_fbank(data, FBANK_CONF, tmp_path / "fbank", tmp_path / "log")
    _stamp_as_version_1(data / ".fbank.stamp", data)
    caplog.clear()
    assert not make_fbank(data, FBANK_CONF, tmp_path / "fbank", tmp_path / "log")  # read where it was written
    assert "features are up to date" in caplog.text
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    model = tiny_model_dir(tmp_path / "model", "fbank")
    with pytest.raises(DataError, match=rf"{copy / 'feats.scp'}: out of date: the stamp {copy / '.fbank.stamp'} "
                                        rf"was written for {data} .*rerun stage 1"):
        run_extraction(model, copy, tmp_path / "emb", device="cpu")
    caplog.clear()
    assert make_fbank(copy, FBANK_CONF, tmp_path / "fbank", tmp_path / "log")
    assert f"was written for {data}" in caplog.text
    assert json.loads((copy / ".fbank.stamp").read_text())["version"] == 2
    assert run_extraction(model, copy, tmp_path / "emb", device="cpu")


# ------------------------------------------------------------------------------------------------
# Items 2 and 8: a model's fbank options against the features it is given; a model dir without fbank.conf


def test_stage3_refuses_features_made_with_other_fbank_options(tmp_path: Path) -> None:
    from pyfunc.errors import DataError
    from pyfunc.pipeline.extract_stage import run_extraction
    from pyfunc.pipeline.fbank_stage import make_fbank

    data = make_tone_data_dir(tmp_path, speakers=2, utts=2)
    assert make_fbank(data, FBANK_CONF, tmp_path / "fbank", tmp_path / "log")
    model = tiny_model_dir(tmp_path / "model", "fbank")
    conf = FBANK_CONF.read_text().replace("--frame-shift=10", "--frame-shift=15").replace("--high-freq=7600",
                                                                                          "--high-freq=4000")
    (model / "fbank.conf").write_text(conf)
    with pytest.raises(DataError) as refused:
        run_extraction(model, data, tmp_path / "emb", device="cpu")
    message = str(refused.value)
    for part in (str(data / "feats.scp"), str(data / ".fbank.stamp"), str(model / "fbank.conf"),
                 "--frame-shift=10.0", "--frame-shift=15.0", "--high-freq=7600.0", "--high-freq=4000.0"):
        assert part in message, (part, message)
    assert "--num-mel-bins" not in message  # only the options that differ
    assert not (tmp_path / "emb" / "xvector.scp").exists()
    (model / "fbank.conf").write_text(FBANK_CONF.read_text().replace("--dither=0.0\n", ""))  # 0.0 is the default
    assert run_extraction(model, data, tmp_path / "emb", device="cpu")


def test_a_model_dir_without_fbank_conf_warns_and_uses_the_packaged_defaults(caplog, tmp_path: Path) -> None:
    from pyfunc.features.kaldi_fbank import read_kaldi_conf
    from pyfunc.inference.api import DEFAULT_FBANK_CONF, fbank_conf_path

    model = tiny_model_dir(tmp_path / "model", "fbank")
    caplog.clear()
    assert fbank_conf_path(model) == DEFAULT_FBANK_CONF
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(model) in warnings[0].getMessage(), caplog.text
    assert str(DEFAULT_FBANK_CONF) in warnings[0].getMessage()
    # shipped inside the package (pip install . has no conf/), and the recipes' conf/fbank.conf says the same
    assert DEFAULT_FBANK_CONF.is_relative_to(Path(pyfunc.__file__).parent)
    assert read_kaldi_conf(DEFAULT_FBANK_CONF) == read_kaldi_conf(FBANK_CONF)
    pyproject = (Path(pyfunc.__file__).parents[1] / "pyproject.toml").read_text()
    assert re.search(r'\[tool\.setuptools\.package-data\]\npyfunc = \[[^]]*"conf/\*\.conf"', pyproject), pyproject


# ------------------------------------------------------------------------------------------------
# Item 3: names made from a data dir's basename: data/x/sub/.. means data/x; '.', '..' and '' are refused


def test_names_from_a_data_dir_resolve_dot_dot_and_refuse_dots(tmp_path: Path) -> None:
    from pyfunc.data.dirnames import check_output_dir_name, data_dir_name
    from pyfunc.errors import DataError
    from pyfunc.pipeline.cohort_stage import write_cohort_means
    from pyfunc.pipeline.extract_stage import run_extraction
    from pyfunc.pipeline.fbank_stage import make_fbank

    data = make_tone_data_dir(tmp_path, speakers=2, utts=2)
    (data / "sub").mkdir()
    assert data_dir_name(data / "sub" / "..") == "data" and data_dir_name(f"{data}/.") == "data"
    with pytest.raises(DataError, match="^/: no name"):
        data_dir_name("/")
    for bad in (f"{tmp_path}/emb/..", f"{tmp_path}/emb/.", f"{tmp_path}/emb/../"):
        with pytest.raises(DataError, match=re.escape(bad)):
            check_output_dir_name(bad, "embedding folder")

    assert make_fbank(f"{data}/sub/..", FBANK_CONF, tmp_path / "fbank", tmp_path / "log")
    assert sorted(p.name.split(".")[0] for p in (tmp_path / "fbank").iterdir()) == ["raw_fbank_data"] * 2
    with pytest.raises(DataError, match=r"fbank/\.\.: .*named '\.\.'"):
        make_fbank(data, FBANK_CONF, f"{tmp_path}/fbank/..", tmp_path / "log", force=True)

    model = tiny_model_dir(tmp_path / "model", "fbank")
    (model / "embeddings").mkdir()
    for out in (f"{model}/embeddings/..", f"{model}/embeddings/."):
        with pytest.raises(DataError, match=r"named '\.\.?'"):
            run_extraction(model, f"{data}/sub/..", out, device="cpu")
        with pytest.raises(DataError, match=r"named '\.\.?'"):
            write_cohort_means(out, data / "utt2spk")
    assert sorted(p.name for p in model.iterdir()) == ["config.yaml", "embeddings", "model.pt"]
    assert list((model / "embeddings").iterdir()) == []


# ------------------------------------------------------------------------------------------------
# Item 4: SIGTERM and SIGHUP (timeout, scancel, systemd, a closed terminal) clean up like Ctrl-C


def _wait_for(proc: subprocess.Popen, ready, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, "the run ended before the signal"
        assert time.time() < deadline, "the run did not get going"
        time.sleep(0.02)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_stage1_terminated_removes_its_job_files_and_exits_128_plus_signal(tmp_path: Path, signum: int) -> None:
    data = make_tone_data_dir(tmp_path, speakers=2, utts=4)
    rows = (data / "wav.scp").read_text().splitlines()  # pipes that take a while: the run lasts a few seconds
    (data / "wav.scp").write_text("".join(f"{r.split()[0]} sleep 0.5; cat {r.split()[1]} |\n" for r in rows))
    feats, logs = tmp_path / "fbank", tmp_path / "log"
    proc = start_step("make_fbank.py", "--conf", FBANK_CONF, "--nj", 2, "--allow-pipes", data, feats, logs,
                      log=tmp_path / "run.log")
    try:
        _wait_for(proc, lambda: feats.is_dir() and any(feats.iterdir()) and any(logs.glob(".progress.*")))
        proc.send_signal(signum)  # to the driver only, as timeout(1) does
        code = proc.wait(timeout=60)
        assert code == 128 + signum, (code, (tmp_path / "run.log").read_text()[-2000:])
        deadline = time.time() + 5  # no job process is left running (a pipe's own `sleep 0.5` may finish first)
        while time.time() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        with pytest.raises(ProcessLookupError):
            os.killpg(proc.pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert list(feats.iterdir()) == [] and list(logs.glob(".progress.*")) == []
    assert temporaries(tmp_path) == [] and not (data / "feats.scp").exists()


# ------------------------------------------------------------------------------------------------
# Item 8: audio that is a folder or a device is named as such, not "not found"


def test_audio_that_is_a_folder_or_a_device_says_so(tmp_path: Path) -> None:
    from pyfunc.data.audio import check_wav_entry, read_audio
    from pyfunc.errors import DataError
    from pyfunc.inference.embed_files import list_inputs

    for entry, what in ((str(tmp_path), "is a directory"), ("/dev/null", "is not a regular file"),
                        (str(tmp_path / "gone.wav"), "not found")):
        with pytest.raises(DataError, match=re.escape(f"audio file {entry!r} {what}")):
            read_audio(entry, "a.wav")
        with pytest.raises(DataError, match=re.escape(f"audio file {entry!r} {what}")):
            check_wav_entry("wav.scp", "utt", entry)
    listed = tmp_path / "list.txt"
    listed.write_text("/dev/null\n")
    with pytest.raises(DataError, match=re.escape("list.txt:1: audio file '/dev/null' is not a regular file")):
        list_inputs(listed)


# ------------------------------------------------------------------------------------------------
# Item 8: a --test-data run does not replace MODEL/results, the table of the default test sets


def test_results_table_of_one_set_leaves_the_full_table(capsys, tmp_path: Path) -> None:
    from fault_helpers import run_step

    model = tmp_path / "model"
    (model / "scores").mkdir(parents=True)
    for name in ("test", "other"):
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "trials").write_text("a b target\na c nontarget\nb c nontarget\nc d target\n")
        (model / "scores" / f"{name}_cosine").write_text("a b 0.9\na c 0.1\nb c 0.3\nc d 0.2\n")
    common = ["--data", tmp_path / "data", "--scorings", "cosine", "--out", model / "results"]
    assert run_step(capsys, "results_table.py", *common, "--lists", "test", model)[0] == 0
    full = (model / "results").read_text()
    assert run_step(capsys, "results_table.py", *common, "--lists", "other", "--combined", "false", model)[0] == 0
    assert (model / "results").read_text() == full and "other_cosine" not in full
    assert "other_cosine" in (model / "results_other").read_text()


def test_results_table_takes_lists_from_several_data_roots(tmp_path: Path, capsys) -> None:
    """--lists as data dir paths: lists of two corpora's data roots (a real test set and the mini test_unseen)
    share one table, each named by its data dir (the real-speech recipe scores the mini test_unseen)."""
    from fault_helpers import run_step

    model = tmp_path / "model"
    for root, name in (("real", "test_dsp"), ("mini", "test_unseen")):
        trials = tmp_path / root / name / "trials"
        trials.parent.mkdir(parents=True)
        trials.write_text("a b target\na c nontarget\nb c nontarget\n")
        (model / "scores").mkdir(parents=True, exist_ok=True)
        (model / "scores" / f"{name}_cosine").write_text("a b 0.9\na c 0.1\nb c 0.2\n")
    lists = f"{tmp_path / 'real' / 'test_dsp'},{tmp_path / 'mini' / 'test_unseen'}"
    assert run_step(capsys, "results_table.py", "--lists", lists, "--scorings", "cosine", "--out",
                    str(model / "results"), str(model))[0] == 0
    assert (model / "results_test_dsp").is_file() and (model / "results_test_unseen").is_file()
    assert [line.split()[1] for line in (model / "results").read_text().splitlines()[1:]] == ["0.0000", "0.0000"]
