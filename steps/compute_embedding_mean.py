#!/usr/bin/env python3
"""The training set's mean embedding, stored in the model directory for mean subtraction before scoring.

Usage: steps/compute_embedding_mean.py --model-dir EXP --embeddings EXP/embeddings/train
Writes EXP/embedding_mean.vec (a Kaldi double vector: the mean of every vector in
EMB_DIR/xvector.scp, as Kaldi's ivector-mean) and EXP/embedding_mean.yaml (the scp, the count,
the SHA-256 of EXP/model.pt, the date). Stages 4-5 (steps/score.sh, steps/score_norm.sh) and the
verify/embed API subtract it from every embedding when the model's score.subtract_mean is true
(or with --subtract-mean true); a mean made with another model.pt is refused.
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True, help="model directory the mean belongs to")
    parser.add_argument("--embeddings", required=True,
                        help="stage-3 embedding directory of the training set, made with this model")
    args = parser.parse_args()

    from pyfunc.pipeline.mean_stage import compute_embedding_mean

    print(compute_embedding_mean(args.model_dir, args.embeddings))


if __name__ == "__main__":
    run_main(main)
