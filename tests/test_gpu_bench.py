"""bench/gpu.py: every row is produced (CPU smoke run), and without CUDA every GPU figure is 'not measured'."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO

from bench.gpu import ROWS


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(REPO / "bench" / "gpu.py"), *args], env=env, capture_output=True,
                          text=True, timeout=600)


def test_cpu_smoke_produces_every_row(tmp_path: Path) -> None:
    proc = _run("--cpu-smoke", "--json", str(tmp_path / "rows.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "rows.json").read_text())["rows"]
    assert set(rows) == set(ROWS)
    for name, row in rows.items():  # a figure, or a reason it was skipped
        assert row["value"] is not None and row["value"] > 0 or row["note"].startswith("skipped: "), (name, row)
    assert rows["step_fp32"]["ratio"] and rows["extract_batched"]["ratio"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: the figures would be measured")
def test_without_cuda_every_figure_is_not_measured() -> None:
    proc = _run()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert all(f"| {name} |  | not measured (no CUDA device) |" in proc.stdout for name in ROWS)
