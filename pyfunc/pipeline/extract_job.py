"""One stage-3 job: the embeddings of a data directory (or a split of it) into ark/scp."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from tqdm import tqdm

from pyfunc.data.arkio import ArkScpWriter
from pyfunc.data.atomic import PathLike
from pyfunc.data.badinput import BadInputs, write_bad_list
from pyfunc.errors import ConfigError, DataError
from pyfunc.inference.batching import crop_length, resolve_batch_frames
from pyfunc.inference.data_inputs import POOL_BATCHES, DataDirInputs, embed_pool, length_pools, read_ahead
from pyfunc.inference.embedder import Embedder, TorchEmbedder
from pyfunc.inference.onnx_runtime import OnnxEmbedder
from pyfunc.models.model_dir import load_model_dir

logger = logging.getLogger(__name__)

PROTOCOLS = ("auto", "full", "seed")


def extract_embeddings(model_dir: PathLike, data_dir: PathLike, out_dir: PathLike, protocol: str = "auto",
                       device: str | torch.device = "auto", batch_frames: int | None = None,
                       utts: Iterable[str] | None = None, progress: Callable[[int], None] | None = None,
                       onnx: PathLike | None = None, skip_bad: bool = False,
                       bad_list: PathLike | None = None, resample: bool = False, vad: bool = False) -> dict[str, str]:
    """Embed every utterance of ``data_dir`` (or the subset ``utts``) into ``out_dir``.

    ``protocol``: 'auto' (the model's ``extract.protocol``), 'full' or 'seed'.
    ``batch_frames`` (default ``extract.batch_frames``; 0: automatic, see
    :func:`resolve_batch_frames`) bounds batch size x longest input in frames.
    ``progress`` is called with the number of utterances done. ``onnx``: run this
    export of the model (steps/export_onnx.py) in onnxruntime instead of PyTorch. ``resample``:
    audio (seed front end) at another rate is resampled to the model's instead of being bad input. ``vad``: only
    the voiced frames of each utterance, by ``data_dir/vad.scp`` (:class:`DataDirInputs`).

    Inputs that cannot be used (unreadable or too short audio or features) are collected
    over all utterances: by default the run then fails with the whole list and writes
    nothing; with ``skip_bad`` they are left out. Returns ``utt -> reason`` of those left
    out; ``bad_list`` receives the same as ``utt reason`` lines either way.
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    encoder, config = load_model_dir(model_dir, "cpu" if onnx is not None else device)
    model: Embedder = TorchEmbedder(encoder) if onnx is None else OnnxEmbedder(onnx, model_dir, encoder)
    protocol = config.extract.protocol if protocol == "auto" else protocol
    batch_frames = resolve_batch_frames(batch_frames if batch_frames is not None else config.extract.batch_frames,
                                        model)
    num_crops = config.extract.num_crops
    if protocol == "seed" and num_crops < 1:
        raise ConfigError(f"extract.num_crops must be at least 1 for the seed protocol, got {num_crops}")
    crop = crop_length(config.extract, model.frontend) if protocol == "seed" else None
    source = DataDirInputs(data_dir, model, resample, vad)
    keys = sorted(source.table)
    if utts is not None:
        wanted = set(utts)
        unknown = sorted(wanted - set(keys))
        if unknown:
            raise DataError(f"{source.path}: {len(unknown)} requested utterance(s) not listed, e.g. {unknown[:3]}")
        keys = [key for key in keys if key in wanted]
    if not keys:
        raise DataError(f"{source.path}: no utterances to embed")
    device_name = next(encoder.parameters()).device if onnx is None else f"onnxruntime {onnx}"
    logger.info("embedding %d utterances of %s with %s (protocol %s, %s front end, device %s%s)", len(keys), data_dir,
                model_dir, protocol, model.frontend, device_name, ", voiced frames only" if vad else "")


    out_dir.mkdir(parents=True, exist_ok=True)
    start, done = time.time(), 0
    bad = BadInputs()

    def load(key: str) -> np.ndarray | None:
        try:
            return source.load(key)
        except DataError as err:
            bad.add(key, str(err))
            return None

    good = ((key, item) for key, item in read_ahead(keys, load)
            if item is not None and (skip_bad or not bad))  # once failing, only look for more bad inputs
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: bad_list is not None and write_bad_list(bad_list, bad.found))
        write_full = stack.enter_context(ArkScpWriter(out_dir / "xvector.ark", out_dir / "xvector.scp"))
        write_crops = None
        if crop is not None:
            write_crops = stack.enter_context(ArkScpWriter(out_dir / "xvector_crops.ark",
                                                           out_dir / "xvector_crops.scp"))
        bar = stack.enter_context(tqdm(total=len(keys), unit="utt", desc="embed", mininterval=2.0))
        for pool in length_pools(good, source.frames, POOL_BATCHES * batch_frames):
            full, crop_emb = embed_pool(model, source, pool, batch_frames, crop, num_crops)
            for row, (key, _) in enumerate(pool):  # pools follow the sorted key order
                write_full(key, full[row])
                if write_crops is not None:
                    write_crops(key, crop_emb[row])
            done += len(pool)
            bar.update(len(pool))
            if progress is not None:
                progress(done + len(bad))
        if bad and not skip_bad:
            raise bad.error(source.path, len(keys))
    elapsed = max(time.time() - start, 1e-9)
    logger.info("embedded %d utterances in %.1f s (%.1f utterances/s) into %s", done, elapsed, done / elapsed, out_dir)
    if bad:
        logger.warning("left out %d of %d utterance(s) with bad input (--skip-bad-audio)", len(bad), len(keys))
    return dict(bad.found)
