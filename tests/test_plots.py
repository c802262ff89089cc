"""Stage-6 DET and histogram PNGs, the learning curve of training, and the results summary table."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import yaml
from matplotlib.image import imread
from tools_helpers import REPO

from pyfunc.data.datadir import DataDir, write_data_dir
from pyfunc.errors import DataError
from pyfunc.scoring.metrics import compute_eer, compute_min_dcf, evaluate_score_files, sort_trials, write_results
from pyfunc.scoring.plots import (
    COLORS,
    NONTARGET_COLOR,
    TARGET_COLOR,
    _operating_points,
    det_curve,
    plot_det,
    plot_score_histograms,
)
from pyfunc.scoring.results_summary import gather_results, markdown_table, summarize
from pyfunc.training.history import append_history, read_history
from pyfunc.training.learning_curve import plot_learning_curve

MAX_PNG_BYTES = 200_000


def _systems(count: int, random_seed: int = 0):
    rng = np.random.default_rng(random_seed)
    labels = np.r_[np.ones(200, bool), np.zeros(2000, bool)]
    return [(f"system {i}", np.r_[rng.normal(1.0 + 1.2 * i, 1, 200), rng.normal(0, 1, 2000)], labels)
            for i in range(count)]


def _rgb(color: str, alpha: float = 1.0) -> np.ndarray:
    rgb = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float64) / 255
    return alpha * rgb + (1 - alpha) * 1.0  # over white


def _pixels(png: Path, color: str, alpha: float = 1.0, tol: float = 0.04) -> int:
    image = imread(png)[..., :3]
    return int((np.abs(image - _rgb(color, alpha)).max(axis=2) < tol).sum())


def _check_png(png: Path, width: int, height: int) -> None:
    assert 5_000 < png.stat().st_size < MAX_PNG_BYTES
    assert imread(png).shape[:2] == (height, width)


def test_det_curve_points_are_the_metric_operating_points() -> None:
    name, scores, labels = _systems(1)[0]
    st = sort_trials(scores, labels)
    fpr, fnr = det_curve(st)
    assert (fpr[0], fnr[0], fpr[-1], fnr[-1]) == (1.0, 0.0, 0.0, 1.0)
    assert (np.diff(fpr) <= 0).all() and (np.diff(fnr) >= 0).all()
    points = _operating_points(st)
    e_fpr, e_fnr, eer = points["eer"]
    assert eer == compute_eer(st)[0] and eer == pytest.approx(100 * max(e_fpr, e_fnr))
    d_fpr, d_fnr, dcf = points["min_dcf"]
    assert dcf == compute_min_dcf(st, None, 0.01)[0]
    assert (0.01 * d_fnr + 0.99 * d_fpr) / 0.01 == pytest.approx(dcf)


def test_det_and_histogram_pngs_hold_every_curve(tmp_path) -> None:
    systems = _systems(3)
    det = plot_det(systems, tmp_path / "det.png", title="DET: test")
    _check_png(det, 700, 650)
    for i in range(3):
        assert _pixels(det, COLORS[i]) > 400, f"curve {i} missing"
    assert _pixels(det, COLORS[3]) < 20  # no fourth system, no fourth colour
    single = plot_det(systems[:1], tmp_path / "one.png")
    assert _pixels(single, COLORS[0]) > 400 and _pixels(single, COLORS[1]) < 20

    hist = plot_score_histograms(systems, tmp_path / "hist.png")
    _check_png(hist, 1040, 720)
    assert _pixels(hist, TARGET_COLOR, 0.55) > 2000 and _pixels(hist, NONTARGET_COLOR, 0.55) > 2000
    with pytest.raises(DataError, match="no systems"):
        plot_det([], tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_learning_curve_from_the_training_history(tmp_path) -> None:
    exp = tmp_path / "exp"
    for epoch in range(1, 6):  # the writer that training uses
        append_history(exp, epoch, 5.0 / epoch, 12.0 * epoch, 0.002 * 0.85 ** (epoch - 1), 100.0)
    history = read_history(exp / "log" / "history.tsv")
    assert list(history["epoch"]) == [1, 2, 3, 4, 5] and history["lr"][1] == pytest.approx(0.0017)
    png = plot_learning_curve(exp / "log" / "history.tsv", tmp_path / "lc.png")
    _check_png(png, 1000, 700)
    for i in range(3):  # loss, accuracy, learning rate
        assert _pixels(png, COLORS[i]) > 150
    assert _pixels(png, COLORS[3]) < 20  # no evaluation during training: no EER panel

    lines = (exp / "log" / "history.tsv").read_text().splitlines()
    with_eer = [lines[0] + "\teer"] + [line + ("\t" + f"{40 / i:.2f}" if i % 2 == 0 else "\t-")
                                       for i, line in enumerate(lines[1:], start=1)]
    (tmp_path / "eer.tsv").write_text("\n".join(with_eer) + "\n")
    png = plot_learning_curve(tmp_path / "eer.tsv", tmp_path / "lc_eer.png")
    assert _pixels(png, COLORS[3]) > 100
    (tmp_path / "bad.tsv").write_text("epoch\tloss\n1\tx\n")
    with pytest.raises(DataError, match=r"bad.tsv:2: loss 'x' is not a number"):
        read_history(tmp_path / "bad.tsv")


def test_training_writes_learning_curve_and_fbank_conf(tmp_path) -> None:
    rng = np.random.default_rng(0)
    feats, utt2spk = {}, {}
    for s in range(3):
        for u in range(4):
            utt = f"s{s}-{u}"
            feats[utt] = (rng.standard_normal((30 + 5 * u, 80)) + s).astype(np.float32)
            utt2spk[utt] = f"s{s}"
    with kaldiio.WriteHelper(f"ark,scp:{tmp_path / 'feats.ark'},{tmp_path / 'feats.scp'}") as writer:
        for utt in sorted(feats):
            writer(utt, feats[utt])
    scp = dict(line.split(" ", 1) for line in (tmp_path / "feats.scp").read_text().splitlines())
    write_data_dir(tmp_path / "data", DataDir({u: "/dev/null" for u in feats}, utt2spk,
                                              feats_scp={k: v.strip() for k, v in scp.items()}))
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({
        "model": {"channels": 8, "embed_dim": 4},
        "train": {"epochs": 2, "batch_size": 6, "chunk_frames": 20, "num_workers": 0, "log_interval": 0}}))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(REPO / "steps" / "train.py"), "--config", str(tmp_path / "tiny.yaml"),
                          "--data", str(tmp_path / "data"), "--exp", str(tmp_path / "exp"), "--device", "cpu",
                          "--fbank-conf", str(REPO / "conf" / "fbank.conf")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    png = tmp_path / "exp" / "plots" / "learning_curve.png"
    _check_png(png, 1000, 700)
    assert _pixels(png, COLORS[0]) > 100
    for model_dir in ("exp", "exp/untrained"):
        assert (tmp_path / model_dir / "fbank.conf").read_text() == (REPO / "conf" / "fbank.conf").read_text()


def _score_file(path: Path, trials: list[tuple[str, str, bool]], shift: float, random_seed: int) -> Path:
    rng = np.random.default_rng(random_seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{e} {t} {rng.normal(shift if y else 0.0, 1):.6f}\n" for e, t, y in trials))
    return path


def test_results_summary_gathers_every_experiment(tmp_path) -> None:
    trials = [(f"e{i}", f"t{i}", i % 3 == 0) for i in range(60)]
    trials_path = tmp_path / "data" / "test" / "trials"
    trials_path.parent.mkdir(parents=True)
    trials_path.write_text("".join(f"{e} {t} {'target' if y else 'nontarget'}\n" for e, t, y in trials))
    exp = tmp_path / "exp"
    files = {"a_cos": _score_file(exp / "a" / "scores" / "test_cosine", trials, 2.5, 1),
             "a_as": _score_file(exp / "a" / "scores" / "test_asnorm", trials, 3.0, 2),
             "a_un": _score_file(exp / "a" / "untrained" / "scores" / "test_cosine", trials, 0.3, 3),
             "b_cos": _score_file(exp / "b" / "scores" / "test_cosine", trials, 1.5, 4)}
    rows_a = evaluate_score_files(trials_path, [files["a_cos"], files["a_as"], files["a_un"]])
    write_results(exp / "a" / "results", rows_a)
    rows_b = evaluate_score_files(trials_path, [files["b_cos"]])
    write_results(exp / "b" / "results", rows_b)
    # a later evaluation of the untrained model alone: its row comes from here, not from a/results
    time.sleep(0.02)
    _score_file(files["a_un"], trials, 0.6, 5)
    rows_un = evaluate_score_files(trials_path, [files["a_un"]])
    write_results(exp / "a" / "untrained" / "results", rows_un)
    (exp / "c").mkdir()
    (exp / "c" / "results").write_text("not a results table\n")

    rows = gather_results([exp])
    assert [(r.system, r.test_set, r.score_norm) for r in rows] == [
        (f"{exp}/a", "test", "AS-norm"), (f"{exp}/a", "test", "none"), (f"{exp}/a/untrained", "test", "none"),
        (f"{exp}/b", "test", "none")]
    assert rows[2].eer_percent == pytest.approx(rows_un[0]["eer_percent"], abs=5e-5)
    assert rows[2].results_file == exp / "a" / "untrained" / "results"
    table = summarize([exp], tmp_path / "RESULTS.md")
    lines = table.splitlines()
    assert lines[0] == ("| system | test set | score norm | EER (%) | minDCF (p=0.01) | minDCF (p=0.05) | Cllr | "
                        "min Cllr | actDCF (p=0.01) | actDCF (p=0.05) |")
    row = rows_a[1]
    assert lines[2] == (f"| {exp}/a | test | AS-norm | {row['eer_percent']:.2f} | {row['min_dcf'][0.01]:.4f} | "
                        f"{row['min_dcf'][0.05]:.4f} | {row['cllr']:.4f} | {row['min_cllr']:.4f} | "
                        f"{row['act_dcf'][0.01]:.4f} | {row['act_dcf'][0.05]:.4f} |")
    assert len(lines) == 6 and (tmp_path / "RESULTS.md").read_text() == table
    assert markdown_table(rows) == table
    with pytest.raises(DataError, match="no stage-6 results files"):
        summarize([exp / "c"])


def test_results_summary_reads_old_tables_and_names_calibrated_scores(tmp_path) -> None:
    old = tmp_path / "old" / "results"  # written before stage 6 reported Cllr and actual DCF
    old.parent.mkdir()
    old.write_text("system EER(%) minDCF(p=0.01)\nexp/m/scores/test_cosine 1.2500 0.3000\n")
    new = tmp_path / "new" / "results"
    new.parent.mkdir()
    new.write_text("system EER(%) minDCF(p=0.01) Cllr minCllr actDCF(p=0.01)\n"
                   "exp/m/scores/test_hard_cosine-cal 2.5000 0.4000 0.2100 0.2000 0.4500\n"
                   "exp/m/scores/test_asnorm-qmf 1.0000 0.2000 - 0.1000 0.2500\n")
    rows = gather_results([tmp_path])
    assert [(r.test_set, r.score_norm, r.cllr) for r in rows] == [
        ("test", "AS-norm + QMF", None), ("test", "none", None), ("test_hard", "calibrated", 0.21)]
    assert rows[2].min_cllr == 0.2 and rows[2].act_dcf == {0.01: 0.45} and rows[0].act_dcf == {0.01: 0.25}
    lines = markdown_table(rows).splitlines()
    assert lines[0].endswith("| Cllr | min Cllr | actDCF (p=0.01) |")
    assert lines[3] == "| exp/m | test | none | 1.25 | 0.3000 | - | - | - |"
    assert lines[4] == "| exp/m | test_hard | calibrated | 2.50 | 0.4000 | 0.2100 | 0.2000 | 0.4500 |"
