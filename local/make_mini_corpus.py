#!/usr/bin/env python3
"""Stage 0: synthesise the espeak-ng mini corpus into DATA_ROOT/{train,test} (Kaldi data dirs, test/trials).

Usage: local/make_mini_corpus.py [--data-root data/mini] [--nj 2] [--random-seed 777]
           [--train-speakers N] [--test-speakers N] [--utts-per-speaker N] [--test-utts-per-speaker N]
Does nothing when DATA_ROOT/.done records the same parameters.
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="data/mini", help="output folder [data/mini]")
    parser.add_argument("--wav-dir", default=None, help="where the wav files go [DATA_ROOT/wav]")
    parser.add_argument("--nj", type=int, default=2, help="parallel synthesis processes [2]")
    parser.add_argument("--random-seed", "--seed", dest="random_seed", type=int, default=777,
                        help="random seed; same random seed, same corpus (--seed: its former name) [777]")
    parser.add_argument("--train-speakers", type=int, default=100, help="training speakers [100]")
    parser.add_argument("--test-speakers", type=int, default=20, help="test speakers [20]")
    parser.add_argument("--utts-per-speaker", type=int, default=20, help="utterances per speaker [20]")
    parser.add_argument("--test-utts-per-speaker", type=int, default=None,
                        help="utterances per test speaker [--utts-per-speaker]")
    parser.add_argument("--espeak", default="espeak-ng", help="espeak-ng executable [espeak-ng]")
    args = parser.parse_args()

    from pyfunc.corpora.mini import make_mini_corpus

    make_mini_corpus(args.data_root, num_train_speakers=args.train_speakers, num_test_speakers=args.test_speakers,
                     utts_per_speaker=args.utts_per_speaker, random_seed=args.random_seed, num_jobs=args.nj,
                     test_utts_per_speaker=args.test_utts_per_speaker, wav_dir=args.wav_dir, espeak=args.espeak)


if __name__ == "__main__":
    run_main(main)
