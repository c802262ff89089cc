"""Stage 3: speaker embeddings of a data directory.

Writes ``xvector.scp``/``.ark`` (the raw encoder output of each full utterance,
float32, eval mode) and, for the seed protocol, ``xvector_crops.scp``/``.ark``
(a num_crops x embed_dim matrix per utterance: the raw embeddings of the seed's
evenly spaced 3 s crops, shorter utterances wrap-padded).

Utterances are read ahead in a thread, gathered into pools, sorted by length
and batched. Utterances of different lengths share a batch zero-padded: the
encoder masks every convolution input and every average over time, and the
front end runs on each utterance at its own length, so each embedding equals
the one from the utterance alone (to float rounding).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from pyfunc.audio import read_audio
from pyfunc.errors import ConfigError, DataError
from pyfunc.fileio import PathLike, read_scp
from pyfunc.config import input_table
from pyfunc.frontend import seed_num_frames, seed_num_samples
from pyfunc.model_dir import load_model_dir
from pyfunc.models.ecapa import ECAPATDNN

logger = logging.getLogger(__name__)

PROTOCOLS = ("auto", "full", "seed")
MIN_FRAMES = 2  # the unbiased variance of the pooling needs two frames
MIN_SAMPLES = 257  # the centred STFT (n_fft 512) reflect-pads by 256 samples
POOL_BATCHES = 8  # a pool holds about this many full batches before it is sorted and embedded
READ_AHEAD = 32
GPU_BATCH_FRAMES = 30000  # batch size x longest input, in frames, when extract.batch_frames is 0 (automatic)
CPU_BATCH_FRAMES = 2000  # smaller on the CPU, where big batches run slower (bench/RESULTS.md, stage 3)


def resolve_batch_frames(batch_frames: int, model: ECAPATDNN) -> int:
    """``batch_frames``, or for 0 (automatic) the batch size in frames that suits the model's device."""
    if batch_frames < 0:
        raise ConfigError(f"batch_frames must be 0 (automatic) or positive, got {batch_frames}")
    if batch_frames:
        return batch_frames
    on_gpu = isinstance(model, torch.nn.Module) and next(model.parameters()).device.type != "cpu"
    return GPU_BATCH_FRAMES if on_gpu else CPU_BATCH_FRAMES


def embed_batch(model: ECAPATDNN, items: Sequence[np.ndarray | torch.Tensor]) -> np.ndarray:
    """Embeddings (len(items), embed_dim) float32 of model inputs of any lengths.

    Items are waveforms (samples,) for the seed front end or feature matrices
    (frames, feat_dim) for the fbank front end. Each row equals the embedding
    of that item computed alone. The model must be in eval mode.
    """
    if not isinstance(model, torch.nn.Module):  # an onnxruntime export (pyfunc.onnx_export.OnnxEmbedder)
        return model.embed_batch(items)
    if model.training:
        raise ValueError("embed_batch needs the model in eval mode (BatchNorm statistics would depend on the batch)")
    if len(items) == 0:
        return np.zeros((0, model.embed_dim), dtype=np.float32)
    device = next(model.parameters()).device
    tensors = [item.float() if isinstance(item, torch.Tensor)
               else torch.from_numpy(np.require(item, dtype=np.float32, requirements=["C", "W"])) for item in items]
    with torch.no_grad():
        feats: list[torch.Tensor | None] = [None] * len(tensors)
        by_shape: dict[tuple[int, ...], list[int]] = collections.defaultdict(list)
        for index, tensor in enumerate(tensors):
            by_shape[tuple(tensor.shape)].append(index)
        for indices in by_shape.values():
            stacked = torch.stack([tensors[i] for i in indices]).to(device, non_blocking=True)
            logmel = model.logmel(stacked)
            for row, index in enumerate(indices):
                feats[index] = logmel[row]
        lengths = [f.shape[1] for f in feats]
        if len(set(lengths)) == 1:
            out = model.encode(torch.stack(feats))
        else:
            padded = feats[0].new_zeros((len(feats), feats[0].shape[0], max(lengths)))
            for row, f in enumerate(feats):
                padded[row, :, :f.shape[1]] = f
            out = model.encode(padded, torch.tensor(lengths, device=device))
    return out.float().cpu().numpy()


