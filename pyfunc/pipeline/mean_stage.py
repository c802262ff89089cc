"""The embedding mean of a model directory: computed from stage-3 embeddings, chosen for stages 4-5."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pyfunc.data.atomic import PathLike
from pyfunc.data.vectors import XVECTOR_SCP
from pyfunc.errors import ConfigError, DataError
from pyfunc.pipeline.score_stage import refuse_stale_embeddings
from pyfunc.pipeline.stamps import EXTRACT_STAMP, read_run_stamp
from pyfunc.scoring.embedding_mean import mean_for_scoring, mean_of_scp, read_vector_file, write_embedding_mean

logger = logging.getLogger(__name__)


def compute_embedding_mean(model_dir: PathLike, emb_dir: PathLike) -> Path:
    """Write ``MODEL_DIR/embedding_mean.vec`` (+ ``.yaml``): the mean of ``emb_dir/xvector.scp``.

    ``emb_dir`` holds stage-3 embeddings of the training set made with this model: stale
    embeddings, or embeddings whose stamp names another ``model.pt``, are refused.
    """
    model_dir, emb_dir = Path(model_dir), Path(emb_dir)
    if not (model_dir / "model.pt").is_file():
        raise DataError(f"{model_dir / 'model.pt'}: not found (not a model directory)")
    refuse_stale_embeddings(emb_dir)
    stamp = read_run_stamp(emb_dir / EXTRACT_STAMP)
    model_pt = str((model_dir / "model.pt").absolute())
    if stamp is not None and model_pt not in stamp.inputs:
        made_by = next((p for p in stamp.inputs if p.endswith("model.pt")), "another model")
        raise DataError(f"{emb_dir / XVECTOR_SCP}: made with {made_by}, not {model_pt}; the mean must come from "
                        "this model's embeddings (stage 3 with --model-dir)")
    vector, count = mean_of_scp(emb_dir / XVECTOR_SCP)
    path = write_embedding_mean(model_dir, vector, emb_dir / XVECTOR_SCP, count)
    logger.info("mean of %d embeddings of %s (norm %.4f) written to %s", count, emb_dir / XVECTOR_SCP,
                float(np.linalg.norm(vector)), path)
    return path


def scoring_mean(model_dir: PathLike | None = None, subtract_mean: bool | None = None,
                 mean_file: PathLike | None = None) -> np.ndarray | None:
    """The embedding mean that stages 4-5 subtract, or None.

    ``mean_file`` (a Kaldi vector, e.g. from Kaldi's ``ivector-mean``) wins; else with
    ``model_dir`` its ``embedding_mean.vec`` when ``subtract_mean`` is True, or when it is
    None and the model's ``score.subtract_mean`` is on; else None.
    """
    if mean_file is not None:
        if subtract_mean is False:
            raise ConfigError("an embedding mean file was given together with 'do not subtract the mean'")
        vector = read_vector_file(mean_file)
        logger.info("subtracting the embedding mean of %s", mean_file)
        return vector
    if model_dir is None:
        if subtract_mean:
            raise ConfigError("subtracting the embedding mean needs the model directory (or a mean file)")
        return None
    mean = mean_for_scoring(model_dir, subtract_mean)
    if mean is None:
        return None
    logger.info("subtracting the embedding mean %s (of %d embeddings of %s)", mean.path, mean.count, mean.source)
    return mean.vector
