#!/usr/bin/env python3
"""Stage 4: cosine scoring of a trials file with the embeddings of a stage-3 directory.

Usage: steps/score_cosine.py --trials data/test/trials --embeddings EXP/embeddings/test --out EXP/scores/test_cosine \
  [--model-dir EXP] [--subtract-mean auto|true|false] [--mean FILE]
Protocol 'auto' uses the seed's (full + crops) scoring iff EMB_DIR holds xvector_crops.scp.
Embedding mean: with --model-dir, EXP/embedding_mean.vec is subtracted from every embedding when
--subtract-mean is true, or auto (the default) and the model's score.subtract_mean is true;
--mean FILE subtracts that Kaldi vector instead.
With an 'enroll' file beside the trials (MODEL utt1 utt2 ...), their left column names models: each is
scored by the length-normalised mean of its length-normalised embeddings (docs/scoring.md).
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
    parser.add_argument("--model-dir", default=None, help="model directory whose embedding mean may be subtracted")
    parser.add_argument("--subtract-mean", default="auto", choices=["auto", "true", "false"],
                        help="subtract MODEL_DIR/embedding_mean.vec (auto: the model's score.subtract_mean)")
    parser.add_argument("--mean", default=None, help="Kaldi vector file to subtract from every embedding")
    args = parser.parse_args()

    from pyfunc.pipeline.mean_stage import scoring_mean
    from pyfunc.pipeline.score_stage import score_trials

    subtract = {"auto": None, "true": True, "false": False}[args.subtract_mean]
    mean = scoring_mean(args.model_dir, subtract, args.mean)
    score_trials(args.trials, args.embeddings, args.out, args.protocol, mean)


if __name__ == "__main__":
    run_main(main)
