"""Speaker models of several enrolment recordings, as Kaldi's ``ivector-normalize-length`` +
``ivector-mean`` + ``ivector-normalize-length`` make them.

The model of a speaker is the mean of its L2-normalised enrolment embeddings (after the embedding
mean, when one is subtracted), L2-normalised again; a model of one recording is that recording's
unit embedding, so it scores exactly as the utterance itself. Under the seed protocol the model's
crop side is the mean of its recordings' crop means (each the mean of that recording's unit crop
embeddings): the mean crop cosine over the enrolment recordings when they have equally many crops.

Stages 4 and 5 score the model against the test utterance as they score two utterances, and
AS-norm takes the model's vectors as the enrolment side's cohort probe
(:func:`load_enrolled_trial_embeddings`; the ``enroll`` file: :mod:`pyfunc.data.enroll`). The
speaker register of ``python -m pyfunc enroll/identify`` uses the same models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyfunc.data.atomic import PathLike
from pyfunc.data.badinput import read_skipped
from pyfunc.data.enroll import EnrollMap
from pyfunc.data.trials import TrialList
from pyfunc.data.vectors import CROPS_SCP, XVECTOR_SCP, load_embeddings, open_scp
from pyfunc.errors import DataError
from pyfunc.scoring.cosine import TrialEmbeddings, l2_normalise, load_crop_means, resolve_protocol
from pyfunc.scoring.embedding_mean import subtract_mean


def enrolment_model(full: np.ndarray, crop_means: np.ndarray | None = None, name: str = "the model"
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """``(unit mean of the unit rows of full, mean of the rows of crop_means or None)``, float64.

    ``full``: the enrolment embeddings (num_recordings x dim, any mean already subtracted). Rows that
    cancel out (a zero mean) are a DataError naming ``name``.
    """
    full = np.asarray(full, dtype=np.float64)
    if full.ndim != 2 or full.shape[0] == 0 or full.shape[1] == 0:
        raise DataError(f"{name}: expected a non-empty num_recordings x dim matrix of embeddings, got shape "
                        f"{full.shape}")
    mean = l2_normalise(full).mean(axis=0)
    if not np.any(mean):
        raise DataError(f"{name}: the mean of its unit-length enrolment embeddings is zero; it has no direction")
    crops = None
    if crop_means is not None:
        crop_means = np.asarray(crop_means, dtype=np.float64)
        if crop_means.shape != full.shape:
            raise DataError(f"{name}: crop means of shape {crop_means.shape} for embeddings of shape {full.shape}")
        crops = crop_means.mean(axis=0)
    return l2_normalise(mean), crops


def _missing_message(scp: Path, key: str, skipped: dict[str, str]) -> str:
    reason = f" (it was skipped as bad input: {skipped[key]})" if key in skipped else ""
    return f"has no embedding in {scp}{reason}"


def load_enrolled_trial_embeddings(trials: TrialList, enroll: EnrollMap, emb_dir: PathLike, protocol: str = "auto",
                                   mean: np.ndarray | None = None) -> TrialEmbeddings:
    """The scoring inputs of trials whose left column names models of ``enroll``: one row per model
    (:func:`enrolment_model` of its utterances' embeddings in ``emb_dir``) and one per test utterance,
    ``mean`` (when given) subtracted from every embedding first.

    A trial naming a model not in ``enroll`` or a test utterance without an embedding is a DataError
    naming the trials file and line; an enrolment utterance without one names the enroll file and line.
    """
    emb_dir = Path(emb_dir)
    protocol = resolve_protocol(emb_dir, protocol)
    for i, model in enumerate(trials.enrolls):
        if model not in enroll.models:
            raise DataError(f"{trials.where(i)}: model {model!r} is not in {enroll.path or 'the enrolment map'}")
    models = sorted(set(trials.enrolls))
    tests = sorted(set(trials.tests))
    clash = sorted(set(models) & set(tests))
    if clash:
        i = trials.tests.index(clash[0])
        raise DataError(f"{trials.where(i)}: {clash[0]!r} names both an enrolled model ({enroll.where(clash[0])}) and "
                        "a test utterance")
    scps = [emb_dir / XVECTOR_SCP] + ([emb_dir / CROPS_SCP] if protocol == "seed" else [])
    tables = [open_scp(scp) for scp in scps]
    skipped = read_skipped(emb_dir)
    for scp, table in zip(scps, tables):
        for model in models:
            for utt in enroll.models[model]:
                if utt not in table:
                    raise DataError(f"{enroll.where(model)}: model {model!r}: enrolment utterance {utt!r} "
                                    + _missing_message(scp, utt, skipped))
        for i, utt in enumerate(trials.tests):
            if utt not in table:
                raise DataError(f"{trials.where(i)}: test utterance {utt!r} " + _missing_message(scp, utt, skipped))
    utts = sorted({u for m in models for u in enroll.models[m]} | set(tests))
    row = {utt: i for i, utt in enumerate(utts)}
    _, full = load_embeddings(scps[0], utts, table=tables[0])
    full = subtract_mean(full, mean).astype(np.float64)
    crop_means = load_crop_means(scps[1], utts, table=tables[1], mean=mean) if protocol == "seed" else None
    keys = sorted(models + tests)
    model_set = set(models)
    out_full = np.empty((len(keys), full.shape[1]), dtype=np.float64)
    out_crops = None if crop_means is None else np.empty_like(out_full)
    for i, key in enumerate(keys):
        if key in model_set:
            rows = [row[u] for u in enroll.models[key]]
            vectors = enrolment_model(full[rows], None if crop_means is None else crop_means[rows],
                                      f"{enroll.where(key)}: model {key!r}")
            out_full[i] = vectors[0]
            if out_crops is not None:
                out_crops[i] = vectors[1]
        else:
            out_full[i] = full[row[key]]
            if out_crops is not None:
                out_crops[i] = crop_means[row[key]]
    return TrialEmbeddings(keys, out_full, out_crops, protocol)