def crop_starts(length: int, crop: int, num_crops: int) -> list[int]:
    """The seed's crop starts: ``int`` of numpy.linspace(0, length - crop, num_crops)."""
    return [int(start) for start in np.linspace(0, length - crop, num=num_crops)]


def seed_crops(item: np.ndarray, crop: int, num_crops: int) -> np.ndarray:
    """(num_crops, crop, ...) evenly spaced crops along axis 0; inputs not longer than ``crop`` wrap-padded first."""
    if item.shape[0] <= crop:
        pad = [(0, crop - item.shape[0])] + [(0, 0)] * (item.ndim - 1)
        item = np.pad(item, pad, mode="wrap")
    return np.stack([item[start:start + crop] for start in crop_starts(item.shape[0], crop, num_crops)])


class _Source:
    """Model inputs of a data directory: fbank matrices from feats.scp or waveforms from wav.scp."""

    def __init__(self, data_dir: Path, model: ECAPATDNN):
        self.frontend = model.frontend
        self.feat_dim = model.feat_dim
        self.path = data_dir / input_table(self.frontend)
        if not self.path.is_file():
            need = "wav.scp (the model has the seed front end)" if self.frontend == "seed" else \
                "feats.scp (the model has the fbank front end; run the feature stage first)"
            raise DataError(f"{data_dir}: no {need}")
        self.table = read_scp(self.path)
        if self.frontend != "seed":  # kaldiio would run "cmd |" entries; only with --allow-pipes
            from pyfunc.arkio import check_ark_entry

            for key, entry in self.table.items():
                check_ark_entry(entry, f"{self.path}: {key}")

    def frames(self, item: np.ndarray) -> int:
        return input_frames(self.frontend, item)

    def load(self, key: str) -> np.ndarray:
        where = f"{self.path}: {key}"
        if self.frontend == "seed":
            return check_waveform_length(read_audio(self.table[key], where), where)
        import kaldiio

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
        return item


