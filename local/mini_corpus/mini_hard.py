"""``test_hard``: the mini corpus's test utterances cut to 1-3 s and degraded, beside their clean originals.

For each utterance ``te001-003`` of ``data_root/test`` the set adds ``te001-003-hard``: a
1-3 s window of it, reverberated in a simulated room for about half of them, with coloured
noise or babble at 0-15 dB SNR, all from the ``test_hard`` noise bank (its own rooms, noise
files and babble talkers; :mod:`mini_corpus.banks`). The data dir lists both (the clean
originals by their paths in ``test/wav.scp``); ``utt2condition`` says what was drawn for each
(:mod:`mini_corpus.degrade`). Trials: every pair of ``test/trials`` degraded against
degraded, and clean enrolment against degraded test, with the same labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyfunc.corpora.streams import HARD_DEGRADATIONS, stream_rng
from pyfunc.data.audio import SAMPLE_RATE, write_wav
from pyfunc.data.datadir import DataDir, load_data_dir, write_data_dir
from pyfunc.data.trials import read_trials, write_trials
from pyfunc.features.augment import AudioSource

from .banks import NoiseBank
from .degrade import Condition, degrade, draw_cut, write_conditions

HARD_SUFFIX = "-hard"
CUT_SECONDS = (1.0, 3.0)


def degrade_speaker(speaker_index: int, utts: list[tuple[str, str]], random_seed: int, bank: NoiseBank,
                    out_dir: str) -> list[tuple[str, str, float, Condition]]:
    """Cut and degrade the (utt, wav path) pairs of one test speaker (a process-pool task).

    Returns (hard utt id, wav path relative to the part, duration, condition) per utterance;
    utterance ``k`` draws from ``SeedSequence([random_seed, HARD_DEGRADATIONS, speaker_index, k])``.
    """
    source = AudioSource()
    read = lambda path, where: source.whole(path)  # noqa: E731
    out = []
    for k, (utt, path) in enumerate(utts):
        rng = stream_rng(random_seed, HARD_DEGRADATIONS, speaker_index, k)
        clean = np.array(source.whole(path))
        start, size = draw_cut(rng, clean.size, CUT_SECONDS)
        audio, drawn = degrade(clean[start:start + size], rng, bank, read)
        hard = utt + HARD_SUFFIX
        relpath = f"wav/{hard}.wav"
        write_wav(Path(out_dir) / relpath, audio)
        out.append((hard, relpath, size / SAMPLE_RATE,
                    Condition(hard, "degraded", start / SAMPLE_RATE, size / SAMPLE_RATE, **drawn)))
    return out


def hard_tasks(test_dir: Path, random_seed: int, bank: NoiseBank, tmp_dir: Path) -> list[tuple]:
    """One :func:`degrade_speaker` task per speaker of ``test_dir``, in speaker order."""
    test = load_data_dir(test_dir, features=False)
    return [(index, [(utt, test.wav_scp[utt]) for utt in utts], random_seed, bank, str(tmp_dir))
            for index, (spk, utts) in enumerate(test.spk2utt.items())]


def write_hard_set(tmp_dir: Path, part_dir: Path, test_dir: Path, results: list) -> None:
    """Write the test_hard data dir (clean originals + degraded cuts), utt2condition and trials."""
    test = load_data_dir(test_dir, features=False)
    wav_scp, utt2spk, utt2dur = dict(test.wav_scp), dict(test.utt2spk), dict(test.utt2dur)
    conditions = [Condition(utt, "clean", 0.0, test.utt2dur[utt]) for utt in test.utt2spk]
    for hard, relpath, duration, condition in (row for speaker in results for row in speaker):
        original = hard[: -len(HARD_SUFFIX)]
        wav_scp[hard] = str(part_dir / relpath)
        utt2spk[hard] = test.utt2spk[original]
        utt2dur[hard] = duration
        conditions.append(condition)
    write_data_dir(tmp_dir, DataDir(wav_scp, utt2spk, utt2dur))
    write_conditions(tmp_dir / "utt2condition", conditions)
    trials = []
    for enroll, probe, label in read_trials(test_dir / "trials"):
        trials.append((enroll + HARD_SUFFIX, probe + HARD_SUFFIX, bool(label)))
        trials.append((enroll, probe + HARD_SUFFIX, bool(label)))
    write_trials(tmp_dir / "trials", sorted(trials))
