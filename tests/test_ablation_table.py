"""The ablation table (steps/ablation_table.py): means and sample standard deviations over seeds, by hand."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyfunc.errors import DataError
from pyfunc.scoring.ablation import mean_spread, read_manifest, write_ablation_table

REPO = Path(__file__).resolve().parents[1]
HEADER = "system EER(%) minDCF(p=0.01) minDCF(p=0.05) Cllr minCllr actDCF(p=0.01) actDCF(p=0.05)"


def _model(root: Path, name: str, rows: dict[str, tuple[float, float]]) -> Path:
    """A model dir whose stage-6 results hold ``rows``: score-file name -> (EER %, minDCF at 0.01)."""
    model_dir = root / name
    model_dir.mkdir(parents=True)
    lines = [HEADER] + [f"{model_dir}/scores/{score} {eer} {dcf} 0.5 0.9 0.4 1.0 0.6" for score, (eer, dcf)
                        in rows.items()]
    (model_dir / "results").write_text("\n".join(lines) + "\n")
    return model_dir


def test_mean_and_sample_spread_by_hand(tmp_path: Path) -> None:
    assert mean_spread([1.0, 2.0, 3.0]) == (2.0, 1.0)  # sum of squares 2, over n - 1 = 2
    assert mean_spread([0.5]) == (0.5, 0.0)
    seeds = [_model(tmp_path / "base", f"seed{n}", {"test_cosine": (eer, dcf), "test_asnorm": (eer - 0.5, dcf / 2),
                                                       "test_cosine-qmf": (9.0, 0.9), "test_asnorm-qmf": (8.0, 0.8)})
             for n, (eer, dcf) in enumerate([(1.0, 0.1), (2.0, 0.2), (3.0, 0.6)], start=1)]
    manifest = tmp_path / "manifest.tsv"
    dirs = " ".join(map(str, seeds))
    manifest.write_text(f"# label, scorings, model dirs\nbase\tcosine\tasnorm\t{dirs}\n"
                        f"+ QMF\tcosine-qmf\tasnorm-qmf\t{dirs}\n")
    table = write_ablation_table(manifest, ["test"], tmp_path / "ablation.md")
    lines = table.splitlines()
    assert "| base | 3 | 2.00 ± 1.00 | 1.50 ± 1.00 |" in lines
    assert "| + QMF | 3 | 9.00 ± 0.00 | 8.00 ± 0.00 |" in lines
    # minDCF 0.1, 0.2, 0.6: mean 0.3, deviations -0.2 -0.1 0.3, sum of squares 0.14, /2 -> std 0.2646
    assert "| base | 3 | 0.300 ± 0.265 | 0.150 ± 0.132 |" in lines
    assert (tmp_path / "ablation.md").read_text() == table

    # the step prints the same table
    proc = subprocess.run([sys.executable, str(REPO / "steps" / "ablation_table.py"), "--manifest", str(manifest),
                           "--sets", "test"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0 and proc.stdout == table, proc.stderr


def test_missing_results_and_bad_manifest_lines_are_named(tmp_path: Path) -> None:
    model = _model(tmp_path, "m", {"test_cosine": (1.0, 0.1)})
    manifest = tmp_path / "manifest.tsv"
    manifest.write_text(f"base\tcosine\tasnorm\t{model}\n")
    with pytest.raises(DataError, match=f"{model}/results: no row for the score file test_asnorm"):
        write_ablation_table(manifest, ["test"])
    manifest.write_text(f"base\tcosine\tasnorm\t{model}\nbroken line\n")
    with pytest.raises(DataError, match="manifest.tsv:2: expected label"):
        read_manifest(manifest)
    manifest.write_text(f"base\tcosine\tasnorm\t{tmp_path / 'never_evaluated'}\n")
    with pytest.raises(DataError, match="never_evaluated/results: not found"):
        write_ablation_table(manifest, ["test"], tmp_path / "out.md")
    assert not (tmp_path / "out.md").exists()


def test_driver_tabulates_the_seeds_evaluated_so_far(tmp_path: Path) -> None:
    """local/run_ablation.sh --table-only true: seeds and rows not evaluated yet are left out, and said so."""
    data, exp = tmp_path / "mini", tmp_path / "abl"
    for name in ("test", "test_hard", "test_unseen", "dev", "cohort"):
        (data / name).mkdir(parents=True)
        (data / name / "feats.scp").write_text("")
    def scores(eer: float) -> dict[str, tuple[float, float]]:
        return {f"{test}_{scoring}": (eer, eer / 10) for test in ("test", "test_unseen", "test_hard")
                for scoring in ("cosine", "asnorm")}

    _model(exp / "seed", "seed1", scores(1.0))
    _model(exp / "seed", "seed3", scores(3.0))
    (exp / "warmup" / "seed1").mkdir(parents=True)  # trained, not evaluated: no results table yet
    proc = subprocess.run(["bash", str(REPO / "local" / "run_ablation.sh"), "--data", str(data), "--exp", str(exp),
                           "--rows", "seed warmup", "--table-only", "true"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "row warmup: no evaluated seed yet; left out of the table" in proc.stderr
    manifest = (exp / "manifest.tsv").read_text().splitlines()
    assert manifest[1:] == [f"seed recipe (StepLR, fixed margin, augmentation)\tcosine\tasnorm\t"
                            f"{exp / 'seed' / 'seed1'} {exp / 'seed' / 'seed3'} "]
    assert "| seed recipe (StepLR, fixed margin, augmentation) | 2 | 2.00 ± 1.41 | 2.00 ± 1.41 |" in (
        exp / "ablation.md").read_text()  # mean 2, sample std sqrt(2)
