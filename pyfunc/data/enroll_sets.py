"""Test sets of enrolled speaker models (``steps/make_enroll_trials.py``), made from a data directory with trials:
one model ``<spk>-enroll1`` of ``per_model`` utterances per speaker, tried against every other utterance
(the ``enroll`` format: :mod:`pyfunc.data.enroll`)."""

from __future__ import annotations

import logging
import random
from pathlib import Path

from pyfunc.data.atomic import PathLike, write_lines
from pyfunc.data.datadir import DataDir, holds_data, load_data_dir, replace_data_dir, validate_data_dir
from pyfunc.data.enroll import ENROLL_NAME
from pyfunc.data.segments import SEGMENTS
from pyfunc.data.trials import read_trials
from pyfunc.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


def _pick(utts: list[str], count: int, seed: int | None, speaker: str) -> list[str]:
    """``count`` utterances of a speaker: the first in sorted order, or a draw seeded by ``seed`` and the speaker."""
    if seed is None:
        return utts[:count]
    return sorted(random.Random(f"{seed}:{speaker}").sample(utts, count))


def plan_enroll_set(src_dir: PathLike, per_model: int = 3, seed: int | None = None, warn: bool = True
                    ) -> tuple[DataDir, dict[str, list[str]], list[tuple[str, str, bool]]]:
    """What :func:`make_enroll_trials` makes of ``src_dir``, without writing: ``(data, models, trials)``,
    the data dir of the utterances used, the models' enrolment utterances and the trials (``warn``: log the
    speakers that get no model)."""
    if per_model < 1:
        raise ConfigError(f"utterances per model must be at least 1, got {per_model}")
    src_dir = Path(src_dir)
    if (src_dir / SEGMENTS).is_file():
        raise DataError(f"{src_dir / SEGMENTS}: data dirs with segments are not supported; enrol whole recordings")
    data = load_data_dir(src_dir, features=False)
    utts = set(data.utt2spk)
    if (src_dir / "trials").is_file():
        utts = {u for e, t, _ in read_trials(src_dir / "trials", require_labels=False) for u in (e, t)}
        unknown = sorted(utts - set(data.utt2spk))
        if unknown:
            raise DataError(f"{src_dir / 'trials'}: {len(unknown)} utterance(s) not in utt2spk, e.g. {unknown[:3]}")
    by_speaker: dict[str, list[str]] = {}
    for utt in sorted(utts):
        by_speaker.setdefault(data.utt2spk[utt], []).append(utt)
    models = {f"{spk}-enroll1": _pick(spk_utts, per_model, seed, spk)
              for spk, spk_utts in by_speaker.items() if len(spk_utts) > per_model}
    few = sorted(spk for spk, spk_utts in by_speaker.items() if len(spk_utts) <= per_model)
    if few and warn:
        logger.warning("%s: %d speaker(s) with at most %d utterances get no model (their utterances are only "
                       "tested), e.g. %s", src_dir, len(few), per_model, few[:3])
    clash = sorted(set(models) & set(data.utt2spk))
    if clash:
        raise DataError(f"{src_dir}/utt2spk: model id {clash[0]!r} is also an utterance id")
    trials = []
    for model, enrolled in sorted(models.items()):
        spk = data.utt2spk[enrolled[0]]
        own = set(enrolled)
        trials += [(model, utt, data.utt2spk[utt] == spk) for utt in sorted(utts) if utt not in own]
    targets = sum(label for _, _, label in trials)
    if not targets or targets == len(trials):
        raise DataError(f"{src_dir}: {len(models)} model(s) with more than {per_model} utterances give "
                        f"{targets} target and {len(trials) - targets} non-target trials; both kinds are needed")
    return data.subset(utts), models, trials


def _enroll_lines(models: dict[str, list[str]]) -> list[str]:
    return [" ".join([m, *models[m]]) for m in sorted(models)]


def _trial_lines(trials: list[tuple[str, str, bool]]) -> list[str]:
    return [f"{e} {t} {'target' if lab else 'nontarget'}" for e, t, lab in trials]


def _holds(path: Path, lines: list[str]) -> bool:
    return path.is_file() and path.read_text(encoding="utf-8") == "".join(line + "\n" for line in lines)


def why_enroll_set_not_current(src_dir: PathLike, out_dir: PathLike, per_model: int = 3,
                               seed: int | None = None) -> str | None:
    """None when :func:`make_enroll_trials` would rewrite nothing in ``out_dir`` (its wav.scp, utt2spk, utt2dur,
    enroll and trials hold what it would write), else what differs. Reads, writes nothing; a DataError when
    ``src_dir`` cannot give a set (as make_enroll_trials would fail)."""
    out_dir = Path(out_dir)
    subset, models, trials = plan_enroll_set(src_dir, per_model, seed, warn=False)
    try:
        same = holds_data(out_dir, subset)
    except (OSError, ValueError, DataError):
        same = False
    if not same:
        return f"{out_dir}: its utterances (wav.scp, utt2spk, utt2dur) differ from those of {Path(src_dir)}'s trials"
    for name, lines in ((ENROLL_NAME, _enroll_lines(models)), ("trials", _trial_lines(trials))):
        if not _holds(out_dir / name, lines):
            return f"{out_dir / name} differs from the models of {Path(src_dir)} ({per_model} utterances each)"
    return None


def make_enroll_trials(src_dir: PathLike, out_dir: PathLike, per_model: int = 3,
                       seed: int | None = None) -> tuple[dict[str, list[str]], list[tuple[str, str, bool]]]:
    """Write ``out_dir``: a test set of enrolled speaker models made from the data dir ``src_dir``.

    The utterances are those of ``src_dir`` (only those its ``trials`` name, when it has one).
    Each speaker with more than ``per_model`` of them gets one model ``<spk>-enroll1`` of
    ``per_model`` utterances (the first in sorted order, or drawn with ``seed``); each model is
    tried against every utterance not in its own enrolment, target when of the same speaker.
    ``out_dir`` gets wav.scp, utt2spk, spk2utt (and utt2dur) of the utterances used, ``enroll``
    and ``trials``; stage outputs of an earlier, different set there (feats.scp, ...) are removed.
    A file that already holds what it would write is left alone (its time too).
    Returns ``(models, trials)``.
    """
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    subset, models, trials = plan_enroll_set(src_dir, per_model, seed)
    if not holds_data(out_dir, subset):  # another set: the old one's stage outputs go with it
        replace_data_dir(out_dir, subset)
    _write_if_changed(out_dir / ENROLL_NAME, _enroll_lines(models))
    _write_if_changed(out_dir / "trials", _trial_lines(trials))
    validate_data_dir(out_dir, check_wavs=False)
    targets = sum(label for _, _, label in trials)
    logger.info("%s: %d models of %d utterances, %d trials (%d target) from %s", out_dir, len(models), per_model,
                len(trials), targets, src_dir)
    return models, trials


def _write_if_changed(path: Path, lines: list[str]) -> None:
    """Write ``lines`` to ``path`` atomically unless it holds them already (its time stays for the stamps)."""
    text = "".join(line + "\n" for line in lines)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    write_lines(path, lines)
