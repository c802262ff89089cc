"""Model inputs of a data directory (feats.scp or wav.scp), read ahead and embedded in pools."""

from __future__ import annotations

import collections
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import kaldiio
import numpy as np

from pyfunc.config import input_table
from pyfunc.data.arkio import check_ark_entry
from pyfunc.data.atomic import PathLike
from pyfunc.data.audio_convert import read_audio_at_rate
from pyfunc.data.tables import read_scp
from pyfunc.errors import DataError
from pyfunc.features.seed_logmel import SEED_SAMPLE_RATE
from pyfunc.features.vad import select_voiced_frames, voiced_samples
from pyfunc.inference.batching import (
    MIN_FRAMES,
    check_finite_embeddings,
    check_waveform_length,
    embed_crops,
    embed_items,
    input_frames,
    resolve_batch_frames,
)
from pyfunc.inference.embedder import Embedder, as_embedder
from pyfunc.models.ecapa import ECAPATDNN

logger = logging.getLogger(__name__)

POOL_BATCHES = 8  # a pool holds about this many full batches before it is sorted and embedded

READ_AHEAD = 32


class DataDirInputs:
    """Model inputs of a data directory: fbank matrices from feats.scp or waveforms from wav.scp.

    ``resample``: audio at another rate than the seed front end's is resampled to it, instead of
    being bad input (fbank features were made at their rate by stage 1). ``vad``: only the voiced frames of
    each input, by the data dir's ``vad.scp`` (steps/compute_vad.py): the rows of the features whose
    decision is 1 (Kaldi's select-voiced-frames), or the samples of those frames (seed front end, 25 ms / 10 ms
    frames at 16 kHz); an utterance without a decision, with one of another length or with no voiced frame
    is bad input.
    """

    def __init__(self, data_dir: Path, model: ECAPATDNN | Embedder, resample: bool = False, vad: bool = False):
        self.frontend = model.frontend
        self.resample = resample
        self.vad_path = data_dir / "vad.scp" if vad else None
        if self.vad_path is not None and not self.vad_path.is_file():
            raise DataError(f"{self.vad_path}: file not found; voiced frames only (--vad) need the decisions of "
                            f"steps/compute_vad.py {data_dir}")
        self.vad_table = read_scp(self.vad_path) if self.vad_path is not None else {}
        self.feat_dim = model.feat_dim
        self.path = data_dir / input_table(self.frontend)
        if not self.path.is_file():
            need = "wav.scp (the model has the seed front end)" if self.frontend == "seed" else \
                "feats.scp (the model has the fbank front end; run the feature stage first)"
            raise DataError(f"{data_dir}: no {need}")
        self.table = read_scp(self.path)
        if self.frontend != "seed":  # kaldiio would run "cmd |" entries; only with --allow-pipes
            for key, entry in self.table.items():
                check_ark_entry(entry, f"{self.path}: {key}")
        for key, entry in self.vad_table.items():
            check_ark_entry(entry, f"{self.vad_path}: {key}")

    def frames(self, item: np.ndarray) -> int:
        return input_frames(self.frontend, item)

    def load(self, key: str) -> np.ndarray:
        where = f"{self.path}: {key}"
        if self.frontend == "seed":
            samples = read_audio_at_rate(self.table[key], where, SEED_SAMPLE_RATE, self.resample)
            if self.vad_path is not None:
                samples = voiced_samples(samples, self._decision(key), {}, where)
            return check_waveform_length(samples, where)
        try:
            item = np.asarray(kaldiio.load_mat(self.table[key]), dtype=np.float32)
        except Exception as err:  # kaldiio raises many kinds on a bad ark or offset
            raise DataError(f"{where}: cannot read features {self.table[key]!r}: {type(err).__name__}: {err}") \
                from None
        if item.ndim != 2 or item.shape[1] != self.feat_dim:
            raise DataError(f"{where}: expected a (frames, {self.feat_dim}) feature matrix, got shape {item.shape}")
        if item.shape[0] < MIN_FRAMES:
            raise DataError(f"{where}: {item.shape[0]} frame(s) is too short; need at least {MIN_FRAMES}")
        if not np.isfinite(item).all():
            raise DataError(f"{where}: features contain non-finite values")
        if self.vad_path is not None:
            item = select_voiced_frames(item, self._decision(key), where)
            if item.shape[0] < MIN_FRAMES:
                raise DataError(f"{where}: {item.shape[0]} voiced frame(s) is too short; need at least {MIN_FRAMES}")
        return item

    def _decision(self, key: str) -> np.ndarray:
        """The voice-activity decision of ``key`` from vad.scp (DataError naming the file and key)."""
        if key not in self.vad_table:
            raise DataError(f"{self.vad_path}: {key}: no voice-activity decision (rerun steps/compute_vad.py)")
        try:
            return np.asarray(kaldiio.load_mat(self.vad_table[key]), dtype=np.float32)
        except Exception as err:  # kaldiio raises many kinds on a bad ark or offset
            raise DataError(f"{self.vad_path}: {key}: cannot read {self.vad_table[key]!r}: "
                            f"{type(err).__name__}: {err}") from None


