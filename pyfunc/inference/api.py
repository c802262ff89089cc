"""A small Python API: load a model directory, embed audio, score and verify pairs.

>>> import pyfunc
>>> model = pyfunc.load_model("exp/ecapa_mini")
>>> pyfunc.score(model, "a.wav", "b.wav")          # the stage-4 score of the pair
>>> model.verify("a.wav", "b.wav")                 # score, the model's operating point, same/different

Embeddings and scores are those of the recipe: :meth:`SpeakerModel.embed` gives the
raw full-utterance embedding that stage 3 writes to ``xvector.scp`` and
:meth:`SpeakerModel.score` the stage-4 score (cosine, or the seed protocol's
full + crop average when the model's ``extract.protocol`` is ``seed``; with the
model's embedding mean subtracted first when its ``score.subtract_mean`` is on).
:meth:`SpeakerModel.verify` decides with the operating point that ``steps/calibrate.py``
stored (``calibration.yaml``; a legacy ``threshold.yaml`` otherwise). Audio of
any sample rate and channel count is accepted: it is downmixed and resampled to
the model's rate with a warning (:mod:`pyfunc.data.audio_convert`).

Fbank models need the Kaldi fbank options of their training features: they are
read from ``MODEL_DIR/fbank.conf`` when the model directory has one, else (with a warning) from
the package's ``pyfunc/conf/fbank.conf``, which holds the options of the recipes' ``conf/fbank.conf``
(those stage 1 uses by default) and ships with an installed package.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence, Union

import numpy as np
import torch

from pyfunc.config import Config
from pyfunc.data.atomic import PathLike
from pyfunc.data.audio_convert import convert_samples, read_audio_converted
from pyfunc.errors import ConfigError, DataError
from pyfunc.features.kaldi_fbank import read_kaldi_conf
from pyfunc.features.seed_logmel import SEED_SAMPLE_RATE
from pyfunc.features.vad import VadOptions, compute_vad, select_voiced_frames, voiced_samples
from pyfunc.inference.batching import (
    MIN_FRAMES,
    check_waveform_length,
    crop_length,
    embed_crops,
    resolve_batch_frames,
)
from pyfunc.inference.long_audio import (
    DEFAULT_MAX_CHUNK_SECONDS,
    check_max_chunk_seconds,
    chunk_frames,
    embed_items_long,
    fbank_input,
)
from pyfunc.models.ecapa import ECAPATDNN
from pyfunc.models.model_dir import load_model_dir
from pyfunc.scoring.calibration import quality_features
from pyfunc.scoring.cosine import cosine_scores, seed_scores
from pyfunc.scoring.embedding_mean import EmbeddingMean, mean_for_scoring, subtract_mean
from pyfunc.scoring.operating_point import (
    OperatingPoint,
    check_usable_by,
    missing_description,
    read_operating_point,
)

logger = logging.getLogger(__name__)

FBANK_CONF_NAME = "fbank.conf"

DEFAULT_FBANK_CONF = Path(__file__).resolve().parents[1] / "conf" / "fbank.conf"  # package data, as conf/fbank.conf

Audio = Union[str, Path, np.ndarray]


def fbank_conf_path(model_dir: PathLike) -> Path:
    """The fbank options of a model directory: ``MODEL_DIR/fbank.conf``, else (a warning) the package's default."""
    own = Path(model_dir) / FBANK_CONF_NAME
    if own.is_file():
        return own
    if DEFAULT_FBANK_CONF.is_file():
        logger.warning("%s has no %s: using the default fbank options %s (those of the recipes' conf/fbank.conf); "
                       "if the model was trained on other features, copy their fbank.conf into %s", model_dir,
                       FBANK_CONF_NAME, DEFAULT_FBANK_CONF, model_dir)
        return DEFAULT_FBANK_CONF
    raise ConfigError(f"{own}: not found, and no default {DEFAULT_FBANK_CONF}; copy the fbank.conf of the "
                      f"model's training features into the model directory")


@dataclass(frozen=True)
class Verification:
    """The result of :meth:`SpeakerModel.verify`: ``same`` is None when no threshold is known.

    With a logistic calibration ``llr`` is the calibrated log-likelihood ratio and ``threshold``
    is on the LLR; otherwise ``llr`` is None and ``threshold`` is on the score.
    """

    score: float
    threshold: float | None
    same: bool | None
    threshold_source: str
    llr: float | None = None


@dataclass(frozen=True)
class PairScore:
    """The stage-4 score of two recordings, with the quality measures verify's calibration may use."""

    score: float
    durations: tuple[float, float]  # seconds of audio at the model's rate
    magnitudes: tuple[float, float]  # L2 norms of the full-utterance embeddings after mean subtraction


