"""Issue 25, "nothing silently wrong": hostile inputs that used to pass without a word now fail or warn.

Copied data dirs and stale features (stamps name their inputs relative to their own folder), a model's
fbank options against its features', data dirs named ``..`` or ``.``, SIGTERM/SIGHUP like Ctrl-C, the
stage-2 resume refusal's values, a model dir without fbank.conf, audio paths that are not files, and the
results table of a ``--test-data`` run.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import make_tone_data_dir

import pyfunc.data.audio
from pyfunc.config import Config


@pytest.fixture(autouse=True)
def _no_pipes(monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(pyfunc.data.audio, "_ALLOW_PIPES", False)
    monkeypatch.setenv("PYFUNC_ALLOW_PIPES", "0")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


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
