"""Embedding mean subtraction: the training set's mean embedding, stored with the model.

WeSpeaker and ASV-Subtools centre the embedding space before cosine scoring: the mean of
the training set's raw embeddings (``xvector.scp`` of stage 3, each vector weighted
equally, as Kaldi's ``ivector-mean``) is subtracted from every embedding before it is
L2-normalised, so cosine and AS-norm score the directions around the data's centre
rather than around the origin. With the seed protocol the same vector is subtracted from
the full-utterance and from every crop embedding.

The mean lives in the model directory: ``embedding_mean.vec``, a Kaldi binary double
vector (``kaldiio.load_mat``, Kaldi's ``copy-vector``), and ``embedding_mean.yaml``, where
it came from (the scp, the number of embeddings, the SHA-256 of the ``model.pt`` that made
them, the date). The config switch ``score.subtract_mean`` (or a step option) decides
whether stages 4-5 and the verify/embed API use it; a mean made with another ``model.pt``
is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import kaldiio
import numpy as np
import yaml

from pyfunc.config import load_config
from pyfunc.data.atomic import PathLike, atomic_paths
from pyfunc.data.digest import file_sha256
from pyfunc.data.vectors import iter_scp_arrays
from pyfunc.errors import ConfigError, DataError

MEAN_NAME = "embedding_mean.vec"
MEAN_INFO_NAME = "embedding_mean.yaml"


@dataclass(frozen=True)
class EmbeddingMean:
    """A mean read back from a model directory."""

    vector: np.ndarray  # float64, (dim,)
    path: Path
    source: str  # the scp it was computed from
    count: int  # embeddings averaged
    model_sha256: str  # of the model.pt that made those embeddings


def mean_of_scp(scp_path: PathLike) -> tuple[np.ndarray, int]:
    """``(mean, count)`` of every vector in ``scp_path``, accumulated in float64 one vector at a time."""
    total = None
    count = 0
    for _, vector in iter_scp_arrays(scp_path, None, ndim=1):
        if total is None:
            total = np.zeros(vector.shape[0], dtype=np.float64)
        total += vector
        count += 1
    if total is None:
        raise DataError(f"{scp_path}: no embeddings")
    return total / count, count


def write_embedding_mean(model_dir: PathLike, vector: np.ndarray, source: PathLike, count: int) -> Path:
    """Write ``MODEL_DIR/embedding_mean.vec`` and its ``.yaml`` (the vector renamed last); the vector's path."""
    model_dir = Path(model_dir)
    vector = np.asarray(vector, dtype=np.float64)
    if vector.ndim != 1 or not np.isfinite(vector).all():
        raise DataError(f"embedding mean: expected a finite vector, got shape {vector.shape}")
    info = {"source": str(source), "count": int(count), "dim": int(vector.shape[0]),
            "model_sha256": file_sha256(model_dir / "model.pt"), "written": time.strftime("%Y-%m-%d %H:%M:%S")}
    path = model_dir / MEAN_NAME
    with atomic_paths([model_dir / MEAN_INFO_NAME, path]) as (info_tmp, vec_tmp):
        with open(info_tmp, "w", encoding="utf-8") as handle:
            handle.write(f"# where {MEAN_NAME} came from (steps/compute_embedding_mean.py)\n")
            yaml.safe_dump(info, handle, sort_keys=False)
        kaldiio.save_mat(str(vec_tmp), vector)
    return path


def read_vector_file(path: PathLike) -> np.ndarray:
    """A Kaldi vector file (binary or text, float or double, as ``ivector-mean`` writes) as float64."""
    try:
        vector = np.asarray(kaldiio.load_mat(str(path)), dtype=np.float64)
    except Exception as err:  # noqa: BLE001 - kaldiio raises many kinds for a bad file
        raise DataError(f"{path}: not a Kaldi vector ({type(err).__name__}: {err})") from None
    if vector.ndim != 1 or vector.size == 0 or not np.isfinite(vector).all():
        raise DataError(f"{path}: expected a non-empty finite vector, got shape {vector.shape}")
    return vector


def read_embedding_mean(model_dir: PathLike) -> EmbeddingMean | None:
    """The mean stored in ``model_dir``, or None when there is none; bad files are a DataError naming them."""
    model_dir = Path(model_dir)
    path, info_path = model_dir / MEAN_NAME, model_dir / MEAN_INFO_NAME
    if not path.is_file():
        return None
    vector = read_vector_file(path)
    if not info_path.is_file():
        raise DataError(f"{info_path}: not found (it says which model made {path}); "
                        "rerun steps/compute_embedding_mean.py")
    try:
        info = yaml.safe_load(info_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise DataError(f"{info_path}: not valid YAML: {err}") from None
    if not isinstance(info, dict) or not isinstance(info.get("model_sha256"), str):
        raise DataError(f"{info_path}: expected a mapping with 'model_sha256'")
    return EmbeddingMean(vector, path, str(info.get("source", "?")), int(info.get("count", 0)),
                         info["model_sha256"])


def check_mean_fits_model(mean: EmbeddingMean, model_dir: PathLike) -> None:
    """DataError when ``model_dir/model.pt`` is not the model whose embeddings gave ``mean``."""
    if file_sha256(Path(model_dir) / "model.pt") != mean.model_sha256:
        raise DataError(f"out of date: {Path(model_dir) / 'model.pt'} changed after {mean.path} was made "
                        f"(from {mean.source}); rerun stage 3 and steps/compute_embedding_mean.py")


def mean_for_scoring(model_dir: PathLike, subtract_mean: bool | None = None) -> EmbeddingMean | None:
    """The mean that scoring with ``model_dir`` subtracts, or None.

    ``subtract_mean`` None follows the model's ``score.subtract_mean`` (``MODEL_DIR/config.yaml``).
    When it is on, the mean must exist and fit ``model.pt`` (else an error says what to run).
    """
    model_dir = Path(model_dir)
    if subtract_mean is None:
        subtract_mean = load_config(model_dir / "config.yaml").score.subtract_mean
    if not subtract_mean:
        return None
    mean = read_embedding_mean(model_dir)
    if mean is None:
        raise ConfigError(f"{model_dir / MEAN_NAME}: not found, and scoring subtracts the embedding mean "
                          f"(score.subtract_mean); run steps/compute_embedding_mean.py --model-dir {model_dir} "
                          f"--embeddings {model_dir}/embeddings/<training set>")
    check_mean_fits_model(mean, model_dir)
    return mean


def subtract_mean(emb: np.ndarray, mean: np.ndarray | None) -> np.ndarray:
    """``emb - mean`` in float64 over the last axis (``emb`` as float64 when ``mean`` is None)."""
    emb = np.asarray(emb, dtype=np.float64)
    if mean is None:
        return emb
    if emb.shape[-1] != mean.shape[0]:
        raise DataError(f"embeddings of dimension {emb.shape[-1]} and an embedding mean of dimension "
                        f"{mean.shape[0]} do not match")
    return emb - mean
