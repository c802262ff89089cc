#!/usr/bin/env python3
"""Stage 5: AS-norm scoring of a trials file; the cohort is the mean embedding of each training speaker.

Usage: steps/score_asnorm.py --trials data/test/trials --embeddings EXP/embeddings/test \
  --cohort EXP/embeddings/train --cohort-utt2spk data/train/utt2spk --model-dir EXP \
  --out EXP/scores/test_asnorm
The number of cohort scores kept per side is --top-n, else the score.asnorm_top_n of --config
(default: MODEL_DIR/config.yaml), else 300. Embedding mean: as in steps/score_cosine.py, subtracted
from the trial and the cohort embeddings alike.
With an 'enroll' file beside the trials (MODEL utt1 utt2 ...), their left column names models: each is
scored by the length-normalised mean of its length-normalised embeddings (docs/scoring.md).
"""

import argparse
from pathlib import Path

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", required=True, help="Kaldi trials file: enroll test [target|nontarget]")
    parser.add_argument("--embeddings", required=True, help="embedding directory of the trial utterances")
    parser.add_argument("--cohort", required=True, help="embedding directory of the cohort utterances")
    parser.add_argument("--cohort-utt2spk", required=True, help="utt2spk of the cohort utterances")
    parser.add_argument("--top-n", type=int, default=None, help="cohort scores kept per utterance")
    parser.add_argument("--config", default=None,
                        help="model config whose score.asnorm_top_n gives the top N [MODEL_DIR/config.yaml]")
    parser.add_argument("--out", required=True, help="score file to write: enroll test score")
    parser.add_argument("--protocol", default="auto", choices=["auto", "full", "seed"],
                        help="raw scores as in stage 4")
    parser.add_argument("--model-dir", default=None, help="model directory whose embedding mean may be subtracted")
    parser.add_argument("--subtract-mean", default="auto", choices=["auto", "true", "false"],
                        help="subtract MODEL_DIR/embedding_mean.vec (auto: the model's score.subtract_mean)")
    parser.add_argument("--mean", default=None, help="Kaldi vector file to subtract from every embedding")
    args = parser.parse_args()

    from pyfunc.config import ScoreConfig, load_config
    from pyfunc.pipeline.mean_stage import scoring_mean
    from pyfunc.pipeline.score_stage import score_trials_asnorm

    config = args.config or (Path(args.model_dir) / "config.yaml" if args.model_dir else None)
    score = load_config(config).score if config else ScoreConfig()
    top_n = args.top_n if args.top_n is not None else score.asnorm_top_n
    subtract = {"auto": None, "true": True, "false": False}[args.subtract_mean]
    mean = scoring_mean(args.model_dir, subtract, args.mean)
    score_trials_asnorm(args.trials, args.embeddings, args.cohort, args.cohort_utt2spk, top_n, args.out,
                        args.protocol, mean)


if __name__ == "__main__":
    run_main(main)
