#!/usr/bin/env python3
"""Map the scores of a trial list to calibrated log-likelihood ratios with a fitted calibration.

Usage: steps/apply_calibration.py --calibration EXP/calibration.yaml --trials data/mini/test/trials \
  --scores EXP/scores/test_cosine --out EXP/scores/test_cosine-cal [--cohort-data data/mini/train]

The calibration comes from steps/calibrate.py (kind logistic). Its quality measures are computed
for these trials as they were for the development set: durations from DATA/utt2dur (DATA: --data,
else the folder of --trials), magnitudes and cohort means from the embeddings
MODEL_DIR/embeddings/<name of DATA> (or --embeddings), the cohort of --cohort-data (default: the
calibration's). Stage 6 then reports Cllr and actual DCF of the LLRs; name the output
<test>_<scoring>-cal (score only) or <test>_<scoring>-qmf (with quality measures) for the
results summary to label it.
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibration", required=True, help="calibration file of steps/calibrate.py")
    parser.add_argument("--trials", required=True, help="trials file whose scores are calibrated")
    parser.add_argument("--scores", required=True, help="their scores, of the kind the calibration was fitted on")
    parser.add_argument("--out", required=True, help="score file of calibrated LLRs to write")
    parser.add_argument("--model-dir", default=None, help="model directory [the one the calibration names]")
    parser.add_argument("--data", default=None, help="data dir of the trials (utt2dur) [folder of --trials]")
    parser.add_argument("--embeddings", default=None,
                        help="embedding dir of the trial utterances [MODEL_DIR/embeddings/<name of DATA>]")
    parser.add_argument("--cohort-data", default=None, help="AS-norm cohort data dir [the calibration's]")
    args = parser.parse_args()

    from pyfunc.pipeline.calibrate_stage import apply_calibration

    apply_calibration(args.calibration, args.trials, args.scores, args.out, args.model_dir, args.data,
                      args.embeddings, args.cohort_data)


if __name__ == "__main__":
    run_main(main)
