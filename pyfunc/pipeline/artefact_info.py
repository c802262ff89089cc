"""``python -m pyfunc info PATH``: what any artefact of the recipe holds, told by what it is.

- a data directory (``utt2spk``/``wav.scp``): speakers, utterances, hours, features, trials, checks;
- a model directory (``model.pt``): architecture, C, parameters, classes, origin, operating point;
- an embedding directory (``xvector.scp``) or any ``*.scp``/``*.ark``: the table's entries,
  dimension, frames or norms, non-finite values, the arks and their sizes;
- a score file (``enroll test score``): count and spread; with ``trials``, target and
  non-target means and the EER;
- a trials file (``enroll test target|nontarget``): the trial counts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyfunc.data.atomic import PathLike
from pyfunc.data.badinput import read_skipped
from pyfunc.data.describe import Description, describe_data_dir, describe_table, describe_trials, size_text, spread
from pyfunc.data.tables import iter_table_lines
from pyfunc.data.trials import TRIAL_LABELS
from pyfunc.data.vectors import CROPS_SCP, XVECTOR_SCP
from pyfunc.errors import DataError
from pyfunc.models.checkpoint import latest_checkpoint, progress_of
from pyfunc.models.model_dir import CONFIG_NAME, MODEL_NAME, load_model_dir_with_head
from pyfunc.pipeline.stamps import EXTRACT_STAMP, stale_inputs
from pyfunc.scoring.metrics import compute_metrics, read_labelled_trials
from pyfunc.scoring.operating_point import CALIBRATION_NAME, missing_description, read_operating_point
from pyfunc.scoring.score_files import read_scores, scores_for_trials

KINDS = "a data directory, a model directory, an embedding directory, an scp or ark, a score file or a trials file"


def describe_scores(path: PathLike, trials: PathLike | None = None) -> Description:
    """A score file: count and spread; with ``trials`` the target and non-target means and the EER."""
    info = Description(f"{path}: score file")
    enrolls, tests, scores = read_scores(path)
    info.add("scores", f"{len(scores)} ({spread(scores, 4)})")
    if trials is not None:
        t_enrolls, t_tests, labels = read_labelled_trials(trials)
        scores = scores_for_trials(path, trials, t_enrolls, t_tests)
        target, nontarget = scores[labels], scores[~labels]
        info.add("target", f"{len(target)} trials, mean {target.mean():.4f}" if len(target) else "no trials")
        info.add("nontarget", f"{len(nontarget)} trials, mean {nontarget.mean():.4f}" if len(nontarget) else
                 "no trials")
        if len(target) and len(nontarget):
            metrics = compute_metrics(scores, labels, (0.01,))
            info.add("EER", f"{metrics['eer_percent']:.2f} % (threshold {metrics['eer_threshold']:.4f}; "
                            f"minDCF(p=0.01) {metrics['min_dcf'][0.01]:.4f}) against {trials}")
    return info


def _count(number: int) -> str:
    """``4 118 176``: digits grouped in threes, as the README writes parameter counts."""
    return f"{number:,}".replace(",", " ")


def _origin(model_dir: Path, average_last: int) -> str:
    """Where a model directory came from, as far as the files around it tell (``average_last``: its
    config's train.average_last)."""
    checkpoint = latest_checkpoint(model_dir / "models") if (model_dir / "models").is_dir() else None
    if checkpoint is not None:
        epochs, steps = progress_of(checkpoint)
        done = f"{epochs} epochs" + (f" and {steps} steps" if steps else "")
        if average_last > 1 and not steps:
            done += f", {MODEL_NAME} the average of the last {min(average_last, epochs)} epoch checkpoints"
        history = model_dir / "log" / "history.tsv"
        last = ""
        if history.is_file():
            rows = [fields for _, fields in iter_table_lines(history)]
            if len(rows) > 1 and len(rows[-1]) >= 3:
                last = f"; last epoch: loss {rows[-1][1]}, accuracy {float(rows[-1][2]):.2f} %"
        return f"trained by stage 2: {done} (last checkpoint {checkpoint}){last}"
    parent = model_dir.parent
    if model_dir.name == "untrained" and (parent / "models").is_dir():
        return f"the initial, untrained weights of the stage-2 run in {parent}"
    return ("no training record beside it (no models/ checkpoints): imported (steps/import_seed_model.py) "
            "or copied")


def _embedding_sets(model_dir: Path) -> str:
    folder = model_dir / "embeddings"
    sets = sorted(p for p in folder.iterdir() if (p / XVECTOR_SCP).is_file()) if folder.is_dir() else []
    if not sets:
        return "none"
    out = []
    for emb in sets:
        count = sum(1 for _ in iter_table_lines(emb / XVECTOR_SCP))
        stale = " (out of date: its inputs changed)" if stale_inputs(emb / EXTRACT_STAMP) else ""
        out.append(f"{emb.name} ({count}){stale}")
    return ", ".join(out)


def describe_model_dir(path: PathLike) -> Description:
    """A model directory: architecture, C, parameters, classes, origin, operating point, embeddings and scores."""
    model_dir = Path(path)
    info = Description(f"{model_dir}: model directory")
    encoder, head, config = load_model_dir_with_head(model_dir)
    model = config.model
    front = (f"Kaldi fbank front end ({model.feat_dim} bins, from feats.scp)" if model.frontend == "fbank"
             else f"the seed's log-mel front end ({model.feat_dim} bands, on waveforms from wav.scp)")
    info.add("architecture", f"ECAPA-TDNN, {front}, {model.embed_dim}-d embeddings")
    info.add("C", str(model.channels))
    parameters = sum(p.numel() for p in encoder.parameters())
    info.add("parameters", f"{_count(parameters)} (encoder) + {_count(head.weight.numel())} (AAM-softmax head, margin "
                           f"{config.loss.margin}, scale {config.loss.scale})")
    info.add("classes", f"{model.num_classes} training speakers")
    info.add("protocol", f"extract.protocol {config.extract.protocol}")
    info.add("origin", _origin(model_dir, config.train.average_last))
    names = (CONFIG_NAME, MODEL_NAME, "fbank.conf", CALIBRATION_NAME, "embedding_mean.vec", "threshold.yaml")
    info.add("files", ", ".join(f"{name} ({size_text((model_dir / name).stat().st_size)})"
                                for name in names if (model_dir / name).is_file()))
    point = read_operating_point(model_dir)
    info.add("operating point", missing_description(model_dir) if point is None
             else f"{point.threshold:.6f} {point.describe()}")
    info.add("embeddings", _embedding_sets(model_dir))
    scores = sorted(p.name for p in (model_dir / "scores").iterdir()) if (model_dir / "scores").is_dir() else []
    info.add("scores", ", ".join(scores) if scores else "none")
    return info


def describe_embedding_dir(path: PathLike) -> list[Description]:
    """An embedding directory of stage 3: its xvector.scp (and xvector_crops.scp), skipped utterances, freshness."""
    emb = Path(path)
    found = [describe_table(emb / name) for name in (XVECTOR_SCP, CROPS_SCP) if (emb / name).is_file()]
    skipped = read_skipped(emb)
    if skipped:
        found[0].add("skipped", f"{len(skipped)} utterances left out as bad input (skipped_utts)")
    stale = stale_inputs(emb / EXTRACT_STAMP)
    if stale:
        found[0].add("stamp", f"out of date: {stale[0]} changed after stage 3 wrote it")
    elif (emb / EXTRACT_STAMP).is_file():
        found[0].add("stamp", "up to date with its inputs (.extract.stamp)")
    return found


def _text_kind(path: Path) -> str:
    for _, fields in iter_table_lines(path):
        if len(fields) == 3 and fields[2] in TRIAL_LABELS:
            return "trials"
        if len(fields) == 3:
            try:
                if np.isfinite(float(fields[2])):
                    return "scores"
            except ValueError:
                pass
        break
    raise DataError(f"{path}: not an artefact info knows ({KINDS})")


def describe(path: PathLike, trials: PathLike | None = None, check_audio: bool = False) -> list[Description]:
    """The description(s) of whatever artefact ``path`` is (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        if (path / MODEL_NAME).is_file() or (path / CONFIG_NAME).is_file():
            return [describe_model_dir(path)]
        if (path / "utt2spk").is_file() or (path / "wav.scp").is_file():
            return [describe_data_dir(path, check_audio)]
        if (path / XVECTOR_SCP).is_file():
            return describe_embedding_dir(path)
        raise DataError(f"{path}: not an artefact info knows ({KINDS})")
    if not path.is_file():
        raise DataError(f"{path}: no such file or directory")
    if path.suffix in (".scp", ".ark"):
        return [describe_table(path)]
    kind = _text_kind(path)
    if kind == "trials":
        return [describe_trials(path)]
    return [describe_scores(path, trials)]
