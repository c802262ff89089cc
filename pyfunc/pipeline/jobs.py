"""Parallel jobs, Kaldi's ``run.pl JOB=1:N`` idea: N processes, one log each, an optional launcher.

``cmd`` is a launcher prefix such as ``"srun -p cpu -c 1"`` (every job is handed to
it) or empty for local processes. Jobs report progress by writing their count of
finished items to a small file; the driver sums those into one progress bar.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from tqdm import tqdm

from pyfunc.errors import PyfuncError
from pyfunc.logs import LOG_FORMAT

PathLikeOrNone = str | os.PathLike | None


@dataclass
class Job:
    """One job: its argument list (after the launcher), its log file and its progress file."""

    args: list[str]
    log: Path
    progress: Path | None = None
    env: dict[str, str] | None = None  # extra environment variables (e.g. CUDA_VISIBLE_DEVICES)


def worker_command(*args: str) -> list[str]:
    """Argument list that runs ``python -m pyfunc.cli.job_worker ARGS`` (one job) with this interpreter."""
    return [sys.executable, "-m", "pyfunc.cli.job_worker", *args]


def local_thread_env(num_jobs: int, cmd: str = "") -> dict[str, str] | None:
    """Environment giving each of ``num_jobs`` local jobs its share of the cores (OMP_NUM_THREADS).

    N jobs that each use every core oversubscribe the machine (per-utterance fbank runs
    10-30x slower then). Nothing is set for a cluster launcher (``cmd``), which places
    jobs itself, or when the user has set OMP_NUM_THREADS.
    """
    if cmd or "OMP_NUM_THREADS" in os.environ:
        return None
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // max(1, num_jobs)))}


def read_progress(path: Path | None) -> int:
    if path is None:
        return 0
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def report_progress(path: PathLikeOrNone, done: int) -> None:
    """Called by a job: record how many items it has finished."""
    if path:
        Path(path).write_text(str(done))


class ProgressReporter:
    """A job's progress callback that rewrites its progress file at most every ``interval`` seconds.

    Rewriting the file after every utterance cost a quarter of a stage-1 job's time;
    ``close`` writes the final count.
    """

    def __init__(self, path: PathLikeOrNone, interval: float = 0.5) -> None:
        self.path, self.interval = path, interval
        self.done, self.last = 0, float("-inf")

    def __call__(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if now - self.last >= self.interval:
            report_progress(self.path, done)
            self.last = now

    def close(self) -> None:
        report_progress(self.path, self.done)


def run_jobs(jobs: Sequence[Job], cmd: str = "", total: int | None = None, desc: str = "jobs",
             poll_seconds: float = 0.5) -> None:
    """Run all jobs at once and wait; raise PyfuncError naming each failed job and its log."""
    launcher = shlex.split(cmd)
    procs = []
    for job in jobs:
        env = {**os.environ, **(job.env or {})}
        job.log.parent.mkdir(parents=True, exist_ok=True)
        if job.progress is not None:
            job.progress.unlink(missing_ok=True)
        with open(job.log, "w", encoding="utf-8") as log:
            log.write("# " + shlex.join(launcher + job.args) + "\n")
            log.flush()
            procs.append(subprocess.Popen(launcher + job.args, stdout=log, stderr=subprocess.STDOUT, env=env))
    bar = tqdm(total=total if total is not None else len(jobs), desc=desc, unit="utt" if total else "job",
               dynamic_ncols=True, disable=None)
    try:
        while True:
            running = [p for p in procs if p.poll() is None]
            if total is not None:
                done = sum(read_progress(job.progress) for job in jobs)
            else:
                done = len(procs) - len(running)
            bar.update(done - bar.n)
            if not running:
                break
            time.sleep(poll_seconds)
    except BaseException:  # Ctrl-C, SIGTERM (pyfunc.cli.runner), a bug: stop the jobs before the caller cleans up
        stop_processes(procs)
        raise
    finally:
        bar.close()
    failed = [(i, p.returncode, job.log) for i, (p, job) in enumerate(zip(procs, jobs), start=1) if p.returncode]
    if failed:
        lines = [f"job {i} exited with code {rc}; see {log}: {_last_line(log)}" for i, rc, log in failed]
        raise PyfuncError(f"{len(failed)} of {len(jobs)} jobs failed:\n  " + "\n  ".join(lines))


def stop_processes(procs: Sequence[subprocess.Popen], grace_seconds: float = 5.0) -> None:
    """SIGTERM to each running process (a job removes its temporaries), SIGKILL to those still running after
    ``grace_seconds``; returns when all have exited."""
    running = [p for p in procs if p.poll() is None]
    for p in running:
        p.terminate()
    deadline = time.monotonic() + grace_seconds
    for p in running:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@contextlib.contextmanager
def in_process_job_log(log: Path, what: str) -> Iterator[None]:
    """Log (INFO and up) to the job log ``log`` while a single local job runs in this process.

    The log then holds what the job process's log would: a ``#`` header line, the job's
    log records and, on failure, the error.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log, mode="w", encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.stream.write(f"# in-process: {what}\n")
    package = logging.getLogger("pyfunc")  # the package's records, at INFO as a job process logs them
    saved_level = package.level
    package.setLevel(min(package.getEffectiveLevel(), logging.INFO))
    package.addHandler(handler)
    try:
        yield
    except PyfuncError as err:
        handler.handle(logging.LogRecord(__name__, logging.ERROR, __file__, 0, "error: %s", (err,), None))
        raise
    finally:
        package.removeHandler(handler)
        package.setLevel(saved_level)
        handler.close()


def _last_line(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""
