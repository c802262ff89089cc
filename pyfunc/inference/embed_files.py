"""``python -m pyfunc embed``: embeddings of a folder of audio files, a list of files or a ``wav.scp``.

Inputs become ``key -> audio entry`` tables: a ``wav.scp`` keeps its keys; the
files of a folder (searched recursively) or of a list (one path per line) are
keyed by their path relative to the folder (or to the list's common parent),
without the extension. Outputs, by the name of ``out``:

* ``NAME.npy``: a (num_utterances, dim) float32 matrix, rows in key order, and
  ``NAME.keys`` with the keys, one per line;
* ``NAME.ark`` or ``NAME.scp``: a Kaldi ark/scp pair ``NAME.ark`` + ``NAME.scp``;
* anything else: a folder with ``xvector.ark/scp`` as stage 3 writes it (and
  ``xvector_crops.ark/scp`` when the model's protocol is ``seed``), which
  ``steps/score_cosine.py`` scores directly.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile

from pyfunc.data.arkio import ArkScpWriter
from pyfunc.data.atomic import PathLike, atomic_path, write_lines
from pyfunc.data.audio import missing_file_reason
from pyfunc.data.tables import read_scp
from pyfunc.errors import ConfigError, DataError
from pyfunc.inference.api import SpeakerModel
from pyfunc.inference.batching import input_frames
from pyfunc.inference.long_audio import window_key
from pyfunc.inference.windows import iter_window_embeddings

logger = logging.getLogger(__name__)

INPUT_KINDS = ("auto", "dir", "list", "scp")

AUDIO_SUFFIXES = frozenset("." + fmt.lower() for fmt in soundfile.available_formats()) | {".wav", ".flac", ".ogg"}

POOL_UTTS = 64  # utterances read and embedded together (sorted by length within the pool)

POOL_FRAMES = 100_000  # ... and about this many input frames at most (1000 s): long recordings are not held 64 at once


def _key_of(path: Path, root: Path) -> str:
    key = path.relative_to(root).with_suffix("").as_posix()
    if not key or any(c.isspace() for c in key):
        raise DataError(f"{path}: cannot make a key without whitespace from this path; use a wav.scp instead")
    return key


def _keyed(paths: list[Path], root: Path, source: str) -> dict[str, str]:
    table: dict[str, str] = {}
    for path in paths:
        key = _key_of(path, root)
        if key in table:
            raise DataError(f"{source}: {table[key]} and {path} both give the key {key!r}")
        table[key] = str(path)
    return table


def list_inputs(source: PathLike, kind: str = "auto") -> dict[str, str]:
    """``key -> audio entry`` of a folder, a list file or a wav.scp (``kind`` 'auto' guesses: folders
    are folders, ``*.scp`` files are wav.scp, other files are lists), sorted by key."""
    if kind not in INPUT_KINDS:
        raise DataError(f"unknown input kind {kind!r}; use one of {', '.join(INPUT_KINDS)}")
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source}: not found")
    if kind == "auto":
        kind = "dir" if source.is_dir() else "scp" if source.suffix == ".scp" else "list"
    if kind == "dir":
        if not source.is_dir():
            raise DataError(f"{source}: not a folder")
        paths = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        if not paths:
            raise DataError(f"{source}: no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) in this folder")
        table = _keyed(paths, source, str(source))
    elif kind == "scp":
        table = read_scp(source)
        if not table:
            raise DataError(f"{source}: no entries")
    else:
        paths = []
        with open(source, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                path = Path(line)
                if not path.is_file():
                    raise DataError(f"{source}:{number}: audio file {line!r} {missing_file_reason(path)}")
                paths.append(path.absolute())
        if not paths:
            raise DataError(f"{source}: no audio files listed")
        root = Path(os.path.commonpath([p.parent for p in paths]))
        table = _keyed(paths, root, str(source))
    return dict(sorted(table.items(), key=lambda item: item[0].encode()))


def iter_embeddings(model: SpeakerModel, table: dict[str, str], source: str = "",
                    batch_frames: int | None = None, crops: bool = False, segment: float | None = None,
                    shift: float | None = None) -> Iterator[tuple[str, np.ndarray, np.ndarray | None]]:
    """Yield ``(key, embedding, crop embeddings or None)`` in the table's order; with ``segment`` (seconds)
    one per sliding window of each recording (``shift`` seconds apart, default ``segment``), keyed
    ``<key>-<start ms>-<end ms>`` (:mod:`pyfunc.inference.windows`)."""
    if segment is not None:
        for key, entry in table.items():
            where = f"{source}: {key}" if source else key
            samples = model.load_audio(entry, where=where)
            for start, end, emb, crop_emb in iter_window_embeddings(
                    model, samples, segment, segment if shift is None else shift, where, batch_frames, crops):
                yield window_key(key, start, end, model.sample_rate), emb, crop_emb
        return
    keys = list(table)
    pool: list[str] = []
    inputs: list[np.ndarray] = []
    frames = 0
    for number, key in enumerate(keys, start=1):
        where = f"{source}: {key}" if source else key
        inputs.append(model.model_input(model.load_audio(table[key], where=where), where))
        pool.append(key)
        frames += input_frames(model.encoder.frontend, inputs[-1])
        if len(pool) < POOL_UTTS and frames < POOL_FRAMES and number < len(keys):
            continue
        full = model.embed_inputs(inputs, batch_frames)
        crop_emb = model.embed_crop_inputs(inputs, batch_frames) if crops else None
        for row, pooled in enumerate(pool):
            yield pooled, full[row], crop_emb[row] if crop_emb is not None else None
        pool, inputs, frames = [], [], 0


def embed_to(model: SpeakerModel, table: dict[str, str], out: PathLike, source: str = "",
             batch_frames: int | None = None, segment: float | None = None, shift: float | None = None
             ) -> list[Path]:
    """Embed every entry of ``table`` into ``out`` (see the module docstring); the files written.

    With ``segment``: one embedding per sliding window instead (see :func:`iter_embeddings`)."""
    if shift is not None and segment is None:
        raise ConfigError("a window shift needs a window length (segment)")
    windows = {"segment": segment, "shift": shift}
    out = Path(out)
    if out.suffix == ".npy":
        keys, rows = [], []
        for key, emb, _ in iter_embeddings(model, table, source, batch_frames, **windows):
            keys.append(key)
            rows.append(emb)
        keys_path = out.with_suffix(".keys")
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, np.stack(rows).astype(np.float32))
        write_lines(keys_path, keys)
        written = [out, keys_path]
    elif out.suffix in (".ark", ".scp"):
        ark, scp = out.with_suffix(".ark"), out.with_suffix(".scp")
        with ArkScpWriter(ark, scp) as write:
            for key, emb, _ in iter_embeddings(model, table, source, batch_frames, **windows):
                write(key, emb)
        written = [ark, scp]
    else:
        crops = model.protocol == "seed"
        with contextlib.ExitStack() as stack:
            write = stack.enter_context(ArkScpWriter(out / "xvector.ark", out / "xvector.scp"))
            write_crops = stack.enter_context(ArkScpWriter(out / "xvector_crops.ark", out / "xvector_crops.scp")) \
                if crops else None
            for key, emb, crop_emb in iter_embeddings(model, table, source, batch_frames, crops, **windows):
                write(key, emb)
                if write_crops is not None:
                    write_crops(key, crop_emb)
        written = [out / "xvector.scp"] + ([out / "xvector_crops.scp"] if crops else [])
    logger.info("embedded %d recording(s) into %s", len(table), ", ".join(map(str, written)))
    return written
