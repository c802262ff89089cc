#!/usr/bin/env python3
"""Stage 6 of the VoxCeleb recipe: EER and minDCF of every trial list and scoring, in one table.

Usage: local/results_table.py --data data --scores-dir EXP/scores [--lists vox1_o,vox1_e,vox1_h]
           [--scorings cosine,asnorm] --out EXP/results
For each list L and scoring S it reads the trials DATA/L/trials and the scores SCORES_DIR/L_S; each row is
named by its score file, as in the top-level recipe's table (steps/summarize_results.py reads it), with
EER (%) and minDCF at p_target 0.01 and 0.05.
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="folder of the data dirs DATA/LIST holding LIST's trials")
    parser.add_argument("--scores-dir", required=True, help="folder of score files LIST_SCORING")
    parser.add_argument("--lists", default="vox1_o,vox1_e,vox1_h", help="comma-separated trial lists")
    parser.add_argument("--scorings", default="cosine,asnorm", help="comma-separated scorings [cosine,asnorm]")
    parser.add_argument("--p-target", type=float, action="append", default=None,
                        help="minDCF target prior (repeatable; default 0.01 and 0.05)")
    parser.add_argument("--out", required=True, help="results table to write")
    args = parser.parse_args()

    from pyfunc.pipeline.metrics_stage import results_table
    from pyfunc.scoring.metrics import format_results_table

    rows = results_table(args.data, args.scores_dir, [s for s in args.lists.split(",") if s],
                         [s for s in args.scorings.split(",") if s], args.out, args.p_target or (0.01, 0.05))
    print(format_results_table(rows), end="")


if __name__ == "__main__":
    run_main(main)
