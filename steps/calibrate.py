#!/usr/bin/env python3
"""Set a model's operating point on purpose, from the scored trials of a development set.

Usage: steps/calibrate.py --model-dir EXP --trials data/mini/dev/trials --scores EXP/scores/dev_cosine \
  [--kind logistic|eer|min_dcf] [--p-target P] [--quality duration,magnitude] [--out FILE]

Writes EXP/calibration.yaml (or --out): the kind, the development set, the fitted parameters, the
model it was fitted for and the date. `python -m pyfunc verify --model-dir EXP` decides with it
until it is recalibrated; stage 6 never changes it.

  logistic  (default) a linear map of the score (and quality measures) to a log-likelihood ratio,
            fitted by prior-weighted logistic regression (Cllr at --fit-prior 0.5); "same speaker"
            when the LLR >= -logit(p_target)
  eer       the EER threshold of the development scores
  min_dcf   their minDCF threshold at p_target

--p-target defaults to the first of the model's score.p_targets. --quality adds WeSpeaker's quality
measure functions of both sides to the logistic regression: duration (DATA/utt2dur, capped at
--max-duration s), magnitude (embedding norm) and cohort_mean (top-N AS-norm cohort mean, needs
--cohort-data); verify computes only cosine scores, duration and magnitude, so other calibrations
(AS-norm scores, cohort_mean) must go elsewhere with --out, for steps/apply_calibration.py.
The cosine scores are checked against the development set's embeddings (DATA is the folder of
--trials, its embeddings EXP/embeddings/<name of DATA>): they must be what stage 4 gives with the
model's scoring now (embedding mean subtraction on or off, see --subtract-mean).
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True, help="model directory the operating point belongs to")
    parser.add_argument("--trials", required=True, help="labelled trials of the development set")
    parser.add_argument("--scores", required=True, help="their scores (stage 4 or 5)")
    parser.add_argument("--kind", default="logistic", choices=["logistic", "eer", "min_dcf"],
                        help="logistic calibration, or a threshold at the EER / minDCF point [logistic]")
    parser.add_argument("--p-target", type=float, default=None,
                        help="target prior of the decisions [the model's first score.p_targets]")
    parser.add_argument("--fit-prior", type=float, default=0.5,
                        help="prior weighting of the logistic regression (0.5: minimise Cllr) [0.5]")
    parser.add_argument("--quality", default="", help="comma-separated quality measures: duration, magnitude, "
                                                      "cohort_mean [none]")
    parser.add_argument("--max-duration", type=float, default=20.0, help="cap of the duration measure, s [20]")
    parser.add_argument("--data", default=None, help="data dir of the trials (utt2dur) [folder of --trials]")
    parser.add_argument("--embeddings", default=None,
                        help="embedding dir of the trial utterances [MODEL_DIR/embeddings/<name of DATA>]")
    parser.add_argument("--cohort-data", default=None,
                        help="AS-norm cohort data dir (its embeddings MODEL_DIR/embeddings/<name>), for cohort_mean")
    parser.add_argument("--top-n", type=int, default=None, help="cohort scores kept [score.asnorm_top_n]")
    parser.add_argument("--scoring", default=None, choices=["cosine", "asnorm"],
                        help="what the scores are [from the name: *_cosine, *_asnorm]")
    parser.add_argument("--subtract-mean", default="auto", choices=["auto", "true", "false"],
                        help="the scores were made with MODEL_DIR/embedding_mean.vec subtracted "
                             "(auto: the model's score.subtract_mean)")
    parser.add_argument("--out", default=None, help="file to write [MODEL_DIR/calibration.yaml]")
    args = parser.parse_args()

    from pyfunc.pipeline.calibrate_stage import calibrate, describe_calibration

    measures = [m for m in args.quality.split(",") if m]
    out = calibrate(args.model_dir, args.trials, args.scores, args.kind, args.p_target, args.fit_prior, measures,
                    args.data, args.embeddings, args.cohort_data, args.top_n, args.max_duration, args.scoring,
                    {"auto": None, "true": True, "false": False}[args.subtract_mean], args.out)
    print(describe_calibration(out), end="")


if __name__ == "__main__":
    run_main(main)
