"""Quality measures of enrolled speaker models (stage 6's AS-norm calibration of a list like test_enroll3): a model's
duration, magnitude and cohort_mean come from its enrolment utterances and its model vector, checked against a
hand computation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pyfunc.data.arkio import ArkScpWriter
from pyfunc.data.trials import read_trial_list
from pyfunc.pipeline.calibrate_stage import QualitySources, utterance_qualities


def _embeddings(folder: Path, vectors: dict[str, list[float]]) -> None:
    folder.mkdir(parents=True)
    with ArkScpWriter(folder / "xvector.ark", folder / "xvector.scp") as write:
        for key in sorted(vectors):
            write(key, np.asarray(vectors[key], dtype=np.float32))


def test_a_model_is_measured_by_its_enrolment_utterances(tmp_path: Path) -> None:
    """m1 = {u1 (3, 4), u2 (0, 2)}, tested on u3 (1, 0); cohort speakers A (1, 0), B (0, 1), C (-1, 0), top 2.
    By hand: duration 1.5 + 2.5 = 4; magnitude (5 + 2) / 2 = 3.5; model vector unit((0.6, 0.8) + (0, 1)) =
    (1, 3) / sqrt(10), cohort scores 1, 3, -1 over sqrt(10): top-2 mean 2 / sqrt(10); u3: 3 s, norm 1, cohort
    scores 1, 0, -1: top-2 mean 0.5."""
    data = tmp_path / "test_enroll3"
    data.mkdir()
    (data / "trials").write_text("m1 u3 target\n")
    (data / "enroll").write_text("m1 u1 u2\n")
    (data / "utt2dur").write_text("u1 1.5\nu2 2.5\nu3 3.0\n")
    _embeddings(tmp_path / "emb", {"u1": [3, 4], "u2": [0, 2], "u3": [1, 0]})
    _embeddings(tmp_path / "cohort", {"c1": [1, 0], "c2": [0, 1], "c3": [-1, 0]})
    (tmp_path / "utt2spk").write_text("c1 A\nc2 B\nc3 C\n")
    sources = QualitySources(data, tmp_path / "emb", tmp_path / "cohort", tmp_path / "utt2spk", top_n=2)
    got = utterance_qualities(read_trial_list(data / "trials"), ("duration", "magnitude", "cohort_mean"), sources,
                              None)
    expected = {"duration": (4.0, 3.0), "magnitude": (3.5, 1.0), "cohort_mean": (2 / math.sqrt(10), 0.5)}
    for measure, (enroll_side, test_side) in expected.items():
        assert got[measure][0] == pytest.approx([enroll_side], abs=1e-6), measure
        assert got[measure][1] == pytest.approx([test_side], abs=1e-6), measure
    # with the embedding mean (1, 0) subtracted first: u1 (2, 4), u2 (-1, 2): magnitude (sqrt(20) + sqrt(5)) / 2
    mean = utterance_qualities(read_trial_list(data / "trials"), ("magnitude",), sources, np.array([1.0, 0.0]))
    assert mean["magnitude"][0] == pytest.approx([(math.sqrt(20) + math.sqrt(5)) / 2])
    assert mean["magnitude"][1] == pytest.approx([0.0], abs=1e-6)
