"""The random streams of the synthetic corpora.

Every random draw of stage 0 comes from ``numpy.random.default_rng(SeedSequence([random_seed,
stream, ...]))`` with ``stream`` one of the constants below and the rest naming the place of the
draw (speaker, utterance, file), so each part of the corpus is reproducible on its own and
independent of the number of parallel jobs, and no two parts share a stream.
"""

from __future__ import annotations

import numpy as np

MINI_SPEAKERS = 0  # the original train/test speakers (local/mini_corpus/mini.py)
MINI_UTTERANCES = 1
MINI_TRIALS = 2
PARTITION = 10  # which variant x accent pairs go to dev, the babble talkers and training
WIDE_SPEAKERS = 11
WIDE_UTTERANCES = 12
UNSEEN_SPEAKERS = 13
UNSEEN_UTTERANCES = 14
UNSEEN_TRIALS = 15
DEV_SPEAKERS = 16
DEV_UTTERANCES = 17
DEV_TRIALS = 18
DEV_DEGRADATIONS = 19
HARD_DEGRADATIONS = 20
BANKS = {"augment": 30, "test_hard": 31, "dev": 32}  # noise/music/babble/room banks, one stream each


def stream_rng(random_seed: int, stream: int, *place: int) -> np.random.Generator:
    """The generator of ``stream`` at ``place`` (speaker, utterance, ... indices)."""
    return np.random.default_rng(np.random.SeedSequence([random_seed, stream, *place]))