class SpeakerModel:
    """A loaded model directory: turns audio into the model's input, embeddings and scores."""

    def __init__(self, encoder: ECAPATDNN, config: Config, model_dir: PathLike,
                 fbank_options: dict[str, Any] | None = None, operating_point: OperatingPoint | None = None):
        self.encoder = encoder.eval()
        self.config = config
        self.model_dir = Path(model_dir)
        self.fbank_options = fbank_options
        self.operating_point = operating_point
        self.vad: VadOptions | None = None  # set: only the voiced frames of each recording (embed/verify --vad)
        self._mean: tuple[EmbeddingMean | None] | None = None  # read on first use: embedding needs no mean
        self.max_chunk_seconds = DEFAULT_MAX_CHUNK_SECONDS  # longer inputs are embedded block-wise (0: never)
        if encoder.frontend == "fbank":
            if fbank_options is None:
                raise ConfigError(f"{model_dir}: a fbank model needs fbank options")
            self.sample_rate = int(fbank_options.get("sample_frequency", 16000.0))
        else:
            self.sample_rate = SEED_SAMPLE_RATE

    @property
    def protocol(self) -> str:
        """``full`` or ``seed``: the model's ``extract.protocol``, which decides embeddings and scores."""
        return self.config.extract.protocol

    @property
    def embed_dim(self) -> int:
        return self.encoder.embed_dim

    def load_audio(self, audio: Audio, sample_rate: int | None = None, where: str = "") -> np.ndarray:
        """Float32 mono samples at the model's rate from a file path (any format soundfile reads) or an array.

        Arrays are (samples,) or (samples, channels) at ``sample_rate`` (default: the model's rate).
        """
        if isinstance(audio, (str, Path)):
            return read_audio_converted(str(audio), self.sample_rate, where or str(audio))
        return convert_samples(np.asarray(audio), sample_rate or self.sample_rate, self.sample_rate,
                               where or "audio array")

    def model_input(self, samples: np.ndarray, where: str = "audio") -> np.ndarray:
        """The encoder's input for mono samples at the model's rate: fbank frames, or the waveform itself;
        with ``vad`` only the voiced frames (:mod:`pyfunc.features.vad`: the model's framing, the waveform of
        the voiced 25 ms / 10 ms frames for the seed front end)."""
        if self.encoder.frontend == "seed":
            if self.vad is not None:
                samples = voiced_samples(samples, compute_vad(samples, {}, self.vad), {}, where)
            return check_waveform_length(samples, where)

        window = int(self.sample_rate * float(self.fbank_options.get("frame_length", 25.0)) * 0.001)
        if samples.shape[0] < window:  # torchaudio's fbank asserts on inputs shorter than one frame
            raise DataError(f"{where}: {samples.shape[0]} samples give 0 fbank frames; need at least {MIN_FRAMES}")
        feats = fbank_input(samples, self.fbank_options, self.max_chunk_frames)
        if self.vad is not None:
            feats = select_voiced_frames(feats, compute_vad(samples, self.fbank_options, self.vad), where)
        if feats.shape[0] < MIN_FRAMES:
            raise DataError(f"{where}: {samples.shape[0]} samples give {feats.shape[0]} fbank frame(s); "
                            f"need at least {MIN_FRAMES}")
        return feats

    def _input(self, audio: Audio, sample_rate: int | None) -> np.ndarray:
        where = str(audio) if isinstance(audio, (str, Path)) else "audio array"
        return self.model_input(self.load_audio(audio, sample_rate, where), where)

    def embed_inputs(self, items: Sequence[np.ndarray], batch_frames: int | None = None) -> np.ndarray:
        """Full-utterance embeddings (len(items), dim) of model inputs, in length-sorted batches; inputs longer
        than ``max_chunk_seconds`` block-wise (:mod:`pyfunc.inference.long_audio`)."""
        return embed_items_long(self.encoder, items, self._batch_frames(batch_frames), self.max_chunk_frames)

    @property
    def max_chunk_frames(self) -> int:
        """``max_chunk_seconds`` in model frames (0: never block-wise)."""
        return chunk_frames(self.max_chunk_seconds, self.fbank_options if self.encoder.frontend == "fbank" else None)

    def _batch_frames(self, batch_frames: int | None) -> int:
        return resolve_batch_frames(batch_frames if batch_frames is not None else self.config.extract.batch_frames,
                                    self.encoder)

    def embed_crop_inputs(self, items: Sequence[np.ndarray], batch_frames: int | None = None) -> np.ndarray:
        """(len(items), num_crops, dim) raw embeddings of the seed protocol's crops of model inputs,
        the crops batched across the inputs."""
        return embed_crops(self.encoder, items, crop_length(self.config.extract, self.encoder.frontend),
                           self.config.extract.num_crops, self._batch_frames(batch_frames))

    def embed(self, audio: Audio, sample_rate: int | None = None) -> np.ndarray:
        """The raw full-utterance embedding (dim,) float32 of one recording, as stage 3 writes it."""
        return self.embed_inputs([self._input(audio, sample_rate)])[0]

    def embed_crops(self, audio: Audio, sample_rate: int | None = None) -> np.ndarray:
        """(num_crops, dim) raw embeddings of the seed protocol's crops, as stage 3 writes them."""
        return self.embed_crop_inputs([self._input(audio, sample_rate)])[0]

    @property
    def embedding_mean(self) -> EmbeddingMean | None:
        """The embedding mean that scoring subtracts (``score.subtract_mean``), or None; read once."""
        if self._mean is None:
            self._mean = (mean_for_scoring(self.model_dir, self.config.score.subtract_mean),)
        return self._mean[0]

    def score_pair(self, a: Audio, b: Audio, sample_rate: int | None = None) -> PairScore:
        """:meth:`score` with the durations and embedding magnitudes of the two recordings."""
        wheres = [str(x) if isinstance(x, (str, Path)) else "audio array" for x in (a, b)]
        samples = [self.load_audio(x, sample_rate, where) for x, where in zip((a, b), wheres)]
        items = [self.model_input(x, where) for x, where in zip(samples, wheres)]
        mean = self.embedding_mean
        vector = None if mean is None else mean.vector
        full = subtract_mean(self.embed_inputs(items), vector)
        if self.protocol == "seed":
            crops = subtract_mean(self.embed_crop_inputs(items), vector)
            value = float(seed_scores([("a", "b")], ["a", "b"], full, crops)[0])
        else:
            value = float(cosine_scores([("a", "b")], ["a", "b"], full)[0])
        norms = np.linalg.norm(full, axis=1)
        return PairScore(value, (len(samples[0]) / self.sample_rate, len(samples[1]) / self.sample_rate),
                         (float(norms[0]), float(norms[1])))

    def score(self, a: Audio, b: Audio, sample_rate: int | None = None) -> float:
        """The stage-4 score of two recordings (cosine; with the seed protocol, averaged with the crops')."""
        return self.score_pair(a, b, sample_rate).score

    def verify(self, a: Audio, b: Audio, threshold: float | None = None,
               sample_rate: int | None = None) -> Verification:
        """Score a pair and decide same or different.

        With ``threshold``: same when score >= threshold. Otherwise with the model's operating
        point (:mod:`pyfunc.scoring.operating_point`): a logistic calibration (same when the
        calibrated LLR reaches its Bayes threshold) or a threshold on the score. Without
        either, ``same`` is None. An operating point fitted for another ``model.pt`` or
        another mean subtraction is an error.
        """
        point = self.operating_point if threshold is None else None
        if point is not None:  # checked before the audio is read: a stale operating point is the user's first news
            check_usable_by("verify", point, self.model_dir, self.embedding_mean)
        pair = self.score_pair(a, b, sample_rate)
        if threshold is not None:
            return Verification(pair.score, float(threshold), bool(pair.score >= threshold), "given")
        if point is None:
            return Verification(pair.score, None, None, missing_description(self.model_dir))
        if point.calibration is None:
            return Verification(pair.score, point.threshold, bool(pair.score >= point.threshold), point.describe())
        qualities = {"duration": pair.durations, "magnitude": pair.magnitudes}
        matrix = quality_features(np.array([pair.score]), {m: (np.array([qualities[m][0]]),
                                                              np.array([qualities[m][1]])) for m in point.measures},
                                  point.measures, point.max_duration)
        llr = float(point.calibration.llrs(matrix)[0])
        return Verification(pair.score, point.threshold, bool(llr >= point.threshold), point.describe(), llr)


