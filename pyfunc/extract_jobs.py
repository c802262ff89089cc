"""Stage 3 in parallel: split the data directory, embed each part in its own process, merge in order.

With CUDA, job j runs on GPU ``(j - 1) % num_gpus`` (through CUDA_VISIBLE_DEVICES),
so ``--nj`` equal to the number of GPUs uses each once. The merged
``xvector.scp`` (and ``xvector_crops.scp``) point into the per-job arks.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from pyfunc.arkio import merge_scps
from pyfunc.datadir import load_data_dir, split_data_dir
from pyfunc.fileio import PathLike
from pyfunc.jobs import Job, run_jobs, worker_command


def extract_embeddings_parallel(model_dir: PathLike, data_dir: PathLike, out_dir: PathLike, num_jobs: int = 1,
                                cmd: str = "", protocol: str = "auto", device: str = "auto",
                                batch_frames: int | None = None, onnx: PathLike | None = None) -> None:
    """Embed ``data_dir`` into ``out_dir`` with ``num_jobs`` processes (launched through ``cmd``)."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    total = len(load_data_dir(data_dir).utt2spk)
    parts = split_data_dir(data_dir, num_jobs)
    split_root = out_dir / f"split{len(parts)}"
    if split_root.exists():
        shutil.rmtree(split_root)
    gpus = torch.cuda.device_count() if device in ("auto", "cuda") else 0
    jobs = []
    for job, part in enumerate(parts, start=1):
        args = ["embed", "--model-dir", str(model_dir), "--protocol", protocol, "--device", device,
                "--progress", str(split_root / f".progress.{job}")]
        if batch_frames is not None:
            args += ["--batch-frames", str(batch_frames)]
        if onnx is not None:
            args += ["--onnx", str(onnx)]
        env = {"CUDA_VISIBLE_DEVICES": str((job - 1) % gpus)} if gpus > 1 else None
        jobs.append(Job(worker_command(*args, str(part), str(split_root / str(job))),
                        out_dir / "log" / f"extract.{job}.log", split_root / f".progress.{job}", env))
    for stale in ("xvector.scp", "xvector_crops.scp"):
        (out_dir / stale).unlink(missing_ok=True)
    run_jobs(jobs, cmd, total=total, desc=f"embed {data_dir.name}")
    job_dirs = [split_root / str(j) for j in range(1, len(parts) + 1)]
    merge_scps([d / "xvector.scp" for d in job_dirs], out_dir / "xvector.scp")
    if all((d / "xvector_crops.scp").is_file() for d in job_dirs):
        merge_scps([d / "xvector_crops.scp" for d in job_dirs], out_dir / "xvector_crops.scp")
    for d in job_dirs:
        (d.parent / f".progress.{d.name}").unlink(missing_ok=True)
