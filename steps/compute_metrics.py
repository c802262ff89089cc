#!/usr/bin/env python3
"""Stage 6: EER and minDCF of score files against a labelled trials file; prints and writes a table.

Usage: steps/compute_metrics.py --trials data/test/trials --out EXP/results SCORE_FILE...
Each system is named by --name (once per score file, in order) or by its score file path.

Also writes, unless --no-plots, the DET curves of all the score files on one figure
(PLOT_DIR/det_<test>.png) and their target/non-target score histograms
(PLOT_DIR/scores_<test>.png), <test> being the folder of the trials file; PLOT_DIR is
--plot-dir, by default the folder of --out + /plots. For each score file
MODEL_DIR/scores/*_cosine it stores the EER threshold in MODEL_DIR/threshold.yaml,
which `python -m pyfunc verify` decides with.
"""

import argparse
from pathlib import Path

from pyfunc.cli import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", required=True, help="Kaldi trials file: enroll test target|nontarget")
    parser.add_argument("--out", required=True, help="results table to write")
    parser.add_argument("--name", action="append", default=None,
                        help="system name for the score file in the same position (repeat for each)")
    parser.add_argument("--p-target", type=float, action="append", default=None,
                        help="minDCF target prior (repeatable; default 0.01 and 0.05)")
    parser.add_argument("--plot-dir", default=None, help="folder for the PNG plots (default: OUT's folder/plots)")
    parser.add_argument("--no-plots", action="store_true", help="do not draw the DET and histogram plots")
    parser.add_argument("score_files", nargs="+", metavar="SCORE_FILE")
    args = parser.parse_args()

    from pyfunc.metrics import evaluate_score_files, format_results_table, write_results
    from pyfunc.threshold import store_thresholds

    rows = evaluate_score_files(args.trials, args.score_files, args.p_target or (0.01, 0.05), names=args.name)
    print(format_results_table(rows), end="")
    write_results(args.out, rows)
    store_thresholds(rows, args.trials)
    if not args.no_plots:
        from pyfunc.plots import stage6_plots

        stage6_plots(args.trials, args.score_files, args.plot_dir or Path(args.out).parent / "plots", args.name)


if __name__ == "__main__":
    run_main(main)
