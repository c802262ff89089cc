#!/usr/bin/env python3
"""The ablation table of local/run_ablation.sh: EER and minDCF of each technique, mean ± spread over seeds.

Usage: steps/ablation_table.py --manifest EXP/manifest.tsv [--sets test,test_unseen,test_hard]
           [--p-target 0.01] [--out EXP/ablation.md]
The manifest has one row per technique, tab-separated: label, cosine scoring, AS-norm scoring, and the
model directories of the seeds (each with a stage-6 results table). The spread is the sample standard
deviation over the seeds.
"""

import argparse

from pyfunc.cli.runner import run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, help="rows: label, scorings, model dirs (tab-separated)")
    parser.add_argument("--sets", default="test,test_unseen,test_hard", help="comma-separated test sets")
    parser.add_argument("--p-target", type=float, default=0.01, help="prior of the minDCF column [0.01]")
    parser.add_argument("--out", default=None, help="Markdown file to write (also printed)")
    args = parser.parse_args()

    from pyfunc.scoring.ablation import write_ablation_table

    print(write_ablation_table(args.manifest, [s for s in args.sets.split(",") if s], args.out, args.p_target),
          end="")


if __name__ == "__main__":
    run_main(main)