def load_model(model_dir: PathLike, device: str | torch.device = "cpu",
               max_chunk_seconds: float = DEFAULT_MAX_CHUNK_SECONDS) -> SpeakerModel:
    """Load a model directory (``config.yaml`` + ``model.pt``; optional ``fbank.conf``, ``embedding_mean.vec``,
    ``calibration.yaml`` or a legacy ``threshold.yaml``). Recordings longer than ``max_chunk_seconds`` are
    embedded block-wise (0: never; :mod:`pyfunc.inference.long_audio`)."""
    max_chunk_seconds = check_max_chunk_seconds(max_chunk_seconds)
    encoder, config = load_model_dir(model_dir, device)
    options = None
    if encoder.frontend == "fbank":
        conf = fbank_conf_path(model_dir)
        options = read_kaldi_conf(conf)
        if int(options.get("num_mel_bins", 23)) != encoder.feat_dim:
            raise ConfigError(f"{conf}: --num-mel-bins={options.get('num_mel_bins', 23)}, but "
                              f"the model of {model_dir} takes {encoder.feat_dim}-dim features")
    model = SpeakerModel(encoder, config, model_dir, options, read_operating_point(model_dir))
    model.max_chunk_seconds = max_chunk_seconds
    return model


def embed(model: SpeakerModel, audio: Audio | Iterable[Audio], sample_rate: int | None = None) -> np.ndarray:
    """Raw full-utterance embedding(s): (dim,) for one recording, (n, dim) for a list of them."""
    if isinstance(audio, (str, Path, np.ndarray)):
        return model.embed(audio, sample_rate)
    return model.embed_inputs([model._input(item, sample_rate) for item in audio])


def score(model: SpeakerModel, a: Audio, b: Audio, sample_rate: int | None = None) -> float:
    """The stage-4 score of two recordings (see :meth:`SpeakerModel.score`)."""
    return model.score(a, b, sample_rate)
