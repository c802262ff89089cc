#!/usr/bin/env python3
"""Stage 0: synthesise the espeak-ng mini corpus into DATA_ROOT (Kaldi data dirs, trials, noise banks).

Usage: local/make_mini_corpus.py [--data-root data/mini] [--nj 2] [--random-seed 777] [--parts train,test]
           [--train-speakers N] [--test-speakers N] [--utts-per-speaker N] [--test-utts-per-speaker N]
           [--wide-speakers N] [--wide-utts-per-speaker N] [--wide-name NAME]
           [--unseen-speakers N] [--unseen-utts-per-speaker N] [--dev-speakers N] [--dev-utts-per-speaker N]

Parts (--parts, comma-separated; each skipped when its .done stamp records the same parameters):
  train, test     the original corpus: DATA_ROOT/{train,test}, test/trials (test alone: only the test speakers)
  train_wide      DATA_ROOT/<--wide-name>: many speakers over the training voice space, several text generators
  test_unseen     DATA_ROOT/test_unseen: held-out voices and sentences, 1.5-3 s cuts, trials
  dev             DATA_ROOT/dev: speakers of their own, 1-3 s cuts, half degraded (bank augment_dev), trials
  augment         DATA_ROOT/augment: noise, music, babble and room stand-ins for MUSAN and RIRS_NOISES
                  (train.augment.musan_dir=DATA_ROOT/augment, train.augment.rir_dir=DATA_ROOT/augment/rirs)
  test_hard       DATA_ROOT/test_hard: test cut to 1-3 s, noise/babble at 0-15 dB, half reverberated
                  (bank augment_test_hard), beside the clean originals; needs test

--status true: build nothing, write nothing; print one line per folder it would write,
FOLDER<TAB>STATE[: WHY]<TAB>STEP[<TAB>DATA_DIR...] (STATE: up to date, to make, to redo), from the stamps
(what steps/run_stages.py --status shows for stage 0).
"""

import argparse
import sys
from pathlib import Path

from pyfunc.cli.runner import run_main

LOCAL = Path(__file__).resolve().parent  # holds the mini_corpus package


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="data/mini", help="output folder [data/mini]")
    parser.add_argument("--wav-dir", default=None, help="where the wav files of train and test go [DATA_ROOT/wav]")
    parser.add_argument("--nj", type=int, default=2, help="parallel synthesis processes [2]")
    parser.add_argument("--random-seed", "--seed", dest="random_seed", type=int, default=777,
                        help="random seed; same random seed, same corpus (--seed: its former name) [777]")
    parser.add_argument("--parts", default="train,test", help="comma-separated parts to build [train,test]")
    parser.add_argument("--train-speakers", type=int, default=100, help="training speakers of train [100]")
    parser.add_argument("--test-speakers", type=int, default=20, help="test speakers [20]")
    parser.add_argument("--utts-per-speaker", type=int, default=20, help="utterances per speaker [20]")
    parser.add_argument("--test-utts-per-speaker", type=int, default=None,
                        help="utterances per test speaker [--utts-per-speaker]")
    parser.add_argument("--wide-speakers", type=int, default=300, help="speakers of train_wide [300]")
    parser.add_argument("--wide-utts-per-speaker", type=int, default=6, help="utterances per train_wide speaker [6]")
    parser.add_argument("--wide-name", default="train_wide", help="folder name of train_wide [train_wide]")
    parser.add_argument("--unseen-speakers", type=int, default=24, help="speakers of test_unseen [24]")
    parser.add_argument("--unseen-utts-per-speaker", type=int, default=8, help="utterances per test_unseen speaker [8]")
    parser.add_argument("--dev-speakers", type=int, default=16, help="speakers of dev [16]")
    parser.add_argument("--dev-utts-per-speaker", type=int, default=8, help="utterances per dev speaker [8]")
    parser.add_argument("--espeak", default="espeak-ng", help="espeak-ng executable [espeak-ng]")
    parser.add_argument("--status", default="false", choices=("true", "false"),
                        help="only say what would be made, from the stamps (writes nothing) [false]")
    args = parser.parse_args()

    sys.path.insert(0, str(LOCAL))
    from mini_corpus.mini_parts import make_mini_parts, mini_status

    if args.status == "true":
        lines = mini_status(args.data_root, [p for p in args.parts.split(",") if p], wide_name=args.wide_name,
                            random_seed=args.random_seed, num_train_speakers=args.train_speakers,
                            num_test_speakers=args.test_speakers, utts_per_speaker=args.utts_per_speaker,
                            test_utts_per_speaker=args.test_utts_per_speaker, wav_dir=args.wav_dir,
                            wide_speakers=args.wide_speakers, wide_utts_per_speaker=args.wide_utts_per_speaker,
                            unseen_speakers=args.unseen_speakers, unseen_utts_per_speaker=args.unseen_utts_per_speaker,
                            dev_speakers=args.dev_speakers, dev_utts_per_speaker=args.dev_utts_per_speaker)
        print("\n".join(lines))
        return
    make_mini_parts(args.data_root, parts=[p for p in args.parts.split(",") if p], random_seed=args.random_seed,
                    num_jobs=args.nj, num_train_speakers=args.train_speakers, num_test_speakers=args.test_speakers,
                    utts_per_speaker=args.utts_per_speaker, test_utts_per_speaker=args.test_utts_per_speaker,
                    wav_dir=args.wav_dir, wide_speakers=args.wide_speakers,
                    wide_utts_per_speaker=args.wide_utts_per_speaker, wide_name=args.wide_name,
                    unseen_speakers=args.unseen_speakers, unseen_utts_per_speaker=args.unseen_utts_per_speaker,
                    dev_speakers=args.dev_speakers, dev_utts_per_speaker=args.dev_utts_per_speaker,
                    espeak=args.espeak)


if __name__ == "__main__":
    run_main(main)
