"""One job of a stage-1 step: every utterance's audio of a data directory, through a function, into one ark/scp.

Stage 1's features and its voice-activity decisions read the audio the same way and treat bad audio the same
way; only what they compute from the samples differs. :func:`write_utterance_arks` is that shared loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection

import numpy as np

from pyfunc.data.arkio import ArkScpWriter
from pyfunc.data.atomic import PathLike
from pyfunc.data.audio_convert import read_audio_at_rate
from pyfunc.data.badinput import BadInputs, write_bad_list
from pyfunc.data.datadir import DataDir
from pyfunc.errors import DataError


@dataclass
class ArkJobResult:
    """What one job wrote: utt -> ``measure`` of its array, the seconds of audio read and the time it took."""

    measures: dict[str, int] = field(default_factory=dict)
    audio_seconds: float = 0.0
    elapsed: float = 0.0
    bad: BadInputs = field(default_factory=BadInputs)


def write_utterance_arks(data: DataDir, wav_scp: Path, ark_path: PathLike, scp_path: PathLike, rate: int,
                         check: Callable[[np.ndarray, str], None],
                         compute: Callable[[str, np.ndarray], np.ndarray],
                         measure: Callable[[np.ndarray], int],
                         progress: Callable[[int], None] | None = None, skip_bad: bool = False,
                         bad_list: PathLike | None = None, compress: bool = False, resample: bool = False,
                         leave_out: Collection[str] = ()) -> ArkJobResult:
    """``compute(utt, samples)`` of every utterance of ``data`` (but ``leave_out``) into one ark/scp pair.

    ``data`` is the loaded data directory whose ``wav.scp`` is ``wav_scp`` (named in the messages).
    The audio is read at ``rate`` (other rates resampled with ``resample``, else bad). ``check(samples, where)``
    raises a DataError for audio the step cannot use (too short). Bad audio is collected over all utterances:
    without ``skip_bad`` the job then fails with the whole list (nothing is computed after the first bad one,
    the rest is only read for more) and the writer leaves nothing; with it those utterances are left out.
    ``bad_list`` receives ``utt reason`` lines either way. ``progress`` is called with the count done so far.
    """
    result = ArkJobResult()
    bad = result.bad
    start = time.perf_counter()
    try:
        with ArkScpWriter(ark_path, scp_path, compress=compress) as writer:
            for done, utt in enumerate(data.utts, start=1):
                if utt not in leave_out:
                    where = f"{wav_scp}: {utt}"
                    try:
                        if utt not in data.wav_scp:
                            raise DataError(f"{where}: no wav.scp entry")
                        samples = read_audio_at_rate(data.wav_scp[utt], where, rate, resample)
                        check(samples, where)
                    except DataError as err:
                        bad.add(utt, str(err))
                        samples = None
                    if samples is not None and (skip_bad or not bad):  # once failing, only look for more
                        array = compute(utt, samples)
                        writer(utt, array)
                        result.measures[utt] = measure(array)
                        result.audio_seconds += len(samples) / rate
                if progress is not None:
                    progress(done)
            if bad and not skip_bad:
                raise bad.error(wav_scp, len(data.utts))
    finally:
        if bad_list is not None:
            write_bad_list(bad_list, bad.found)
    result.elapsed = time.perf_counter() - start
    return result
