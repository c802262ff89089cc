"""Training examples: random fixed-length chunks of each utterance, drawn reproducibly.

An epoch is a permutation of the training utterances and one random seed per
example, both derived from (train.random_seed, epoch) alone. Every example's crop (and its
augmentation) comes from its own random seed, so the examples do not depend on the
number of processes, the DataLoader workers, or where a resumed run restarts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import kaldiio
import numpy as np
import torch

from pyfunc.data.arkio import check_ark_entry, read_matrix_header, read_matrix_rows
from pyfunc.data.audio import is_pipe, read_audio
from pyfunc.data.badinput import read_skipped
from pyfunc.data.datadir import load_data_dir
from pyfunc.data.tables import read_scp
from pyfunc.errors import DataError
from pyfunc.features.augment import DrawnAugment, WaveAugmenter
from pyfunc.features.augment_offline import apply_augment_spec, read_utt2aug
from pyfunc.features.batch_augment import AugmentBatch
from pyfunc.features.kaldi_fbank import compute_fbank
from pyfunc.features.seed_logmel import seed_num_samples
from pyfunc.features.speed_perturb import perturbed_crop
from pyfunc.features.vad import select_voiced_frames, voiced_samples


def chunk_samples(frames: int) -> int:
    """Waveform samples that give ``frames`` frames (the seed's ``frames * 160 + 240``)."""
    return seed_num_samples(frames)


def crop_start(total: int, length: int, rng: np.random.Generator) -> int:
    """Where :func:`wrap_crop` starts a crop of ``length`` of ``total`` (> ``length``) rows (the seed's draw)."""
    return int(rng.random() * (total - length))


def wrap_crop(array: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop of ``length`` along axis 0; shorter inputs are wrap-padded first (as the seed)."""
    if array.shape[0] <= length:
        pad = [(0, length - array.shape[0])] + [(0, 0)] * (array.ndim - 1)
        return np.pad(array, pad, mode="wrap")
    start = crop_start(array.shape[0], length, rng)
    return array[start:start + length]


def feature_crop(entry: str, length: int, rng: np.random.Generator) -> np.ndarray:
    """:func:`wrap_crop` of the feature matrix at ``entry`` (float32), reading (or, Kaldi-compressed, decoding)
    only the rows of the crop (:func:`pyfunc.data.arkio.read_matrix_rows`); other entries are read whole."""
    header = read_matrix_header(entry)
    if header is None:
        return wrap_crop(np.asarray(kaldiio.load_mat(entry), dtype=np.float32), length, rng)
    if header.rows <= length:
        return wrap_crop(read_matrix_rows(entry, header, 0, header.rows), length, rng)
    return read_matrix_rows(entry, header, crop_start(header.rows, length, rng), length)


@dataclass
class TrainingSet:
    """The training data directory as lists: inputs (feats.scp or wav.scp entries) and labels."""

    utts: list[str]
    entries: list[str]
    labels: np.ndarray
    speakers: list[str]
    mode: str  # "features" (feats.scp) or "waveform" (wav.scp)
    source: str
    utt2aug: dict[str, str] = field(default_factory=dict)  # waveform mode: offline augmentation specs
    vad_entries: list[str] = field(default_factory=list)  # train.vad: each utterance's vad.scp entry (else empty)
    vad_source: str = ""


def load_training_set(data_dir: str | Path, mode: str, vad: bool = False) -> TrainingSet:
    """Read utterances and speaker labels (sorted speaker ids -> 0..N-1) of a data directory; with ``vad``
    also each utterance's voice-activity decision entry of ``vad.scp`` (DataError when one is missing)."""
    data = load_data_dir(data_dir)
    table_name = "feats.scp" if mode == "features" else "wav.scp"
    table = data.feats_scp if mode == "features" else data.wav_scp
    if not table:
        raise DataError(f"{Path(data_dir) / table_name}: missing; the {mode} front end trains from it"
                        + (" (run stage 1)" if mode == "features" else ""))

    skipped = read_skipped(data_dir)  # bad audio that stage 1 left out (--skip-bad-audio)
    utts = [u for u in data.utts if u not in skipped]
    missing = [u for u in utts if u not in table]
    if missing:
        raise DataError(f"{Path(data_dir) / table_name}: {len(missing)} utterance(s) of utt2spk have no entry, "
                        f"e.g. {missing[:3]}")
    if mode == "features":  # kaldiio would run "cmd |" entries
        for u in utts:
            check_ark_entry(table[u], f"{Path(data_dir) / table_name}: {u}")
    else:  # a decoder per 2 s example (ffmpeg for m4a) starves any GPU: refuse, whatever --allow-pipes says
        piped = [u for u in utts if is_pipe(table[u])]
        if piped:
            raise DataError(f"{Path(data_dir) / table_name}: {len(piped)} of {len(utts)} entries are pipe commands "
                            f"(e.g. {piped[0]}: {table[piped[0]]!r}); training would run one for every example. "
                            "Convert the audio to wav once and prepare the data dir from the wav files (egs/voxceleb: "
                            "stage 0 does it by default, into --vox2-wav-dir; or local/convert_m4a.py --nj N SRC DST)")
    speakers = sorted({data.utt2spk[u] for u in utts})
    index = {spk: i for i, spk in enumerate(speakers)}
    labels = np.array([index[data.utt2spk[u]] for u in utts], dtype=np.int64)
    utt2aug = read_utt2aug(data_dir, utts) if mode == "waveform" else {}  # features: applied in stage 1
    vad_scp, vad_entries = Path(data_dir) / "vad.scp", []
    if vad:
        if not vad_scp.is_file():
            raise DataError(f"{vad_scp}: file not found; train.vad draws the chunks from the voiced frames that "
                            f"steps/compute_vad.py {data_dir} decides")
        decisions = read_scp(vad_scp)
        missing = [u for u in utts if u not in decisions]
        if missing:
            raise DataError(f"{vad_scp}: {len(missing)} training utterance(s) have no decision, e.g. {missing[:3]}; "
                            f"rerun steps/compute_vad.py {data_dir}")
        for u in utts:
            check_ark_entry(decisions[u], f"{vad_scp}: {u}")
        vad_entries = [decisions[u] for u in utts]
    return TrainingSet(utts, [table[u] for u in utts], labels, speakers, mode, str(Path(data_dir) / table_name),
                       utt2aug, vad_entries, str(vad_scp))


class ChunkDataset(torch.utils.data.Dataset):
    """Item ``(utt_index, example_random_seed)`` -> (chunk tensor, label).

    features mode gives (chunk_frames, feat_dim) features read from stage 1's ark; waveform
    mode gives ``chunk_samples(chunk_frames)`` samples, optionally speed-perturbed (then the
    label is ``label + k * num_speakers`` for the k-th factor of ``speeds``), augmented and,
    with ``fbank_options``, turned into (chunk_frames, num_mel_bins) Kaldi fbank features.

    With ``draw_only`` (waveform mode, ``augment`` a :class:`WaveAugmenter`) the augmentation is
    drawn and its audio read (the same draws) but not applied: items are ``(chunk, label,
    DrawnAugment or None)``, batched by :func:`collate_drawn` and applied on the training device
    (:func:`pyfunc.features.batch_augment.apply_batch`), features after that.

    When the training set has voice-activity decisions (``train.vad``), each chunk comes from the voiced
    frames only: the voiced rows of the feature matrix, or the utterance's samples cut to its voiced frames
    (by ``framing``, the fbank options that vad.scp was made with; default 25 ms / 10 ms at 16 kHz) before
    speed perturbation, cropping and augmentation.
    """

    def __init__(self, data: TrainingSet, chunk_frames: int,
                 augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
                 speeds: Sequence[float] = (), fbank_options: dict[str, Any] | None = None, draw_only: bool = False,
                 framing: dict[str, Any] | None = None):
        if fbank_options is not None and data.mode != "waveform":
            raise ValueError("fbank features on the fly need the waveform training set (wav.scp)")
        if draw_only and (data.mode != "waveform" or fbank_options is not None):
            raise ValueError("draw_only gives augmentation draws of waveform chunks: it needs the waveform training "
                             "set and no fbank options (the features come after the augmentation, on the device)")
        if draw_only and augment is not None and not isinstance(augment, WaveAugmenter):
            raise ValueError(f"draw_only needs a WaveAugmenter (it draws without applying), got {type(augment)}")
        self.data = data
        self.chunk_frames = chunk_frames
        self.augment = augment
        self.speeds = tuple(float(f) for f in speeds)
        self.fbank_options = fbank_options
        self.draw_only = draw_only
        self.framing = dict(framing if framing is not None else fbank_options or {})

    def __len__(self) -> int:
        return len(self.data.utts)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, int] | tuple[torch.Tensor, int, Any]:
        index, random_seed = item
        rng = np.random.default_rng(random_seed)
        entry, utt = self.data.entries[index], self.data.utts[index]
        if self.data.mode == "features" and self.data.vad_entries:  # the voiced rows: the whole matrix is read
            try:
                matrix = kaldiio.load_mat(entry)
            except Exception as err:  # kaldiio raises many kinds on a broken ark
                raise DataError(f"{self.data.source}: {utt}: cannot read features {entry!r}: {err}") from None
            return self.feature_example(index, matrix, rng)
        if self.data.mode == "features":
            try:
                chunk = feature_crop(entry, self.chunk_frames, rng)
            except Exception as err:  # kaldiio raises many kinds on a broken ark
                raise DataError(f"{self.data.source}: {utt}: cannot read features {entry!r}: {err}") from None
            return torch.from_numpy(np.array(chunk, dtype=np.float32)), int(self.data.labels[index])
        return self.waveform_example(index, read_audio(entry, f"{self.data.source}: {utt}"), rng)

    def feature_example(self, index: int, matrix: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, int]:
        """The example of utterance ``index`` from its whole feature matrix (the crop :func:`feature_crop` reads;
        with voice-activity decisions, of the voiced rows)."""
        matrix = np.asarray(matrix, dtype=np.float32)
        if self.data.vad_entries:
            matrix = select_voiced_frames(matrix, self.decision(index), f"{self.data.source}: {self.data.utts[index]}")
        chunk = wrap_crop(matrix, self.chunk_frames, rng)
        return torch.from_numpy(np.array(chunk, dtype=np.float32)), int(self.data.labels[index])

    def waveform_example(self, index: int, samples: np.ndarray,
                         rng: np.random.Generator) -> tuple[torch.Tensor, int]:
        """The example of utterance ``index`` from its samples: offline augmentation, speed perturbation,
        crop, augmentation and (``fbank_options``) fbank features, all drawn from ``rng``."""
        utt, label = self.data.utts[index], int(self.data.labels[index])
        if utt in self.data.utt2aug:  # an offline augmented copy: augment the utterance, then crop
            samples = apply_augment_spec(samples, self.data.utt2aug[utt])
        if self.data.vad_entries:  # the voiced frames' samples, by the clean recording's decision
            samples = voiced_samples(samples, self.decision(index), self.framing, f"{self.data.source}: {utt}")
        length = chunk_samples(self.chunk_frames)
        if self.speeds:
            k = int(rng.integers(len(self.speeds)))
            label += k * len(self.data.speakers)
            factor = self.speeds[k]
            chunk = wrap_crop(samples, length, rng) if factor == 1.0 else perturbed_crop(samples, length, factor, rng)
        else:
            chunk = wrap_crop(samples, length, rng)
        if self.draw_only:
            drawn = self.augment.draw(length, rng) if self.augment is not None else None
            return torch.from_numpy(np.array(chunk, dtype=np.float32)), label, drawn
        if self.augment is not None:
            chunk = self.augment(chunk, rng)
        if self.fbank_options is not None:
            chunk = compute_fbank(np.asarray(chunk, dtype=np.float32), self.fbank_options)
        return torch.from_numpy(np.array(chunk, dtype=np.float32)), label


    def decision(self, index: int) -> np.ndarray:
        """The voice-activity decision of utterance ``index`` (train.vad), read from its vad.scp entry."""
        entry = self.data.vad_entries[index]
        try:
            return np.asarray(kaldiio.load_mat(entry), dtype=np.float32)
        except Exception as err:  # kaldiio raises many kinds on a broken ark
            raise DataError(f"{self.data.vad_source}: {self.data.utts[index]}: cannot read the decision {entry!r}: "
                            f"{err}") from None


def collate_drawn(items: Sequence[tuple[torch.Tensor, int, DrawnAugment | None]]
                  ) -> tuple[torch.Tensor, torch.Tensor, AugmentBatch]:
    """Batch the items of a ``draw_only`` :class:`ChunkDataset`: chunks (B, T) float32, labels (B,) int64 and
    the draws packed as an :class:`AugmentBatch` (float32 audio)."""
    chunks = torch.stack([item[0] for item in items])
    labels = torch.tensor([item[1] for item in items], dtype=torch.int64)
    return chunks, labels, AugmentBatch.from_draws([item[2] for item in items], chunks.shape[1])


class EpochBatches(torch.utils.data.Sampler):
    """Micro-batches of ``(utt_index, random seed)`` for one process of a (possibly distributed) run.

    Each optimiser step consumes one global batch of ``batch_size`` examples, cut
    into ``world_size * grad_accum`` equal micro-batches: process ``rank`` gets
    micro-batches ``rank * grad_accum ... rank * grad_accum + grad_accum - 1``.
    So any split of the same global batch sees the same examples per step.
    """

    def __init__(self, num_utts: int, batch_size: int, random_seed: int, world_size: int = 1, rank: int = 0,
                 grad_accum: int = 1):
        parts = world_size * grad_accum
        if batch_size % parts:
            raise DataError(f"batch_size {batch_size} is not divisible by processes x grad_accum = {parts}")
        if num_utts < batch_size:
            raise DataError(f"{num_utts} training utterances are fewer than one batch of {batch_size}")
        self.num_utts, self.batch_size, self.random_seed = num_utts, batch_size, random_seed
        self.world_size, self.rank, self.grad_accum = world_size, rank, grad_accum
        self.micro = batch_size // parts
        self.epoch, self.start_step = 0, 0

    @property
    def steps_per_epoch(self) -> int:
        return self.num_utts // self.batch_size

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Choose the epoch to draw and the optimiser step to start from (for resuming)."""
        self.epoch, self.start_step = epoch, start_step

    def epoch_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.random_seed, epoch])
        return rng.permutation(self.num_utts), rng.integers(0, 2**63 - 1, size=self.num_utts)

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.grad_accum

    def micro_batch(self, step: int, part: int) -> list[int]:
        """Utterance indices of micro-batch ``part`` (of ``world_size * grad_accum``) in step ``step`` (from 0)."""
        order, _ = self.epoch_plan(self.epoch)
        start = step * self.batch_size + part * self.micro
        return [int(order[i]) for i in range(start, start + self.micro)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order, seeds = self.epoch_plan(self.epoch)
        for step in range(self.start_step, self.steps_per_epoch):
            base = step * self.batch_size
            for part in range(self.rank * self.grad_accum, (self.rank + 1) * self.grad_accum):
                start = base + part * self.micro
                yield [(int(order[i]), int(seeds[i])) for i in range(start, start + self.micro)]
