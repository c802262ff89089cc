"""Audio that ffmpeg decodes (VoxCeleb2's AAC ``.m4a``, as released): wav.scp pipe entries, and decoding a
whole tree once to 16 kHz mono 16-bit wav.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from tqdm import tqdm

from pyfunc.data.atomic import PathLike
from pyfunc.data.audio import SAMPLE_RATE
from pyfunc.data.corpus_files import walk_files
from pyfunc.errors import DataError, PyfuncError

logger = logging.getLogger(__name__)


def ffmpeg_pipe(path: str) -> str:
    """The wav.scp pipe entry that decodes ``path`` (any ffmpeg input) to 16 kHz mono wav."""
    return f"ffmpeg -nostdin -v error -i {shlex.quote(path)} -f wav -ac 1 -ar {SAMPLE_RATE} - |"


def require_ffmpeg(num_m4a: int, root: PathLike) -> str:
    """Path of ffmpeg; PyfuncError saying what to do when it is not installed."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise PyfuncError(f"found {num_m4a} .m4a files under {root} but ffmpeg is not installed; install it "
                          "(apt-get install ffmpeg) or convert to wav first")
    return ffmpeg


def _converted_name(src: str, src_root: str, dst_root: str) -> str:
    return os.path.join(dst_root, os.path.relpath(os.path.splitext(src)[0] + ".wav", src_root))


def _convert_one(ffmpeg: str, src: str, dst: str) -> str | None:
    """Decode ``src`` to 16 kHz mono 16-bit wav at ``dst`` (through a temporary name); error text or None."""
    folder, name = os.path.split(dst)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{name}.tmp")
    command = [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", src, "-ac", "1", "-ar", str(SAMPLE_RATE),
               "-sample_fmt", "s16", "-f", "wav", tmp]
    try:
        result = subprocess.run(command, capture_output=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as err:
        _remove(tmp)
        return f"{src}: ffmpeg failed: {err}"
    if result.returncode != 0 or not os.path.isfile(tmp):
        _remove(tmp)
        message = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return f"{src}: ffmpeg exited with code {result.returncode}: {message[0]}"
    os.replace(tmp, dst)
    return None


def _bounded_results(pool: Executor, calls: Iterable[tuple], window: int) -> Iterator:
    """Results of ``pool.submit(*call)`` for each call, in completion order, at most ``window`` in flight."""
    pending: set[Future] = set()
    for call in calls:
        if len(pending) >= window:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (future.result() for future in done)
        pending.add(pool.submit(*call))
    for future in as_completed(pending):
        yield future.result()


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


@dataclass
class ConversionReport:
    converted: int
    skipped: int


def convert_m4a_tree(src_root: PathLike, dst_root: PathLike, num_jobs: int = 4) -> ConversionReport:
    """Decode every ``*.m4a`` under ``src_root`` to 16 kHz mono 16-bit wav at the same relative path
    under ``dst_root`` (``.wav``), with ``num_jobs`` ffmpeg processes at a time.

    Each file is written to a temporary name and renamed, so files already there are complete
    and are skipped: an interrupted conversion resumes. Failures do not stop the others; a
    DataError at the end names them.
    """
    src_root = Path(os.path.abspath(src_root))
    dst_root = Path(os.path.abspath(dst_root))
    if not src_root.is_dir():
        raise DataError(f"{src_root}: folder not found")
    sources = walk_files(src_root, "m4a")
    if not sources:
        raise DataError(f"{src_root}: no .m4a files found")
    ffmpeg = require_ffmpeg(len(sources), src_root)
    todo = [s for s in sources if not os.path.isfile(_converted_name(s, str(src_root), str(dst_root)))]
    skipped = len(sources) - len(todo)
    if skipped:
        logger.info("%d of %d files already converted under %s", skipped, len(sources), dst_root)
    errors: list[str] = []
    src, dst = str(src_root), str(dst_root)
    calls = ((_convert_one, ffmpeg, s, _converted_name(s, src, dst)) for s in todo)
    with tqdm(total=len(todo), desc="m4a -> wav", unit="file", dynamic_ncols=True, mininterval=1.0) as bar:
        with ThreadPoolExecutor(max_workers=max(1, num_jobs)) as pool:
            for error in _bounded_results(pool, calls, window=4 * max(1, num_jobs)):
                if error is not None:
                    errors.append(error)
                bar.update(1)
    if errors:
        errors.sort()
        raise DataError(f"{len(errors)} of {len(todo)} conversions failed, e.g. " + "; ".join(errors[:3]))
    return ConversionReport(converted=len(todo), skipped=skipped)


__all__ = ["ConversionReport", "convert_m4a_tree", "ffmpeg_pipe", "require_ffmpeg"]