def read_ahead(keys: Sequence[str], load: Callable[[str], np.ndarray], ahead: int = READ_AHEAD
                ) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (key, load(key)) in order, loading up to ``ahead`` items in a background thread."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="extract-read") as pool:
        pending: collections.deque[tuple[str, Future]] = collections.deque()
        position = 0
        try:
            while pending or position < len(keys):
                while position < len(keys) and len(pending) < ahead:
                    pending.append((keys[position], pool.submit(load, keys[position])))
                    position += 1
                key, future = pending.popleft()
                yield key, future.result()
        finally:
            for _, future in pending:
                future.cancel()


def embed_pool(model: ECAPATDNN | Embedder, source: DataDirInputs, pool: list[tuple[str, np.ndarray]],
               batch_frames: int,
                crop: int | None, num_crops: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Full-utterance embeddings (and crop embeddings when ``crop``) of a pool, in pool order."""
    keys, items = [key for key, _ in pool], [item for _, item in pool]
    full = embed_items(model, items, batch_frames)
    check_finite_embeddings(full, keys, source.path)
    if crop is None:
        return full, None
    crop_emb = embed_crops(model, items, crop, num_crops, batch_frames)
    check_finite_embeddings(crop_emb, keys, source.path)
    return full, crop_emb


def length_pools(items: Iterable[tuple[str, np.ndarray]], frames: Callable[[np.ndarray], int], pool_frames: int
           ) -> Iterator[list[tuple[str, np.ndarray]]]:
    pool: list[tuple[str, np.ndarray]] = []
    total = 0
    for key, item in items:
        pool.append((key, item))
        total += frames(item)
        if total >= pool_frames:
            yield pool
            pool, total = [], 0
    if pool:
        yield pool


def embed_data_dir(model: ECAPATDNN | Embedder, data_dir: PathLike, keys: Sequence[str], batch_frames: int,
                   crop: int | None = None, num_crops: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """In-memory embeddings of the utterances ``keys`` of ``data_dir`` with a model already built (eval mode).

    The same reading, pooling and length batching as :func:`extract_embeddings` (which
    writes to disk from a model dir); used for evaluation during training. Returns the
    full-utterance embeddings (len(keys), embed_dim) in ``keys`` order and, when ``crop``
    is given (seed protocol, see :func:`crop_length`), the crop embeddings
    (len(keys), num_crops, embed_dim). Bad input or an unlisted key is a DataError.
    """
    model = as_embedder(model)
    source = DataDirInputs(Path(data_dir), model)
    unknown = [key for key in keys if key not in source.table]
    if unknown:
        raise DataError(f"{source.path}: {len(unknown)} requested utterance(s) not listed, e.g. {unknown[:3]}")
    batch_frames = resolve_batch_frames(batch_frames, model)
    fulls, crops = [], []
    for pool in length_pools(read_ahead(list(keys), source.load), source.frames, POOL_BATCHES * batch_frames):
        full, crop_emb = embed_pool(model, source, pool, batch_frames, crop, num_crops)
        fulls.append(full)
        crops.append(crop_emb)
    full = np.concatenate(fulls) if fulls else np.zeros((0, model.embed_dim), dtype=np.float32)
    return full, (np.concatenate(crops) if crop is not None and crops else None)
