#!/usr/bin/env python3
"""Stage 6 over several trial lists: EER, minDCF, Cllr, min Cllr and actual DCF of every model and scoring.

Usage: steps/results_table.py [--data DATA] --lists test,test_hard [--scorings cosine,asnorm,...]
           [--plot-dir DIR] --out EXP/results MODEL_DIR...
The lists are data dirs: names under DATA, or (without --data) paths, e.g. data/test,../mini/test_unseen.
For each list L it reads the trials L/trials and, for each MODEL_DIR and scoring S, the scores
MODEL_DIR/scores/L_S (a scoring without a score file is left out). It prints and writes one table (OUT),
one per list (OUT_L) and, with --plot-dir, each list's DET curves and score histograms. Rows are named by
their score files (steps/summarize_results.py reads the tables). With --combined false only the tables OUT_L
are written: OUT, the table of the recipe's default test sets, is left as it is (a run.sh --test-data DIR).
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None,
                        help="folder of the data dirs DATA/LIST holding LIST's trials [none: --lists are paths]")
    parser.add_argument("--lists", required=True,
                        help="comma-separated trial lists: data dir names under --data, or data dir paths")
    parser.add_argument("--scorings", default="cosine,asnorm",
                        help="comma-separated scorings, the score files' suffixes [cosine,asnorm]")
    parser.add_argument("--p-target", type=float, action="append", default=None,
                        help="minDCF target prior (repeatable; default 0.01 and 0.05)")
    parser.add_argument("--plot-dir", default=None, help="draw each list's DET curves and histograms here")
    parser.add_argument("--out", required=True, help="results table to write")
    parser.add_argument("--combined", default="true", choices=("true", "false"),
                        help="write OUT too, not only OUT_LIST per list (false: leave OUT as it is) [true]")
    parser.add_argument("model_dirs", nargs="+", metavar="MODEL_DIR")
    args = parser.parse_args()

    from pyfunc.pipeline.metrics_stage import results_table
    from pyfunc.scoring.metrics import format_results_table

    rows = results_table(args.data, args.model_dirs, [s for s in args.lists.split(",") if s],
                         [s for s in args.scorings.split(",") if s], args.out, args.p_target or (0.01, 0.05),
                         args.plot_dir, combined=args.combined == "true")
    print(format_results_table(rows), end="")


if __name__ == "__main__":
    run_main(main)
