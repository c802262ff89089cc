#!/usr/bin/env python3
"""Stage 6: EER, minDCF, Cllr, min Cllr and actual DCF of score files against a labelled trials file;
prints and writes a table.

Usage: steps/compute_metrics.py --trials data/test/trials --out EXP/results SCORE_FILE...
Each system is named by --name (once per score file, in order) or by its score file path.
Cllr and actual DCF read the scores as log-likelihood ratios: they mean something for calibrated
scores (steps/apply_calibration.py); min Cllr, like EER and minDCF, does not depend on the scale.

Also writes, unless --no-plots, the DET curves of all the score files on one figure
(PLOT_DIR/det_<test>.png) and their target/non-target score histograms
(PLOT_DIR/scores_<test>.png), <test> being the folder of the trials file; PLOT_DIR is
--plot-dir, by default the folder of --out + /plots. It changes no model's operating point
(that is steps/calibrate.py's job).
"""

import argparse
from pathlib import Path

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", required=True, help="Kaldi trials file: enroll test target|nontarget")
    parser.add_argument("--out", required=True, help="results table to write")
    parser.add_argument("--name", action="append", default=None,
                        help="system name for the score file in the same position (repeat for each)")
    parser.add_argument("--p-target", type=float, action="append", default=None,
                        help="minDCF and actual DCF target prior (repeatable; default 0.01 and 0.05)")
    parser.add_argument("--plot-dir", default=None, help="folder for the PNG plots (default: OUT's folder/plots)")
    parser.add_argument("--no-plots", action="store_true", help="do not draw the DET and histogram plots")
    parser.add_argument("score_files", nargs="+", metavar="SCORE_FILE")
    args = parser.parse_args()

    from pyfunc.pipeline.metrics_stage import evaluate_stage
    from pyfunc.scoring.metrics import format_results_table

    plot_dir = None if args.no_plots else args.plot_dir or Path(args.out).parent / "plots"
    rows = evaluate_stage(args.trials, args.score_files, args.out, names=args.name,
                          p_targets=args.p_target or (0.01, 0.05), plot_dir=plot_dir)
    print(format_results_table(rows), end="")


if __name__ == "__main__":
    run_main(main)
