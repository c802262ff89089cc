#!/usr/bin/env python3
"""Stage 6 of the VoxCeleb recipe: EER and minDCF of every trial list and scoring, in one table.

Usage: local/results_table.py --data data --scores-dir EXP/scores [--lists vox1_o,vox1_e,vox1_h]
           [--scorings cosine,asnorm] --out EXP/results
For each list L and scoring S it reads the trials DATA/L/trials and the scores SCORES_DIR/L_S; each row is
named by its score file, as in the top-level recipe's table (steps/summarize_results.py reads it), with
EER (%) and minDCF at p_target 0.01 and 0.05.
"""

import argparse
from pathlib import Path

from pyfunc.cli import run_main


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

    from pyfunc.errors import ConfigError
    from pyfunc.metrics import evaluate_score_files, format_results_table, write_results

    lists = [s for s in args.lists.split(",") if s]
    scorings = [s for s in args.scorings.split(",") if s]
    if not lists or not scorings:
        raise ConfigError("--lists and --scorings must each name at least one")
    rows = []
    for name in lists:
        files = [Path(args.scores_dir) / f"{name}_{scoring}" for scoring in scorings]
        rows += evaluate_score_files(Path(args.data) / name / "trials", files, args.p_target or (0.01, 0.05))
    print(format_results_table(rows), end="")
    write_results(args.out, rows)


if __name__ == "__main__":
    run_main(main)