def _read_ahead(keys: Sequence[str], load: Callable[[str], np.ndarray], ahead: int = READ_AHEAD
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


MAX_PADDING = 0.2  # an utterance joins a batch only if padding it to the batch's longest adds at most 20 %


def _length_batches(sizes: Sequence[int], batch_frames: int, max_padding: float = MAX_PADDING
                    ) -> list[list[int]]:
    """Indices sorted by size (longest first) in batches with count * longest <= batch_frames (at least one),
    each member at least ``(1 - max_padding)`` of the batch's longest, so padding wastes little compute."""
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    batches: list[list[int]] = []
    for index in order:
        longest = sizes[batches[-1][0]] if batches else 0
        if (batches and (len(batches[-1]) + 1) * longest <= batch_frames
                and sizes[index] >= (1.0 - max_padding) * longest):
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


def _check_finite(emb: np.ndarray, keys: Sequence[str], source: Path) -> None:
    bad = [key for key, row in zip(keys, emb.reshape(len(keys), -1)) if not np.isfinite(row).all()]
    if bad:
        raise DataError(f"{source}: non-finite embedding for {len(bad)} utterance(s), e.g. {bad[:3]}")


def check_waveform_length(samples: np.ndarray, where: str) -> np.ndarray:
    """``samples`` when long enough for the seed front end (MIN_SAMPLES), else a DataError naming ``where``."""
    if samples.shape[0] < MIN_SAMPLES:
        raise DataError(f"{where}: {samples.shape[0]} samples is too short; need at least {MIN_SAMPLES}")
    return samples


def input_frames(frontend: str, item: np.ndarray) -> int:
    """Frames the encoder sees for a model input: seed waveform samples through the log-mel, or feature rows."""
    return seed_num_frames(item.shape[0]) if frontend == "seed" else item.shape[0]


def embed_items(model: ECAPATDNN, items: Sequence[np.ndarray], batch_frames: int) -> np.ndarray:
    """Full-utterance embeddings (len(items), embed_dim) of model inputs, in length-sorted batches."""
    full = np.zeros((len(items), model.embed_dim), dtype=np.float32)
    for batch in _length_batches([input_frames(model.frontend, item) for item in items], batch_frames):
        full[batch] = embed_batch(model, [items[i] for i in batch])
    return full


def embed_crops(model: ECAPATDNN, items: Sequence[np.ndarray], crop: int, num_crops: int,
                batch_frames: int) -> np.ndarray:
    """(len(items), num_crops, embed_dim) embeddings of each input's seed crops, batched across the inputs."""
    crops = np.concatenate([seed_crops(item, crop, num_crops) for item in items])
    per_batch = max(1, batch_frames // max(1, input_frames(model.frontend, crops[0])))
    emb = np.concatenate([embed_batch(model, crops[start:start + per_batch])
                          for start in range(0, len(crops), per_batch)])
    return emb.reshape(len(items), num_crops, model.embed_dim)


def _embed_pool(model: ECAPATDNN, source: _Source, pool: list[tuple[str, np.ndarray]], batch_frames: int,
                crop: int | None, num_crops: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Full-utterance embeddings (and crop embeddings when ``crop``) of a pool, in pool order."""
    keys, items = [key for key, _ in pool], [item for _, item in pool]
    full = embed_items(model, items, batch_frames)
    _check_finite(full, keys, source.path)
    if crop is None:
        return full, None
    crop_emb = embed_crops(model, items, crop, num_crops, batch_frames)
    _check_finite(crop_emb, keys, source.path)
    return full, crop_emb


def _pools(items: Iterable[tuple[str, np.ndarray]], frames: Callable[[np.ndarray], int], pool_frames: int
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


def crop_length(config_extract, frontend: str) -> int:
    """Crop length in model input units: samples (seed: frames * 160 + 240) or feature frames."""
    frames = int(round(config_extract.crop_seconds * 100))
    if frames < MIN_FRAMES:
        raise ConfigError(f"extract.crop_seconds {config_extract.crop_seconds} gives fewer than {MIN_FRAMES} frames")
    return seed_num_samples(frames) if frontend == "seed" else frames


def embed_data_dir(model: ECAPATDNN, data_dir: PathLike, keys: Sequence[str], batch_frames: int,
                   crop: int | None = None, num_crops: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """In-memory embeddings of the utterances ``keys`` of ``data_dir`` with a model already built (eval mode).

    The same reading, pooling and length batching as :func:`extract_embeddings` (which
    writes to disk from a model dir); used for evaluation during training. Returns the
    full-utterance embeddings (len(keys), embed_dim) in ``keys`` order and, when ``crop``
    is given (seed protocol, see :func:`crop_length`), the crop embeddings
    (len(keys), num_crops, embed_dim). Bad input or an unlisted key is a DataError.
    """
    source = _Source(Path(data_dir), model)
    unknown = [key for key in keys if key not in source.table]
    if unknown:
        raise DataError(f"{source.path}: {len(unknown)} requested utterance(s) not listed, e.g. {unknown[:3]}")
    batch_frames = resolve_batch_frames(batch_frames, model)
    fulls, crops = [], []
    for pool in _pools(_read_ahead(list(keys), source.load), source.frames, POOL_BATCHES * batch_frames):
        full, crop_emb = _embed_pool(model, source, pool, batch_frames, crop, num_crops)
        fulls.append(full)
        crops.append(crop_emb)
    full = np.concatenate(fulls) if fulls else np.zeros((0, model.embed_dim), dtype=np.float32)
    return full, (np.concatenate(crops) if crop is not None and crops else None)


def extract_embeddings(model_dir: PathLike, data_dir: PathLike, out_dir: PathLike, protocol: str = "auto",
                       device: str | torch.device = "auto", batch_frames: int | None = None,
                       utts: Iterable[str] | None = None, progress: Callable[[int], None] | None = None,
                       onnx: PathLike | None = None, skip_bad: bool = False,
                       bad_list: PathLike | None = None) -> dict[str, str]:
    """Embed every utterance of ``data_dir`` (or the subset ``utts``) into ``out_dir``.

    ``protocol``: 'auto' (the model's ``extract.protocol``), 'full' or 'seed'.
    ``batch_frames`` (default ``extract.batch_frames``; 0: automatic, see
    :func:`resolve_batch_frames`) bounds batch size x longest input in frames.
    ``progress`` is called with the number of utterances done. ``onnx``: run this
    export of the model (steps/export_onnx.py) in onnxruntime instead of PyTorch.

    Inputs that cannot be used (unreadable or too short audio or features) are collected
    over all utterances: by default the run then fails with the whole list and writes
    nothing; with ``skip_bad`` they are left out. Returns ``utt -> reason`` of those left
    out; ``bad_list`` receives the same as ``utt reason`` lines either way.
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    model, config = load_model_dir(model_dir, "cpu" if onnx is not None else device)
    if onnx is not None:
        from pyfunc.onnx_export import OnnxEmbedder

        model = OnnxEmbedder(onnx, model_dir, model)
    protocol = config.extract.protocol if protocol == "auto" else protocol
    batch_frames = resolve_batch_frames(batch_frames if batch_frames is not None else config.extract.batch_frames,
                                        model)
    num_crops = config.extract.num_crops
    if protocol == "seed" and num_crops < 1:
        raise ConfigError(f"extract.num_crops must be at least 1 for the seed protocol, got {num_crops}")
    crop = crop_length(config.extract, model.frontend) if protocol == "seed" else None
    source = _Source(data_dir, model)
    keys = sorted(source.table)
    if utts is not None:
        wanted = set(utts)
        unknown = sorted(wanted - set(keys))
        if unknown:
            raise DataError(f"{source.path}: {len(unknown)} requested utterance(s) not listed, e.g. {unknown[:3]}")
        keys = [key for key in keys if key in wanted]
    if not keys:
        raise DataError(f"{source.path}: no utterances to embed")
    device_name = next(model.parameters()).device if onnx is None else f"onnxruntime {onnx}"
    logger.info("embedding %d utterances of %s with %s (protocol %s, %s front end, device %s)", len(keys), data_dir,
                model_dir, protocol, model.frontend, device_name)

    from pyfunc.arkio import ArkScpWriter
    from pyfunc.badinput import BadInputs, write_bad_list

    out_dir.mkdir(parents=True, exist_ok=True)
    start, done = time.time(), 0
    bad = BadInputs()

    def load(key: str) -> np.ndarray | None:
        try:
            return source.load(key)
        except DataError as err:
            bad.add(key, str(err))
            return None

    good = ((key, item) for key, item in _read_ahead(keys, load)
            if item is not None and (skip_bad or not bad))  # once failing, only look for more bad inputs
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: bad_list is not None and write_bad_list(bad_list, bad.found))
        write_full = stack.enter_context(ArkScpWriter(out_dir / "xvector.ark", out_dir / "xvector.scp"))
        write_crops = None
        if crop is not None:
            write_crops = stack.enter_context(ArkScpWriter(out_dir / "xvector_crops.ark",
                                                           out_dir / "xvector_crops.scp"))
        bar = stack.enter_context(tqdm(total=len(keys), unit="utt", desc="embed", mininterval=2.0))
        for pool in _pools(good, source.frames, POOL_BATCHES * batch_frames):
            full, crop_emb = _embed_pool(model, source, pool, batch_frames, crop, num_crops)
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
