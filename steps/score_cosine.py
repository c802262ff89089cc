#!/usr/bin/env python3
"""Stage 4: cosine scoring of a trials file with the embeddings of a stage-3 directory.

Usage: steps/score_cosine.py --trials data/test/trials --embeddings EXP/embeddings/test --out EXP/scores/test_cosine
Protocol 'auto' uses the seed's (full + crops) scoring iff EMB_DIR holds xvector_crops.scp.
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", required=True, help="Kaldi trials file: enroll test [target|nontarget]")
    parser.add_argument("--embeddings", required=True, help="embedding directory (xvector.scp)")
    parser.add_argument("--out", required=True, help="score file to write: enroll test score")
    parser.add_argument("--protocol", default="auto", choices=["auto", "full", "seed"],
                        help="full: full-utterance cosine; seed: (full + mean crop cosine) / 2")
    args = parser.parse_args()

    from pyfunc.pipeline.score_stage import score_trials

    score_trials(args.trials, args.embeddings, args.out, args.protocol)


if __name__ == "__main__":
    run_main(main)
