#!/usr/bin/env python3
"""A test set of enrolled speaker models: several enrolment recordings per model, from a data dir with trials.

Usage: steps/make_enroll_trials.py --per-model 3 [--random-seed N] SRC_DIR OUT_DIR
e.g.   steps/make_enroll_trials.py --per-model 3 data/mini/test data/mini/test_enroll3

OUT_DIR gets wav.scp, utt2spk, spk2utt (the utterances used: those SRC_DIR/trials names), an
'enroll' file (Kaldi's spk2utt format: one model <spk>-enroll1 per speaker with more than N
utterances, N of them: the first in sorted order, or drawn with --random-seed) and 'trials' (each
model against every utterance not in its enrolment; target when of the same speaker). Stages 4-5
score each model's mean embedding (docs/scoring.md). Rerunning with the same options rewrites nothing.
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-model", type=int, default=3, help="enrolment utterances per model [3]")
    parser.add_argument("--random-seed", type=int, default=None,
                        help="draw the enrolment utterances with this seed (default: the first in sorted order)")
    parser.add_argument("src_dir", help="data dir (wav.scp, utt2spk; trials: its utterances are the ones used)")
    parser.add_argument("out_dir", help="data dir to write (wav.scp, utt2spk, spk2utt, enroll, trials)")
    args = parser.parse_args()

    from pyfunc.data.enroll_sets import make_enroll_trials

    make_enroll_trials(args.src_dir, args.out_dir, args.per_model, args.random_seed)


if __name__ == "__main__":
    run_main(main)
